"""Inspect inside the open migration transaction: the guide's ``\\dt`` before deciding to COMMIT, and more.

Each query runs under a SAVEPOINT of the migration transaction, so an error rolls back to the savepoint and
never aborts the migration. Read-only by default, decided by pglast (PostgreSQL's own parser): SELECT (without
FOR UPDATE/SHARE or INTO), SHOW, EXPLAIN without ANALYZE, and the meta commands ``\\dt``, ``\\d TABLE``,
``\\di``, ``\\dx``. A read-only query is always rolled back to its savepoint after its rows are read, so even a
function with side effects called from a SELECT changes nothing transactional. What a savepoint cannot undo
is refused by name (pglast finds every function call): lock and session killers always (the run's advisory
lock, pg_terminate_backend…), other side-effecting or admin functions (set_config, nextval, pg_notify, lo_*,
dblink…) while read-only. The engine also checks after each query that the run still holds its lock and its
timeouts (a user function can hide such a call). Writing needs an explicit, typed unlock; then a
successful statement is kept (RELEASE SAVEPOINT) and becomes part of what COMMIT commits.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pglast
import psycopg
from pglast import ast
from psycopg import sql as q

from aami_tui.core.queries import sql

SAVEPOINT = "aami_inspect"
MAX_ROWS = 500  # rows kept for display; the row count is always the full one
UNLOCK_PHRASE = "write"  # typed by the operator to allow writing statements

META = {"\\dt": "inspect_tables", "\\di": "inspect_indexes", "\\dx": "inspect_extensions", "\\d": "inspect_table"}


class InspectError(Exception):
    """A query the pane refuses before sending it; the message is one sentence. ``kind`` is what it was taken
    for: "write" (refused while read-only), "transaction" (BEGIN, COMMIT…), "admin" (a lock or session killer,
    refused in every mode) or "invalid" (not parsed)."""

    def __init__(self, message: str, kind: str = "invalid"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Classified:
    text: str  # what the operator typed, stripped
    kind: str  # "meta" | "read" | "write"
    query: str  # the SQL actually sent
    params: dict = field(default_factory=dict)
    what: str = ""  # e.g. "SELECT", "\\d groups"


@dataclass(frozen=True)
class InspectResult:
    text: str
    kind: str
    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()
    row_count: int = 0
    status: str = ""  # the server's status line, e.g. "SELECT 10", "UPDATE 3"
    error: str | None = None  # one sentence when the query failed (rolled back to the savepoint)
    seconds: float = 0.0
    kept: bool = False  # a write that was kept in the migration transaction
    truncated: bool = False
    guard: str = ""  # what the engine found wrong after the query (lock released, timeouts changed) and did

    @property
    def outcome(self) -> str:
        return "failed" if self.error else ("kept" if self.kept else "ok")

    def to_dict(self) -> dict:
        """What the report records: every query, its outcome and its row count (not the rows)."""
        d = {"query": self.text, "kind": self.kind, "outcome": self.outcome, "row_count": self.row_count,
                "status": self.status, "error": self.error, "seconds": round(self.seconds, 4), "kept": self.kept}
        if self.guard:
            d["guard"] = self.guard
        return d


def refusal(text: str, kind: str, why: str) -> dict:
    """The report's record of a query refused before it was sent (same keys as InspectResult.to_dict)."""
    return {"query": text.strip(), "kind": kind, "outcome": "refused", "row_count": 0, "status": "", "error": why,
            "seconds": 0.0, "kept": False}


_READ_NODES = (ast.SelectStmt, ast.VariableShowStmt)

# Never from the pane, even unlocked: they release the run's one-operator lock (or take session locks that
# outlive the transaction), or end server sessions, this one included.
_NEVER = {
    "pg_advisory_unlock_all": "would release the run's one-operator migration lock",
    "pg_terminate_backend": "ends server sessions (this one too: the migration transaction would be lost)",
    "pg_cancel_backend": "cancels server queries (this session's too)",
}
_NEVER_PREFIX = {"pg_advisory_": "would release the run's one-operator migration lock or take a lock that outlives "
                                 "the transaction",
                 "pg_try_advisory_": "would take a lock that outlives the transaction"}
