"""Shared test set-up: Blender-as-a-module writes its user files into a temporary folder."""

import os
import tempfile

# Must be set before the first `import bpy` anywhere in the test session.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="tar-tests-blender-"))
