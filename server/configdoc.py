"""`python -m server config-doc`: docs/configuration.md's tables, from server/config.py's declarations."""
from __future__ import annotations

import sys
from pathlib import Path

from .config import configuration_tables

BEGIN = "<!-- config-doc: begin (written by `./run.sh config-doc --write docs/configuration.md`) -->"
END = "<!-- config-doc: end -->"


def with_tables(page: str) -> str:
    """`page` with the text between its markers replaced by the current tables."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the page has no {BEGIN!r} ... {END!r} markers")
    return f"{head}{BEGIN}\n\n{configuration_tables()}\n{END}{tail}"


def run_config_doc(write: Path | None) -> int:
    if write is None:
        sys.stdout.write(configuration_tables())
        return 0
    try:
        write.write_text(with_tables(write.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"config-doc: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the settings' tables into {write}", file=sys.stderr)
    return 0
