"""The Config Server's start-up validation, done the way a DBA wants it: one round trip.

The list of required tables is defined here, once. The cost does not grow with the catalog: the server counts
the other tables of public and sends at most ``EXTRA_LIMIT`` of their names. The validation never waits
without limit for another session's lock: presence and columns come from the catalog (no table locks), the
size of a table that another session holds in ACCESS EXCLUSIVE mode is skipped and the holder named, and the
query runs under its own ``lock_timeout`` and ``statement_timeout``.

Imports stay light (no psycopg at import time): ``aami-tui check`` loads only what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from aami_tui.core.queries import sql

REQUIRED_TABLES: tuple[str, ...] = (
    "namespaces",
    "groups",
    "targets",
    "target_groups",
    "exporters",
    "alert_templates",
    "alert_rules",
    "check_templates",
    "check_instances",
    "bootstrap_tokens",
)

# The server's exact log lines (schema-facts.md), without the log timestamp prefix.
MSG_VALIDATING = "Validating database schema..."
MSG_OK = "✓ Database schema validation successful - all required tables exist"
MSG_PLEASE_RUN = "Please run database migrations before starting the server:"


def msg_missing(missing: list[str] | tuple[str, ...]) -> str:
    """The server's ERROR line; Go prints a []string as [a b c]."""
    return f"ERROR: Missing required database tables: [{' '.join(missing)}]"


def psql_hint(host: str, user: str, dbname: str, port: str | int | None = None,
              path: str = "migrations/001_initial_schema.sql") -> str:
    """The server's hint line; names a shell would split or expand are quoted (`-d 'aami config-Prod'`)."""
    from shlex import quote

    port_part = f" -p {quote(str(port))}" if port and str(port) != "5432" else ""
    return f"  psql -h {quote(host)}{port_part} -U {quote(user)} -d {quote(dbname)} -f {quote(path)}"


EXTRA_LIMIT = 20  # names of other tables in public sent by the server (their count is always exact)
LOCK_TIMEOUT_MS = 2000  # the validation's own bounds (outside a caller's transaction)
STATEMENT_TIMEOUT_MS = 10000


class ValidationTimeout(Exception):
    """The validation could not finish within its own timeouts; the message is one sentence (naming the
    sessions in the way, when they could be found)."""


@dataclass(frozen=True)
class LockHolder:
    """A session holding (or waiting for) an ACCESS EXCLUSIVE lock on a table."""

    pid: int
    user: str | None
    application: str | None
    state: str | None
    query_start: datetime | None
    query: str | None
    granted: bool = True
    client: str | None = None  # host(client_addr); None: a Unix socket (client_port -1), or not visible
    client_port: int | None = None

    @classmethod
    def from_json(cls, d: dict) -> LockHolder:
        start = d.get("query_start")
        if isinstance(start, str):
            try:
                start = datetime.fromisoformat(start)
            except ValueError:
                start = None
        return cls(int(d["pid"]), d.get("user"), d.get("application"), d.get("state"), start, d.get("query"),
                   bool(d.get("granted", True)), d.get("client"), d.get("client_port"))

    def describe(self) -> str:
        from aami_tui.core import locks

        since = self.query_start.astimezone().strftime("%H:%M:%S") if self.query_start else "?"
        q = " ".join((self.query or "").split()).rstrip("; ")  # a sentence goes on after it: no "MODE;."
        q = q[:80] + "…" if len(q) > 80 else q
        return (f"pid {self.pid}, user {self.user or '?'}, application '{self.application or '-'}', "
                f"{locks.client_words(self.client, self.client_port)}, {self.state or 'state unknown'}, "
                f"query started {since}: {q or '(no query)'}")

    def to_dict(self) -> dict:
        return {"pid": self.pid, "user": self.user, "application": self.application, "state": self.state,
                "query_start": self.query_start.isoformat() if self.query_start else None, "query": self.query,
                "granted": self.granted, "client": self.client, "client_port": self.client_port}


