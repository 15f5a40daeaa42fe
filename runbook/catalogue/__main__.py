"""`python -m runbook.catalogue check FILE` (`ok: N services`, or one line per error naming the service and
field, exit 2) and `python -m runbook.catalogue show [FILE]` (the resolved catalogue as YAML, secrets as
references only; without FILE, the one the settings name, or the settings as a catalogue of one)."""

from __future__ import annotations

import sys

import yaml

from runbook.catalogue.loading import load_catalogue, read_catalogue
from runbook.catalogue.model import Catalogue
from runbook.catalogue.reference import plain
from runbook.errors import SettingsError
from runbook.settings import load_settings

USAGE = "usage: python -m runbook.catalogue check FILE | show [FILE]"


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 when the catalogue is valid, 2 when it (or the command line) is not."""
    args = sys.argv[1:] if argv is None else argv
    if not ((len(args) == 2 and args[0] == "check") or (args[:1] == ["show"] and len(args) <= 2)):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        catalogue = _catalogue(args[1] if len(args) == 2 else None)
    except SettingsError as exc:
        for line in getattr(exc, "lines", [str(exc)]):
            print(line, file=sys.stderr)
        return 2
    if args[0] == "check":
        count = len(catalogue.services)
        print(f"ok: {count} service{'s' if count != 1 else ''}")
    else:
        sys.stdout.write(yaml.safe_dump(plain(catalogue), sort_keys=False, allow_unicode=True))
    return 0


def _catalogue(path: str | None) -> Catalogue:
    return read_catalogue(path) if path is not None else load_catalogue(load_settings())


if __name__ == "__main__":
    sys.exit(main())
