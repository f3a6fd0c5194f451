"""Migration files: locate, read, fingerprint, split with PostgreSQL's own parser, lint.

SQL is never split on ``;`` by hand: pglast (libpg_query) gives each statement's location. pglast is
imported when a file is parsed, not with this module: ``aami-tui check`` resolves paths without it.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aami_tui.core.paths import MIGRATION_NAME, default_migrations_dir, resolve_migration_path  # noqa: F401

if TYPE_CHECKING:
    from pglast import ast

ARCHIVED_MARKER = "-- ARCHIVED:"  # first line of every file in migrations/archive/
# A drift plan's part that a person must edit first (core/plan.py writes it; load() refuses the file while
# one is left).
PERSON_MARKER = "-- AAMI-TUI NEEDS A PERSON:"
_PERSON_LINE = re.compile(r"^[ \t]*--[ \t]*AAMI-TUI NEEDS A PERSON:[ \t]*(.*?)[ \t]*$", re.M)


class MigrationError(Exception):
    """A migration file that cannot be applied; the message is one clear sentence."""


@dataclass(frozen=True)
class Statement:
    index: int  # 1-based
    sql: str
    line: int  # 1-based line where the statement starts
    kind: str  # parse-tree node name, e.g. CreateStmt
    summary: str  # e.g. "CREATE TABLE namespaces"
    column: int = 1  # 1-based column where the statement starts on that line


@dataclass(frozen=True)
class MigrationFile:
    path: Path
    text: str
    size: int
    sha256: str
    statements: tuple[Statement, ...]
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> columns it creates

    @property
    def name(self) -> str:
        return self.path.name


# Statements PostgreSQL refuses inside a transaction block (or that must never run in a migration).
def _non_transactional(stmt: ast.Node) -> str | None:
    from pglast import ast

    name = type(stmt).__name__
    if isinstance(stmt, ast.IndexStmt) and stmt.concurrent:
        return "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
    if isinstance(stmt, ast.ReindexStmt):
        params = [getattr(p, "defname", "") for p in (stmt.params or ())]
        if "concurrently" in params:
            return "REINDEX CONCURRENTLY cannot run inside a transaction block"
    if isinstance(stmt, ast.DropStmt) and getattr(stmt, "concurrent", False):
        return "DROP INDEX CONCURRENTLY cannot run inside a transaction block"
    if isinstance(stmt, ast.VacuumStmt):
        return "VACUUM cannot run inside a transaction block" if stmt.is_vacuumcmd else None
    simple = {
        "CreatedbStmt": "CREATE DATABASE cannot run inside a transaction block",
        "DropdbStmt": "DROP DATABASE cannot run inside a transaction block",
        "AlterSystemStmt": "ALTER SYSTEM cannot run inside a transaction block",
        "CreateTableSpaceStmt": "CREATE TABLESPACE cannot run inside a transaction block",
        "DropTableSpaceStmt": "DROP TABLESPACE cannot run inside a transaction block",
        "CreateSubscriptionStmt": "CREATE SUBSCRIPTION cannot run inside a transaction block",
    }
    if simple.get(name):
        return simple[name]
    if isinstance(stmt, ast.TransactionStmt):
        return ("transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) in the file would break the "
                "console's own transaction")
    return None


def _summary(stmt: ast.Node, sql: str) -> str:
    from pglast import ast

    if isinstance(stmt, ast.CreateStmt):
        return f"CREATE TABLE {stmt.relation.relname}"
    if isinstance(stmt, ast.IndexStmt):
        return f"CREATE INDEX {stmt.idxname or ''} ON {stmt.relation.relname}".replace("  ", " ")
    if isinstance(stmt, ast.InsertStmt):
        return f"INSERT INTO {stmt.relation.relname}"
    if isinstance(stmt, ast.CreateExtensionStmt):
        return f"CREATE EXTENSION {stmt.extname}"
    first = " ".join(sql.split())
    return first[:60] + ("…" if len(first) > 60 else "")


class LineIndex:
    """A text's line and column (1-based) at an offset, found by bisection over where its lines start. Counting
    the newlines before each statement from the text's start made parsing a file quadratic: 3.2 s of the 7.8 s the
    10,000-statement file took to parse (twice: its statements, and lint's facts), before pre-flight could say a
    word about the file."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, offset) - 1
        return i + 1, offset - self.starts[i] + 1


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """One offset's line and column (for many in the same text, a LineIndex)."""
    return LineIndex(text)(offset)


_LEADING = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)


def _parse(text: str, path: Path) -> list:
    """pglast's parse of the text; a syntax error is a MigrationError saying where."""
    import pglast

    try:
        return pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        msg = exc.args[0] if exc.args else str(exc)
        offset = exc.args[1] if len(exc.args) > 1 else 0
        line, col = _line_col(text, offset)
        raise MigrationError(f"{path.name}: SQL syntax error at line {line}, column {col}: {msg}.") from None


def parse_text(text: str, path: Path, raw: list | None = None) -> tuple[Statement, ...]:
    """The file's statements; ``raw``: pglast's parse of this very text, when the caller has it (a 10,000-statement
    file takes pglast ~1.2 s to parse)."""
    if raw is None:
        raw = _parse(text, path)
    out = []
    line_col = LineIndex(text)
    for i, r in enumerate(raw, 1):
        start = r.stmt_location
        end = start + r.stmt_len if r.stmt_len else len(text)
        chunk = text[start:end]
        lead = _LEADING.match(chunk).end()
        sql = chunk[lead:].strip()
        line, column = line_col(start + lead)
        out.append(Statement(i, sql, line, type(r.stmt).__name__, _summary(r.stmt, sql), column))
        reason = _non_transactional(r.stmt)
        if reason:
            raise MigrationError(
                f"{path.name}: statement {i} at line {line} ({_summary(r.stmt, sql)}) is refused: {reason}; "
                "the console runs the whole file in one transaction so that it can always roll back.")
    return tuple(out)


