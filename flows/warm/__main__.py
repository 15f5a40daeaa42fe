"""`python -m flows.warm`: see flows/warm/cli.py."""

import sys

from flows.warm.cli import main

sys.exit(main())