# Side effects (some of which a savepoint does not undo) and admin actions: a write, allowed only after the unlock.
_SIDE_EFFECTS = {
    "set_config": "changes a setting", "nextval": "advances a sequence", "setval": "sets a sequence",
    "pg_notify": "sends a notification", "pg_reload_conf": "reloads the server's configuration",
    "pg_rotate_logfile": "rotates the server log", "pg_switch_wal": "switches the WAL file",
    "pg_promote": "promotes a standby", "pg_create_restore_point": "writes a WAL restore point",
    "pg_backup_start": "starts a backup", "pg_backup_stop": "stops a backup", "pg_start_backup": "starts a backup",
    "pg_stop_backup": "stops a backup", "pg_stat_reset": "resets statistics",
    "pg_log_backend_memory_contexts": "writes to the server log",
    "pg_import_system_collations": "creates collations", "lo_import": "writes a large object",
    "lo_export": "writes a server file", "lo_unlink": "deletes a large object", "lo_create": "creates a large object",
    "lo_creat": "creates a large object", "lo_put": "writes a large object", "lo_from_bytea": "creates a large object",
    "lowrite": "writes a large object", "lo_truncate": "truncates a large object", "txid_current": "assigns an xid",
    "pg_current_xact_id": "assigns an xid", "pg_logical_emit_message": "writes to the WAL",
    "pg_wal_replay_pause": "pauses replay", "pg_wal_replay_resume": "resumes replay",
}
_SIDE_EFFECT_PREFIX = {"pg_file_": "writes a server file", "dblink": "talks to another database",
                       "pg_create_": "creates a replication slot", "pg_drop_replication": "drops a replication slot",
                       "pg_replication_": "changes replication state", "pg_stat_reset": "resets statistics",
                       "pg_copy_": "copies a replication slot", "pg_logical_slot_get": "consumes a replication slot",
                       "pg_replication_slot_advance": "advances a replication slot"}


def _lookup(name: str, table: dict, prefixes: dict) -> str | None:
    if name in table:
        return table[name]
    return next((why for p, why in prefixes.items() if name.startswith(p)), None)


def _calls(node) -> list[str]:
    """Every function called anywhere in the statement (last part of the name, lower case), in order."""
    found: list[str] = []

    def walk(n) -> None:
        if isinstance(n, ast.FuncCall):
            parts = [getattr(x, "sval", "") for x in n.funcname or ()]
            if parts:
                found.append(parts[-1].lower())
        if isinstance(n, ast.Node):
            for slot in n:
                walk(getattr(n, slot))
        elif isinstance(n, (tuple, list)):
            for x in n:
                walk(x)

    walk(node)
    return found


def _function_check(node) -> tuple[str | None, str | None]:
    """(never, side_effect): the first call refused in every mode, the first call that makes a read a write."""
    never = side = None
    for fn in _calls(node):
        why = _lookup(fn, _NEVER, _NEVER_PREFIX)
        if why and never is None:
            never = f"{fn}() {why}"
        why = _lookup(fn, _SIDE_EFFECTS, _SIDE_EFFECT_PREFIX)
        if why is not None and side is None:
            side = f"calls {fn}(), which {why}: not a read"
    return never, side


def _read_only(node, text: str = "") -> str | None:
    """None when the statement only reads; else why not (a few words)."""
    if isinstance(node, ast.SelectStmt):
        if node.intoClause is not None:
            return "SELECT INTO creates a table"
        if node.lockingClause:
            return "SELECT … FOR UPDATE/SHARE locks rows"
        for attr in ("larg", "rarg"):
            sub = getattr(node, attr, None)
            if sub is not None and _read_only(sub):
                return _read_only(sub)
        if node.withClause is not None:
            for cte in node.withClause.ctes or ():
                if not isinstance(cte.ctequery, ast.SelectStmt) or _read_only(cte.ctequery):
                    return "a WITH clause that writes"
        return None
    if isinstance(node, ast.VariableShowStmt):
        return None
    if isinstance(node, ast.ExplainStmt):
        for opt in node.options or ():
            if opt.defname == "analyze":
                arg = getattr(opt.arg, "sval", None) or getattr(opt.arg, "boolval", None)
                if opt.arg is None or str(arg).lower() not in ("false", "off", "0"):
                    return "EXPLAIN ANALYZE runs the statement"
        return None
    return _changes(node, text)


def _changes(node, text: str = "") -> str:
    """Why a statement is refused, in the operator's words: "CREATE changes the database; this pane only reads"."""
    word = text.split(None, 1)[0].upper() if text.split() else ""
    if not word.isalpha() or word == "WITH":  # the statement's own keyword, not the CTE's
        word = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(node).__name__.removesuffix("Stmt")).upper()
    return f"{word} changes the database or the session; this pane only reads"