@dataclass(frozen=True)
class TableState:
    name: str
    required: bool
    present: bool
    est_rows: int | None = None
    size_bytes: int | None = None
    columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    unexpected_columns: tuple[str, ...] = ()
    locked_by: tuple[LockHolder, ...] = ()  # other sessions holding or awaiting ACCESS EXCLUSIVE on it

    @property
    def locked(self) -> bool:
        return bool(self.locked_by)

    def lock_sentence(self) -> str:
        """One sentence naming who holds (or waits for) an exclusive lock on this table, or ''."""
        if not self.locked_by:
            return ""
        held = [h for h in self.locked_by if h.granted]
        waiting = [h for h in self.locked_by if not h.granted]
        parts = []
        if held:
            parts.append("held by " + "; ".join(h.describe() for h in held))
        if waiting:
            parts.append("requested (queued) by " + "; ".join(h.describe() for h in waiting))
        pids = ", ".join(str(h.pid) for h in self.locked_by)
        return (f"Table {self.name} is locked in ACCESS EXCLUSIVE mode by another session ({' and '.join(parts)}). "
                "Anything that reads it (pg_dump, the runbook, the Config Server's queries) waits until that "
                f"transaction ends; to end it: SELECT pg_terminate_backend(pid) for pid {pids}.")

    @property
    def drifted(self) -> bool:
        return self.present and bool(self.missing_columns or self.unexpected_columns)

    @property
    def status(self) -> str:
        if not self.present:
            return "missing"
        return "drifted" if self.drifted else "present"


@dataclass(frozen=True)
class ValidationResult:
    tables: tuple[TableState, ...]  # required first (in order), then at most EXTRA_LIMIT extras (by name)
    extra: tuple[str, ...] = field(default=())  # the extras' names (capped like ``tables``)
    extra_count: int = 0  # every other base table in public, counted by the server

    @property
    def extra_truncated(self) -> bool:
        return self.extra_count > len(self.extra)

    @property
    def locked(self) -> tuple[TableState, ...]:
        """Required tables that another session holds (or awaits) in ACCESS EXCLUSIVE mode."""
        return tuple(t for t in self.required if t.locked)

    def extra_summary(self) -> str:
        """``a, b, c`` or ``a, b, … (10,000 in all)``."""
        names = ", ".join(self.extra)
        if self.extra_truncated:
            names += f", … ({self.extra_count:,} in all)"
        return names

    @property
    def required(self) -> tuple[TableState, ...]:
        return tuple(t for t in self.tables if t.required)

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.required if t.present)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.required if not t.present)

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.required if t.drifted)

    @property
    def ok(self) -> bool:
        """What the server decides: every required table exists."""
        return not self.missing

    @property
    def public_table_count(self) -> int:
        return len(self.present) + self.extra_count

    def summary(self) -> str:
        return f"{len(self.present)} / {len(REQUIRED_TABLES)} present"

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "required": list(REQUIRED_TABLES),
            "present": list(self.present),
            "missing": list(self.missing),
            "extra": list(self.extra),
            "extra_count": self.extra_count,
            "drifted": {t.name: {"missing_columns": list(t.missing_columns),
                                 "unexpected_columns": list(t.unexpected_columns)}
                        for t in self.required if t.drifted},
            "public_table_count": self.public_table_count,
            "locked": {t.name: [h.to_dict() for h in t.locked_by] for t in self.locked},
            "tables": [{"name": t.name, "required": t.required, "status": t.status,
                        "estimated_rows": t.est_rows, "size_bytes": t.size_bytes} for t in self.tables],
        }


async def validate(conn, expected: dict[str, tuple[str, ...]] | None = None, *, sizes: bool = True,
                   extra_limit: int | None = EXTRA_LIMIT) -> ValidationResult:
    """Validate the schema over an open psycopg AsyncConnection, in one query.

    ``expected`` maps table -> columns the migration creates; a present table whose columns differ
    is reported as drifted (a database built by the archived chain has the names, not the columns).
    ``sizes=False`` skips the on-disk sizes (``check`` does not show them). ``extra_limit=None`` returns every
    other table's name (restore needs them all); the count is exact either way.

    Outside a transaction the query runs in its own short transaction with ``lock_timeout`` and
    ``statement_timeout`` (sent in one pipeline: one network round trip). Inside the caller's transaction
    (the migration's) it leaves that transaction's settings alone. Raises ValidationTimeout when it cannot
    finish in time.
    """
    params = {"required": list(REQUIRED_TABLES), "sizes": sizes, "extra_limit": extra_limit}
    if conn.info.transaction_status != 0:  # pq.TransactionStatus.IDLE: the caller's transaction
        rows = await _fetch(conn, params)
    else:
        from psycopg import errors

        try:
            rows = await _bounded(conn, params)
        except errors.LockNotAvailable:
            # A lock taken between our look at pg_locks and the size: answer without sizes (no table locks).
            try:
                rows = await _bounded(conn, {**params, "sizes": False})
            except (errors.LockNotAvailable, errors.QueryCanceled):
                raise ValidationTimeout(await _timeout_sentence(conn)) from None
        except errors.QueryCanceled:
            raise ValidationTimeout(await _timeout_sentence(conn)) from None
    return _result(rows, expected)


