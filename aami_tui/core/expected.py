"""The columns each table of the migration creates (drift detection), without loading the SQL parser.

``aami-tui check`` must start fast, and pglast is the heaviest import on its path. The shipped
``001_initial_schema.sql`` is parsed once, at development time, into ``expected_columns.json`` (keyed by the
file's sha256; a test keeps the two in step). A file with any other content is parsed with pglast as before,
so the answer is always the parser's.

Regenerate after editing the migration: ``python -m aami_tui.core.expected``.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

CACHE_NAME = "expected_columns.json"


@cache
def _shipped() -> dict:
    try:
        # next to this module (importlib.resources cost the console's first frame and `check` ~2 ms to import)
        return json.loads(Path(__file__).with_name(CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def expected_columns(path: Path, *, parse: bool = True) -> dict[str, tuple[str, ...]] | None:
    """table -> columns the migration at ``path`` creates; None when the file cannot be used (missing,
    archived, unparsable: the server's own check does not need it, only drift detection does). With
    ``parse=False`` only the pre-parsed shipped file answers (never pglast): None for any other."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
        archived = path.resolve().parent.name == "archive"
    except OSError:
        return None
    known = _shipped()
    if not archived and known.get("sha256") == hashlib.sha256(data).hexdigest():
        return {t: tuple(cols) for t, cols in known["tables"].items()}
    if not parse:
        return None
    from aami_tui.core import migration

    try:
        return migration.load(path).tables
    except migration.MigrationError:
        return None


def write_cache(path: Path | None = None) -> Path:
    """Parse the shipped migration with pglast and write ``expected_columns.json`` next to this module."""
    from aami_tui.core import migration

    mf = migration.load(path or migration.resolve_migration_path())
    out = Path(__file__).with_name(CACHE_NAME)
    out.write_text(json.dumps({"file": mf.name, "sha256": mf.sha256,
                               "tables": {t: list(c) for t, c in mf.tables.items()}}, indent=1) + "\n")
    return out


if __name__ == "__main__":  # pragma: no cover
    print(write_cache())
