"""Pure logic of the add-on (numpy only, no bpy): motion files, the SMPL skeleton, rotations,
keyframe arrays, camera conversion, the engine subprocess, retargeting with its bone maps and
motion smoothing. Tested without Blender."""
