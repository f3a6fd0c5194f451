"""Connecting, and turning libpq's failures into one clear sentence each."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from aami_tui.core.secret import Mask
from aami_tui.core.settings import ConnSettings

if TYPE_CHECKING:  # psycopg is imported on the first connect: the console's first frame does without it
    import psycopg


class ConnectError(Exception):
    """A connection failure, already phrased for a person. ``kind`` is machine-readable (`check --json`'s
    error_kind): auth, service, ssl, no_database, no_role, timeout, refused, dns, hba, busy, starting, closed (the
    other end hung up before answering), other."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def _where(s: ConnSettings) -> str:
    host = s.host
    if host.startswith("/"):
        return f"the socket in {host} (port {s.port})"
    return f"{host}:{s.port}"


def _sslmode_fix(s: ConnSettings) -> str:
    """Turning SSL off where this connection's sslmode comes from (the fix names the right knob)."""
    if s.source == "--dsn":
        return "set sslmode=disable in --dsn"
    if s.source.startswith("DB_"):
        return "set DB_SSLMODE=disable"
    return "set PGSSLMODE=disable"


def _unknown_service(name: str) -> str:
    env = os.environ
    user_file = (f"{env['PGSERVICEFILE']} (PGSERVICEFILE)" if env.get("PGSERVICEFILE")
                 else str(Path("~/.pg_service.conf").expanduser()))
    system = (f"{env['PGSYSCONFDIR']}/pg_service.conf (PGSYSCONFDIR)" if env.get("PGSYSCONFDIR")
              else "the system's pg_service.conf")
    return (f'The service "{name}" is not defined in {user_file} nor in {system}; add a [{name}] section or use '
            "another service name.")


def _no_password(s: ConnSettings, where: str) -> str:
    """No password anywhere: why each place gave none, and which one wins (so the fix goes where it counts)."""
    path, named = s.password_file()
    if s.source == "--dsn":
        first, given = "a password in --dsn", "--dsn has no password and PGPASSWORD is not set"
    elif s.source.startswith("DB_"):
        first, given = "DB_PASSWORD", "DB_PASSWORD and PGPASSWORD are not set"
    else:
        first, given = "", "PGPASSWORD is not set"
    host = "localhost" if s.host.startswith("/") else s.host  # libpq matches a socket's lines as localhost
    try:
        mode = path.stat().st_mode
        state = (f"libpq ignores {named}: others may read it (chmod 600 it)" if mode & 0o077 else
                 f"{named} has no line for {host}:{s.port}:{s.dbname}:{s.user}")
    except OSError:
        state = f"{named} does not exist"
    order = ", ".join(x for x in (first, "PGPASSWORD") if x) + f" and {named}"
    return (f'The server at {where} wants a password for user "{s.user}" and none was given: {given}, and {state}. '
            f"The first of {order} that has one wins.")


