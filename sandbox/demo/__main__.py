"""`python -m sandbox.demo` (see sandbox/demo/__init__.py)."""

import sys

from sandbox.demo.cli import main

sys.exit(main())
