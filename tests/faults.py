"""Helpers for the engine and fault-injection suites: observers, waits, migration copies, runs.

Observer connections use application_name 'aami-test-observer' so that they never count as
sessions of the tool (the tool's own sessions are 'aami-tui').
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pglast
import psycopg
import pytest
from conftest import MIGRATION, ROOT, run_sql

from aami_tui.core import pgtools
from aami_tui.core.runbook import Options, Runbook
from aami_tui.core.settings import ConnSettings

OBSERVER = "aami-test-observer"


def observe(settings: ConnSettings, app: str = OBSERVER, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(settings.conninfo(application_name=app), autocommit=autocommit)


def query(settings: ConnSettings, sql: str, params=None) -> list[tuple]:
    with observe(settings) as c:
        return c.execute(sql, params).fetchall()


def advisory_locks(settings: ConnSettings) -> list[tuple]:
    """Advisory locks held in this database (by anyone)."""
    return query(settings, "SELECT pid, classid::int, objid::int, granted FROM pg_locks "
                           "WHERE locktype = 'advisory' AND database = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database())")


def tool_sessions(settings: ConnSettings) -> list[tuple]:
    """Sessions of the tool (application_name aami-tui) connected to this database."""
    return query(settings, "SELECT pid, state, left(query, 80) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND application_name = 'aami-tui'")


def tool_locks(settings: ConnSettings) -> list[tuple]:
    """Any lock held or awaited by a session of the tool, anywhere on the server."""
    return query(settings, "SELECT l.locktype, l.mode, l.pid FROM pg_locks l JOIN pg_stat_activity a "
                           "ON a.pid = l.pid WHERE a.application_name = 'aami-tui'")


def public_tables(settings: ConnSettings) -> list[str]:
    return [r[0] for r in query(settings, "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' "
                                          "ORDER BY 1")]


def terminate(settings: ConnSettings, pid: int) -> None:
    query(settings, "SELECT pg_terminate_backend(%s)", (pid,))


def wait_until(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``pred`` until it returns a truthy value (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {v!r})")
        time.sleep(interval)


def migration_with(tmp_path: Path, sql: str, after: int, name: str = "001_initial_schema.sql",
                   base: Path = MIGRATION) -> tuple[Path, int]:
    """A copy of the migration with ``sql`` inserted as its own statement after statement ``after``
    (0 = first). Returns (path, the 1-based line where ``sql`` starts)."""
    text = base.read_text()
    raw = pglast.parse_sql(text)
    at = raw[after].stmt_location if after < len(raw) else len(text)
    insert = f"\n\n{sql}\n" if after else f"{sql}\n\n"
    new = text[:at] + insert + text[at:]
    start = at + (2 if after else 0)
    line = new.count("\n", 0, start) + 1
    d = tmp_path / "mig"
    d.mkdir(exist_ok=True)
    path = d / name
    path.write_text(new)
    return path, line


def options(tmp_path: Path, **kw) -> Options:
    kw.setdefault("backup_dir", tmp_path / "backups")
    kw.setdefault("reports_dir", tmp_path / "reports")
    return Options(**kw)


def runbook(settings: ConnSettings, tmp_path: Path, migration: Path = MIGRATION, *, events: list | None = None,
            interactive: bool = False, **opts) -> Runbook:
    listener = events.append if events is not None else None
    return Runbook(settings, migration, options(tmp_path, **opts), listener, interactive=interactive)


async def run_to_begin(rb: Runbook) -> Runbook:
    """Pre-flight, backup, BEGIN: the migration transaction is open."""
    await rb.preflight()
    await rb.backup_step()
    await rb.begin()
    return rb


async def run_to_verify(rb: Runbook) -> None:
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()


class Waiter(threading.Thread):
    """A background session that runs one statement which is expected to block (e.g. on our locks)."""

    def __init__(self, settings: ConnSettings, sql: str, app: str = "config-server", timeout_s: int = 30):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(settings.conninfo(application_name=app), autocommit=True)
        self.conn.execute(f"SET statement_timeout = '{timeout_s}s'")
        self.pid = self.conn.info.backend_pid
        self.sql = sql
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self.conn.execute(self.sql)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            self.conn.close()


def child_env(env: dict | None = None) -> dict:
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def spawn_cli(*args: str, env: dict) -> subprocess.Popen:
    """``python -m aami_tui ...`` as a child we can signal (its own process group)."""
    return subprocess.Popen([sys.executable, "-m", "aami_tui", *args], cwd=ROOT, env=child_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def signal_child(p: subprocess.Popen, sig: int, before=None, timeout: float = 30) -> tuple[str, str]:
    """``before()`` (what the child must reach first: waits are bounded), then ``sig`` to the child, and its
    output once it has exited (within ``timeout``). A child still there afterwards (an assertion failed first, or
    it did not end) is killed."""
    try:
        if before is not None:
            before()
        os.kill(p.pid, sig)
        return p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()


def tool_waits_for_a_lock(settings: ConnSettings) -> bool:
    """Whether a session of the tool (pg_dump, psql, the migration session) in this database waits for a lock."""
    return bool(query(settings, "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event_type = 'Lock' AND application_name = 'aami-tui'"))


def backup_tools(settings: ConnSettings) -> tuple[pgtools.Tool, pgtools.Tool, int]:
    """pg_dump and pg_restore as pre-flight chooses them for this server, and its major version."""
    with psycopg.connect(settings.conninfo()) as c:
        major = c.info.server_version // 10000
    return pgtools.find_tool("pg_dump", major), pgtools.find_tool("pg_restore", major), major


async def take_verified_backup(settings: ConnSettings, backup_dir: Path, **kw) -> pgtools.BackupResult:
    """A verified backup as the runbook takes it, its metadata naming the database and, unless ``source`` says
    otherwise, the server it came from (what a restore checks before it runs)."""
    dump_tool, restore_tool, major = backup_tools(settings)
    kw.setdefault("source", {"dbname": settings.dbname, "host": settings.host, "port": settings.port})
    return await pgtools.take_backup(dump_tool, restore_tool, settings, backup_dir, server_major=major, **kw)


def spawn_holder(stage: str, settings: ConnSettings, migration: Path, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """A console process driven to ``stage`` (begin / apply / verify) that then sits there, transaction open.
    Returns (process, its migration backend pid) once it has printed READY."""
    env = child_env()
    env["AAMI_CHILD_DSN"] = settings.conninfo()
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "runbook_child.py"), stage, str(migration),
                          str(tmp_path / "child")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = p.stdout.readline()  # bounded: the child exits (EOF) on any failure
    if not line.startswith("READY"):
        p.kill()
        raise AssertionError(f"child did not reach {stage}: {line!r} {p.stderr.read()[-2000:]}")
    return p, int(line.split()[1])


def kill9(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)


class Proxy:
    """A TCP proxy on 127.0.0.1, in its own thread, that can freeze: stop forwarding while keeping every
    socket open (a half-open network: no RST, no FIN, nothing flows).

    ``freeze()`` freezes the connections open now; new ones still pass (so a fresh connection can fence
    the old backend). ``freeze(new=True)`` also holds every later connection (the server is unreachable).
    """

    def __init__(self, host: str, port: int):
        import asyncio

        self.target = (host, int(port))
        self.frozen: set[int] = set()  # connection ids frozen
        self.dropped: set[int] = set()  # frozen connections cut without delivering what they held
        self.freeze_new = False
        self._ids = 0
        self._live: set[int] = set()
        self._writers: list = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        ready.wait(5)

    async def _handle(self, reader, writer):
        import asyncio

        self._ids += 1
        cid = self._ids
        if self.freeze_new:
            self.frozen.add(cid)
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._live.add(cid)
        self._writers += [writer, uw]

        async def pump(r, w):
            try:
                while True:
                    data = await r.read(65536)
                    while cid in self.frozen:
                        await asyncio.sleep(0.02)  # hold it: the socket stays open, nothing flows
                    if cid in self.dropped:  # what was held never arrives
                        break
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                if cid not in self.frozen:
                    with contextlib.suppress(Exception):
                        w.close()

        await asyncio.gather(pump(reader, uw), pump(ur, writer))
        self._live.discard(cid)

    def settings(self, settings: ConnSettings) -> ConnSettings:
        return ConnSettings({**settings.params, "host": "127.0.0.1", "port": str(self.port)}, "proxy",
                            settings.connect_timeout)

    def freeze(self, new: bool = False) -> None:
        self.frozen |= set(self._live)
        self.freeze_new = new

    def drop(self) -> None:
        """The network comes back, but the frozen connections are cut (what they held is never delivered):
        the server sees them close; new connections pass again."""
        self.dropped |= self.frozen
        self.frozen.clear()
        self.freeze_new = False

    def thaw(self) -> None:
        self.frozen.clear()
        self.freeze_new = False

    def refuse(self) -> None:
        """The proxy stops listening (a new connection is refused, as with its process gone); the connections open
        now stay as they are (frozen ones stay frozen)."""
        import asyncio

        async def stop():
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)

    def listen(self) -> None:
        """Listening again on the same port (after ``refuse``): new connections pass; frozen ones stay frozen."""
        import asyncio

        async def start():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self.freeze_new = False
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)

    def close(self) -> None:
        import asyncio

        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.thaw()

        async def stop():
            self.server.close()
            for w in self._writers:
                with contextlib.suppress(Exception):
                    w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def off_the_loop(monkeypatch, module, name: str) -> list[int]:
    """``module.name`` (a file writer) made to prove it runs off the event loop: before writing it waits until the
    loop has run a callback. On the loop's own thread the loop cannot run meanwhile, and the writer fails after
    10 s (AssertionError). Returns the threads it ran in (never the loop's)."""
    import asyncio

    loop, real, threads = asyncio.get_running_loop(), getattr(module, name), []

    def writer(*args, **kw):
        threads.append(threading.get_ident())
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        assert ran.wait(10), f"{name} ran on the event loop: the loop could not run while it wrote"
        return real(*args, **kw)

    monkeypatch.setattr(module, name, writer)
    return threads


@contextlib.contextmanager
def commit_never_answered(pg_server, settings: ConnSettings, standby: str = "never"):
    """Synchronous replication to a standby that never comes (named ``standby``): the server commits locally, then
    waits for an answer from the standby forever; the client never hears back. Server-wide: always reset."""
    if pg_server.embedded is None:
        pytest.skip("changes synchronous_standby_names server-wide (test server only)")
    admin = pg_server.admin
    run_sql(admin, psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(
        psycopg.sql.Identifier(settings.dbname)).as_string())
    run_sql(admin, f"ALTER SYSTEM SET synchronous_standby_names = '{standby}'")
    run_sql(admin, "SELECT pg_reload_conf()")
    try:
        wait_until(lambda: query(settings, "SHOW synchronous_standby_names") == [(standby,)], 5)
        yield
    finally:
        run_sql(admin, "ALTER SYSTEM RESET synchronous_standby_names")
        run_sql(admin, "SELECT pg_reload_conf()")
        wait_until(lambda: query(settings, "SHOW synchronous_standby_names") == [("",)], 5)
