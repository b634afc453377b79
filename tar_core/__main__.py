import os
import sys

from tar_core.cli import main

code = main()
if code in (130, 143):
    # Cancelled: everything finished is on disk and the summary written; skip the interpreter's teardown
    # (seconds with torch and MediaPipe loaded), so a cancel ends the process at once.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
sys.exit(code)
