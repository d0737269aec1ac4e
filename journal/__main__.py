"""`python -m journal ...` runs the command line (see `journal.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
