"""COMMIT, and the one outcome resolver.

A COMMIT that gets no answer (deadline), is cancelled, or loses its connection may or may not have
committed. Exactly one path decides: ``pg_xact_status`` of the xid recorded at BEGIN, asked on a fresh
connection, after fencing our old backend. The answer is committed, rolled back, or "outcome unknown"
with the xid and the exact query to run later. It never guesses.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aami_tui.core.runbook.machine import Phase

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook


@dataclass(frozen=True)
class Resolution:
    phase: Phase  # COMMITTED, ROLLED_BACK or UNKNOWN
    status: str | None  # pg_xact_status's answer (None: could not ask)
    fence: str  # what happened to our old backend, in words
    query: str  # the query that tells the transaction's fate


def status_query(xid: str | None) -> str:
    return f"SELECT pg_xact_status('{xid}'::xid8);" if xid else "(no transaction id was recorded)"


async def resolve(rb: Runbook, wait: float | None = None) -> Resolution:
    """The migration session is no longer usable; find out what became of its transaction."""
    s = rb.session
    t = min(rb.opt.query_timeout, max(2.0, rb.settings.connect_timeout + 1.0))
    wait = t if wait is None else wait
    s.abandon()
    status = await s.xact_status(t)
    # Our backend may live on (a half-open network, or waiting for a synchronous standby after it has
    # committed locally): end it, so that its locks go and its fate is final.
    fence = await s.fence(t)
    deadline = time.monotonic() + wait
    while status not in ("committed", "aborted") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status = await s.xact_status(t)
        if status is None:
            break
    phase = {"committed": Phase.COMMITTED, "aborted": Phase.ROLLED_BACK}.get(status, Phase.UNKNOWN)
    return Resolution(phase, status, fence, status_query(s.xid))
