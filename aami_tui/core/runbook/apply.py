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
            pos = int(diag.statement_position) - 1 - getattr(exc, "batch_offset", 0)  # (a batch's text: run_batch)
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


# ---- batches ---------------------------------------------------------------------------------------------------
# One round trip per statement made a 10,000-statement file take 1.8x `psql -1 -f` even with nothing else
# going on (and libpq's pipeline mode still cost a wait per statement in psycopg). Runs of statements that are
# cheap by their nature (CREATE TABLE, INSERT … VALUES, an index on a table the file itself creates, comments,
# grants, functions…) are sent as one simple-protocol query: one round trip per batch. The server still runs them
# one by one with the transaction's statement_timeout (per statement since PostgreSQL 13) and lock_timeout; the
# first error stops the batch and is attributed to its own statement (the first without a result). Anything else
# (ALTER, UPDATE, DELETE, INSERT … SELECT, an index on an existing table…) and every statement in --pace mode
# still runs alone, with its own timing. In a batch each statement's time is the batch's time shared out.
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
    last_cheap = False  # whether out[-1] is a run of cheap ones (each statement is classified once)
    for st in stmts:
        now_cheap = enabled and cheap(st, created)
        if now_cheap and last_cheap and len(out[-1]) < BATCH_MAX:
            out[-1].append(st)
        else:
            out.append([st])
        last_cheap = now_cheap
    return out


async def run_batch(rb: Runbook, group: list[mig.Statement], done: list[tuple[mig.Statement, str, float]]) -> None:
    """Send ``group`` as one simple-protocol query (the statements joined, each still its own statement on the
    server: run one by one, each under statement_timeout, the first error stops the rest). One round trip and
    one wait for the whole batch. ``done`` receives (statement, tag, seconds) for each that completed, also when
    the batch fails, is cancelled or passes its deadline (statement_timeout + grace). A failure is raised as the
    server's error, with ``batch_offset`` set to where the failing statement starts in the batch's text (its
    error position is counted from there)."""
    from psycopg import errors as pgerrors
    from psycopg import generators
    from psycopg.pq import ExecStatus

    conn = rb.session.conn
    total = rb.applying_now[2] if rb.applying_now else len(group)
    mark = marker_for(rb)
    # ";\n": a statement that ends in a -- comment still ends before the next one. A statement that may wait for
    # another session's lock (it names a table that existed before BEGIN) is framed by SET LOCAL application_name
    # and RESET: while it runs, pg_stat_activity names it (the lock watch says which statement of the batch waits).
    parts: list[str] = []
    owner: list[int | None] = []  # for each part (each result): the statement of the group it is, or None (a frame)
    offsets: list[int] = []  # where each statement starts in the text
    pos = 0

    def add(text: str, i: int | None) -> None:
        nonlocal pos
        if i is not None:
            offsets.append(pos)
        parts.append(text)
        owner.append(i)
        pos += len(text) + 2

    for i, st in enumerate(group):
        framed = mark is not None and mark.search(st.sql) is not None
        if framed:
            add(f"SET LOCAL application_name = '{MARK}{st.index} / {total}'", None)
        add(st.sql, i)
        if framed:
            add("RESET application_name", None)
    text = ";\n".join(parts)
    t0 = time.perf_counter()
    results: list = []

    async def send() -> None:
        async with conn.lock:
            conn.pgconn.send_query(text.encode(conn.info.encoding if conn.info.encoding != "ascii" else "utf-8"))
            results.extend(await conn.wait(generators.execute(conn.pgconn)))

    watcher = asyncio.create_task(watch_blockers(rb))
    try:
        await rb.session.call(send(), rb.statement_deadline,
                              f"statements {group[0].index}-{group[-1].index} ({group[0].summary}, …)")
    finally:
        watcher.cancel()
        share = (time.perf_counter() - t0) / max(1, len(group))
        for i, res in zip(owner, results, strict=False):
            if res.status not in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK, ExecStatus.EMPTY_QUERY):
                break
            if i is not None:
                done.append((group[i], (res.command_status or b"").decode(errors="replace"), share))
    bad = next((r for r in results if r.status == ExecStatus.FATAL_ERROR), None)
    if bad is not None:
        exc = pgerrors.error_from_result(bad, encoding=conn.info.encoding)
        exc.batch_offset = offsets[min(len(done), len(group) - 1)]
        raise exc


MARK = "aami-tui: statement "  # what pg_stat_activity.application_name says while a framed statement runs


def marker_for(rb: Runbook) -> re.Pattern | None:
    """The statements worth framing: those naming a table of public that existed before BEGIN (only those can
    wait for another session's lock on it) or an extension. On a fresh database that is the CREATE EXTENSION alone."""
    names = sorted(rb.tables_before_begin or ())
    words = [re.escape(n) for n in names] + ["EXTENSION"]
    key = tuple(names)
    cached = getattr(rb, "_marker", None)
    if cached is None or cached[0] != key:
        cached = (key, re.compile(r"(?<![\w$])(?:" + "|".join(words) + r")(?![\w$])", re.I))
        rb._marker = cached
    return cached[1]


def marked_statement(application_name: str | None) -> int | None:
    """The statement a framed batch statement's SET LOCAL application_name names, or None."""
    if not application_name or not application_name.startswith(MARK):
        return None
    try:
        return int(application_name[len(MARK):].split("/", 1)[0])
    except ValueError:
        return None


def record(rb: Runbook, st: mig.Statement, tag: str, seconds: float, ok: bool = True, error: str = "",
           batch: int = 1) -> StatementRecord:
    rec = StatementRecord(st.index, st.summary, st.line, tag, seconds, ok, error, rb.attempt, batch)
    rb.statements.append(rec)
    rb.statement_rows.append(rec.row())
    return rec


__all__ = ["MARK", "Step", "batches", "failure_message", "marked_statement", "marker_for", "record", "run_batch",
           "run_one", "watch_blockers"]
