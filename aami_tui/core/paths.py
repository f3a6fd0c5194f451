"""Where the migration file is: the shipped one, or the one asked for. A module of its own, without
migration.py's dataclasses and hashlib: the console resolves the path before its first frame (README,
Performance) and loads the file after it. ``migration`` re-exports these names."""

from __future__ import annotations

from pathlib import Path

MIGRATION_NAME = "001_initial_schema.sql"


def default_migrations_dir() -> Path:
    """The shipped migrations: inside the installed package, else the checkout's top-level folder."""
    here = Path(__file__).resolve().parent.parent  # aami_tui/
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / MIGRATION_NAME).is_file():
            return candidate
    return here.parent / "migrations"


def resolve_migration_path(migrations_dir: Path | str | None = None, file: Path | str | None = None) -> Path:
    if file:
        return Path(file).expanduser()
    base = Path(migrations_dir).expanduser() if migrations_dir else default_migrations_dir()
    return base / MIGRATION_NAME