async def _fetch(conn, params: dict) -> list[tuple]:
    async with conn.cursor() as cur:
        await cur.execute(sql("validate_schema"), params)
        return await cur.fetchall()


async def _set_timeouts(conn, lock_ms: int, statement_ms: int) -> None:
    # SET, not set_config(): a utility statement needs no catalog lookup, so it cannot itself wait for a lock
    # on the catalog (a function call must look up pg_catalog in pg_namespace first).
    await conn.execute(f"SET LOCAL lock_timeout = {int(lock_ms)}")
    await conn.execute(f"SET LOCAL statement_timeout = {int(statement_ms)}")


def _pipeline(conn):
    """One network round trip for BEGIN, SET, query, COMMIT where libpq supports pipelines (>= 14)."""
    from contextlib import nullcontext

    from psycopg import Pipeline

    return conn.pipeline() if Pipeline.is_supported() else nullcontext()


async def _bounded(conn, params: dict) -> list[tuple]:
    async with _pipeline(conn), conn.transaction():
        await _set_timeouts(conn, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS)
        cur = conn.cursor()
        await cur.execute(sql("validate_schema"), params)
    return await cur.fetchall()


async def _timeout_sentence(conn) -> str:
    """After a timed-out validation: say so, naming the sessions holding exclusive locks here (best effort)."""
    base = (f"The schema validation did not finish within its own limits (lock_timeout {LOCK_TIMEOUT_MS / 1000:g} s, "
            f"statement_timeout {STATEMENT_TIMEOUT_MS / 1000:g} s)")
    try:
        async with _pipeline(conn), conn.transaction():
            await _set_timeouts(conn, 1000, 3000)
            cur = conn.cursor()
            await cur.execute(sql("exclusive_lock_holders"))
        holders = [LockHolder.from_json(h) for (h,) in await cur.fetchall()]
    except Exception:  # the sentence must come out whatever happens here
        return (f"{base}, and the session in the way could not be identified either (it probably holds a lock "
                "on a system catalog; look in pg_locks for a granted AccessExclusiveLock).")
    if holders:
        return f"{base}: sessions holding exclusive locks in this database: " + "; ".join(
            h.describe() for h in holders) + "."
    return f"{base}; no session holding an exclusive lock was found (the server may be overloaded)."


def _result(rows: list[tuple], expected: dict[str, tuple[str, ...]] | None) -> ValidationResult:
    tables = []
    extra_count = 0
    for name, required, present, est_rows, size_bytes, columns, locked_by, n_extra in rows:
        extra_count = int(n_extra or 0)
        cols = tuple(columns or ())
        miss: tuple[str, ...] = ()
        unexp: tuple[str, ...] = ()
        if present and expected and name in expected:
            want = expected[name]
            miss = tuple(c for c in want if c not in cols)
            unexp = tuple(c for c in cols if c not in want)
        if isinstance(locked_by, str):  # psycopg hands jsonb over parsed; json is loaded only if it did not
            import json

            locked_by = json.loads(locked_by)
        holders = tuple(LockHolder.from_json(h) for h in (locked_by or ()))
        tables.append(TableState(name, bool(required), bool(present), est_rows, size_bytes, cols, miss, unexp,
                                 holders))
    extra = tuple(t.name for t in tables if not t.required)
    return ValidationResult(tuple(tables), extra, extra_count)


def server_lines(result: ValidationResult, host: str, user: str, dbname: str, port=None) -> list[str]:
    """The lines the Config Server logs for this result."""
    lines = [MSG_VALIDATING]
    if result.ok:
        lines.append(MSG_OK)
    else:
        lines += [msg_missing(result.missing), MSG_PLEASE_RUN, psql_hint(host, user, dbname, port)]
    return lines
