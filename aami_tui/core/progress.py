"""Honest progress for backup and restore, from the server's own counters.

The old bar divided the compressed bytes pg_dump had written by the database's size: it stalled near 44 %
and jumped. Here the work is the table data itself, weighed by each table's size on the server:

- which table pg_dump / pg_restore is on comes from their ``--verbose`` lines (sequential: a table is done
  when the next one starts; parallel: "finished item … TABLE DATA name");
- how far into that table they are comes from ``pg_stat_progress_copy`` (PostgreSQL 14 and later), read every
  half second on a second connection: rows copied against the table's row estimate (or bytes against its
  size when it was never analysed), capped below 100 % until the table is really done;
- after the data, a restore builds its indexes: ``pg_stat_progress_create_index`` (blocks, then tuples),
  each index weighed by its size when the backup was taken.

The bar only moves forward, and moves within a large table instead of jumping from one table to the next.
On a server older than 14 (no COPY progress view) it advances per table, and says so (``exact`` is False).
Rate and ETA are smoothed (exponential average over a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aami_tui.core.queries import sql

MIB = 1024 * 1024


@dataclass(frozen=True)
class Work:
    """One unit of work: a table's data (weighed by its size) or an index build."""

    schema: str
    name: str
    bytes: int
    rows: float = -1.0  # row estimate (reltuples, else the statistics' live rows); < 0: unknown
    oid: int | None = None
    kind: str = "table"  # or "index"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def to_dict(self) -> dict:
        return {"schema": self.schema, "name": self.name, "bytes": self.bytes, "rows": self.rows, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict) -> Work:
        return cls(str(d["schema"]), str(d["name"]), int(d.get("bytes") or 0), float(d.get("rows", -1)),
                   None, str(d.get("kind", "table")))


@dataclass(frozen=True)
class Progress:
    """A snapshot for the faces: a bar, a rate, an ETA."""

    what: str  # "backup" / "restore"
    done: int  # bytes of work done
    total: int
    rate: float | None  # bytes per second (smoothed)
    eta: float | None  # seconds
    current: str = ""  # table or index being worked on
    exact: bool = True  # False: per-table steps only (server without pg_stat_progress_copy)
    elapsed: float = 0.0
    waiting: str = ""  # the tool's session waits for another session's lock: for whom, how long, what ends it
    steps: bool = False  # done/total count tables and indexes, not bytes (a backup whose metadata has no sizes)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def percent(self) -> int:
        return int(self.fraction * 100)

    def line(self) -> str:
        """``backup: 123.4 / 456.7 MiB (27 %), 45.6 MiB/s, ETA 0:07 (public.events)``; a small database in KiB
        (never "0.0 / 0.0 MiB"), one without table data says so."""
        if self.waiting:  # no amount, rate or ETA: nothing moves until the holder lets go (or the bound ends it)
            return f"{self.what}: {self.waiting}"
        if self.total <= 0:
            return f"{self.what}: no table data to copy (schema only)" + (f" ({self.current})" if self.current else "")
        if self.steps:  # no rate, no ETA: the steps weigh nothing alike
            text = (f"{self.what}: {self.done} of {self.total} tables and indexes ({self.percent} %)"
                    + (", done" if self.done >= self.total else ""))
            return text + (f" ({self.current})" if self.current else "") + \
                " [per table and index: the backup records no sizes]"
        unit, div = ("MiB", MIB) if self.total >= MIB else ("KiB", 1024) if self.total >= 1024 else ("bytes", 1)
        amount = (f"{self.done / div:.1f} / {self.total / div:.1f}" if div > 1 else f"{self.done} / {self.total}")
        parts = [f"{self.what}: {amount} {unit} ({self.percent} %)"]
        if self.done >= self.total:
            parts.append("done")
        else:
            if self.rate:
                parts.append(f"{self.rate / div:.1f} {unit}/s" if div > 1 else f"{self.rate:.0f} bytes/s")
            parts.append(f"ETA {clock(self.eta)}" if self.eta is not None else "ETA –")
        text = ", ".join(parts)
        if self.current:
            text += f" ({self.current})"
        if not self.exact:
            text += " [per table: the server has no COPY progress view before PostgreSQL 14]"
        return text


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Rate:
    """Exponentially smoothed rate (units per second) with time constant ``tau`` seconds."""

    def __init__(self, tau: float = 3.0) -> None:
        self.tau = tau
        self.value: float | None = None
        self._last: tuple[float, float] | None = None

    def update(self, now: float, done: float) -> float | None:
        if self._last is None:
            self._last = (now, done)
            return self.value
        t0, d0 = self._last
        dt = now - t0
        if dt <= 0:
            return self.value
        inst = max(0.0, (done - d0) / dt)
        alpha = 1.0 - pow(2.718281828, -dt / self.tau)
        self.value = inst if self.value is None else self.value + alpha * (inst - self.value)
        self._last = (now, done)
        return self.value


