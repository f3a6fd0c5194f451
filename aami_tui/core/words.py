"""Counted nouns in sentences: "1 row", "2 rows", never "1 rows" or "table(s)"."""

from __future__ import annotations

# How a signal ends a command or the console, in the words its report and its last line use
SIGNAL_WORDS = {1: "the terminal was closed (SIGHUP)", 15: "terminated (SIGTERM)", 2: "interrupted (SIGINT)"}


def signal_words(sig: int) -> str:
    return SIGNAL_WORDS.get(int(sig), f"signal {int(sig)}")


def size(n: int | float | None, format: str = "%.1f") -> str:
    """A size in bytes for a person: "1 byte", "864 bytes", then "1.0 KiB", "5.3 MiB" (humanize's binary units;
    its "864 Bytes" below 1 KiB read as a different unit from the "bytes" said elsewhere)."""
    n = int(n or 0)
    if abs(n) < 1024:
        return plural(n, "byte")
    import humanize  # only when a size is said (``check`` loads no humanize)

    return humanize.naturalsize(n, binary=True, format=format)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and the noun in the form that goes with it: plural(1, "row") == "1 row",
    plural(1200, "row") == "1,200 rows", plural(2, "entry", "entries") == "2 entries"."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
