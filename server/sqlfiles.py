"""SQL lives in .sql files under sql/; Python only passes parameters.

The folder is found by server.resources: the checkout's top-level sql/, or
its copy inside an installed wheel.

A query file holds named queries, each introduced by a `-- name: NAME` line
(the aiosql convention). Files are read once, when the module that uses them
is imported, and the text never changes after that.
"""
from __future__ import annotations

import re
from types import MappingProxyType
from typing import Mapping

from .resources import resource_dir

SQL_DIR = resource_dir("sql")

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def queries(name: str) -> Mapping[str, str]:
    """The named queries of sql/queries/NAME.sql, as a read-only mapping."""
    text = (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")
    parts = _NAME_LINE.split(text)
    found: dict[str, str] = {}
    for query_name, body in zip(parts[1::2], parts[2::2]):
        if query_name in found:
            raise ValueError(f"sql/queries/{name}.sql names {query_name!r} twice")
        found[query_name] = body.strip()
    return MappingProxyType(found)


def migrations() -> list[tuple[str, str]]:
    """(version, sql) for every sql/NNN_name.sql, in order."""
    files = sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    return [(path.stem, path.read_text(encoding="utf-8")) for path in files]