def explain_connect_error(exc: BaseException, s: ConnSettings) -> ConnectError:
    """Map a psycopg OperationalError to one sentence. Never includes the password."""
    raw = str(exc)  # classified as libpq wrote it; masked only where it is quoted (a password standing in it)
    low = raw.lower()
    where = _where(s)
    user, db = s.user, s.dbname
    if "password authentication failed" in low:
        return ConnectError(f'Authentication failed: the server at {where} rejected the password for user '
                            f'"{user}". {s.password_origin_words()}.', "auth")
    if "no password supplied" in low or "fe_sendauth" in low:
        return ConnectError(_no_password(s, where), "auth")
    m = re.search(r'definition of service "([^"]*)" not found', raw)
    if m:
        return ConnectError(_unknown_service(m.group(1)), "service")
    m = re.search(r'service file "([^"]*)" not found', raw)
    if m:
        return ConnectError(f"The service file {m.group(1)} (PGSERVICEFILE) does not exist; point PGSERVICEFILE at "
                            "your pg_service.conf or unset it.", "service")
    if "does not support ssl" in low and "required" in low:
        return ConnectError(f"The server at {where} does not support SSL; {_sslmode_fix(s)} or enable SSL on the "
                            "server.", "ssl")
    m = re.search(r'database "([^"]+)" does not exist', raw)
    if m:
        return ConnectError(f'Database "{m.group(1)}" does not exist on {where}; create it first '
                            f'(createdb -h {s.host} -p {s.port} -U {user} {m.group(1)}), or run aami-tui init '
                            f"--dbname {m.group(1)}: it creates the database, applies the migration and verifies "
                            "it.", "no_database")
    m = re.search(r'role "([^"]+)" does not exist', raw)
    if m:
        return ConnectError(f'User "{m.group(1)}" does not exist on the server at {where}.', "no_role")
    if "timeout expired" in low:
        return ConnectError(f"No answer from {where} within {s.connect_timeout} s (connect_timeout): the host "
                            "is unreachable or a firewall drops the connection.", "timeout")
    if "connection refused" in low:
        return ConnectError(f"Cannot reach PostgreSQL at {where}: connection refused (is the server running "
                            "and listening on that address and port?).", "refused")
    if "could not translate host name" in low or "name or service not known" in low:
        return ConnectError(f'Unknown host "{s.host}": its name does not resolve.', "dns")
    if "no such file or directory" in low and ("socket" in low or ".s.pgsql" in low):
        hint = ""
        if s.source.startswith("libpq defaults"):  # nothing was configured: say how, and where to try it
            hint = (" No connection was configured: give --dsn or the DB_* variables (DB_HOST, DB_PORT, DB_USER, "
                    "DB_PASSWORD, DB_NAME), or try it on a throwaway server with `aami-tui demo` or --embedded.")
        return ConnectError(f"No PostgreSQL server is listening on {where} (no socket file there).{hint}",
                            "refused")
    if "no pg_hba.conf entry" in low:
        return ConnectError(f'The server at {where} does not allow user "{user}" to connect to database '
                            f'"{db}" from this host (no pg_hba.conf entry).', "hba")
    if "ssl" in low and ("not support" in low or "required" in low):
        return ConnectError(f"SSL negotiation with {where} failed: {Mask.of(s)(raw.splitlines()[-1].strip())}",
                            "ssl")
    if "too many connections" in low or "remaining connection slots" in low:
        return ConnectError(f"The server at {where} has no free connection slots (too many connections).",
                            "busy")
    if "the database system is starting up" in low or "shutting down" in low:
        return ConnectError(f"The server at {where} is starting up or shutting down; try again in a moment.",
                            "starting")
    if "server closed the connection unexpectedly" in low:
        return ConnectError(f"Cannot connect to {where}: the server closed the connection unexpectedly, before "
                            "answering (something that is not PostgreSQL, a proxy or a firewall may be on that "
                            "address and port, or the server is restarting or stopped: see its log).", "closed")
    # libpq's reason is on the first line; the lines after it ("This probably means…") only elaborate.
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    detail = lines[0] if lines else type(exc).__name__
    detail = re.sub(r"^(connection failed: )?(connection to server .*? failed: )?", "", detail) or detail
    return ConnectError(f"Cannot connect to {where}: {Mask.of(s)(detail)}", "other")


async def connect(s: ConnSettings, *, autocommit: bool = True, dbname: str | None = None
                  ) -> psycopg.AsyncConnection:
    """Open an AsyncConnection; raise ConnectError with a clear sentence on failure."""
    import psycopg

    target = s.with_dbname(dbname) if dbname else s
    try:
        return await psycopg.AsyncConnection.connect(target.conninfo(), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise explain_connect_error(exc, target) from None


async def _on_maintenance_db(s: ConnSettings, *templates: str) -> None:
    """Run statements about s.dbname (its name quoted as an identifier) from the maintenance database."""
    from psycopg import sql as psql

    conn = await connect(s, dbname="postgres")
    try:
        for template in templates:
            await conn.execute(psql.SQL(template).format(psql.Identifier(s.dbname)))
    finally:
        await conn.close()


async def create_database(s: ConnSettings) -> None:
    """CREATE DATABASE <dbname> (the guide's new-developer step 1)."""
    await _on_maintenance_db(s, "CREATE DATABASE {}")


async def drop_and_recreate(s: ConnSettings) -> None:
    """The guide's 'reset the database for testing': drop, recreate, empty."""
    await _on_maintenance_db(s, "DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}")
