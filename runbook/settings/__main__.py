"""`python -m runbook.settings`: the effective settings as env lines (secrets masked), or one line
naming the bad setting (exit 2); `python -m runbook.settings docs` prints docs/settings.md."""

from __future__ import annotations

import sys

from runbook.errors import SettingsError
from runbook.settings.loading import load_settings
from runbook.settings.printing import env_lines
from runbook.settings.reference import reference_markdown

USAGE = "usage: python -m runbook.settings [docs]"


def main(argv: list[str] | None = None) -> int:
    """Print the effective settings; exit 2 when they are invalid (or the arguments are)."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["docs"], ["--reference"]):  # --reference: the earlier spelling
        sys.stdout.write(reference_markdown())
        return 0
    if args:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    print("\n".join(env_lines(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
