"""Synthetic data: motions of the mannequin, exact ground truth, Blender (bpy) scenes and renders, and the
clip-file format of rendered training datasets (``dataset``).

May import ``body_model``, ``geometry``, ``motion_file``, ``util`` and ``errors``; never ``network``,
``capture``, ``training``, ``evaluation`` or ``cli``.
"""
