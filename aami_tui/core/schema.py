"""The Config Server's start-up validation, done the way a DBA wants it: one round trip.

The list of required tables is defined here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    tables: tuple[TableState, ...]  # required first (in order), then extras
    extra: tuple[str, ...] = field(default=())

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
        return sum(1 for t in self.tables if t.present)

    def summary(self) -> str:
        return f"{len(self.present)} / {len(REQUIRED_TABLES)} present"

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "required": list(REQUIRED_TABLES),
            "present": list(self.present),
            "missing": list(self.missing),
            "extra": list(self.extra),
            "drifted": {t.name: {"missing_columns": list(t.missing_columns),
                                 "unexpected_columns": list(t.unexpected_columns)}
                        for t in self.required if t.drifted},
            "public_table_count": self.public_table_count,
            "tables": [{"name": t.name, "required": t.required, "status": t.status,
                        "estimated_rows": t.est_rows, "size_bytes": t.size_bytes} for t in self.tables],
        }


async def validate(conn, expected: dict[str, tuple[str, ...]] | None = None) -> ValidationResult:
    """Validate the schema over an open psycopg AsyncConnection, in one query.

    ``expected`` maps table -> columns the migration creates; a present table whose columns differ
    is reported as drifted (a database built by the archived chain has the names, not the columns).
    """
    async with conn.cursor() as cur:
        await cur.execute(sql("validate_schema"), {"required": list(REQUIRED_TABLES)})
        rows = await cur.fetchall()
    tables = []
    for name, required, present, est_rows, size_bytes, columns in rows:
        cols = tuple(columns or ())
        miss: tuple[str, ...] = ()
        unexp: tuple[str, ...] = ()
        if present and expected and name in expected:
            want = expected[name]
            miss = tuple(c for c in want if c not in cols)
            unexp = tuple(c for c in cols if c not in want)
        tables.append(TableState(name, bool(required), bool(present), est_rows, size_bytes, cols, miss, unexp))
    extra = tuple(t.name for t in tables if not t.required)
    return ValidationResult(tuple(tables), extra)


def server_lines(result: ValidationResult, host: str, user: str, dbname: str, port=None) -> list[str]:
    """The lines the Config Server logs for this result."""
    lines = [MSG_VALIDATING]
    if result.ok:
        lines.append(MSG_OK)
    else:
        lines += [msg_missing(result.missing), MSG_PLEASE_RUN, psql_hint(host, user, dbname, port)]
    return lines
