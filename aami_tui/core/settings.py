"""One connection-settings resolver used by every command.

Order: ``--dsn`` wins; else the Config Server's own DB_* variables; else libpq's own
(PG* variables, service files, ~/.pgpass) with the database defaulting to ``aami_config``.
Always sets ``application_name=aami-tui`` and a ``connect_timeout``.
The password is kept out of every repr, display string and message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# psycopg (~70 ms to import) is imported where libpq is needed, not with this module: the console's first frame
# shows settings resolved without it (README, Performance).

APPLICATION_NAME = "aami-tui"
DEFAULT_DBNAME = "aami_config"
DEFAULT_CONNECT_TIMEOUT = 5
# TCP keepalives on every connection (ignored by libpq for Unix sockets); explicit values in --dsn win.
# tcp_user_timeout: data left unacknowledged this long (ms) drops the connection.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
              "tcp_user_timeout": "30000"}
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
    # effective() as computed by the console's early child (core/early.py), which has libpq loaded already
    known_effective: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def conninfo(self, **override: str) -> str:
        """The libpq conninfo string to connect with (contains the password: never show it)."""
        p = dict(self.params)
        p.setdefault("application_name", APPLICATION_NAME)
        p["connect_timeout"] = str(self.connect_timeout)
        for k, v in KEEPALIVES.items():  # a dead peer is noticed by the kernel, not only by our deadlines
            p.setdefault(k, v)
        p.update({k: v for k, v in override.items() if v is not None})
        from psycopg import conninfo as _ci

        return _ci.make_conninfo("", **p)

    def with_dbname(self, dbname: str) -> ConnSettings:
        p = dict(self.params)
        p["dbname"] = dbname
        return ConnSettings(p, self.source, self.connect_timeout, self.extra)

    def password_origin(self, env: Mapping[str, str] | None = None) -> str:
        """Where libpq takes the password from, so a fix names the right place: "--dsn", "DB_PASSWORD",
        "PGPASSWORD", or "~/.pgpass" (the password file, PGPASSFILE if set). The first ones win over the file."""
        env = os.environ if env is None else env
        if self.params.get("password"):
            return ("--dsn" if self.source == "--dsn" else "DB_PASSWORD" if self.source.startswith("DB_")
                    else f"the {self.source} settings")
        if env.get("PGPASSWORD"):
            return "PGPASSWORD"
        return f"{env['PGPASSFILE']} (PGPASSFILE)" if env.get("PGPASSFILE") else "~/.pgpass"

    def password_origin_words(self, env: Mapping[str, str] | None = None) -> str:
        """Where a refused password came from, the same words in the console and headless: "The password comes
        from DB_PASSWORD, which wins over ~/.pgpass", or "The password comes from ~/.pgpass" (no period: the console
        goes on with what to do there)."""
        path, named = self.password_file(env)
        if self.password_from_file(env):
            return f"The password comes from {named}"
        return f"The password comes from {self.password_origin(env)}, which wins over {named}"

    def password_from_file(self, env: Mapping[str, str] | None = None) -> bool:
        """Whether libpq takes the password from the password file (re-read at each try: a fix there and F5 help),
        not from the settings or PGPASSWORD (fixed for the process's life)."""
        env = os.environ if env is None else env
        return not self.params.get("password") and not env.get("PGPASSWORD")

    def password_file(self, env: Mapping[str, str] | None = None) -> tuple[os.PathLike, str]:
        """The password file libpq reads (passfile in --dsn, else PGPASSFILE, else ~/.pgpass), and its name in
        words for a person."""
        from pathlib import Path

        env = os.environ if env is None else env
        if self.params.get("passfile"):
            return Path(self.params["passfile"]).expanduser(), f"{self.params['passfile']} (passfile in --dsn)"
        if env.get("PGPASSFILE"):
            return Path(env["PGPASSFILE"]).expanduser(), f"{env['PGPASSFILE']} (PGPASSFILE)"
        return Path("~/.pgpass").expanduser(), "~/.pgpass"

    @property
    def password(self) -> str | None:
        """The password given explicitly (DSN or DB_PASSWORD), for child processes' environment."""
        return self.params.get("password")

    def effective(self) -> dict[str, str]:
        """Parameters as libpq will use them (explicit ones over PG* / compiled defaults), no password."""
        if self.known_effective is not None:
            return dict(self.known_effective)
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


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_URI_PREFIXES = ("postgresql://", "postgres://")
_NOT_SHOWN = " (the text itself is not shown: it may hold a password)"


def _keywords() -> list[str]:
    try:
        from psycopg import pq

        return [o.keyword.decode() for o in pq.Conninfo.get_defaults()]
    except Exception:  # pragma: no cover - libpq always answers
        return ["host", "hostaddr", "port", "user", "password", "dbname", "sslmode", "options"]


def _did_you_mean(text: str) -> str:
    """For a parameter name libpq does not know: ``'passwrd' (did you mean password?)`` when it is a typo of a
    real one, which also proves it is a name and not a secret; otherwise nothing is quoted."""
    import difflib

    close = difflib.get_close_matches(text.lower(), _keywords(), n=1, cutoff=0.75)
    return f" {text!r} (did you mean {close[0]}?)" if close else ""


def _unknown_names(dsn: str) -> list[str]:
    known = set(_keywords())
    if dsn.startswith(_URI_PREFIXES):
        query = dsn.partition("?")[2]
        names = [kv.partition("=")[0] for kv in query.split("&")]
    else:
        names = re.findall(r"(?:^|\s)([A-Za-z_]+)\s*=", dsn)
    return [n for n in names if n and n not in known]


def _bad_percent_part(dsn: str, bad: re.Pattern = _BAD_PERCENT) -> str:
    """Which part of a URI holds a % not followed by two hex digits (the part's name, never its text)."""
    rest = dsn.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    netloc, _, dbname = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    for name, text in (("password", password), ("user name", user), ("host", hosts),
                       ("database name", dbname)):
        if bad.search(text):
            return f"the {name}"
    for kv in query.split("&"):
        key, _, value = kv.partition("=")
        if bad.search(value):
            return f"the value of the {key} parameter" if key in _keywords() else "a parameter's value"
        if bad.search(key):
            return "a parameter's name"
    return "it"


def explain_dsn_error(dsn: str, message: str) -> str:
    """libpq's parse error as a sentence that quotes nothing from the DSN but what is provably not a secret.

    libpq's own messages quote the offending token ("invalid percent-encoded token: \"Pa%ss\""), which is
    the password more often than not, so they are never passed on.
    """
    low = message.lower()
    if "%00" in low:
        return (f"{_bad_percent_part(dsn, re.compile('%00'))} holds %00 (a zero byte), which libpq forbids"
                + _NOT_SHOWN + ".")
    if "percent-encoded" in low:
        return (f"a % sign in {_bad_percent_part(dsn)} is not followed by two hexadecimal digits; in a URI a "
                "literal % is written %25" + _NOT_SHOWN + ".")
    if "ipv6" in low:
        return "an IPv6 host address in the URI has no closing ] (write it as [::1])."
    if "invalid uri query parameter" in low or "invalid connection option" in low:
        names = _unknown_names(dsn)
        hint = _did_you_mean(names[0]) if names else ""
        where = " after the ? of the URI" if dsn.startswith(_URI_PREFIXES) else ""
        return f"a parameter{where} is not a libpq connection option{':' + hint if hint else ''}."
    if "missing key/value separator" in low:
        return "a parameter after the ? of the URI has no = (write name=value, joined with &)" + _NOT_SHOWN + "."
    if "extra key/value separator" in low:
        return ("a parameter after the ? of the URI has more than one = (write an = inside a value as %3D)"
                + _NOT_SHOWN + ".")
    if "unterminated quoted string" in low:
        return "a value opens a quote (') and never closes it" + _NOT_SHOWN + "."
    if 'missing "="' in low:
        if dsn.startswith(("postgresql:", "postgres:")) or "@" in dsn:
            return ("it looks like a URI but does not start with postgresql:// (or postgres://)" + _NOT_SHOWN
                    + ".")
        return ("a word has no = after it: write key=value pairs separated by spaces, and put a value that holds "
                "spaces or quotes in single quotes ('like this', \\' for a quote)" + _NOT_SHOWN + ".")
    return "libpq cannot parse it" + _NOT_SHOWN + "."


def _check_uri_split(dsn: str, params: dict[str, str]) -> None:
    """A URI whose password holds an unencoded @ / or # parses "fine" into a host or port made of pieces of the
    password, which a later error would then print. Refuse it here, quoting nothing."""
    if not dsn.startswith(_URI_PREFIXES):
        return
    path = dsn.split("://", 1)[1].partition("?")[0].partition("/")[2]  # the database name, as libpq splits it
    if "@" in path:  # `u:p@ss/word@host/db`: libpq reads password p, host ss, database word@host/db
        raise SettingsError("The --dsn value is not a valid libpq connection string or URI: an @ follows the "
                            "first / after postgresql://, so libpq would read a host and a database name out of "
                            "what is probably the password. If the password (or the user name) holds @ / : ? or "
                            "#, write them %40 %2F %3A %3F %23 (an @ in a database name: %40)" + _NOT_SHOWN + ".")
    port = params.get("port", "")
    bad_port = port and not all(p.strip().isdigit() for p in port.split(","))
    if "@" in params.get("host", "") or bad_port:
        what = "the host holds an @" if "@" in params.get("host", "") else "the port is not a number"
        raise SettingsError("The --dsn value is not a valid libpq connection string or URI: "
                            f"{what}. If the password holds @ / : ? or #, write them %40 %2F %3A %3F %23"
                            + _NOT_SHOWN + ".")


def resolve(dsn: str | None = None, env: Mapping[str, str] | None = None,
            connect_timeout: int | None = None, dbname: str | None = None) -> ConnSettings:
    """Resolve connection settings: --dsn, else DB_*, else libpq's own."""
    env = os.environ if env is None else env
    timeout = connect_timeout if connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    if timeout <= 0:
        raise SettingsError("connect_timeout must be a positive number of seconds")
    timeout = max(timeout, 2)  # libpq waits at least 2 s whatever it is told; say what really happens
    if dsn:
        from psycopg import conninfo as _ci

        try:
            params = _ci.conninfo_to_dict(dsn)
        except Exception as exc:  # psycopg.ProgrammingError
            raise SettingsError("The --dsn value is not a valid libpq connection string or URI: "
                                + explain_dsn_error(dsn, str(exc))) from None
        params = {k: str(v) for k, v in params.items() if v is not None}
        _check_uri_split(dsn, params)
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
    _check_values(params, source, env)
    return ConnSettings(params, source, timeout)


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _check_values(params: dict[str, str], source: str, env: Mapping[str, str]) -> None:
    """A port or sslmode libpq would refuse only when connecting ("connection is bad: invalid port number", exit 2)
    is the user's setting to fix: one sentence here (exit 64), naming where it was set."""
    def where(name: str, var: str) -> str:
        if name in params:
            return "in --dsn" if source == "--dsn" else f"({var})" if source.startswith("DB_") else f"({source})"
        return f"({'PGPORT' if name == 'port' else 'PGSSLMODE'})"

    port = params.get("port") or env.get("PGPORT")
    if port:
        parts = [p.strip() for p in str(port).split(",")]
        if not all(p.isdigit() for p in parts):
            raise SettingsError(f"The port {port!r} {where('port', 'DB_PORT')} is not a number")
        if not all(1 <= int(p) <= 65535 for p in parts):
            raise SettingsError(f"The port {port!r} {where('port', 'DB_PORT')} is not a port number (1-65535)")
    mode = params.get("sslmode") or env.get("PGSSLMODE")
    if mode and mode not in SSLMODES:
        raise SettingsError(f"The sslmode {mode!r} {where('sslmode', 'DB_SSLMODE')} is not one of "
                            f"{', '.join(SSLMODES)}")
