"""Counted nouns in sentences: "1 row", "2 rows", never "1 rows" or "table(s)"."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and the noun in the form that goes with it: plural(1, "row") == "1 row",
    plural(1200, "row") == "1,200 rows", plural(2, "entry", "entries") == "2 entries"."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