_STARTED = (re.compile(r'dumping contents of table "(.+)"$'), re.compile(r'processing data for table "(.+)"$'))
_FINISHED = re.compile(r"finished item \d+ TABLE DATA (.+)$")
_INDEX = re.compile(r'creating (?:INDEX|CONSTRAINT) "(.+?)"')


class Tracker:
    """Turns tool lines and server counters into done bytes. Feed ``line()`` and ``server()``; read
    ``progress()``."""

    def __init__(self, what: str, work: list[Work], *, parallel: bool = False, exact: bool = True,
                 clock_fn: Callable[[], float] = time.monotonic, confirmed: bool = False,
                 steps: bool = False) -> None:
        self.what = what
        # steps: the work is counted, not weighed (each table or index weighs 1, a table's COPY moves nothing
        # until the server is past it): a backup whose metadata has no sizes, its TOC's tables and indexes
        self.steps = steps
        # confirmed: the tool's lines run ahead of the server (pg_restore writing a script that psql runs, up to a
        # pipe's buffer behind, or not at all while psql waits for a lock): they only say the order of the work;
        # what is done comes from the server (a table or index seen in progress there ends those before it).
        self.confirmed = confirmed
        self.order: list[Work] = []  # the tool's order (confirmed mode)
        self.tables = [w for w in work if w.kind == "table"]
        self.indexes = [w for w in work if w.kind == "index"]
        self.weighed = sum(w.bytes for w in work)  # 0: no table data at all (the faces say so, not "1 / 1 bytes")
        self.total = self.weighed or 1
        self.parallel = parallel
        self.exact = exact
        self._by_qualified = {w.qualified: w for w in work}
        self._by_name: dict[str, list[Work]] = {}
        for w in work:
            self._by_name.setdefault(w.name, []).append(w)
        self._by_oid = {w.oid: w for w in work if w.oid is not None}
        self.done: set[str] = set()
        self.active: list[Work] = []  # started, not finished (in order)
        self.partial: dict[str, float] = {}  # qualified -> fraction (0..0.99) from the server
        self._clock = clock_fn
        self._t0 = clock_fn()
        self._rate = Rate()
        self._last_done = 0
        self._finished = False
        self.waiting = ""  # set by Watch while the tool's session waits for a lock (Progress.waiting)
        self.wait_seen: tuple[str, tuple] | None = None  # the last wait seen: (relation, blockers), for the failure

    def lock_wait(self, words: str, what: str = "", blockers: tuple = ()) -> None:
        """The tool's session waits for another session's lock (``words``), or no longer ("")."""
        if words:
            self.wait_seen = (what, tuple(blockers))
        elif self.waiting:
            self._rate = Rate()  # the wait is over: the rate starts again from here, no wait averaged into it
        self.waiting = words

    # -- inputs ---------------------------------------------------------------------------------------
    def _find(self, text: str, kind: str) -> Work | None:
        w = self._by_qualified.get(text)
        if w is None:
            cands = [c for c in self._by_name.get(text.rsplit(".", 1)[-1] if kind == "index" else text, [])
                     if c.kind == kind]
            w = cands[0] if len(cands) == 1 else None
        return w

    def line(self, line: str) -> None:
        """A line of the tool's --verbose stderr."""
        line = line.removeprefix("pg_dump: ").removeprefix("pg_restore: ").strip()
        for pat in _STARTED:
            m = pat.search(line)
            if m:
                self._start(self._find(m.group(1), "table"))
                return
        m = _FINISHED.search(line)
        if m:
            w = self._find(m.group(1), "table")
            if w is not None:
                self._finish(w)
            return
        m = _INDEX.search(line)
        if m:
            # "public.tbl idx" for constraints, "public.idx" for indexes
            name = m.group(1)
            parts = name.split(" ")
            w = self._find(parts[0].rsplit(".", 1)[0] + "." + parts[-1] if len(parts) > 1 else name, "index")
            if w is None and len(parts) > 1:
                w = self._find(parts[-1], "index")
            if w is not None:
                # pg_restore --single-transaction builds one index at a time, after all the data
                if not self.confirmed:
                    for t in self.tables:
                        self.done.add(t.qualified)
                self._start(w)
                return
            if not self.confirmed:
                for t in self.tables:  # an index we did not weigh: the data is done anyway
                    self.done.add(t.qualified)

    def _start(self, w: Work | None) -> None:
        if self.confirmed:  # the order only: neither current nor done until the server says so
            if w is not None and w not in self.order:
                self.order.append(w)
            return
        if not self.parallel:
            for a in self.active:
                self._finish(a, keep_active=True)
            self.active = []
        if w is not None and w.qualified not in self.done:
            self.active.append(w)

    def _finish(self, w: Work, keep_active: bool = False) -> None:
        self.done.add(w.qualified)
        self.partial.pop(w.qualified, None)
        if not keep_active:
            self.active = [a for a in self.active if a.qualified != w.qualified]

    def server(self, copies: list[tuple], indexes: list[tuple] = ()) -> None:
        """Rows of the progress views for the tool's sessions.

        ``copies``: (relid, tuples_processed, bytes_processed[, qualified name]); ``indexes``: (index_relid, relid,
        blocks_total, blocks_done, tuples_total, tuples_done[, qualified name])."""
        for relid, tuples, nbytes, *name in copies:
            w = self._by_oid.get(relid) or (self._find(name[0], "table") if name and name[0] else None)
            if w is None and not self.confirmed:
                w = self._active_table()
            if w is None or w.qualified in self.done:
                continue
            self._reached(w)
            if self.steps:
                frac = 0.0
            elif w.rows > 0:
                frac = (tuples or 0) / w.rows
            elif w.bytes > 0:
                frac = (nbytes or 0) / w.bytes
            else:
                frac = 0.0
            self._partial(w, frac)
        for row in indexes:
            _idx, _rel, btot, bdone, ttot, tdone, *name = row
            if self.confirmed:
                w = self._find(name[0], "index") if name and name[0] else None
                for t in self.tables:  # an index is built: the data before it is in (one transaction, in order)
                    self.done.add(t.qualified)
                if w is None:
                    continue
                self._reached(w)
            else:
                w = next((a for a in self.active if a.kind == "index"), None)
            if w is None:
                continue
            # scanning the heap is the first half, sorting and loading the tuples the second
            frac = 0.0
            if btot:
                frac = 0.5 * (bdone or 0) / btot
            if ttot:
                frac = 0.5 + 0.5 * (tdone or 0) / ttot
            self._partial(w, frac)

    def _reached(self, w: Work) -> None:
        """Confirmed mode: the server works on ``w``: what the tool sent before it is done."""
        if not self.confirmed:
            return
        self.active = [w]
        if w in self.order:
            for before in self.order[:self.order.index(w)]:
                self._finish(before, keep_active=True)

    def _active_table(self) -> Work | None:
        tables = [a for a in self.active if a.kind == "table"]
        return tables[0] if len(tables) == 1 else None

    def _partial(self, w: Work, frac: float) -> None:
        frac = max(0.0, min(0.99, frac))
        self.partial[w.qualified] = max(frac, self.partial.get(w.qualified, 0.0))

    def finish(self) -> None:
        """The tool exited successfully: everything is done."""
        for w in self.tables + self.indexes:
            self.done.add(w.qualified)
        self.active = []
        self.partial = {}
        self._finished = True

    # -- output ---------------------------------------------------------------------------------------
    def done_bytes(self) -> int:
        total = 0
        for w in self.tables + self.indexes:
            if w.qualified in self.done:
                total += w.bytes
            else:
                total += int(self.partial.get(w.qualified, 0.0) * w.bytes)
        if self._finished:
            total = self.total  # (also when nothing could be weighed)
        self._last_done = max(self._last_done, total)  # never backwards
        return self._last_done

    def progress(self) -> Progress:
        now = self._clock()
        done = self.done_bytes()
        if self.waiting:
            return Progress(self.what, done, self.total if self.weighed else 0, None, None,
                            ", ".join(a.qualified for a in self.active[:2]), self.exact, now - self._t0,
                            self.waiting, self.steps)
        rate = self._rate.update(now, done)
        remaining = max(0, self.total - done)
        eta = remaining / rate if rate and rate > 0 else (0.0 if remaining == 0 else None)
        current = ", ".join(a.qualified for a in self.active[:2])
        if not self.weighed:
            return Progress(self.what, 0, 0, None, None, current, self.exact, now - self._t0)
        if self.steps:
            return Progress(self.what, done, self.total, None, None, current, self.exact, now - self._t0, steps=True)
        return Progress(self.what, done, self.total, rate, eta, current, self.exact, now - self._t0)


