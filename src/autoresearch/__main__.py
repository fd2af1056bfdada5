"""`python -m autoresearch ...`: the command line."""

import sys

from autoresearch.interfaces.cli import main

sys.exit(main())
