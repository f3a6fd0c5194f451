"""Named SQL queries, one ``.sql`` file each (loaded once, by name)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def sql(name: str) -> str:
    """The text of ``queries/<name>.sql``."""
    return Path(__file__).with_name(f"{name}.sql").read_text(encoding="utf-8")  # not importlib.resources: ~2 ms
