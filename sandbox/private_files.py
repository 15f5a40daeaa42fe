"""Files that hold the sandbox's secrets, created readable by their owner only.

Usage::

    folder = private_dir(Path("var/demo"))               # created 0700 (an existing one is left as is)
    write_private(folder / "demo.env", "export TOKEN=...\n")   # 0600 from the first byte
    with open_private(folder / "logs" / "intake.log", "wb") as log: ...

The env files (`var/sandbox.env`, `var/demo/demo.env`) carry bearer tokens and the stand-ins'
credentials, the kubeconfig a token, and the children's logs print them at start: none of them may be
readable by another user of the machine. A file is opened with mode 0600 (never created wider and
narrowed after, which would leave a window), and an existing one is narrowed before it is written;
`write_private` replaces the file whole, so a reader sees the old text or the new one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["DIR_MODE", "FILE_MODE", "open_private", "private_dir", "write_private"]

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """`path` as a folder; created (with its missing parents) readable by its owner only."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        path.chmod(DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened: make it exact
    return path


def open_private(path: Path, mode: str = "wb") -> BinaryIO:
    """Open `path` for binary writing (`"wb"` truncates, `"ab"` appends) as a 0600 file."""
    if mode not in ("wb", "ab"):
        raise ValueError(f"mode must be 'wb' or 'ab' (got {mode!r})")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through os.open: narrow it
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab") if mode == "ab" else os.fdopen(fd, "wb")


def write_private(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path`, readable and writable by its owner only.

    Atomically: the text goes to a private file beside it, renamed over `path`, so a reader waiting
    for the file (another shell, a test) never sees it empty or half written."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open_private(partial) as file:
            file.write(text.encode("utf-8"))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
