"""Pure logic of the add-on (numpy only, no bpy): motion files, the SMPL skeleton, rotations,
keyframe arrays, camera conversion and the engine subprocess. Tested without Blender."""
