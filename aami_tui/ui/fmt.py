"""Formatting helpers for the console (humanize), with a 'stable' mode for snapshots and screenshots."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text

from aami_tui.core.words import plural  # noqa: F401  (fmt.plural, for the screens)
from aami_tui.core.words import size as size_words

if TYPE_CHECKING:  # the runbook's model and humanize load where they are used, not for the first frame
    from aami_tui.core.runbook.model import Tx

STABLE = False  # set by the app factory for snapshot tests / screenshots: hides clocks and timings


def tx_style(tx: Tx, default: str = "bold") -> str:
    """The transaction's state in colour: one place for the runbook's bar, its step list and the inspection pane."""
    from aami_tui.core.runbook.model import Tx

    return {Tx.OPEN: "bold black on yellow", Tx.ABORTED: "bold white on red", Tx.LOST: "bold white on red",
            Tx.UNKNOWN: "bold white on red", Tx.COMMITTED: "bold black on green",
            Tx.ROLLED_BACK: "bold black on cyan"}.get(tx, default)


def tx_badge(tx: Tx) -> Text:
    """`` TRANSACTION OPEN `` / `` CONNECTION LOST: NOT COMMITTED ``…: the engine's words, upper case, in colour."""
    return Text(f" {tx.value.upper()} ", style=tx_style(tx))


def size(n: int | None) -> str:
    if n is None:
        return "—"
    return size_words(n)


def rows(n: int | None) -> str:
    if n is None:
        return "—"
    import humanize

    return humanize.intcomma(n) if n < 10_000 else humanize.intword(n, format="%.1f")


def ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    if STABLE:
        return "just now"
    import humanize

    return humanize.naturaltime(time.time() - ts)


def elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if STABLE:
        return "·"
    if seconds < 60:
        return f"{seconds:.1f}s"
    import humanize

    return humanize.precisedelta(seconds, minimum_unit="seconds", format="%0.0f")


def clock_time(when) -> str:
    """A datetime as local HH:MM:SS (masked in stable mode)."""
    return "HH:MM:SS" if STABLE else f"{when.astimezone():%H:%M:%S}"


def date_time(ts: float) -> str:
    """Epoch seconds as local YYYY-MM-DD HH:MM:SS (masked in stable mode)."""
    return "YYYY-MM-DD HH:MM:SS" if STABLE else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def clock(seconds: float | None) -> str:
    """mm:ss / h:mm:ss, for transaction and idle clocks."""
    if seconds is None:
        return "—"
    if STABLE:
        return "00:00"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


_REDACTIONS = [
    (r"(127\.0\.0\.1|localhost|::1)([:/ ]|, port |-p )\d{4,5}", r"\1\2PORT"),
    (r"/[^\s,)'\"]*/(migrations|backups|reports)\b", r"\1"),
    (r"\(?/[^\s,)'\"]*/site-packages/", "…/site-packages/"),
    (r"(/tmp|/var/tmp|/run)/[^\s,)'\"]+", "/…"),
    (r"\d{8}_\d{6}", "YYYYmmdd_HHMMSS"),
    (r"\b[0-9a-f]{12,64}\b", "<sha256>"),
    (r"\d+(\.\d+)? (KiB|MiB|GiB|TiB|Bytes|B)\b", "n \\2"),
    (r" +\d+\.\d ms  ", "        n ms  "),  # the statement log's right-aligned column: keep its width fixed
    (r"\d+(\.\d+)? ms\b", "n ms"),
    (r"\b\d+(\.\d+)?s free\b", "n free"),
    (r"pid \d+", "pid N"),
    (r"DB_PORT=\d+", "DB_PORT=PORT"),
]


def redact(text: str) -> str:
    """In stable mode (snapshots, screenshots) mask values that change from run to run."""
    if not STABLE:
        return text
    import re

    for pat, rep in _REDACTIONS:
        text = re.sub(pat, rep, text)
    return text


def short_path(path: str, width: int = 40) -> str:
    """A path that fits ``width``: whole components kept from the right, ``…/`` in front
    (``…/migrations/001_initial_schema.sql``), so that it never breaks in the middle of a name."""
    if len(path) <= width or "/" not in path:
        return path
    parts = path.split("/")
    out = parts[-1]
    for part in reversed(parts[:-1]):
        if len(out) + len(part) + 3 > width:
            break
        out = f"{part}/{out}"
    return f"…/{out}"


def short_paths(text: str, width: int = 40) -> str:
    """Every absolute path in ``text`` shortened with :func:`short_path`."""
    import re

    return re.sub(r"(?<![\w.])/[^\s,;()'\"]+", lambda m: short_path(m.group(0), width), text)
