"""Lint a migration file: squawk (the field's PostgreSQL migration linter) as the rule engine, mapped into
the tool's own findings, plus what squawk cannot know (how the runbook runs the file, which tables already
exist and how big they are, the runbook's own refusals).

The policy (which squawk rules apply, which are satisfied by the runbook, which do not apply to tables the
file itself creates) is defined here, once, with the reasons; the README repeats it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pglast
from pglast import ast

from aami_tui.core import migration
from aami_tui.core.schema import REQUIRED_TABLES
from aami_tui.core.words import plural
from aami_tui.core.words import size as size_words

# Exit codes of `aami-tui lint` (README): errors win over warnings.
EXIT_CLEAN = 0
EXIT_WARNINGS = 1
EXIT_CONNECT = 2
EXIT_ERRORS = 3

SQUAWK_TIMEOUT = 30.0

# Rules switched off, with the reason (passed to squawk as --exclude). The column types are the Config
# Server's data model (schema-facts.md; the Go structs map them): changing them is an application change,
# not something to fix in a migration review, so type-style advice is noise to the operator.
EXCLUDED: dict[str, str] = {
    "prefer-timestamp-tz": "column types follow the Config Server's data model (schema-facts.md), not the DBA's choice",
    "prefer-text-field": "column types follow the Config Server's data model (schema-facts.md), not the DBA's choice",
    "prefer-bigint-over-int": "column types follow the Config Server's data model (schema-facts.md), not the DBA's choice",
    "prefer-bigint-over-smallint": "column types follow the Config Server's data model (schema-facts.md), not the "
                                   "DBA's choice",
    "prefer-identity": "column types follow the Config Server's data model (schema-facts.md), not the DBA's choice",
    "ban-char-field": "column types follow the Config Server's data model (schema-facts.md), not the DBA's choice",
}

# Rules the runbook satisfies by construction: reported once as such, never as a warning.
SATISFIED: dict[str, str] = {
    "require-lock-timeout": "the runbook sets lock_timeout (default 5 s, --lock-timeout) before the first statement",
    "require-statement-timeout": "the runbook sets statement_timeout (default 300 s, --statement-timeout) before "
                                 "the first statement",
    "prefer-robust-stmts": "the runbook runs the whole file in one transaction: a failure rolls everything back, "
                           "so the file can always be run again",
    "transaction-nesting": "the runbook refuses transaction control in the file (see the refusal above, if any)",
}

# Rules about locking or scanning an existing table: they do not apply to a table the same file creates
# (it is new, empty and invisible to others until COMMIT). Suppressed by the mapping in that case.
SAME_FILE_EXEMPT = frozenset({
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "constraint-missing-not-valid",
    "adding-foreign-key-constraint", "disallowed-unique-constraint", "adding-required-field",
    "adding-not-nullable-field", "adding-field-with-default", "changing-column-type",
    "adding-serial-primary-key-field", "adding-primary-key-constraint", "renaming-column", "ban-drop-column",
    "add-check-constraint", "ban-alter-domain-with-add-constraint",
})

# Rules that are errors when they remove or rename what the Config Server uses (a required table, or a
# column of the shipped migration): it would break the server. A column it does not know may go.
BREAKS_SERVER_TABLE = frozenset({"ban-drop-table", "renaming-table"})
BREAKS_SERVER_COLUMN = frozenset({"ban-drop-column", "renaming-column"})
ALWAYS_ERROR = frozenset({"ban-drop-database", "ban-truncate-cascade"})

# One sentence per rule, in the operator's terms; {table} is the statement's table.
SENTENCES: dict[str, str] = {
    "require-concurrent-index-creation": "CREATE INDEX on the existing table {table} blocks its writes until the "
                                         "index is built; CONCURRENTLY cannot run in the runbook's transaction, so "
                                         "do it in the maintenance window.",
    "require-concurrent-index-deletion": "DROP INDEX blocks reads and writes of its table while it waits for "
                                         "and holds the lock.",
    "constraint-missing-not-valid": "The new constraint on {table} scans the whole table while blocking writes "
                                    "(ADD … NOT VALID then VALIDATE avoids the long lock).",
    "adding-foreign-key-constraint": "Adding a foreign key to {table} scans it and locks both tables against "
                                     "writes while it does.",
    "disallowed-unique-constraint": "Adding a UNIQUE constraint to {table} builds an index under an ACCESS "
                                    "EXCLUSIVE lock (reads and writes wait); CREATE UNIQUE INDEX CONCURRENTLY "
                                    "beforehand, outside the runbook's transaction, then ADD CONSTRAINT … UNIQUE "
                                    "USING INDEX takes the lock only for a moment.",
    "adding-required-field": "Adding a NOT NULL column without a default to {table} fails as soon as the table "
                             "has a row.",
    "adding-not-nullable-field": "SET NOT NULL on {table} scans the table while blocking reads and writes.",
    "adding-field-with-default": "Adding a column with a volatile default to {table} rewrites the table under "
                                 "an ACCESS EXCLUSIVE lock.",
    "changing-column-type": "Changing a column type on {table} rewrites it under an ACCESS EXCLUSIVE lock and "
                            "may break the Config Server's queries.",
    "adding-serial-primary-key-field": "Adding a primary key to {table} builds an index under an ACCESS "
                                       "EXCLUSIVE lock; CREATE UNIQUE INDEX CONCURRENTLY beforehand, outside the "
                                       "runbook's transaction, then ADD CONSTRAINT … PRIMARY KEY USING INDEX takes "
                                       "the lock only for a moment (its columns must already be NOT NULL).",
    "ban-drop-table": "Dropping {table} deletes its data for good (the backup is the only way back).",
    "ban-drop-column": "Dropping {column} of {table} deletes its data and breaks any client that still reads it.",
    "renaming-column": "Renaming {column} of {table} breaks any client that still uses the old name.",
    "renaming-table": "Renaming {table} breaks any client that still uses the old name.",
    "ban-drop-database": "The file drops a database.",
    "ban-truncate-cascade": "TRUNCATE … CASCADE on {table} also empties every table that references it.",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error" | "warning" | "info"
    line: int  # 1-based
    column: int  # 1-based
    message: str  # one sentence
    source: str = "squawk"  # squawk | aami-tui
    statement: int | None = None  # 1-based statement number in the file

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self, name: str) -> str:
        return f"{name}:{self.line}:{self.column}: {self.severity}: {self.rule}: {self.message}"


@dataclass(frozen=True)
class TableLock:
    statement: int
    line: int
    table: str
    mode: str  # PostgreSQL lock mode
    est_rows: int | None = None
    size_bytes: int | None = None


@dataclass
class LintResult:
    path: Path
    findings: list[Finding] = field(default_factory=list)
    satisfied: dict[str, str] = field(default_factory=dict)  # rule -> why (only rules squawk raised)
    suppressed: dict[str, int] = field(default_factory=dict)  # rule -> count (new tables)
    noop: dict[str, int] = field(default_factory=dict)  # rule -> count (IF NOT EXISTS on an existing index)
    locks: list[TableLock] = field(default_factory=list)  # only tables that exist in the connected database
    squawk: str | None = None  # "squawk 2.70.0" when it ran
    squawk_problem: str | None = None  # why squawk did not run
    connected: bool = False
    created_tables: tuple[str, ...] = ()  # tables the file creates (and that are new)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_ERRORS
        return EXIT_WARNINGS if self.warnings else EXIT_CLEAN

    def to_dict(self) -> dict:
        return {"file": str(self.path), "exit_code": self.exit_code, "squawk": self.squawk,
                "squawk_problem": self.squawk_problem, "connected": self.connected,
                "findings": [f.to_dict() for f in self.findings],
                "satisfied_by_runbook": self.satisfied, "suppressed_for_new_tables": self.suppressed,
                "suppressed_existing_indexes": self.noop,
                "excluded_by_configuration": EXCLUDED,
                "locks": [asdict(lk) for lk in self.locks]}


# --------------------------------------------------------------------------------------------- squawk

def find_squawk() -> str | None:
    """The squawk binary: beside this Python (the wheel's script), else on PATH."""
    exe = "squawk.exe" if os.name == "nt" else "squawk"
    beside = Path(sys.executable).parent / exe
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("squawk")


def run_squawk(path: Path, pg_version: str | None = None, binary: str | None = None
               ) -> tuple[list[dict], str | None, str | None]:
    """Run squawk on one file. Returns (violations, "squawk X.Y", problem sentence or None)."""
    binary = binary if binary is not None else find_squawk()
    if not binary:
        return [], None, ("squawk is not installed (pip install squawk-cli): only the runbook's own checks ran, "
                          "not squawk's rules.")
    config = Path(__file__).with_name("squawk.toml")  # ours, so that a stray .squawk.toml is never picked up
    args = [binary, "--reporter", "json", "--config", str(config), "--no-assume-in-transaction",
            "--exclude", ",".join(sorted(EXCLUDED))]
    if pg_version:
        args.append(f"--pg-version={pg_version}")
    args.append(str(path))
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=SQUAWK_TIMEOUT)
        label = version.stdout.strip() or "squawk"
        proc = subprocess.run(args, capture_output=True, text=True, timeout=SQUAWK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [], None, f"squawk did not finish within {SQUAWK_TIMEOUT:.0f} s; its rules were not checked."
    except OSError as exc:
        return [], None, f"squawk could not be started ({binary}: {exc.strerror}); its rules were not checked."
    try:
        data = json.loads(proc.stdout or "null")
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, list):
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        why = detail[-1] if detail else f"exit status {proc.returncode}"
        return [], None, f"squawk failed ({why}); its rules were not checked."
    return data, label, None


