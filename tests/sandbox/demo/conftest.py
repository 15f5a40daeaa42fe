"""One `make demo` for the module (tests/sandbox/demo/demo_process.py has the helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from demo_process import DemoProcess, start_demo, stop_demo


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    demo = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        yield demo
    finally:
        if demo.proc.poll() is None:
            stop_demo(demo)
