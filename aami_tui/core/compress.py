"""pg_dump's -Z/--compress spelling, checked without loading pgtools (the command line checks it as it parses,
before the console's early child starts: core/early.py)."""

from __future__ import annotations

import re

COMPRESS_METHODS = ("none", "gzip", "lz4", "zstd")
_COMPRESS = re.compile(r"(?:\d|(none|gzip|lz4|zstd)(?::([A-Za-z0-9_=,]+))?)")


def parse_compress(text: str) -> str:
    """Check the spelling of a -Z/--compress value as pg_dump spells it: a level 0-9 (gzip; every pg_dump),
    or METHOD[:DETAIL] with METHOD none, gzip, lz4 or zstd (pg_dump 16 and later), e.g. ``gzip:1``,
    ``zstd:3``, ``lz4``. Returns it unchanged; raises ValueError with one sentence."""
    t = str(text).strip()
    if not _COMPRESS.fullmatch(t):
        raise ValueError(f"{text!r} is not a pg_dump compression: use a level 0-9, or METHOD[:LEVEL] with METHOD "
                         "one of none, gzip, lz4, zstd (e.g. 0, 1, gzip:1, zstd:3)")
    return t