# ---------------------------------------------------------------------------------- pglast knowledge

@dataclass(frozen=True)
class _Stmt:
    index: int
    start: int  # character offset
    end: int
    line: int
    column: int
    node: ast.Node
    table: str | None  # the table the statement acts on (unqualified or public)
    locks: tuple[tuple[str, str], ...]  # (table, mode) on tables that may already exist
    creates: str | None  # table created by this statement
    creates_if_not_exists: bool


def _name(rv) -> str | None:
    if rv is None:
        return None
    if getattr(rv, "schemaname", None) not in (None, "public"):
        return f"{rv.schemaname}.{rv.relname}"
    return rv.relname


def _fk_targets(node) -> list[str]:
    out = []

    def walk(n):
        if isinstance(n, ast.Constraint) and n.contype == pglast.enums.ConstrType.CONSTR_FOREIGN:
            t = _name(n.pktable)
            if t:
                out.append(t)
        if isinstance(n, ast.Node):
            for attr in n:
                walk(getattr(n, attr))
        elif isinstance(n, tuple):
            for x in n:
                walk(x)

    walk(node)
    return out


_AT = pglast.enums.AlterTableType


def _analyse(node) -> tuple[str | None, list[tuple[str, str]], str | None, bool]:
    """(table, locks, created table, if_not_exists) for one statement."""
    if isinstance(node, ast.CreateStmt):
        t = _name(node.relation)
        return t, [(r, "SHARE ROW EXCLUSIVE") for r in _fk_targets(node) if r != t], t, bool(node.if_not_exists)
    if isinstance(node, ast.IndexStmt):
        t = _name(node.relation)
        return t, [(t, "SHARE UPDATE EXCLUSIVE" if node.concurrent else "SHARE")], None, False
    if isinstance(node, ast.AlterTableStmt):
        t = _name(node.relation)
        cmds = node.cmds or ()
        subtypes = {c.subtype for c in cmds}
        fks = _fk_targets(node)
        if subtypes == {_AT.AT_ValidateConstraint}:
            mode = "SHARE UPDATE EXCLUSIVE"
        elif fks and subtypes == {_AT.AT_AddConstraint}:
            mode = "SHARE ROW EXCLUSIVE"
        else:
            mode = "ACCESS EXCLUSIVE"
        return t, [(t, mode)] + [(r, "SHARE ROW EXCLUSIVE") for r in fks if r != t], None, False
    if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
        t = _name(node.relation)
        return t, [(t, "ROW EXCLUSIVE")], None, False
    if isinstance(node, ast.RenameStmt):
        t = _name(node.relation)
        return t, ([(t, "ACCESS EXCLUSIVE")] if t else []), None, False
    if isinstance(node, ast.TruncateStmt):
        ts = [_name(r) for r in node.relations or ()]
        return (ts[0] if ts else None), [(t, "ACCESS EXCLUSIVE") for t in ts], None, False
    if isinstance(node, ast.DropStmt) and node.removeType == pglast.enums.ObjectType.OBJECT_TABLE:
        ts = [".".join(p.sval for p in obj) for obj in node.objects or ()]
        ts = [t.removeprefix("public.") for t in ts]
        return (ts[0] if ts else None), [(t, "ACCESS EXCLUSIVE") for t in ts], None, False
    return None, [], None, False


