"""TAR Mocap: capture a video into a keyframed SMPL rig (Blender 4.2+ extension).

The engine runs as a separate process (``python -m tar_core``); this package never imports torch
or the engine, only reads the motion files it writes.
"""



def register():
    from . import operators, panel, preferences, properties

    preferences.register()
    properties.register()
    operators.register()
    panel.register()


def unregister():
    from . import operators, panel, preferences, properties

    panel.unregister()
    operators.unregister()
    properties.unregister()
    preferences.unregister()
