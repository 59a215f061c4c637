"""``python -m core.api``: see :mod:`core.api.cli`."""

import sys

from core.api.cli import main

if __name__ == "__main__":
    sys.exit(main())