def _statements(text: str, raw: list | None = None) -> list[_Stmt]:
    """Each statement's facts (``raw``: pglast's parse of this text, when the caller has it)."""
    out = []
    line_col = migration.LineIndex(text)
    for i, r in enumerate(pglast.parse_sql(text) if raw is None else raw, 1):
        start = r.stmt_location
        end = start + r.stmt_len if r.stmt_len else len(text)
        lead = migration._LEADING.match(text[start:end]).end()
        line, col = line_col(start + lead)
        table, locks, creates, ine = _analyse(r.stmt)
        out.append(_Stmt(i, start, end, line, col, r.stmt, table, tuple(locks), creates, ine))
    return out


_CONSTR = pglast.enums.ConstrType


def _not_valid_applies(node) -> bool:
    """Whether NOT VALID could be added to a constraint the statement adds: PostgreSQL allows it for CHECK and
    FOREIGN KEY only. squawk's constraint-missing-not-valid also fires on ADD CONSTRAINT … UNIQUE / PRIMARY KEY,
    where that advice is an error (their own rules say what to do instead)."""
    if not isinstance(node, ast.AlterTableStmt):
        return True
    added = [c.def_ for c in node.cmds or () if c.subtype == _AT.AT_AddConstraint and isinstance(c.def_, ast.Constraint)]
    return not added or any(c.contype in (_CONSTR.CONSTR_CHECK, _CONSTR.CONSTR_FOREIGN) for c in added)