def created_tables(text: str, raw: list | None = None) -> dict[str, tuple[str, ...]]:
    """Tables (in public / unqualified) the SQL creates, with their columns in order (``raw``: pglast's parse of
    this text, when the caller has it)."""
    import pglast
    from pglast import ast

    tables: dict[str, tuple[str, ...]] = {}
    for r in pglast.parse_sql(text) if raw is None else raw:
        s = r.stmt
        if isinstance(s, ast.CreateStmt) and (s.relation.schemaname in (None, "public")):
            cols = tuple(e.colname for e in (s.tableElts or ()) if isinstance(e, ast.ColumnDef))
            tables[s.relation.relname] = cols
    return tables


def unedited_parts(text: str) -> list[tuple[int, str]]:
    """(line, part) of every part of a drift plan still marked for a person, in file order."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1) or "unnamed") for m in _PERSON_LINE.finditer(text)]


def _refuse_unedited_plan(path: Path, text: str) -> None:
    """A drift plan still holding a part marked for a person is not applied: one sentence says which."""
    marks = unedited_parts(text)
    if not marks:
        return
    line, part = marks[0]
    more = f" (and {len(marks) - 1} more such parts)" if len(marks) > 1 else ""
    raise MigrationError(
        f"{path.name} is a drift plan whose part \"{part}\" at line {line} needs a person's "
        f"decision{more}: edit it, then delete its \"{PERSON_MARKER}\" line.")


_PLAN_HEAD = re.compile(r"\A-- aami-tui drift plan for (?P<database>.+)\n(?:-- Generated (?P<generated>[^\n]*?)\.?\n)?"
                        r"(?:-- Reference: (?P<reference>[^\n]*?)\.?\n)?")


def drift_plan_header(text: str) -> dict | None:
    """What a drift plan's own header says (for whom, when, against which reference), or None when the file is
    not a drift plan written by ``aami-tui plan``. Recorded in the run report beside the file's sha256."""
    m = _PLAN_HEAD.match(text.removeprefix("\ufeff"))
    if not m:
        return None
    return {k: v for k, v in m.groupdict().items() if v is not None}


def created_extensions(statements: tuple[Statement, ...]) -> tuple[str, ...]:
    """Extensions the file creates (CREATE EXTENSION needs CREATE on the database unless already installed)."""
    names = []
    for st in statements:
        if st.kind == "CreateExtensionStmt":
            import pglast

            stmt = pglast.parse_sql(st.sql)[0].stmt
            names.append(stmt.extname)
    return tuple(names)


@dataclass(frozen=True)
class Examined:
    """A file as ``examine`` found it: the migration (or why it is refused), and its text with pglast's parse for
    lint (the text as lint reads it, None if it cannot be read; the parse None if it has a syntax error)."""

    migration: MigrationFile | None
    error: str | None
    text: str | None
    raw: list | None


def examine(path: Path | str) -> Examined:
    """``load`` and lint's own reading of the file, parsed once (each parsed it: a 10,000-statement file took
    ~1.2 s a parse, and pre-flight's checks parsed it six times). Never raises MigrationError."""
    import pglast

    path = Path(path).expanduser()
    text = raw = None
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        raw = pglast.parse_sql(text)
    except (OSError, UnicodeDecodeError, pglast.parser.ParseError):
        pass
    try:
        return Examined(_load(path, None if raw is None else (text, raw)), None, text, raw)
    except MigrationError as exc:
        return Examined(None, str(exc), text, raw)


def load(path: Path | str) -> MigrationFile:
    """Read and check a migration file. Raises MigrationError with one clear sentence."""
    return _load(Path(path).expanduser())


def _load(path: Path, parsed: tuple[str, list] | None = None) -> MigrationFile:
    """``load``; ``parsed``: a text and pglast's parse of it, used if that text is the file's (read_text turns
    CRLF into LF: such a file is parsed again, as it is)."""
    # migrations/archive/<file>: only the file's own folder counts (a checkout under /srv/archive/ is fine).
    archived = (f"{path} is an archived migration (migrations/archive/ is kept for reference only and must "
                f"never be run); use migrations/{MIGRATION_NAME}.")
    if path.resolve().parent.name == "archive":
        raise MigrationError(archived)
    if not path.exists():
        raise MigrationError(f"{path} does not exist.")
    if path.is_dir():
        raise MigrationError(f"The migration path {path} is a directory, not a .sql file.")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise MigrationError(f"{path} is not readable (permission denied).") from None
    except OSError as exc:
        raise MigrationError(f"{path} cannot be read: {exc.strerror}.") from None
    nul = data.find(b"\x00")
    if nul >= 0:  # PostgreSQL's parser stops at a NUL: every statement after it would silently vanish
        line = data.count(b"\n", 0, nul) + 1
        raise MigrationError(
            f"{path} contains a NUL byte at byte offset {nul} (line {line}); the statements after it would be "
            "silently lost, so it is refused: remove it (or, if the file is UTF-16, save it as UTF-8).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MigrationError(
            f"{path} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); "
            "save it as UTF-8.") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if text.startswith(ARCHIVED_MARKER):  # an archived file copied out of migrations/archive/
        raise MigrationError(archived)
    _refuse_unedited_plan(path, text)
    raw = parsed[1] if parsed is not None and parsed[0] == text else _parse(text, path)
    statements = parse_text(text, path, raw)
    if not statements:
        raise MigrationError(f"{path} contains no SQL statements (it is empty or only comments).")
    return MigrationFile(path=path, text=text, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                         statements=statements, tables=created_tables(text, raw))
