"""One connection-settings resolver used by every command.

Order: ``--dsn`` wins; else the Config Server's own DB_* variables; else libpq's own
(PG* variables, service files, ~/.pgpass) with the database defaulting to ``aami_config``.
Always sets ``application_name=aami-tui`` and a ``connect_timeout``.
The password is kept out of every repr, display string and message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from psycopg import conninfo as _ci

APPLICATION_NAME = "aami-tui"
DEFAULT_DBNAME = "aami_config"
DEFAULT_CONNECT_TIMEOUT = 5
DB_VARS = ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SSLMODE")

# The Config Server's defaults for its DB_* variables (schema-facts.md). The password is
# deliberately not defaulted: an unset DB_PASSWORD falls back to PGPASSWORD / ~/.pgpass.
SERVER_DEFAULTS = {"host": "localhost", "port": "5432", "user": "postgres",
                   "dbname": DEFAULT_DBNAME, "sslmode": "disable"}


class SettingsError(ValueError):
    """A connection setting that cannot be used (bad DSN, bad port...)."""


@dataclass(frozen=True)
class ConnSettings:
    """Resolved connection parameters. ``params`` may hold a password: never print it."""

    params: Mapping[str, str]
    source: str  # "--dsn", "DB_* variables", "libpq defaults", "embedded"
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    extra: Mapping[str, str] = field(default_factory=dict)

    def conninfo(self, **override: str) -> str:
        """The libpq conninfo string to connect with (contains the password: never show it)."""
        p = dict(self.params)
        p.setdefault("application_name", APPLICATION_NAME)
        p["connect_timeout"] = str(self.connect_timeout)
        p.update({k: v for k, v in override.items() if v is not None})
        return _ci.make_conninfo("", **p)

    def with_dbname(self, dbname: str) -> ConnSettings:
        p = dict(self.params)
        p["dbname"] = dbname
        return ConnSettings(p, self.source, self.connect_timeout, self.extra)

    @property
    def password(self) -> str | None:
        """The password given explicitly (DSN or DB_PASSWORD), for child processes' environment."""
        return self.params.get("password")

    def effective(self) -> dict[str, str]:
        """Parameters as libpq will use them (explicit ones over PG* / compiled defaults), no password."""
        eff: dict[str, str] = {}
        try:
            from psycopg import pq

            for opt in pq.Conninfo.get_defaults():
                if opt.val is not None:
                    eff[opt.keyword.decode()] = opt.val.decode()
        except Exception:  # pragma: no cover - libpq always answers
            pass
        eff.update({k: v for k, v in self.params.items() if v})
        eff.pop("password", None)
        if "dbname" not in eff or not eff["dbname"]:
            eff["dbname"] = eff.get("user", "")
        if not eff.get("host") and not eff.get("hostaddr"):
            eff["host"] = "/var/run/postgresql"
        eff.setdefault("port", "5432")
        return eff

    @property
    def dbname(self) -> str:
        return self.effective().get("dbname", DEFAULT_DBNAME)

    @property
    def host(self) -> str:
        return self.effective().get("host", "localhost")

    @property
    def port(self) -> str:
        return self.effective().get("port", "5432")

    @property
    def user(self) -> str:
        return self.effective().get("user", "")

    def display(self) -> str:
        """A one-line description safe to show: user@host:port/dbname (source)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname} (from {self.source})"

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump/pg_restore/psql: connection in PG* variables, password only there."""
        env = dict(os.environ if base is None else base)
        for k in list(env):
            if k.startswith("DB_"):
                env.pop(k)
        mapping = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER",
                   "dbname": "PGDATABASE", "password": "PGPASSWORD", "sslmode": "PGSSLMODE",
                   "passfile": "PGPASSFILE", "service": "PGSERVICE", "sslrootcert": "PGSSLROOTCERT",
                   "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "options": "PGOPTIONS"}
        for k, v in self.params.items():
            if k in mapping and v is not None:
                env[mapping[k]] = str(v)
        env["PGAPPNAME"] = APPLICATION_NAME
        env["PGCONNECT_TIMEOUT"] = str(self.connect_timeout)
        return env

    def __repr__(self) -> str:  # never leak the password through repr()/logging
        shown = {k: ("********" if k == "password" else v) for k, v in self.params.items()}
        return f"ConnSettings({shown!r}, source={self.source!r})"

    __str__ = __repr__


def resolve(dsn: str | None = None, env: Mapping[str, str] | None = None,
            connect_timeout: int | None = None, dbname: str | None = None) -> ConnSettings:
    """Resolve connection settings: --dsn, else DB_*, else libpq's own."""
    env = os.environ if env is None else env
    timeout = connect_timeout if connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    if timeout <= 0:
        raise SettingsError("connect_timeout must be a positive number of seconds")
    timeout = max(timeout, 2)  # libpq waits at least 2 s whatever it is told; say what really happens
    if dsn:
        try:
            params = _ci.conninfo_to_dict(dsn)
        except Exception as exc:  # psycopg.ProgrammingError
            msg = str(exc).splitlines()[0] if str(exc) else "unparseable"
            raise SettingsError(f"The --dsn value is not a valid libpq connection string or URI: {msg}") from None
        params = {k: str(v) for k, v in params.items() if v is not None}
        source = "--dsn"
        if "connect_timeout" in params and connect_timeout is None:
            try:
                timeout = int(params.pop("connect_timeout"))
            except ValueError:
                raise SettingsError("connect_timeout in --dsn must be a whole number of seconds") from None
        else:
            params.pop("connect_timeout", None)
        if "dbname" not in params and not env.get("PGDATABASE") and not params.get("service"):
            params["dbname"] = DEFAULT_DBNAME
    elif any(env.get(v) for v in DB_VARS):
        params = {
            "host": env.get("DB_HOST") or SERVER_DEFAULTS["host"],
            "port": env.get("DB_PORT") or SERVER_DEFAULTS["port"],
            "user": env.get("DB_USER") or SERVER_DEFAULTS["user"],
            "dbname": env.get("DB_NAME") or SERVER_DEFAULTS["dbname"],
            "sslmode": env.get("DB_SSLMODE") or SERVER_DEFAULTS["sslmode"],
        }
        if env.get("DB_PASSWORD"):
            params["password"] = env["DB_PASSWORD"]
        source = "DB_* variables"
    else:
        params = {}
        if not env.get("PGDATABASE") and not env.get("PGSERVICE"):
            params["dbname"] = DEFAULT_DBNAME
        source = "libpq defaults (PG* variables, ~/.pgpass)"
    if dbname:
        params["dbname"] = dbname
    port = params.get("port")
    if port and not all(p.strip().isdigit() for p in str(port).split(",")):
        raise SettingsError(f"The port {port!r} is not a number")
    return ConnSettings(params, source, timeout)