def _column_of(node) -> str | None:
    """The column a DROP COLUMN / RENAME COLUMN statement removes or renames."""
    if isinstance(node, ast.RenameStmt) and node.renameType == pglast.enums.ObjectType.OBJECT_COLUMN:
        return node.subname
    if isinstance(node, ast.AlterTableStmt):
        for c in node.cmds or ():
            if c.subtype == _AT.AT_DropColumn:
                return c.name
    return None


_MODEL: dict[str, tuple[str, ...]] | None = None


def _server_model() -> dict[str, tuple[str, ...]]:
    """Table -> columns of the shipped migration (what the Config Server reads and writes)."""
    global _MODEL
    if _MODEL is None:
        try:
            path = migration.resolve_migration_path()
            _MODEL = migration.created_tables(path.read_text(encoding="utf-8"))
        except (OSError, pglast.parser.ParseError):
            _MODEL = {}
    return _MODEL


def _offset(text: str, line0: int, col0: int) -> int:
    pos = 0
    for _ in range(line0):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    return pos + col0


# --------------------------------------------------------------------------------------------- lint

def _refusal(error: str | None) -> Finding | None:
    """The runbook's refusal of the file (``migration.examine``'s error) as a finding."""
    if error is not None:
        msg = error
        m = re.search(r"at line (\d+)(?:, column (\d+))?", msg)
        line = int(m.group(1)) if m else 1
        col = int(m.group(2)) if m and m.group(2) else 1
        return Finding("refused-by-runbook", "error", line, col, msg, source="aami-tui")
    return None


