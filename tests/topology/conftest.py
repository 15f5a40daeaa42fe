"""tests/topology: the system's processes restarted, killed and counted.

The demo helpers (`python -m sandbox.demo` on free ports, its processes found by its folder) are
tests/sandbox/demo/demo_process.py; that folder is put on the path here, as pytest does for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEMO_HELPERS = Path(__file__).resolve().parents[1] / "sandbox" / "demo"
if str(DEMO_HELPERS) not in sys.path:
    sys.path.insert(0, str(DEMO_HELPERS))
