"""Lock watch: our transaction's age, its idle-in-transaction clock, who waits on our locks, and whom we wait for."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psycopg

from aami_tui.core import locks
from aami_tui.core.db import ConnectError
from aami_tui.core.queries import sql
from aami_tui.core.runbook.apply import marked_statement
from aami_tui.core.runbook.machine import Phase
from aami_tui.core.runbook.model import Blocker, LockWatch
from aami_tui.core.runbook.session import Deadline, bounded

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook


async def sample(rb: Runbook) -> LockWatch | None:
    pid = rb.session.backend_pid
    if not rb.tx_open or pid is None:
        return None
    try:
        mon = await rb.monitor_conn()
        t = rb.opt.query_timeout
        cur = await bounded(mon, mon.execute(sql("blocking_sessions"), {"pid": pid}), t, "the lock watch")
        blockers = tuple(Blocker(*r) for r in await cur.fetchall())
        # What waits, asked after the blockers were seen (it still waits: a wait lasts): the batch in flight, and the
        # statement of it that named itself (application_name) before it queued. Asked before, both could be of a
        # moment before the apply reached the statement that waits (no batch yet, or the name of an earlier one).
        now = rb.applying_now if rb.phase is Phase.APPLYING else None
        cur = await bounded(mon, mon.execute(sql("transaction_age"), {"pid": pid}), t, "the lock watch")
        row = await cur.fetchone()
        cur = await bounded(mon, mon.execute(sql("waiting_on_us"), {"pid": pid}), t, "the lock watch")
        waiters = [dict(zip([d.name for d in cur.description], r, strict=True)) for r in await cur.fetchall()]
    except (Deadline, TimeoutError):
        await rb.drop_monitor()  # the next sample reconnects (and the caller checks the session itself)
        return None
    except (psycopg.Error, ConnectError):
        return None
    age = row[0].total_seconds() if row and row[0] is not None else None
    idle = row[1].total_seconds() if row and row[1] is not None else None
    remember(rb, waiters)
    # the statements still in flight as the sample ends (not the next ones: those may not wait at all)
    still = now is not None and rb.phase is Phase.APPLYING and rb.applying_now == now
    marked = marked_statement(row[3]) if row and len(row) > 3 else None
    return LockWatch(age, idle, tuple(waiters), warning(rb, idle, waiters), rb.opt.idle_timeout, blockers,
                     waiting_line(rb, now, blockers, marked) if still else "")


def waiting_line(rb: Runbook, now: tuple[int, int, int, float] | None, blockers: tuple[Blocker, ...],
                 marked: int | None = None) -> str:
    """'Statement 5 / 43: waiting for a lock held by pid 123 (user bob, application 'psql', idle in transaction)
    for 4s; lock_timeout (5s) ends the wait with an error': what an apply queued behind another session does.
    Inside a batch (one round trip) ``marked`` is the statement our session's application_name names (the one
    that waits: apply.run_batch frames those that may wait); without it, the batch's range."""
    if not blockers or now is None:
        return ""
    first, last, total, t0 = now
    if first == last:
        which = f"Statement {first} / {total}"
    elif marked is not None and first <= marked <= last and rb.migration is not None:
        which = (f"Statement {marked} / {total} ({rb.migration.statements[marked - 1].summary}, in a batch of "
                 f"statements {first}–{last} sent in one round trip)")
    else:
        which = f"Statements {first}–{last} / {total} (one round trip)"
    holders = locks.describe_blockers(blockers)
    bound = (f"lock_timeout ({rb.opt.lock_timeout:g}s)" if rb.opt.lock_timeout else
             f"statement_timeout ({rb.opt.statement_timeout:g}s)")
    return (f"{which}: waiting for a lock held by {holders} for {time.monotonic() - t0:.0f}s; {bound} ends the wait "
            "with an error")


def remember(rb: Runbook, waiters: list[dict]) -> None:
    """Keep every session seen waiting on our locks, with the longest wait, for the report."""
    for w in waiters:
        waited = w.get("waiting_for")
        secs = waited.total_seconds() if waited is not None else 0.0
        key = (w.get("pid"), rb.attempt)
        seen = rb.waiters_seen.get(key)
        if seen is None or secs > seen["waited_s"]:
            rb.waiters_seen[key] = {"attempt": rb.attempt, "pid": w.get("pid"), "user": w.get("user"),
                                    "application_name": w.get("application_name"), "state": w.get("state"),
                                    "query": " ".join((w.get("query") or "").split())[:200],
                                    "waited_s": round(secs, 1)}


def warning(rb: Runbook, idle: float | None, waiters: list[dict]) -> str:
    """One sentence once the open transaction has sat idle, or kept a session waiting, too long."""
    limit = rb.opt.idle_warn_seconds
    waits = [w["waiting_for"].total_seconds() for w in waiters if w.get("waiting_for") is not None]
    longest = max(waits, default=0.0)
    if (idle or 0) < limit and longest < limit:
        return ""
    parts = []
    if idle is not None:
        parts.append(f"the migration transaction has been idle for {idle:.0f}s holding its locks")
    if waiters:
        n = len(waiters)
        parts.append(f"{n} session{'s' if n != 1 else ''} waiting on them (longest {longest:.0f}s)")
    return ("Warning: " + (" and ".join(parts) or "the migration transaction is holding its locks")
            + ": COMMIT or ROLLBACK now.")
