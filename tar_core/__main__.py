import sys

from tar_core.cli import main

sys.exit(main())