def lint(path: Path | str, live: dict[str, tuple[int | None, int | None]] | None = None,
         pg_version: str | None = None, squawk_binary: str | None = None,
         live_indexes: set[str] | frozenset[str] = frozenset()) -> LintResult:
    """Lint one file. ``live`` maps existing public tables to (estimated rows, size in bytes), from the
    connected database (None: no connection; tables the file creates are then assumed new);
    ``live_indexes`` names the indexes that already exist (CREATE INDEX IF NOT EXISTS on them is a no-op)."""
    path = Path(path).expanduser()
    res = LintResult(path, connected=live is not None)
    examined = migration.examine(path)  # one parse, for the refusal and for the statements' facts
    refused = _refusal(examined.error)
    if refused:
        res.findings.append(refused)
    text = examined.text
    if text is None:
        return res  # the refusal above already says why
    unparsable = examined.raw is None  # a syntax error: refused above, with PostgreSQL's own parser's words
    stmts = [] if unparsable else _statements(text, examined.raw)
    live = live or {}
    # A table counts as created by the file when the file creates it and it did not exist before
    # (CREATE TABLE IF NOT EXISTS on an existing table is a no-op: later statements then hit the live table).
    created_at: dict[str, int] = {}
    for s in stmts:
        if s.creates and s.creates not in live and s.creates not in created_at:
            created_at[s.creates] = s.index
    res.created_tables = tuple(created_at)

    def new_table(t: str | None, before: int) -> bool:
        return t is not None and t in created_at and created_at[t] <= before

    violations, res.squawk, res.squawk_problem = run_squawk(path, pg_version, squawk_binary)
    if res.squawk_problem:
        res.findings.append(Finding("squawk-unavailable", "warning", 1, 1, res.squawk_problem, source="aami-tui"))
    for v in violations:
        rule = v.get("rule_name") or "squawk"
        line0, col0 = int(v.get("line") or 0), int(v.get("column") or 0)
        off = _offset(text, line0, col0)
        st = next((s for s in stmts if s.start <= off < max(s.end, s.start + 1)), None)
        if st is None and stmts:
            st = min(stmts, key=lambda s: abs(s.start - off))
        table = st.table if st else None
        if rule in EXCLUDED:
            continue
        if rule == "syntax-error" and unparsable:
            # PostgreSQL's parser already said where and why (one error); squawk's recovery adds a warning per
            # token it skips ("expected command, found …"), which buries that one line.
            continue
        if rule in SATISFIED:
            res.satisfied[rule] = SATISFIED[rule]
            continue
        if rule == "constraint-missing-not-valid" and st and not _not_valid_applies(st.node):
            continue  # UNIQUE / PRIMARY KEY: NOT VALID is refused there; their own finding gives the way
        if rule in SAME_FILE_EXEMPT and st and new_table(table, st.index):
            res.suppressed[rule] = res.suppressed.get(rule, 0) + 1
            continue
        if st and _noop_index(st.node, live_indexes):
            res.noop[rule] = res.noop.get(rule, 0) + 1
            continue
        if rule == "ban-drop-table" and st and isinstance(st.node, ast.DropStmt):
            table = next((t for t, _ in st.locks if t in REQUIRED_TABLES), table)
        column = _column_of(st.node) if st else None
        severity = "warning"
        if (rule in ALWAYS_ERROR or (rule in BREAKS_SERVER_TABLE and table in REQUIRED_TABLES)
                or (rule in BREAKS_SERVER_COLUMN and column in _server_model().get(table or "", ()))):
            severity = "error"
        if rule == "adding-required-field" and table in live and (live[table][0] or 0) > 0:
            severity = "error"
        sentence = SENTENCES.get(rule)
        if sentence:
            sentence = sentence.format(table=table or "the table", column=column or "a column")
            if severity == "error" and rule in BREAKS_SERVER_COLUMN:
                sentence = sentence.rstrip(".") + ", and the Config Server uses it."
        else:
            msg = (v.get("message") or rule).strip().rstrip(".")
            hint = (v.get("help") or "").strip().rstrip(".")
            sentence = f"{msg}." + (f" {hint}." if hint else "")
        if table in live:
            rows, size = live[table]
            sentence += f" Live: {describe_size(rows, size)}."
        res.findings.append(Finding(rule, severity, line0 + 1, col0 + 1, sentence, "squawk",
                                    st.index if st else None))
    # What squawk cannot know: the locks each statement takes on tables that already exist, with sizes.
    for s in stmts:
        if _noop_index(s.node, live_indexes) or (s.creates in live and s.creates_if_not_exists):
            continue  # IF NOT EXISTS on something that exists: a no-op, no lock held
        for t, mode in s.locks:
            if t in live:
                rows, size = live[t]
                res.locks.append(TableLock(s.index, s.line, t, mode, rows, size))
                res.findings.append(Finding(
                    "locks-existing-table", "info", s.line, s.column,
                    f"Statement {s.index} takes {mode} on {t} ({describe_size(rows, size)}) until COMMIT or ROLLBACK.",
                    "aami-tui", s.index))
    res.findings.sort(key=lambda f: (f.line, f.column, f.rule))
    return res


def _noop_index(node, existing) -> bool:
    return (isinstance(node, ast.IndexStmt) and bool(node.if_not_exists) and node.idxname in existing)


