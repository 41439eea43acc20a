import sys

from hub.entrypoints.cli import main

sys.exit(main())
