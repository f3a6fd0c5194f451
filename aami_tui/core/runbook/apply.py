"""Step 4, apply: the file statement by statement inside the open transaction, each with a deadline."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors as pgerr

from aami_tui.core import migration as mig
from aami_tui.core.db import ConnectError
from aami_tui.core.queries import sql
from aami_tui.core.runbook.model import Blocker, StatementRecord, Step
from aami_tui.core.runbook.session import Deadline, bounded

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook


async def watch_blockers(rb: Runbook) -> None:
    """While a statement runs, remember who blocks it (for a lock-timeout message)."""
    rb.last_blockers = []
    try:
        await asyncio.sleep(0.3)
        mon = await rb.monitor_conn()
        while True:
            cur = await bounded(mon, mon.execute(sql("blocking_sessions"), {"pid": rb.session.backend_pid}),
                                rb.opt.query_timeout, "the blocker watch")
            rows = await cur.fetchall()
            if rows:
                rb.last_blockers = [Blocker(*r) for r in rows]
            await asyncio.sleep(0.5)
    except Deadline:
        await rb.drop_monitor()
    except (asyncio.CancelledError, psycopg.Error, ConnectError, TimeoutError):
        return


def failure_message(rb: Runbook, st: mig.Statement, total: int, exc: psycopg.Error) -> str:
    diag = exc.diag
    primary = diag.message_primary or str(exc).splitlines()[0]
    where = f"line {st.line}"
    if diag.statement_position:
        try:
            pos = int(diag.statement_position) - 1
            line = st.line + st.sql.count("\n", 0, pos)
            col = pos - (st.sql.rfind("\n", 0, pos) + 1) + 1
            if line == st.line:  # the statement may not start at column 1 of its line
                col += st.column - 1
            where = f"line {line}, column {col}"
        except ValueError:
            pass
    msg = f"Statement {st.index} / {total} ({st.summary}, {where}) failed: {primary}"
    if isinstance(exc, pgerr.LockNotAvailable):
        who = "; ".join(b.describe() for b in rb.last_blockers) or "the blocking session had already gone"
        msg = (f"Statement {st.index} / {total} ({st.summary}) waited longer than lock_timeout "
               f"({rb.opt.lock_timeout:g}s) for a lock held by: {who}. Nothing is applied: ROLLBACK, then "
               "retry the transaction (or stop the blocking session).")
    elif isinstance(exc, pgerr.QueryCanceled):
        msg = (f"Statement {st.index} / {total} ({st.summary}) ran longer than statement_timeout "
               f"({rb.opt.statement_timeout:g}s) and was cancelled. Nothing is applied: ROLLBACK.")
    elif isinstance(exc, pgerr.OutOfMemory) and "shared memory" in primary:
        msg = (f"Statement {st.index} / {total} ({st.summary}) failed: out of shared memory. The lock table "
               f"is full: raise max_locks_per_transaction (now {rb.server.get('max_locks_per_transaction')}) "
               "in postgresql.conf and restart the server, then retry. Nothing is applied: ROLLBACK.")
    elif diag.message_detail:
        msg += f" ({diag.message_detail})"
    if diag.message_hint and not isinstance(exc, pgerr.OutOfMemory):
        msg += f" Hint: {diag.message_hint}"
    return msg


async def run_one(rb: Runbook, st: mig.Statement) -> tuple[str, float]:
    """One statement with its deadline (statement_timeout + grace). Returns (tag, seconds)."""
    t0 = time.perf_counter()
    watcher = asyncio.create_task(watch_blockers(rb))
    try:
        cur = await rb.session.call(rb.session.conn.execute(st.sql), rb.statement_deadline,
                                    f"statement {st.index} ({st.summary})")
        return cur.statusmessage or "", time.perf_counter() - t0
    finally:
        watcher.cancel()


def record(rb: Runbook, st: mig.Statement, tag: str, seconds: float, ok: bool = True, error: str = "") -> StatementRecord:
    rec = StatementRecord(st.index, st.summary, st.line, tag, seconds, ok, error, rb.attempt)
    rb.statements.append(rec)
    return rec


__all__ = ["Step", "failure_message", "record", "run_one", "watch_blockers"]
