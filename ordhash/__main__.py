"""``python -m ordhash``: the ``ordhash`` command line (see :mod:`ordhash.cli`)."""

import sys

from .cli import main

sys.exit(main())