def classify(text: str) -> Classified:
    """Decide what a line typed in the pane is. Raises InspectError with one sentence."""
    t = text.strip().rstrip(";").strip()
    if not t:
        raise InspectError("Type a query, or \\dt, \\d TABLE, \\di, \\dx.")
    if t.startswith("\\"):
        parts = t.split()
        cmd = parts[0]
        if cmd in ("\\dt", "\\di", "\\dx") and len(parts) == 1:
            return Classified(t, "meta", sql(META[cmd]), {}, cmd)
        if cmd in ("\\d", "\\d+") and len(parts) == 2:
            name = parts[1].strip('"')
            schema, _, table = name.rpartition(".")
            return Classified(t, "meta", sql("inspect_table"), {"schema": schema or None, "table": table},
                              f"\\d {name}")
        if cmd == "\\d" and len(parts) == 1:
            return Classified(t, "meta", sql("inspect_tables"), {}, "\\dt")
        raise InspectError(f"{cmd} is not one of the meta commands here: \\dt, \\d TABLE, \\di, \\dx.")
    try:
        stmts = pglast.parse_sql(t)
    except pglast.parser.ParseError as exc:
        msg = exc.args[0] if exc.args else str(exc)
        raise InspectError(f"Not valid SQL: {msg}.") from None
    if len(stmts) != 1:
        raise InspectError("One statement at a time, please.")
    node = stmts[0].stmt
    if isinstance(node, ast.TransactionStmt):
        raise InspectError("Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) belongs to the runbook's own "
                           "steps, not to the inspection pane.", "transaction")
    never, side = _function_check(node)
    if never:
        raise InspectError(f"{never}: not from the inspection pane (not even after \\write).", "admin")
    why = _read_only(node, t) or side
    what = re.sub(r"Stmt$", "", type(node).__name__).upper()
    return Classified(t, "write" if why else "read", t, {}, why or what)


async def run(conn, text: str, *, allow_write: bool = False, max_rows: int = MAX_ROWS) -> InspectResult:
    """Run one line inside the open transaction on ``conn`` under a savepoint.

    Read-only queries are always rolled back to their savepoint; a write (only with ``allow_write``) is kept when
    it succeeds. An error is rolled back to the savepoint: the migration transaction stays usable.
    Raises InspectError (nothing sent) for what the pane refuses."""
    c = classify(text)
    if c.kind == "write" and not allow_write:
        raise InspectError(f"Read-only: {c.what}. To run statements that change the migration "
                           "transaction, type \\write (then confirm).", "write")
    t0 = time.monotonic()
    await conn.execute(q.SQL("SAVEPOINT {}").format(q.Identifier(SAVEPOINT)))
    try:
        cur = await conn.execute(c.query, c.params or None)
        columns = tuple(d.name for d in cur.description) if cur.description else ()
        rows: list[tuple] = []
        count = cur.rowcount if cur.rowcount is not None and cur.rowcount >= 0 else 0
        if cur.description:
            rows = await cur.fetchmany(max_rows)
            rest = len(await cur.fetchall())
            count = len(rows) + rest
        status = cur.statusmessage or ""
    except psycopg.Error as exc:
        dt = time.monotonic() - t0
        await conn.execute(q.SQL("ROLLBACK TO SAVEPOINT {}").format(q.Identifier(SAVEPOINT)))
        await conn.execute(q.SQL("RELEASE SAVEPOINT {}").format(q.Identifier(SAVEPOINT)))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return InspectResult(c.text, c.kind, error=f"{first} (rolled back to the savepoint; the migration "
                             "transaction is intact).", seconds=dt)
    keep = c.kind == "write"
    if not keep:
        await conn.execute(q.SQL("ROLLBACK TO SAVEPOINT {}").format(q.Identifier(SAVEPOINT)))
    await conn.execute(q.SQL("RELEASE SAVEPOINT {}").format(q.Identifier(SAVEPOINT)))
    if c.kind == "meta" and c.params.get("table") and not rows:
        return InspectResult(c.text, c.kind, error=f"Did not find any relation named {c.params['table']}.",
                             seconds=time.monotonic() - t0)
    return InspectResult(c.text, c.kind, columns, tuple(tuple(r) for r in rows), count, status,
                         seconds=time.monotonic() - t0, kept=keep, truncated=count > len(rows))
