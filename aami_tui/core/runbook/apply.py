"""Step 4, apply: the file statement by statement inside the open transaction, each with a deadline."""

from __future__ import annotations

import asyncio
import re
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


# ---- pipelined batches --------------------------------------------------------------------------------------
# One round trip per statement made a 10,000-statement file take 1.8x `psql -1 -f` even with nothing else
# going on. Runs of statements that are cheap by their nature (CREATE TABLE, INSERT … VALUES, an index on a
# table the file itself creates, comments, grants, functions…) are sent in one pipeline (libpq pipeline mode:
# statement after statement without waiting, results read at the end), so a batch costs one round trip. The
# server still runs them one by one with the transaction's statement_timeout and lock_timeout; the first error
# stops the batch and is attributed to its own statement (the first without a result). Anything else (ALTER,
# UPDATE, DELETE, INSERT … SELECT, an index on an existing table…) and every statement in --pace mode still runs
# alone, with its own timing. In a batch each statement's time is the batch's time shared out.
BATCH_MAX = 256
_CHEAP_KINDS = {"CreateStmt", "CreateExtensionStmt", "CommentStmt", "CreateSeqStmt", "CreateFunctionStmt",
                "ViewStmt", "CreateEnumStmt", "DefineStmt", "GrantStmt", "CompositeTypeStmt", "CreateDomainStmt",
                "CreateSchemaStmt"}
_SELECT = re.compile(r"\bselect\b", re.I)


def cheap(st: mig.Statement, created: set[str]) -> bool:
    """Whether a statement is cheap by its nature (safe to pipeline with its neighbours)."""
    if st.kind == "InsertStmt":
        return not _SELECT.search(st.sql)  # VALUES: its own rows only
    if st.kind == "IndexStmt":
        return st.summary.rsplit(" ON ", 1)[-1].strip() in created  # a table this file creates
    return st.kind in _CHEAP_KINDS


def batches(stmts, created: set[str], *, enabled: bool = True) -> list[list[mig.Statement]]:
    """The statements in order, runs of cheap ones grouped (at most BATCH_MAX), the rest one by one."""
    out: list[list[mig.Statement]] = []
    for st in stmts:
        if enabled and cheap(st, created) and out and len(out[-1]) < BATCH_MAX and cheap(out[-1][-1], created):
            out[-1].append(st)
        else:
            out.append([st])
    return out


async def run_batch(rb: Runbook, group: list[mig.Statement], done: list[tuple[mig.Statement, str, float]]) -> None:
    """Send ``group`` in one pipeline. ``done`` receives (statement, tag, seconds) for each that completed,
    also when the batch fails, is cancelled or passes its deadline (statement_timeout + grace)."""
    conn = rb.session.conn
    curs: list = []
    t0 = time.perf_counter()

    async def send() -> None:
        async with conn.pipeline() as p:
            for st in group[:-1]:
                cur = conn.cursor()
                curs.append(cur)
                await cur.execute(st.sql)
            await p.sync()
        # The last one on its own, outside the pipeline: libpq ends a pipeline with a flush request after the
        # sync, and a server that reads that message last does not re-arm idle_in_transaction_session_timeout
        # (measured); a plain query after it does. It also leaves a real statement as the session's last query.
        cur = conn.cursor()
        curs.append(cur)
        await cur.execute(group[-1].sql)

    watcher = asyncio.create_task(watch_blockers(rb))
    try:
        await rb.session.call(send(), rb.statement_deadline,
                              f"statements {group[0].index}-{group[-1].index} ({group[0].summary}, …)")
    finally:
        watcher.cancel()
        share = (time.perf_counter() - t0) / max(1, len(group))
        for st, cur in zip(group, curs, strict=False):
            try:
                tag = cur.statusmessage
            except Exception:
                tag = None
            if not tag:
                break
            done.append((st, tag, share))


def record(rb: Runbook, st: mig.Statement, tag: str, seconds: float, ok: bool = True, error: str = "") -> StatementRecord:
    rec = StatementRecord(st.index, st.summary, st.line, tag, seconds, ok, error, rb.attempt)
    rb.statements.append(rec)
    return rec


__all__ = ["Step", "batches", "failure_message", "record", "run_batch", "run_one", "watch_blockers"]
