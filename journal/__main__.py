"""`python -m journal ...` runs the command line (see `journal.cli.main`)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
