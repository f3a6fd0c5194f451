"""What the dashboard shows about the server, gathered in one round trip (plus tools, once)."""

from __future__ import annotations

from dataclasses import dataclass

from aami_tui.core.queries import sql


@dataclass(frozen=True)
class ServerStatus:
    server_version: str
    server_major: int
    dbname: str
    user: str
    host: str
    port: str
    in_recovery: bool
    can_create_in_db: bool
    can_create_in_public: bool
    is_superuser: bool
    db_size_bytes: int
    backend_pid: int
    max_locks_per_transaction: int
    read_only_source: str | None = None  # pg_settings.source of default_transaction_read_only = on, else None

    @property
    def where(self) -> str:
        if self.host.startswith("/"):
            return f"socket {self.host} (port {self.port})"
        return f"{self.host}:{self.port}"


async def server_status(conn) -> ServerStatus:
    cur = await conn.execute(sql("server_info"))
    row = await cur.fetchone()
    info = dict(zip([d.name for d in cur.description], row, strict=True))
    return ServerStatus(
        server_version=info["server_version"], server_major=info["server_version_num"] // 10000,
        dbname=info["dbname"], user=info["user"], host=conn.info.host, port=str(conn.info.port),
        in_recovery=bool(info["in_recovery"]), can_create_in_db=bool(info["can_create_in_db"]),
        can_create_in_public=bool(info["can_create_in_public"]), is_superuser=bool(info["is_superuser"]),
        db_size_bytes=int(info["db_size_bytes"] or 0), backend_pid=int(info["backend_pid"]),
        max_locks_per_transaction=int(info["max_locks_per_transaction"]), read_only_source=info["read_only_source"])


def read_only_words(source: str | None, dbname: str, user: str) -> str:
    """Why this session's transactions are read-only by default, and the fix, from pg_settings.source of
    default_transaction_read_only (a database frozen with ALTER DATABASE … SET, a read-only role...)."""
    from psycopg import sql as q

    db, role = q.Identifier(dbname).as_string(), q.Identifier(user).as_string()
    where, fix = {
        "database": ("on the database", f"ALTER DATABASE {db} RESET default_transaction_read_only;"),
        "user": (f"on the role {user}", f"ALTER ROLE {role} RESET default_transaction_read_only;"),
        "database user": (f"on the role {user} in this database",
                          f"ALTER ROLE {role} IN DATABASE {db} RESET default_transaction_read_only;"),
        "configuration file": ("in the server's configuration file",
                               "set it off there (or ALTER DATABASE … SET default_transaction_read_only = off) "
                               "and reload"),
        "client": ("by the connection (PGOPTIONS or the options parameter)", "remove it from the connection"),
    }.get(source or "", (f"by {source or 'the server'}", "ask an administrator to allow writes"))
    return (f"default_transaction_read_only = on, set {where}: the migration cannot write; if the database was "
            f"frozen on purpose, lift it for the window, as an administrator: {fix}")


def config_server_env(status: ServerStatus | dict) -> list[str]:
    """The environment lines the Config Server needs (never the password), values shell-quoted. Takes a ServerStatus or its
    ``vars()`` (the runbook keeps the latter for its report)."""
    from shlex import quote  # shell assignments: `source` and copy-paste keep a name with spaces whole

    st = status if isinstance(status, dict) else vars(status)
    return [f"DB_HOST={quote(str(st['host']))}", f"DB_PORT={quote(str(st['port']))}",
            f"DB_USER={quote(str(st['user']))}", f"DB_NAME={quote(str(st['dbname']))}"]
