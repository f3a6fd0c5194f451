"""Rehearsal on a copy: the guide's "test the migration on staging first", done for real.

A fresh backup of the database (or ``--from-backup FILE``) is restored into a scratch copy: a new database on the
same server when the role may create one, otherwise the embedded PostgreSQL (the version difference is stated).
The same runbook engine runs there (pre-flight, BEGIN, apply, verify, COMMIT on the copy), and the report says
how long it took, which locks it held on tables that already existed (with their sizes), what failed, and whether
the result passes ``check --strict``. The copy is always dropped: on success, failure and Ctrl+C. The real
database is only read (by pg_dump).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql as q

from aami_tui.core import files, leftovers, pgtools, schema
from aami_tui.core import migration as mig
from aami_tui.core.queries import sql
from aami_tui.core.settings import ConnSettings
from aami_tui.core.words import plural
from aami_tui.core.words import size as size_words

# Exit codes of `aami-tui rehearse` (README).
EXIT_WOULD_SUCCEED = 0
EXIT_WOULD_FAIL = 1
EXIT_CONNECT = 2
EXIT_DRIFT_LEFT = 3
EXIT_NO_COPY = 4
EXIT_TIMED_OUT = 5  # it did not finish within --rehearse-timeout (the copy dropped)
EXIT_INTERRUPTED = 130


class RehearsalError(Exception):
    """The copy could not be made; one sentence."""


@dataclass
class Rehearsal:
    database: str  # the real one, described
    migration: str
    migration_sha256: str = ""
    backup: str = ""  # the dump restored, and whether it was taken now
    backup_source: str = ""  # the database the dump was made from, per its metadata ("db on host:port")
    copy_where: str = ""  # where the copy lived
    copy_name: str = ""
    started_at: str = ""
    restore_seconds: float = 0.0
    apply_seconds: float = 0.0
    total_seconds: float = 0.0
    statements: int = 0
    locks: list[dict] = field(default_factory=list)  # on tables that existed before BEGIN
    preflight: list[dict] = field(default_factory=list)
    verify: list[dict] = field(default_factory=list)
    failed: str | None = None  # what failed, one sentence
    committed: bool = False
    nothing_to_do: bool = False  # pre-flight on the copy found it migrated: the run ended there (as the real one would)
    strict_ok: bool | None = None
    drift: dict = field(default_factory=dict)
    copy_dropped: bool = False
    disk: str = ""  # what the copy needs on disk against what was free (CopyCost.sentence)
    interrupted: bool = False
    report: str | None = None

    @property
    def would_succeed(self) -> bool:
        return (self.committed or self.nothing_to_do) and self.failed is None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if not self.would_succeed:
            return EXIT_WOULD_FAIL
        return EXIT_WOULD_SUCCEED if self.strict_ok else EXIT_DRIFT_LEFT

    def verdict(self) -> str:
        if self.interrupted:
            return "Interrupted: the rehearsal did not finish (the copy was dropped)."
        if not self.would_succeed:
            return f"The real run would fail: {self.failed}"
        if self.nothing_to_do and self.strict_ok:
            return ("Nothing to do: the database is already migrated; the real run would stop after pre-flight (no "
                    "backup, no transaction), and aami-tui check --strict passes on the copy.")
        if not self.strict_ok:
            return ("The real run would succeed, but aami-tui check --strict would still fail (drift left: "
                    f"{', '.join(self.drift) or 'see the report'}); aami-tui plan writes the repair.")
        return "The real run would succeed and leave no drift: aami-tui check --strict passes on the copy."

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items()}
        d.update(would_succeed=self.would_succeed, exit_code=self.exit_code, verdict=self.verdict(),
                 kind="aami-tui rehearsal")
        return d


_LOCAL = ("", "localhost", "127.0.0.1", "::1")


def _host(h) -> str:
    h = str(h or "")
    return "local" if h in _LOCAL or h.startswith("/") else h.lower()


def backup_source(dump: Path) -> dict | None:
    """The metadata written beside a backup (``<dump>.json``: host, port, dbname), or None without it."""
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(Path(dump).with_name(Path(dump).name + ".json").read_text(encoding="utf-8"))
        if isinstance(meta, dict) and meta.get("dbname"):
            return meta
    return None


def source_label(meta: dict) -> str:
    return f"{meta.get('dbname')} on {meta.get('host') or 'localhost'}:{meta.get('port') or '?'}"


def other_source(meta: dict | None, dbname: str, hosts, port) -> str | None:
    """The source a backup's metadata names when it is another database or another server than the target
    (``hosts``: the target's host spellings; local names and sockets are one); None when it is the target or
    unknown."""
    if not meta:
        return None
    if meta.get("dbname") != dbname:
        return source_label(meta)
    if meta.get("port") not in (None, "") and port not in (None, "") and str(meta["port"]) != str(port):
        return source_label(meta)
    if meta.get("host") not in (None, "") and _host(meta["host"]) not in {_host(h) for h in hosts}:
        return source_label(meta)
    return None


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


EMBEDDED_OVERHEAD = 64 * 1024 * 1024  # an embedded cluster's own files: initdb's ~45 MiB (measured), plus WAL


@dataclass(frozen=True)
class CopyCost:
    """What the copy costs on disk, and whether it fits where it would go (``copy_cost``); with the backup the
    rehearsal takes first when none is given."""

    db_size: int  # the real database's size (pg_database_size): what the restored copy takes, about
    need: int  # the copy's bytes: the database's size (plus the embedded cluster's own files there)
    where: str  # "in a new database on the same server" / "in the embedded PostgreSQL"
    path: str | None = None  # where the free space was measured
    free: int | None = None  # None: it cannot be measured from here (why_not says why)
    why_not: str = ""
    backup_need: int = 0  # a backup taken first (none given): at most the database's size, as pre-flight counts it
    backup_path: str | None = None
    backup_free: int | None = None
    shared: bool = False  # the backup and the copy on one file system: both must fit there together

    @property
    def copy_fits(self) -> bool | None:
        if self.free is None:
            return None
        return files.room_for(self.free, self.need + (self.backup_need if self.shared else 0))

    @property
    def backup_fits(self) -> bool | None:
        if not self.backup_need or self.backup_free is None:
            return None
        return files.room_for(self.backup_free, self.backup_need)

    @property
    def fits(self) -> bool | None:
        """True / False by the same rule as pre-flight's backup check (files.room_for); None: not measured."""
        if self.copy_fits is False or self.backup_fits is False:
            return False
        return self.copy_fits

    def _needs(self) -> str:
        extra = (f" plus {size_words(EMBEDDED_OVERHEAD)} for the embedded server's own files"
                 if self.need > self.db_size else "")
        return (f"a whole extra copy of the database {self.where}: about {size_words(self.need)} of disk (the "
                f"database's size, {size_words(self.db_size)}{extra})")

    def _backup(self) -> str:
        free = f"{size_words(self.backup_free)} free" if self.backup_free is not None else "free space unknown"
        same = "; the same disk as the copy, so both must fit there" if self.shared else ""
        return (f" It takes a backup first (pg_dump): up to {size_words(self.backup_need)} in {self.backup_path} "
                f"({free}{same}).")

    def sentence(self) -> str:
        """One sentence for the confirmation and the headless output (two when it takes a backup first)."""
        if self.fits is False:
            return self.refusal()
        if self.free is None:
            text = (f"The rehearsal needs {self._needs()}; the free space there cannot be measured from here "
                    f"({self.why_not}): make sure it has room before you confirm.")
        else:
            text = f"The rehearsal needs {self._needs()}; {size_words(self.free)} is free in {self.path}."
        return text + (self._backup() if self.backup_need else "")

    def refusal(self) -> str:
        rule = (f"(what is needed plus a fifth and {size_words(files.ROOM_MARGIN)} must be free, as for the "
                "backup); free space there first, the real database was not touched.")
        if self.copy_fits is False:
            both = (f" and, on the same disk, the backup it takes first (up to {size_words(self.backup_need)})"
                    if self.shared and self.backup_need else "")
            return (f"Not enough disk for the rehearsal: it needs {self._needs()}{both}, and only "
                    f"{size_words(self.free)} is free in {self.path} {rule}")
        return (f"Not enough disk for the rehearsal's backup: it takes a pg_dump of the database first, up to "
                f"{size_words(self.backup_need)} in {self.backup_path}, and only {size_words(self.backup_free)} is "
                f"free there {rule[:-1]} (or give it a backup: --from-backup FILE).")


def _local(host) -> bool:
    return _host(host) == "local"


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent (a backup directory not made yet)."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _same_disk(a, b) -> bool:
    import os

    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except (OSError, TypeError):
        return False


async def copy_cost(conn, settings: ConnSettings, backup_dir: Path | None = None) -> CopyCost:
    """How much disk the copy needs (the database's size) and what is free where it would go: the server's data
    directory when the copy goes to the same server and that server runs on this machine (and the role may read
    data_directory), the temporary directory when it goes to the embedded PostgreSQL. ``backup_dir``: the
    rehearsal takes a backup there first (no backup was given), which needs room too."""
    import dataclasses

    cost = await _copy_cost(conn, settings)
    if backup_dir is None:
        return cost
    where = _existing(Path(backup_dir))
    return dataclasses.replace(cost, backup_need=cost.db_size, backup_path=str(Path(backup_dir).expanduser()),
                               backup_free=files.free_bytes(where), shared=_same_disk(where, cost.path))


async def _copy_cost(conn, settings: ConnSettings) -> CopyCost:
    cur = await conn.execute(sql("copy_room"))
    db_size, can_create, data_dir = await cur.fetchone()
    db_size = int(db_size or 0)
    if not can_create:
        import tempfile

        tmp = tempfile.gettempdir()
        return CopyCost(db_size, db_size + EMBEDDED_OVERHEAD, "in the embedded PostgreSQL (the role may not create "
                        "databases)", tmp, files.free_bytes(tmp), "the temporary directory cannot be read")
    where = "in a new database on the same server"
    if not _local(conn.info.host if conn.info.host else settings.host):
        return CopyCost(db_size, db_size, where, why_not=f"the server runs on {conn.info.host}, not on this machine")
    if not data_dir:
        return CopyCost(db_size, db_size, where, why_not="the role may not read the server's data_directory")
    free = files.free_bytes(data_dir)
    return CopyCost(db_size, db_size, where, data_dir, free,
                    "" if free is not None else f"the data directory {data_dir} cannot be reached from here")


async def take_backup(settings: ConnSettings, backup_dir: Path, server_major: int, say,
                      lock_timeout: float | None = None) -> Path:
    """pg_dump -Fc of the real database into backup_dir (0600, checksum beside it), verified with --list.
    ``lock_timeout`` (seconds; None or 0: no bound) bounds pg_dump's wait for another session's lock, as the
    runbook's backup step does; past it the ToolError names the session holding the lock."""
    dump_tool = await asyncio.to_thread(pgtools.find_tool, "pg_dump", server_major)
    restore_tool = await asyncio.to_thread(pgtools.find_tool, "pg_restore", server_major)
    dump, _ = pgtools.unique_backup_paths(pgtools.ensure_private_dir(backup_dir), settings.dbname)
    say(f"Backup of {settings.dbname}: pg_dump -Fc → {dump}")
    if lock_timeout:
        say(f"pg_dump waits at most {lock_timeout:g}s (lock_timeout) for a lock another session holds.")
    try:
        await pgtools.run_dump(dump_tool, settings, dump, server_major=server_major,
                               lock_wait_timeout=lock_timeout or None)
    except pgtools.LockWaitTimeout as exc:
        raise pgtools.ToolError(await pgtools.lock_wait_words(settings, exc, None, lock_timeout)) from None
    toc = await pgtools.toc_count(restore_tool, dump)
    digest = await asyncio.to_thread(pgtools.sha256_file, dump)
    await files.in_thread(pgtools.write_checksum, dump, digest, {
        "host": settings.host, "port": settings.port, "dbname": settings.dbname,
        "taken_at": datetime.now().astimezone().isoformat(timespec="seconds"), "toc_entries": toc,
        "size": dump.stat().st_size, "purpose": "rehearsal"})
    return dump


RESTORE_WHAT = "restoring the copy"  # the progress line's head: "restoring the copy: 1.2 / 3.4 MiB (35 %), …"


async def _pg_restore(dump: Path, target: ConnSettings, server_major: int, work: list | None = None,
                      on_progress: Callable | None = None) -> None:
    """Restore ``dump`` into the empty copy in one transaction (no owners, no grants: the copy is ours).

    ``on_progress`` gets ``progress.Progress`` snapshots, as the backup's and the restore's: which table from
    pg_restore's --verbose lines, how far into it from the copy's server counters (pg_stat_progress_copy, then
    create_index) on a second connection, each table weighed by ``work`` (its size when the backup was taken).

    A pg_restore no newer than the copy's server is preferred: connected directly, a newer one sends settings an
    older server rejects (``SET transaction_timeout``, PostgreSQL 17). When only a newer one reads the archive,
    its script goes through psql with those lines left out (the restore module's filter)."""
    from aami_tui.core import restore as core_restore

    try:
        archive = core_restore.read_archive_header(dump)
    except core_restore.RestoreError as exc:
        raise RehearsalError(str(exc).replace("Nothing was restored.", "No copy was made.")) from None
    env = pgtools.tool_env(target, server_major)
    for tool in await asyncio.to_thread(pgtools.all_tools, "pg_restore"):  # newest first
        if tool.major <= server_major and (await core_restore._listing(tool, dump))[0] == 0:
            argv = [tool.path, "--no-password", "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
                    *(["--verbose"] if on_progress else []), "-d", target.dbname, str(dump)]
            async with _restore_progress(target, work, on_progress) as on_line:
                rc, err = await pgtools._run(argv, env, on_line=on_line)
                if rc != 0:
                    raise RehearsalError(f"Restoring {dump.name} into the copy failed: {_last_error(err)}")
            return
    try:
        tool, psql, _listing = await core_restore.choose_tools(dump, archive)
    except core_restore.RestoreError as exc:
        raise RehearsalError(str(exc).replace("Nothing was restored.", "No copy was made.")) from None
    async with _restore_progress(target, work, on_progress) as on_line:
        await _script_through_psql(dump, tool, psql, target, server_major, env, on_line)


async def _script_through_psql(dump: Path, tool, psql, target: ConnSettings, server_major: int, env: dict,
                               on_line: Callable[[str], None] | None) -> None:
    """A newer pg_restore's script, filtered for the older server, run by psql in one transaction; pg_restore's
    --verbose lines (with progress) go to ``on_line`` as they come."""
    from aami_tui.core import restore as core_restore

    prefix, _ = pgtools._die_with_parent()
    script = await asyncio.create_subprocess_exec(
        *prefix, tool.path, "--no-owner", "--no-acl", *(["--verbose"] if on_line else []), "-f", "-", str(dump),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    runner = await asyncio.create_subprocess_exec(
        *prefix, psql.path, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", target.dbname, "-f", "-", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    script_err: list[str] = []

    reader = asyncio.create_task(pgtools.read_lines(script.stderr, script_err, on_line))
    keep = core_restore._script_filter(server_major, 0)
    try:
        head, in_header = b"", True
        assert script.stdout and runner.stdin
        while chunk := await script.stdout.read(1 << 16):
            if in_header:
                head += chunk
                if len(head) < (1 << 16):
                    continue
                chunk, head, in_header = core_restore._filtered(head, keep), b"", False
            runner.stdin.write(chunk)
            await runner.stdin.drain()
        if in_header and head:
            runner.stdin.write(core_restore._filtered(head, keep))
        runner.stdin.close()
        err = (await runner.stderr.read()).decode(errors="replace") if runner.stderr else ""
        rc_script, rc_psql = await script.wait(), await runner.wait()
    except (BrokenPipeError, ConnectionResetError):
        err = (await runner.stderr.read()).decode(errors="replace") if runner.stderr else ""
        rc_script, rc_psql = await script.wait(), await runner.wait()
    except asyncio.CancelledError:
        for proc in (script, runner):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        reader.cancel()
        raise
    with contextlib.suppress(Exception):
        await reader
    if rc_psql != 0 or rc_script != 0:
        said = err if rc_psql != 0 else "\n".join(script_err)
        raise RehearsalError(f"Restoring {dump.name} into the copy failed: {_last_error(said)}")


@contextlib.asynccontextmanager
async def _restore_progress(target: ConnSettings, work: list | None, on_progress: Callable | None):
    """Yields what takes the tool's --verbose lines (None without ``on_progress``): they and the copy's server
    counters (a Watch on a second connection) feed one tracker (core/progress.py); on success the bar ends full."""
    if on_progress is None:
        yield None
        return
    from aami_tui.core import progress as prog

    tracker = prog.Tracker(RESTORE_WHAT, work or [])
    last_done = -1

    def emit(p) -> None:
        with contextlib.suppress(Exception):  # a face's failure must not stop the restore
            on_progress(p)

    def on_line(line: str) -> None:
        nonlocal last_done
        tracker.line(line)
        now = tracker.progress()  # a table that starts or ends moves the bar at once, between the polls
        if now.done != last_done:
            last_done = now.done
            emit(now)

    async with prog.Watch(target, tracker, emit):
        yield on_line
    tracker.finish()  # only reached when the restore succeeded (an error went through the yield)
    emit(tracker.progress())


async def _work(conn, meta: dict | None) -> list:
    """The tables (and indexes) a restore of the backup copies, weighed: from the metadata beside the backup
    (their sizes when it was taken), else from the real database now (the backup is of it). Without their oids:
    the copy's tables have others."""
    from aami_tui.core import progress as prog

    work = [prog.Work.from_dict(w) for w in (meta or {}).get("work") or () if isinstance(w, dict)]
    if not work:
        with contextlib.suppress(Exception):  # no weights: the bar then moves only at the end
            work = [prog.Work.from_dict(w.to_dict()) for w in await prog.table_work(conn, indexes=True)]
    return work


def _last_error(err: str) -> str:
    lines = ([ln for ln in err.splitlines() if "error:" in ln.lower()]
             or [ln for ln in err.splitlines() if "error" in ln.lower()] or err.splitlines() or ["?"])
    return lines[-1].removeprefix("pg_restore: ").removeprefix("psql:")


@contextlib.asynccontextmanager
async def scratch_copy(live_conn, settings: ConnSettings, dump: Path, say, result: Rehearsal,
                       on_progress: Callable | None = None, work: list | None = None):
    """A restored copy of ``dump``: yields its ConnSettings; always dropped (or its server stopped).
    ``on_progress``: the restore's progress (``_pg_restore``)."""
    from aami_tui.core import embedded
    from aami_tui.core.db import connect

    major = live_conn.info.server_version // 10000
    cur = await live_conn.execute(sql("can_create_database"))
    why_not = "the role may not create databases"
    if (await cur.fetchone())[0]:
        name = f"aami_rehearse_{uuid.uuid4().hex[:12]}"
        try:
            await live_conn.execute(q.SQL("CREATE DATABASE {} TEMPLATE template0").format(q.Identifier(name)))
        except psycopg.Error as exc:
            why_not = f"creating a database failed ({_first(exc)})"
        except asyncio.CancelledError:  # Ctrl+C or a timeout while CREATE DATABASE ran: it may have completed
            await asyncio.shield(_drop_database(settings, name, major, result))
            raise
        else:
            result.copy_name = name
            result.copy_where = f"a new database {name} on the same server (PostgreSQL {major})"
            target = settings.with_dbname(name)
            try:
                say(f"Copy: restoring {dump.name} into {name} on the same server.")
                t0 = time.monotonic()
                await _pg_restore(dump, target, major, work, on_progress)
                result.restore_seconds = time.monotonic() - t0
                yield target
            finally:
                await asyncio.shield(_drop_database(settings, name, major, result))
            return
    say(f"Copy: {why_not}; using the embedded PostgreSQL instead.")
    try:
        pg = await asyncio.to_thread(embedded.start, "aami_rehearsal")
    except Exception as exc:  # noqa: BLE001 - one sentence
        raise RehearsalError(f"No place for the copy: {why_not}, and the embedded PostgreSQL did not start "
                             f"({exc}).") from None
    try:
        ref = await connect(pg.settings())
        try:
            emb_major = ref.info.server_version // 10000
        finally:
            await ref.close()
        diff = "" if emb_major == major else (f"; the real server is PostgreSQL {major}: a difference between "
                                              "the versions could show here and not there, or the other way")
        result.copy_name = "aami_rehearsal"
        result.copy_where = f"the embedded PostgreSQL {emb_major} ({why_not}){diff}"
        t0 = time.monotonic()
        await _pg_restore(dump, pg.settings(), emb_major, work, on_progress)
        result.restore_seconds = time.monotonic() - t0
        yield pg.settings()
    finally:
        await asyncio.shield(asyncio.to_thread(pg.stop))
        result.copy_dropped = True


DROP_TRIES_FOR = 10.0  # seconds a copy's DROP DATABASE is retried


async def _drop_database(settings: ConnSettings, name: str, major: int, result: Rehearsal) -> None:
    from aami_tui.core.db import connect

    force = q.SQL(" WITH (FORCE)") if major >= 13 else q.SQL("")
    # Tried for up to ~10 s: right after a cancel the restore's session may still be ending, and a busy server
    # may refuse a connection for a moment; a copy left behind is a database's worth of disk.
    deadline = time.monotonic() + DROP_TRIES_FOR
    while True:
        try:
            conn = await connect(settings)
            try:
                await conn.execute(q.SQL("DROP DATABASE IF EXISTS {}{}").format(q.Identifier(name), force))
            finally:
                await conn.close()
            result.copy_dropped = True
            return
        except Exception:  # noqa: BLE001 - try again, then the report says it was not dropped
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.5)


async def _locks_held(conn, pid: int, before: dict) -> list[dict]:
    cur = await conn.execute(sql("locks_held"), {"pid": pid})
    out = []
    for table, mode in await cur.fetchall():
        if table in before:
            rows, size = before[table]
            words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()  # AccessExclusiveLock
            out.append({"table": table, "mode": words, "est_rows": rows, "size_bytes": size})
    return out


async def rehearse(settings: ConnSettings, migration_path: Path, *, backup_dir: Path, reports_dir: Path,
                   from_backup: Path | None = None, lock_timeout: float = 5.0, statement_timeout: float = 300.0,
                   pace: float = 0.0, say: Callable[[str], None] = lambda _m: None,
                   from_label: str = "given with --from-backup",
                   started: Callable[[Rehearsal], None] = lambda _r: None,
                   on_progress: Callable | None = None) -> Rehearsal:
    """Run the rehearsal. Raises ConnectError (real database unreachable) or RehearsalError (no copy).
    ``started`` receives the record as soon as it exists (a caller that cancels or times out still knows which
    report was written). ``on_progress`` gets ``progress.Progress`` snapshots while the copy is restored (about
    twice a second, from the copy's server counters)."""
    from aami_tui.core.db import connect
    from aami_tui.core.runbook import Options, Runbook, RunbookError

    t_start = time.monotonic()
    migration_path = Path(migration_path)
    conn = await connect(settings)
    info = conn.info
    result = Rehearsal(database=f"{info.dbname} on {info.host}:{info.port} (PostgreSQL "
                                f"{info.server_version // 10000}.{info.server_version % 10000})",
                       migration=str(migration_path),
                       started_at=datetime.now().astimezone().isoformat(timespec="seconds"))
    started(result)
    with contextlib.suppress(mig.MigrationError):
        result.migration_sha256 = mig.load(migration_path).sha256
    try:
        meta = None
        if from_backup is not None:  # what is wrong with the file given is said first (no disk weighed for it)
            dump = Path(from_backup).expanduser()
            if not dump.exists():  # a file, or a directory-format backup (--jobs)
                raise RehearsalError(f"--from-backup {dump}: no such file.")
            meta = backup_source(dump)
            other = other_source(meta, info.dbname, (settings.host, info.host), info.port)
            if other is not None:
                raise RehearsalError(
                    f"--from-backup {dump.name} was made from {other}, not from {info.dbname} on "
                    f"{info.host}:{info.port}: a rehearsal restores a backup of the database it tests (omit "
                    "--from-backup to take one now).")
            if meta is None:  # no metadata: the archive's header still names the database pg_dump read
                from aami_tui.core.restore import RestoreError, read_archive_header

                with contextlib.suppress(RestoreError):  # (not an archive: the restore into the copy says so)
                    header = read_archive_header(dump).dbname
                    if header and header != info.dbname:
                        raise RehearsalError(
                            f"--from-backup {dump.name} is a dump of database {header} (its archive header says "
                            f"so; no metadata beside it), not of {info.dbname}: a rehearsal restores a backup of "
                            "the database it tests (omit --from-backup to take one now).")
        if left := leftovers.note(await leftovers.find(conn)):  # an earlier run killed outright (SIGKILL)
            say(left)
        cost = await copy_cost(conn, settings, backup_dir if from_backup is None else None)
        if cost.fits is False:  # refused up front: no backup taken, no copy made, no report
            raise RehearsalError(cost.refusal())
        result.disk = cost.sentence()
        say(result.disk)
        try:
            if from_backup is not None:
                result.backup = f"{dump} ({from_label})"
                result.backup_source = source_label(meta) if meta else "not recorded (no metadata beside the backup)"
            else:
                dump = await take_backup(settings, backup_dir, info.server_version // 10000, say, lock_timeout)
                result.backup = f"{dump} (taken now)"
                result.backup_source = f"{info.dbname} on {info.host}:{info.port}"
        except pgtools.ToolError as exc:
            raise RehearsalError(f"The backup for the rehearsal failed: {exc}") from None
        work = await _work(conn, backup_source(dump)) if on_progress else None
        async with scratch_copy(conn, settings, dump, say, result, on_progress, work) as target:
            opts = Options(backup_dir=backup_dir, reports_dir=Path(reports_dir) / "rehearsal-runs",
                           lock_timeout=lock_timeout, statement_timeout=statement_timeout, skip_backup=True,
                           skip_backup_why="a rehearsal on a scratch copy", pace=pace)
            rb = Runbook(target, migration_path, opts, interactive=False)
            t0 = None
            try:
                say(f"Rehearsing {migration_path.name} on the copy ({result.copy_where}).")
                result.preflight = [c.to_dict() for c in await rb.preflight()]
                if rb.nothing_to_do:  # the engine ended the run there, as it would on the real database
                    result.nothing_to_do = True
                else:
                    await rb.backup_step()  # skipped: the copy is itself the backup's restore
                    await rb.begin()
                    t0 = time.monotonic()
                    await rb.apply()
                    result.apply_seconds = time.monotonic() - t0
                    result.statements = len(rb.statements)
                    mon = await connect(target)
                    try:
                        result.locks = await _locks_held(mon, rb.backend_pid, rb.tables_before_begin or {})
                    finally:
                        await mon.close()
                    result.verify = [c.to_dict() for c in await rb.verify()]
                    await rb.commit(target.dbname)
                    result.committed = True
            except RunbookError as exc:
                result.failed = str(exc)
                if t0 is not None and not result.apply_seconds:  # the apply (or verify) failed: time to the failure
                    result.apply_seconds = time.monotonic() - t0
                result.preflight = result.preflight or [c.to_dict() for c in rb.checks]
                result.verify = result.verify or [c.to_dict() for c in rb.verify_checks]
                result.statements = len([s for s in rb.statements if s.ok])
            finally:
                await asyncio.shield(rb.close("rehearsal ended"))
            if result.committed or result.nothing_to_do:
                shipped = mig.load(mig.resolve_migration_path()).tables
                check = await connect(target)
                try:
                    res = await schema.validate(check, shipped)
                finally:
                    await check.close()
                result.strict_ok = res.ok and not res.drifted
                result.drift = {t.name: {"missing_columns": list(t.missing_columns),
                                         "unexpected_columns": list(t.unexpected_columns)}
                                for t in res.required if t.drifted}
                if res.missing:
                    result.drift["missing tables"] = list(res.missing)
    except asyncio.CancelledError:
        result.interrupted = True
        result.total_seconds = time.monotonic() - t_start
        with contextlib.suppress(Exception):
            await files.in_thread(write_report, result, reports_dir)
        raise
    finally:
        await asyncio.shield(conn.close())
    result.total_seconds = time.monotonic() - t_start
    await files.in_thread(write_report, result, reports_dir)  # off the loop: the console's keys never wait for it
    return result


def summary_lines(r: Rehearsal) -> list[str]:
    """What the rehearsal found, a line each (the CLI prints them; the runbook logs them)."""
    out = [r.verdict(), f"Copy: {r.copy_where or 'none made'}; "
                        f"{'dropped' if r.copy_dropped or not r.copy_name else 'NOT dropped: drop it by hand'}.",
           f"Durations: restore {r.restore_seconds:.1f} s, apply {r.apply_seconds:.2f} s ({plural(r.statements, 'statement')}), "
           f"total {r.total_seconds:.1f} s."]
    out += [f"Lock: {lk['mode']} on {lk['table']} (~{plural(lk['est_rows'], 'row')}, "
            f"{size_words(lk['size_bytes'] or 0)}) until COMMIT." for lk in r.locks]
    if not r.locks and r.committed:
        out.append("Locks: none on tables that already existed.")
    if r.committed:
        out.append("check --strict on the copy: " + ("passes." if r.strict_ok else "fails (drift left)."))
    return out


def write_report(r: Rehearsal, reports_dir: Path) -> Path:
    """rehearsal_<db>_<time>.md and .json, 0600 (the .json is what pre-flight reads as evidence)."""
    d = files.private_dir(reports_dir)
    stem = files.unique_stem(d, f"rehearsal_{files.safe_name(r.database.split(' on ')[0])}_"
                                f"{datetime.now():%Y%m%d_%H%M%S}", (".md", ".json"))
    md, js = d / f"{stem}.md", d / f"{stem}.json"
    r.report = str(md)
    lines = [f"# Rehearsal of {Path(r.migration).name} on a copy of {r.database}", "",
             f"**{r.verdict()}**", "",
             f"- Started: {r.started_at}", f"- Migration: {r.migration} (sha256 {r.migration_sha256})",
             f"- Backup restored: {r.backup}; made from {r.backup_source or '?'}", f"- Disk: {r.disk or '?'}", f"- Copy: {r.copy_where}; dropped: {'yes' if r.copy_dropped else 'NO'}",
             f"- Durations: restore {r.restore_seconds:.1f} s, apply {r.apply_seconds:.2f} s "
             f"({plural(r.statements, 'statement')}), total {r.total_seconds:.1f} s",
             f"- COMMIT on the copy: {'yes' if r.committed else 'no'}; check --strict: "
             f"{'passes' if r.strict_ok else ('fails' if r.strict_ok is False else 'not reached')}"]
    if r.failed:
        lines += ["", "## What failed", "", r.failed]
    lines += ["", "## Locks held until COMMIT on tables that already existed", ""]
    if r.locks:
        lines += ["| table | mode | est. rows | size |", "|---|---|---|---|"]
        lines += [f"| {x['table']} | {x['mode']} | {x['est_rows']:,} | "
                  f"{size_words(x['size_bytes'] or 0)} |" for x in r.locks]
    else:
        lines.append("None (every table the migration touched is new).")
    for title, checks in (("Pre-flight on the copy", r.preflight), ("Verify on the copy", r.verify)):
        if checks:
            lines += ["", f"## {title}", ""]
            lines += [f"- {'✓' if c['ok'] else ('✗' if c.get('blocking', True) else '!')} {c['name']}: {c['detail']}"
                      for c in checks]
    if r.drift:
        lines += ["", "## Drift left (check --strict)", "", "```", json.dumps(r.drift, indent=2), "```"]
    files.write_private(md, "\n".join(lines) + "\n")
    files.write_private(js, json.dumps(r.to_dict(), indent=2, default=str) + "\n")
    return md


def evidence(report_path: Path | str, migration: mig.MigrationFile | None, dbname: str) -> tuple[bool, str]:
    """Pre-flight's "Tested on staging" from a rehearsal report (its .json): (good evidence?, one sentence)."""
    p = Path(report_path).expanduser()
    js = p.with_suffix(".json") if p.suffix == ".md" else p
    try:
        d = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or exc
        return False, (f"rehearsal report {p} cannot be read ({why})" if js == p else
                       f"rehearsal report {p} cannot be read: its JSON {js.name}, which is what is read: {why}")
    if d.get("kind") != "aami-tui rehearsal":
        return False, f"{js.name} is not a rehearsal report"
    when = d.get("started_at", "?")
    if migration is not None and d.get("migration_sha256") != migration.sha256:
        return False, (f"{js.name} rehearsed another file (sha256 {str(d.get('migration_sha256'))[:12]}…, this "
                       f"one is {migration.sha256[:12]}…)")
    if not str(d.get("database", "")).startswith(f"{dbname} on "):
        return False, f"{js.name} rehearsed {d.get('database')}, not {dbname}"
    # the copy must have been restored from this database: the source recorded in the report, or (a report
    # from before it was recorded) the metadata beside the backup it names
    src = d.get("backup_source")
    if not src:
        meta = backup_source(Path(re.sub(r" \([^()]*\)$", "", str(d.get("backup", "")))))
        src = source_label(meta) if meta else ""
    if src and not src.startswith("not recorded") and not src.startswith(f"{dbname} on "):
        return False, f"{js.name} rehearsed a backup of {src}, not of {dbname}: it is no evidence for {dbname}"
    if d.get("exit_code") != EXIT_WOULD_SUCCEED:
        return False, f"{js.name} ({when}) says: {d.get('verdict')}"
    return True, f"rehearsed on a copy {when} ({js.name}): {d.get('verdict')}"