# ---- the server side ---------------------------------------------------------------------------------------
async def table_work(conn, *, indexes: bool = False) -> list[Work]:
    """The tables whose data a dump of this database copies (and, with ``indexes``, their indexes), with
    sizes and row estimates, in one query that never waits long for a lock: when another session holds a
    table exclusively, the sizes are the planner's page counts instead (no lock needed)."""
    from psycopg import errors

    rows: list = []
    for exact in (True, False):
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = 1000")
                await conn.execute("SET LOCAL statement_timeout = 30000")
                cur = await conn.execute(sql("dump_work"), {"indexes": indexes, "exact": exact})
                rows = await cur.fetchall()
            break
        except errors.LockNotAvailable:
            continue
    return [Work(schema, name, int(nbytes or 0), float(rows_ if rows_ is not None else -1), oid, kind)
            for oid, schema, name, nbytes, rows_, kind in rows]


POLL_INTERVAL = 0.5  # seconds between two polls of the progress views


@dataclass
class Watch:
    """Polls the progress views for the tool's sessions on its own connection and reports ``Progress``; while one
    of them waits for another session's lock, the progress says for whom (``Progress.waiting``).

    With ``pid``, it watches that one session's lock waits only (the migration session while BEGIN's own queries
    run), on the connection ``borrow`` returns (the runbook's monitor, opened before: while another session holds
    or awaits a lock on pg_class no new connection can even start), first after ``grace`` seconds (a BEGIN that
    answers at once costs no poll); the connection is the lender's, never closed here."""

    settings: object  # ConnSettings
    tracker: Tracker
    on_progress: Callable[[Progress], None]
    interval: float = field(default_factory=lambda: POLL_INTERVAL)
    lock_bound: str = ""  # what ends a wait for another session's lock ("lock_timeout (5s) ends the backup")
    pid: int | None = None
    borrow: Callable[[], Awaitable] | None = None
    grace: float = 0.0
    # The backend whose COMMIT is out (a restore's psql, once COMMIT is sent; None: not yet): a wait there on
    # synchronous replication (wait_event SyncRep: committed locally) is said as a wait, apply's words (fresh8 R1),
    # with ``syncrep_bound`` (what ends it); ``syncrep_seen``: (synchronous_standby_names, first seen) once seen.
    commit_pid: Callable[[], int | None] | None = None
    syncrep_bound: str = ""
    syncrep_seen: tuple[str, float] | None = field(default=None, init=False)
    _task: asyncio.Task | None = field(default=None, init=False)
    _conn: object = field(default=None, init=False)
    _since: object = field(default=None, init=False)
    _stop: bool = field(default=False, init=False)
    _borrow_failed: bool = field(default=False, init=False)

    async def __aenter__(self) -> Watch:
        """Connects and notes the server's clock *before* the tool starts (its sessions are those that begin
        after it). Without a second connection the tracker still advances per table, from the tool's lines."""
        from aami_tui.core.db import connect

        self._conn, self._since, has_copy = None, None, False
        if self.pid is not None:  # one session's waits, on a borrowed connection: no progress views
            self.tracker.exact = False
            self._task = asyncio.create_task(self._run())
            return self
        try:
            self._conn = await asyncio.wait_for(connect(self.settings), 10)
            cur = await asyncio.wait_for(self._conn.execute(
                "SELECT now(), current_setting('server_version_num')::int >= 140000"), 5)
            self._since, has_copy = await cur.fetchone()
        except Exception:
            await self._close()
        self.tracker.exact = bool(has_copy)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        """Stops the polls, bounded: Python 3.11's asyncio.wait_for can return a poll's answer and drop a cancel
        that comes as the answer does, and the watch was then waited for forever (a backup step that never ended
        after its pg_dump had). The loop also stops at its next turn (``_stop``), and the wait is bounded; a cancel
        of the caller itself (escape) is never swallowed here."""
        self._stop = True
        try:
            if self._task is not None:
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=self.interval + 6)  # a poll is bounded by 5 s
                if not self._task.done():
                    self._task.cancel()  # still not ended: it goes, unwaited, at its next turn
                elif not self._task.cancelled():
                    self._task.exception()  # retrieved: never "exception was never retrieved"
        finally:
            await self._close()

    async def _close(self) -> None:
        if self.pid is not None:  # borrowed: the lender's to close
            self._conn = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def _lock_wait(self) -> None:
        """Whether the tool's session waits for another session's lock, and whose: the tracker's words."""
        from aami_tui.core import locks
        from aami_tui.core.runbook.model import Blocker

        if self._conn is None and self.borrow is not None:
            if self._borrow_failed:
                return
            try:
                self._conn = await asyncio.wait_for(self.borrow(), 5)
            except BaseException:
                # No connection to lend, and none could be opened: once is enough (behind a lock on pg_class a
                # new one waits in its start-up, and one more a poll would pile up on the server)
                self._borrow_failed = True
                raise
        try:
            cur = await asyncio.wait_for(self._conn.execute(sql("tool_lock_waits"),
                                                            {"since": self._since, "pid": self.pid}), 5)
            rows = await cur.fetchall()
        except BaseException:
            if self.borrow is not None:
                self._conn = None  # asked for again at the next poll (the lender opens a new one if it broke)
            raise
        if not rows:
            self.tracker.lock_wait(await self._syncrep())
            return
        _waiter, waited, what, relation = rows[0][:4]
        if what is None:  # a system catalog, named from its oid (no read of pg_class, which may be the one locked)
            what = locks.catalog_words(relation)
        blockers = tuple(Blocker(*r[4:]) for r in rows if r[0] == rows[0][0])
        words = (f"waiting {waited or 0:.0f}s for a lock on {what} held by {locks.describe_blockers(blockers)}"
                 + (f"; {self.lock_bound}" if self.lock_bound else ""))
        self.tracker.lock_wait(words, what, blockers)

    async def _syncrep(self) -> str:
        """The words of a COMMIT out that waits on synchronous replication ("": none), as apply's bar says it."""
        from aami_tui.core.runbook.commit import SYNCREP, syncrep_bar

        pid = self.commit_pid() if self.commit_pid is not None else None
        if pid is None:
            return ""
        cur = await asyncio.wait_for(self._conn.execute(sql("commit_wait"), {"pid": pid}), 5)
        row = await cur.fetchone()
        if row is None or row[0] != SYNCREP:
            return ""
        if self.syncrep_seen is None:
            self.syncrep_seen = (row[1], time.monotonic())
        names, since = self.syncrep_seen
        return syncrep_bar(names, time.monotonic() - since) + (f"; {self.syncrep_bound}" if self.syncrep_bound else "")

    async def _run(self) -> None:
        if self.grace:
            await asyncio.sleep(self.grace)
        while not self._stop:
            copies: list[tuple] = []
            idx: list[tuple] = []
            if self.pid is not None or (self._conn is not None and self._since is not None):
                with contextlib.suppress(Exception):  # a missed poll is no reason to disturb the tool
                    await self._lock_wait()
            if self._conn is not None and self.tracker.exact:
                try:
                    cur = await asyncio.wait_for(self._conn.execute(sql("tool_progress"), {"since": self._since}), 5)
                    for kind, *vals in await cur.fetchall():
                        name = vals[6] or vals[7]  # the catalog's name, else the statement's (a restore's own objects)
                        if kind == "copy":
                            copies.append((*vals[:3], name))
                        else:
                            idx.append((*vals[:6], name))
                except Exception:
                    pass  # a missed poll is no reason to disturb the backup
            if self._stop:  # the tool has ended (a cancel this poll's wait_for dropped): no late event
                return
            self.tracker.server(copies, idx)
            with contextlib.suppress(Exception):  # a face's failure must not stop the tool
                self.on_progress(self.tracker.progress())
            await asyncio.sleep(self.interval)
