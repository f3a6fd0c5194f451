"""The migration session: one connection, a client-side deadline on every round trip, and fencing.

* Every round trip goes through ``call(..., seconds)``. When the deadline passes the connection is
  abandoned at once (no cancel request that could hang on the same dead network) and ``Deadline`` is
  raised: the caller says what is certain.
* The pid, backend start and xid recorded at BEGIN let a *fresh* connection fence the orphaned backend
  (``pg_terminate_backend``) and ask the transaction's fate (``pg_xact_status``).
* TCP keepalives come from the conninfo (``settings.conninfo()``); the server side is bounded by
  ``idle_in_transaction_session_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from aami_tui.core import locks
from aami_tui.core.db import ConnectError, connect
from aami_tui.core.settings import ConnSettings

T = TypeVar("T")


class Deadline(Exception):
    """A round trip got no answer within its client-side deadline; the connection has been abandoned."""

    def __init__(self, what: str, seconds: float):
        super().__init__(f"{what} got no answer within {seconds:g}s")
        self.what = what
        self.seconds = seconds


# How long a cancelled round trip may take to end: psycopg's cancel request (a new connection to the server)
# and the query's answer. psycopg waits 5 s for each; on a dead network neither comes, and the operator who
# pressed escape would wait 10 s. Past this the connection is given up (closed locally, no wait on its socket).
CANCEL_WAIT = 1.5


async def bounded(conn: psycopg.AsyncConnection, aw: Awaitable[T], seconds: float, what: str,
                  on_give_up: Callable[[Deadline], None] | None = None,
                  at_deadline: Callable[[], Awaitable[bool]] | None = None) -> T:
    """One round trip on ``conn`` with a client-side deadline. On the deadline ``conn`` is closed locally at
    once (no cancel request that could hang on the same dead network) and ``Deadline`` is raised; unless
    ``at_deadline`` (asked at each deadline, the round trip still out) says True: then another ``seconds``. Should the
    answer come while it is asked, it is returned and the question is cancelled. If the
    caller is cancelled, psycopg's own path runs (a cancel request; the connection stays usable) for at most
    ``CANCEL_WAIT`` seconds; past that ``conn`` is closed locally, ``on_give_up`` is told, and the cancel goes on
    (CancelledError): the outcome on the server is then unknown to us."""
    task = asyncio.ensure_future(aw)
    ask: asyncio.Future | None = None
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
        while not done and at_deadline is not None:
            ask = asyncio.ensure_future(at_deadline())
            await asyncio.wait({task, ask}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                done = {task}
                break
            keep = not ask.cancelled() and ask.exception() is None and ask.result() is True
            ask = None
            if not keep:
                break
            done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        await _drop(ask)
        task.cancel()  # psycopg: a cancel request on a new connection, then the query's answer
        try:
            done, _ = await asyncio.wait({task}, timeout=CANCEL_WAIT)
        except asyncio.CancelledError:  # cancelled again meanwhile (a close): no more waiting
            done = set()
        if not done:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
            task.cancel()  # interrupts psycopg's cancel handling (it closes the connection too)
            if on_give_up is not None:
                on_give_up(Deadline(f"the cancel of {what}", CANCEL_WAIT))
        with contextlib.suppress(BaseException):
            await task
        raise
    await _drop(ask)
    if done:
        return task.result()
    with contextlib.suppress(Exception):
        conn.pgconn.finish()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    raise Deadline(what, seconds)


async def _drop(fut: asyncio.Future | None) -> None:
    """Cancel a question still open (``bounded``'s ``at_deadline``) and let it end."""
    if fut is not None and not fut.done():
        fut.cancel()
        with contextlib.suppress(BaseException):
            await fut


def _ms(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def run_settings(*, lock_timeout: float, statement_timeout: float, idle_timeout: float,
                 server_version: int) -> dict[str, str]:
    """What BEGIN sets with SET LOCAL for the run (and what the inspection pane's guard puts back if changed)."""
    settings = {"lock_timeout": _ms(lock_timeout), "statement_timeout": _ms(statement_timeout),
                "idle_in_transaction_session_timeout": _ms(idle_timeout)}
    if server_version >= 140000:
        # If this client dies mid-statement (kill -9), the server notices within a second and
        # rolls back, instead of finishing the statement first with our locks held.
        settings["client_connection_check_interval"] = "1000ms"
    return settings


SILENT_AFTER = 10.0  # seconds a round trip may go unanswered before the engine says so (events.Silence)
SILENT_TICK = 1.0  # ...then the words again this often, the seconds counted, while it lasts


class Session:
    def __init__(self, settings: ConnSettings, on_notice: Callable | None = None,
                 on_silent: Callable[[tuple[str, float, float] | None], None] | None = None):
        self.settings = settings
        self.on_notice = on_notice
        self.conn: psycopg.AsyncConnection | None = None
        self.backend_pid: int | None = None
        self.backend_start: object = None
        self.locked = False  # we hold the one-operator advisory lock on self.conn
        self.xid: str | None = None  # the open transaction's id (recorded at BEGIN)
        self.gave_up: Deadline | None = None  # the last round trip was cancelled and its cancel got no answer
        # the round trip out now: (what, time.monotonic() sent, its client-side deadline in seconds)
        self.in_flight: tuple[str, float, float] | None = None
        # our backend's (wait_event, synchronous_standby_names) as the last fence ended it; None: not seen
        self.fenced_activity: tuple[str | None, str] | None = None
        # called with the round trip out (in_flight) once it has had no answer for SILENT_AFTER seconds, then every
        # SILENT_TICK while it lasts; with None when it ends after that (answered, or given up)
        self.on_silent = on_silent

    @property
    def alive(self) -> bool:
        return self.conn is not None and not self.conn.closed and not self.conn.broken

    async def ensure(self, seconds: float) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed:
            self.conn = None
            self.locked = False
            conn = await connect(self.settings, autocommit=True)
            if self.on_notice is not None:
                conn.add_notice_handler(self.on_notice)
            self.conn = conn
            cur = await self.call(conn.execute("SELECT pg_backend_pid(), backend_start FROM pg_stat_activity "
                                               "WHERE pid = pg_backend_pid()"), seconds, "opening the session")
            self.backend_pid, self.backend_start = await cur.fetchone()
        return self.conn

    async def call(self, aw: Awaitable[T], seconds: float, what: str,
                   at_deadline: Callable[[], Awaitable[bool]] | None = None) -> T:
        """Await one round trip on the session with a client-side deadline (see ``bounded``). A cancel that got
        no answer within ``CANCEL_WAIT`` abandons the session and is kept in ``gave_up`` (what happened on the
        server is not known: the faces say so, as for any lost connection). ``at_deadline``: see ``bounded``."""
        self.gave_up = None
        mine = self.in_flight = (what, time.monotonic(), seconds)
        clock = self._silence_clock(mine)
        try:
            return await bounded(self.conn, aw, seconds, what, self._give_up, at_deadline)
        except Deadline:
            self.locked = False  # the session is abandoned, and its lock with it once the server knows
            raise
        finally:
            if self.in_flight is mine:
                self.in_flight = None
            if clock is not None:
                clock[0].cancel()
                if clock[1]:  # it was said: say it is over
                    self._tell_silent(None)

    def _silence_clock(self, mine: tuple[str, float, float]) -> list | None:
        """[timer, said]: a loop timer (no task: a round trip costs one timer) that tells ``on_silent`` while the
        round trip ``mine`` goes unanswered, SILENT_AFTER seconds in, then every SILENT_TICK."""
        if self.on_silent is None:
            return None
        loop = asyncio.get_running_loop()
        clock: list = [None, False]

        def tick() -> None:
            if self.in_flight is not mine:
                return
            clock[1] = True
            self._tell_silent(mine)
            clock[0] = loop.call_later(SILENT_TICK, tick)

        clock[0] = loop.call_later(SILENT_AFTER, tick)
        return clock

    def _tell_silent(self, flight: tuple[str, float, float] | None) -> None:
        try:
            self.on_silent(flight)
        except Exception:  # a face's failure never breaks the round trip (the engine's emit logs its own)
            pass

    def _give_up(self, why: Deadline) -> None:
        self.gave_up = why
        self.locked = False

    def abandon(self) -> None:
        """Drop the connection without a round trip (the server may not hear of it: fence it)."""
        conn = self.conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
        self.locked = False

    async def close(self, seconds: float = 5.0) -> None:
        conn, self.conn = self.conn, None
        self.locked = False
        if conn is not None and not conn.closed:
            try:
                await asyncio.wait_for(conn.close(), seconds)
            except (TimeoutError, Exception):
                with contextlib.suppress(Exception):
                    conn.pgconn.finish()

    # ---- BEGIN ---------------------------------------------------------------------------------------
    async def begin(self, *, lock_timeout: float, statement_timeout: float, idle_timeout: float,
                    seconds: float) -> bool:
        """BEGIN and its settings in one round trip (one simple-query message): the transaction never exists
        on the server without its timeouts, and the console is never a round trip behind the server. Returns
        whether the transaction is read-only (default_transaction_read_only = on: the caller refuses it)."""
        from psycopg import sql as q

        conn = self.conn
        assert conn is not None
        settings = run_settings(lock_timeout=lock_timeout, statement_timeout=statement_timeout,
                                idle_timeout=idle_timeout, server_version=conn.info.server_version)
        parts = [q.SQL("BEGIN")] + [q.SQL("SET LOCAL {} = {}").format(q.Identifier(k), q.Literal(v))
                                    for k, v in settings.items()]
        with_xid = conn.info.server_version >= 130000
        parts.append(q.SQL("SELECT {}, pg_catalog.current_setting('transaction_read_only')").format(
            q.SQL("pg_catalog.pg_current_xact_id()::text" if with_xid else "NULL::text")))
        cur = await self.call(conn.execute(q.SQL("; ").join(parts)), seconds, "BEGIN")
        while cur.nextset():  # to the last statement's result
            pass
        self.xid, read_only = await cur.fetchone()
        return read_only == "on"

    # ---- the one-operator lock ---------------------------------------------------------------------------
    async def try_lock(self, seconds: float) -> dict | None:
        """Take the advisory lock (once). None when held by us; else who holds it."""
        conn = await self.ensure(seconds)
        if self.locked:
            return None
        holder = await self.call(locks.try_lock(conn), seconds + 2, "taking the migration lock")
        if holder is None:
            self.locked = True
        return holder

    async def unlock(self, seconds: float) -> None:
        if not self.locked:
            return
        if self.alive:
            with contextlib.suppress(Exception):
                await self.call(locks.unlock(self.conn), seconds, "releasing the migration lock")
        self.locked = False  # released, or the session is gone and its lock with it

    # ---- fresh connections: fate and fencing ------------------------------------------------------------
    async def fresh(self, seconds: float) -> psycopg.AsyncConnection:
        return await asyncio.wait_for(connect(self.settings, autocommit=True), seconds)

    async def xact_status(self, seconds: float) -> str | None:
        """pg_xact_status of the recorded xid on a fresh connection: committed / aborted / in progress;
        None when it cannot be asked (no xid, no connection)."""
        if not self.xid:
            return None
        try:
            fresh = await self.fresh(seconds)
        except (ConnectError, psycopg.Error, TimeoutError, OSError):
            return None
        try:
            cur = await asyncio.wait_for(fresh.execute("SELECT pg_catalog.pg_xact_status(%s::xid8)", (self.xid,)),
                                         seconds)
            return (await cur.fetchone())[0]
        except (psycopg.Error, TimeoutError):
            return None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(fresh.close(), seconds)

    async def fence(self, seconds: float, also: tuple[tuple[int, object], ...] = ()) -> str:
        """End our orphaned backend from a fresh connection (it may still hold locks, or still be
        waiting for an answer that will never be read). ``also``: other sessions of ours behind the same
        dead network (pid, backend_start), ended quietly. Returns what happened to ours, in words."""
        self.fenced_activity = None
        if self.backend_pid is None:
            return "no backend to end"
        try:
            fresh = await self.fresh(seconds)
        except (ConnectError, psycopg.Error, TimeoutError, OSError) as exc:
            return f"could not reach the server to end backend {self.backend_pid} ({_first(exc)})"
        try:
            # what it was doing as it was ended (a COMMIT waiting on SyncRep is committed locally: commit.resolve)
            cur = await asyncio.wait_for(fresh.execute(
                "SELECT wait_event, pg_catalog.current_setting('synchronous_standby_names'), "
                f"{_terminate(fresh, seconds)} FROM pg_catalog.pg_stat_activity "
                "WHERE pid = %s AND backend_start = %s", (self.backend_pid, self.backend_start)), seconds + 1)
            row = await cur.fetchone()
            if row is not None:
                self.fenced_activity = (row[0], row[1])
            for pid, start in also:
                with contextlib.suppress(psycopg.Error, TimeoutError):
                    await asyncio.wait_for(fresh.execute(
                        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                        "WHERE pid = %s AND backend_start = %s", (pid, start)), seconds)
            return _end_words(self.backend_pid, row, seconds)
        except (psycopg.Error, TimeoutError) as exc:
            return f"could not end backend {self.backend_pid} ({_first(exc)})"
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(fresh.close(), seconds)

    async def end_backend(self, pid: int, start: object, seconds: float) -> str:
        """From this session's connection (a new one): end an earlier backend of ours if it is still there, waiting
        for its exit. In ``fence``'s words: 'backend N had already gone', '… ended (pg_terminate_backend)', or
        '… did not end within Ns'."""
        conn = self.conn
        assert conn is not None
        cur = await self.call(conn.execute(
            f"SELECT {_terminate(conn, seconds)} FROM pg_catalog.pg_stat_activity "
            "WHERE pid = %s AND backend_start = %s", (pid, start)), seconds + 1, f"ending backend {pid}")
        return _end_words(pid, await cur.fetchone(), seconds)


def _terminate(conn: psycopg.AsyncConnection, seconds: float) -> str:
    """pg_terminate_backend of the row's pid, waiting up to ``seconds`` for its exit (PostgreSQL 14 and later)."""
    wait = f", {int(seconds * 1000)}" if conn.info.server_version >= 140000 else ""
    return f"pg_catalog.pg_terminate_backend(pid{wait})"


def _end_words(pid: int, row: tuple | None, seconds: float) -> str:
    """What became of backend ``pid`` from a row ending in pg_terminate_backend's answer (None: no such backend)."""
    if row is None:
        return f"backend {pid} had already gone"
    return f"backend {pid} ended (pg_terminate_backend)" if row[-1] else f"backend {pid} did not end within {seconds:g}s"


def _first(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
