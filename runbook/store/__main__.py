"""`python -m runbook.store`: the store's schema from the command line (Alembic, configured in code).

Usage::

    python -m runbook.store upgrade [URL]     # adopt a database from before migrations, apply every revision
    python -m runbook.store current [URL]     # print the database's revision and the one this code needs

URL defaults to the settings' store URL (`RUNBOOK_STORE_URL`, settings.store.url). Errors print one line
and exit 2; the URL is printed with its password masked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _url(given: str | None) -> str:
    if given:
        return given
    from runbook.settings import load_settings

    return load_settings().store.url


def main(argv: Sequence[str] | None = None) -> int:
    from runbook.errors import RunbookError
    from runbook.settings import mask_url
    from runbook.store.migrate import HEAD, current, upgrade

    parser = argparse.ArgumentParser(prog="python -m runbook.store", description="The store's schema.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("upgrade", "apply every migration up to this code's"),
        ("current", "show the revision"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("url", nargs="?", help="store URL (default: settings store.url, RUNBOOK_STORE_URL)")
    args = parser.parse_args(argv)
    try:
        url = _url(args.url)
        if args.command == "upgrade":
            before, after = upgrade(url)
            if before == after:
                print(f"{mask_url(url)}: already at revision {after}")
            else:
                print(f"{mask_url(url)}: upgraded from revision {before or 'none'} to {after}")
        else:
            found = current(url)
            print(f"{mask_url(url)}: revision {found or 'none'} (this code needs {HEAD})")
    except RunbookError as exc:
        print(f"runbook.store {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