def describe_size(rows: int | None, size: int | None) -> str:
    """'~1,234 rows, 5.0 MiB' for a table's live facts (either may be unknown)."""
    parts = []
    if rows is not None:
        parts.append(f"~{plural(rows, 'row')}")
    if size is not None:
        parts.append(size_words(size))
    return ", ".join(parts) or "size unknown"


@dataclass(frozen=True)
class FileFacts:
    """What pre-flight needs from parsing the file, computed in one go (in a helper process: core/offload.py)."""

    migration: migration.MigrationFile | None
    error: str | None  # why the file is refused (MigrationError's sentence), else None
    extensions: tuple[str, ...]  # extensions it creates
    names: frozenset[str] | None  # tables it names (for the live facts query); None: it cannot be parsed
    touched: tuple[str, ...]  # tables its statements act on (not only create)


def file_facts(path: Path | str) -> FileFacts:
    examined = migration.examine(path)  # one parse, for the migration and for the statements' facts
    mf, error = examined.migration, examined.error
    stmts = None if examined.raw is None else _statements(examined.text, examined.raw)
    return FileFacts(mf, error, migration.created_extensions(mf.statements) if mf else (),
                     None if stmts is None else frozenset(_names(stmts)),
                     tuple(t for st in stmts or () for t in ([st.table] + [x for x, _ in st.locks]) if t))


def _names(stmts: list[_Stmt]) -> set[str]:
    names: set[str] = set()
    for s in stmts:
        names.update(t for t, _ in s.locks)
        if s.creates:
            names.add(s.creates)
        if s.table:
            names.add(s.table)
    return names


async def live_facts(conn, path: Path | str, names: frozenset[str] | None = None
                     ) -> tuple[dict[str, tuple[int | None, int | None]], set[str]]:
    """(estimated rows and sizes of the existing public tables the file names, existing index names).
    ``names``: the tables the file names, when already known (``file_facts``): no parse here."""
    from aami_tui.core.queries import sql

    tables = await live_tables(conn, path, names)
    async with conn.cursor() as cur:
        await cur.execute(sql("public_indexes"))
        indexes = {r[0] for r in await cur.fetchall()}
    return tables, indexes


async def live_tables(conn, path: Path | str, names: frozenset[str] | None = None
                      ) -> dict[str, tuple[int | None, int | None]]:
    """Estimated rows and sizes of the existing public tables the file names (one query)."""
    from aami_tui.core.queries import sql

    if names is None:
        try:
            names = frozenset(_names(_statements(Path(path).read_text(encoding="utf-8").removeprefix("\ufeff"))))
        except (OSError, UnicodeDecodeError, pglast.parser.ParseError):
            return {}
    async with conn.cursor() as cur:
        await cur.execute(sql("table_facts"), {"names": sorted(names)})
        return {name: (rows, size) for name, rows, size in await cur.fetchall()}


def format_text(res: LintResult) -> list[str]:
    """Human output: one line per finding (file:line:col: severity: rule: sentence) and a summary."""
    name = str(res.path)
    lines = [f.format(name) for f in res.findings]
    for rule, why in res.satisfied.items():
        lines.append(f"{name}: satisfied by the runbook: {rule}: {why}.")
    if res.suppressed:
        n = sum(res.suppressed.values())
        rules = ", ".join(f"{r} ×{c}" for r, c in sorted(res.suppressed.items()))
        lines.append(f"{name}: not applicable to the {len(res.created_tables)} tables this file creates "
                     f"(new, empty, invisible until COMMIT): {plural(n, 'finding')} ({rules}).")
    if res.noop:
        n = sum(res.noop.values())
        lines.append(f"{name}: {plural(n, 'finding')} about CREATE INDEX IF NOT EXISTS on indexes that already exist "
                     "(no-ops here) not shown.")
    if not res.connected:
        lines.append(f"{name}: no database connection: tables the file creates are assumed new, and no live "
                     "row counts or sizes are shown.")
    tool = res.squawk or "squawk not run"
    lines.append(f"{plural(len(res.errors), 'error')}, {plural(len(res.warnings), 'warning')} ({tool}; "
                 f"{len(EXCLUDED)} rules off by configuration, see the README).")
    return lines
