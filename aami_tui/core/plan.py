"""Drift plan: compare a database with what the migration file builds, and write a reviewable repair.

The reference is built by running the migration file in a scratch place (a temporary database on the same
server when the role may create one, otherwise the embedded server) and reading its catalog. The two catalogs
are compared (columns with type, nullability and default; constraints; indexes; extensions; seed rows), never
SQL text. Every difference is classified:

- safe and additive: becomes SQL (a missing nullable or defaulted column, a missing index, a missing constraint
  that the data already satisfies, checked here, a missing extension, table or seed row);
- needs a person: becomes a commented skeleton with the facts, behind a marker line that ``migration.load``
  refuses until a person has edited that part (a NOT NULL column without a default on a populated table,
  type changes, extra or renamed columns, leftover tables, data that violates a missing constraint);
- note: reported as a comment, nothing to do (extra indexes or constraints, seed rows edited since).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from pglast import keywords
from psycopg import sql as q

from aami_tui.core import leftovers
from aami_tui.core import migration as mig
from aami_tui.core.queries import sql
from aami_tui.core.words import plural

PERSON_MARKER = mig.PERSON_MARKER

# Exit codes of `aami-tui plan` (README).
EXIT_NO_DIFFERENCES = 0
EXIT_CONNECT = 2
EXIT_PLAN_WRITTEN = 3
EXIT_REFERENCE_FAILED = 4
EXIT_INTERRUPTED = 130  # SIGINT, SIGTERM, SIGHUP: the temporary database dropped, nothing written

_NEEDS_QUOTES = (set(keywords.RESERVED_KEYWORDS) | set(keywords.TYPE_FUNC_NAME_KEYWORDS)
                 | set(keywords.COL_NAME_KEYWORDS))
_VOLATILE = re.compile(r"\b(now|random|gen_random_uuid|uuid_generate_v[14]|nextval|clock_timestamp|"
                       r"current_timestamp|statement_timestamp|transaction_timestamp)\b", re.I)


class PlanError(Exception):
    """The plan could not be made; the message is one sentence."""


def ident(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in _NEEDS_QUOTES:
        return name
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------- catalog

@dataclass
class Catalog:
    tables: set[str] = field(default_factory=set)
    columns: dict[tuple[str, str], dict] = field(default_factory=dict)
    constraints: dict[tuple[str, str], dict] = field(default_factory=dict)
    indexes: dict[tuple[str, str], dict] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    # seed rows (reference only): table -> (key columns, {key tuple: {column: text value}})
    seed: dict[str, tuple[tuple[str, ...], dict[tuple, dict[str, str | None]]]] = field(default_factory=dict)
    server_version: str = ""
    # reference only: (table, deparsed CHECK definition) -> "CHECK (<expression as the file writes it>)", so that
    # the plan adds a CHECK the way the migration does (a deparsed definition re-parses into another tree)
    check_sources: dict[tuple[str, str], str] = field(default_factory=dict)

    def table_columns(self, table: str) -> list[str]:
        cols = [(d["num"], c) for (t, c), d in self.columns.items() if t == table]
        return [c for _, c in sorted(cols)]

    def primary_key(self, table: str) -> tuple[str, ...]:
        for (t, _), d in self.constraints.items():
            if t == table and d["type"] == "p":
                return tuple(d["cols"])
        return ()


async def snapshot(conn, *, seed: bool = False) -> Catalog:
    """The catalog of schema public over an autocommit connection (one query, plus seed rows if asked)."""
    cat = Catalog(server_version=str(conn.info.server_version))
    async with conn.transaction():
        await conn.execute("SET LOCAL search_path = public")
        cur = await conn.execute(sql("catalog_snapshot"))
        rows = await cur.fetchall()
    for kind, tbl, name, detail in rows:
        if kind == "table":
            cat.tables.add(tbl)
        elif kind == "column":
            cat.columns[(tbl, name)] = detail
        elif kind == "constraint":
            cat.constraints[(tbl, name)] = detail
        elif kind == "index":
            cat.indexes[(tbl, name)] = detail
        elif kind == "extension":
            cat.extensions[name] = detail.get("version", "")
    if seed:
        for table in sorted(cat.tables):
            key = cat.primary_key(table)
            if not key:
                continue
            cols = cat.table_columns(table)
            query = q.SQL("SELECT {} FROM {}").format(
                q.SQL(", ").join(q.SQL("{}::text").format(q.Identifier(c)) for c in cols), q.Identifier(table))
            cur = await conn.execute(query)
            data = await cur.fetchall()
            if data:
                rows_by_key = {}
                for r in data:
                    rec = dict(zip(cols, r, strict=True))
                    rows_by_key[tuple(rec[k] for k in key)] = rec
                cat.seed[table] = (key, rows_by_key)
    return cat


# ----------------------------------------------------------------------------------------- reference

async def _run_file(conn, migration: mig.MigrationFile) -> None:
    async with conn.transaction():
        for st in migration.statements:
            try:
                await conn.execute(st.sql)
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise PlanError(f"{migration.name} failed in the reference database at statement {st.index} "
                                f"(line {st.line}, {st.summary}): {first}.") from None


def _file_checks(migration: mig.MigrationFile) -> list[tuple[str, str]]:
    """(table, CHECK expression as pglast prints it) for every CHECK constraint the file writes."""
    import pglast
    from pglast import ast
    from pglast.stream import RawStream

    out = []
    check = pglast.enums.ConstrType.CONSTR_CHECK
    for r in pglast.parse_sql(migration.text):
        node = r.stmt
        cons = []
        if isinstance(node, ast.CreateStmt):
            for e in node.tableElts or ():
                cons += list(e.constraints or ()) if isinstance(e, ast.ColumnDef) else [e]
        elif isinstance(node, ast.AlterTableStmt):
            cons = [c.def_ for c in node.cmds or () if isinstance(getattr(c, "def_", None), ast.Constraint)]
        else:
            continue
        for c in cons:
            if isinstance(c, ast.Constraint) and c.contype == check and node.relation is not None:
                out.append((node.relation.relname, RawStream()(c.raw_expr)))
    return out


async def _check_sources(conn, migration: mig.MigrationFile) -> dict[tuple[str, str], str]:
    """Map each CHECK's server deparse to the file's own expression, by adding it once more (NOT VALID, rolled
    back) in the scratch reference database and reading the server's deparse."""
    out: dict[tuple[str, str], str] = {}
    try:
        checks = _file_checks(migration)
    except Exception:  # noqa: BLE001 - the sources are a nicety; the deparsed definitions still work
        return out
    for table, expr in checks:
        try:
            async with conn.transaction(force_rollback=True):
                await conn.execute(q.SQL("ALTER TABLE {} ADD CONSTRAINT aami_probe CHECK ({}) NOT VALID").format(
                    q.Identifier(table), q.SQL(expr)))
                cur = await conn.execute("SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
                                         "WHERE conname = 'aami_probe' AND conrelid = %s::regclass", (table,))
                row = await cur.fetchone()
        except psycopg.Error:
            continue
        if row:
            out[(table, row[0].removesuffix(" NOT VALID"))] = f"CHECK ({expr})"
    return out


async def build_reference(conn, settings, migration: mig.MigrationFile,
                          say: Callable[[str], None] = lambda _m: None,
                          live: Catalog | None = None) -> tuple[Catalog, str]:
    """Run the migration file in a scratch place and read its catalog. Returns (catalog, where-sentence).

    With ``live``, the definitions of either side that differ as text are put in the scratch server's canonical
    form (``canonicalise``) before the scratch place goes. The scratch database is always dropped (embedded
    server stopped), on success, failure or cancellation."""
    from aami_tui.core.db import connect

    cur = await conn.execute(sql("can_create_database"))
    can_create = bool((await cur.fetchone())[0])
    why_not = "the role may not create databases"
    if can_create:
        name = f"aami_ref_{uuid.uuid4().hex[:12]}"
        created = False
        try:
            await conn.execute(q.SQL("CREATE DATABASE {} TEMPLATE template0").format(q.Identifier(name)))
            created = True
            say(f"Reference: running {migration.name} in a temporary database {name} on the same server.")
            cat = await _reference_catalog(await connect(settings, dbname=name), migration, live)
            return cat, f"a temporary database on the same server (PostgreSQL {_version(cat)}), dropped afterwards"
        except psycopg.Error as exc:
            why_not = f"creating a temporary database failed ({str(exc).strip().splitlines()[0]})"
        except PlanError as exc:
            why_not = str(exc).rstrip(".")
        except asyncio.CancelledError:  # SIGINT, SIGTERM, SIGHUP (or the console's cancel): said, then dropped
            if created:
                say(f"Reference: interrupted; dropping the temporary database {name}.")
            raise
        finally:
            if created and (why := await asyncio.shield(_drop(conn, name))):
                say(f"Reference: the temporary database {name} could NOT be dropped ({why}); drop it by hand: "
                    f"DROP DATABASE {name};")
    return await _embedded_reference(migration, conn, why_not, say, live)


async def _reference_catalog(ref, migration, live: Catalog | None = None) -> Catalog:
    """Run the migration file on the scratch connection ``ref`` and read back its catalog; closes ``ref``."""
    try:
        await _run_file(ref, migration)
        cat = await snapshot(ref, seed=True)
        cat.check_sources = await _check_sources(ref, migration)
        if live is not None:
            await canonicalise(ref, live, cat)
        return cat
    finally:
        await ref.close()


# A definition is text the server printed from its parse tree; parsing that text again can give another tree
# that prints differently (pg_dump | psql turns CHECK (status IN ('a', 'b')) on a varchar column from
# `(ARRAY['a'::varchar, …])::text[]` into `ARRAY[('a'::varchar)::text, …]`): the same constraint, other text.
# Sent through one server until the text stops changing (deparse(parse(deparse(x))) is a fixed point), equal
# definitions print equally, and a real difference (another list of values) still differs.
_QUOTED_OR_WORD = r'(?:"(?:[^"]|"")*"|\S+)'
_INDEX_HEAD = re.compile(rf"^CREATE (UNIQUE )?INDEX {_QUOTED_OR_WORD} ON (?:ONLY )?(?:public\.)?{_QUOTED_OR_WORD} ")
_ROUND_TRIPS = 3


async def _probe(conn, kind: str, table: str, text: str, n: int, column: str | None = None) -> str | None:
    """The scratch server's deparse of ``text`` (a CHECK, an index or a column default of ``table``), added under
    a savepoint of the caller's rolled-back transaction, or None when it does not fit the reference table."""
    t = q.Identifier(table)
    probe = f"aami_canon_{n}"
    try:
        async with conn.transaction():
            if kind == "c":
                await conn.execute(q.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                    t, q.Identifier(probe), q.SQL(text)))
                cur = await conn.execute("SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
                                         "WHERE conname = %s", (probe,))
                return (await cur.fetchone())[0].removesuffix(" NOT VALID")
            if kind == "i":
                m = _INDEX_HEAD.match(text)
                await conn.execute(q.SQL("CREATE {}INDEX {} ON {} {}").format(
                    q.SQL(m.group(1) or ""), q.Identifier(probe), t, q.SQL(text[m.end():])))
                cur = await conn.execute("SELECT pg_catalog.pg_get_indexdef(c.oid) FROM pg_catalog.pg_class c "
                                         "WHERE c.relname = %s AND c.relkind IN ('i', 'I')", (probe,))
                row = (await cur.fetchone())[0]
                m2 = _INDEX_HEAD.match(row)
                return f"CREATE {m2.group(1) or ''}INDEX ? ON {ident(table)} {row[m2.end():]}"
            await conn.execute(q.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                t, q.Identifier(column), q.SQL(text)))
            cur = await conn.execute("SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d "
                                     "JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                                     "JOIN pg_catalog.pg_class c ON c.oid = d.adrelid "
                                     "WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace "
                                     "AND a.attname = %s", (table, column))
            return (await cur.fetchone())[0]
    except (psycopg.Error, AttributeError, IndexError, TypeError):
        return None


async def _canonical(conn, kind: str, table: str, text: str, n: int, column: str | None = None) -> str | None:
    if kind == "c" and not text.startswith("CHECK"):
        return None
    if kind == "i" and not _INDEX_HEAD.match(text):
        return None
    suffix = " NOT VALID" if kind == "c" and text.endswith(" NOT VALID") else ""
    text = text.removesuffix(suffix) if suffix else text
    for i in range(_ROUND_TRIPS):
        out = await _probe(conn, kind, table, text, n * _ROUND_TRIPS + i, column)
        if out is None:
            return None
        if out == text:
            break
        text = out
    return text + suffix


async def canonicalise(conn, live: Catalog, ref: Catalog) -> None:
    """Give each CHECK constraint, plain index and column default whose text has no equal on the other side a
    ``canon`` (``canon_default``) form: its text sent through the scratch server (connection ``conn``, the
    reference's tables) until it stops changing. Everything runs in one transaction that is rolled back;
    definitions that do not fit the reference's tables keep their text. Nothing to do, no query."""
    jobs: list[tuple[dict, str, str, str, str, str | None]] = []  # (detail, key, kind, table, text, column)
    con_text = {side: {(t, d["def"]) for (t, _), d in cat.constraints.items() if d["type"] == "c"}
                for side, cat in (("live", live), ("ref", ref))}
    idx_text = {side: {(t, _norm_index(n, d)) for (t, n), d in cat.indexes.items() if not d["constraint"]}
                for side, cat in (("live", live), ("ref", ref))}
    for cat, other in ((live, "ref"), (ref, "live")):
        for (t, _), d in cat.constraints.items():
            if d["type"] == "c" and t in ref.tables and (t, d["def"]) not in con_text[other]:
                jobs.append((d, "canon", "c", t, d["def"], None))
        for (t, n), d in cat.indexes.items():
            if not d["constraint"] and t in ref.tables and (t, _norm_index(n, d)) not in idx_text[other]:
                jobs.append((d, "canon", "i", t, d["def"], None))
    for (t, c), dr in ref.columns.items():
        dl = live.columns.get((t, c))
        if (dl is not None and dr["type"] == dl["type"] and dr.get("default") is not None
                and dl.get("default") is not None and dr["default"] != dl["default"]):
            jobs += [(dr, "canon_default", "d", t, dr["default"], c), (dl, "canon_default", "d", t, dl["default"], c)]
    if not jobs:
        return
    async with conn.transaction(force_rollback=True):
        await conn.execute("SET LOCAL search_path = public")
        for n, (d, key, kind, table, text, column) in enumerate(jobs):
            canon = await _canonical(conn, kind, table, text, n, column)
            if canon is not None:
                d[key] = canon


async def _drop(conn, name: str) -> str | None:
    """Drop the scratch database; None, or why it could not be dropped (one line)."""
    major = conn.info.server_version // 10000
    force = q.SQL(" WITH (FORCE)") if major >= 13 else q.SQL("")
    try:
        await conn.execute(q.SQL("DROP DATABASE IF EXISTS {}{}").format(q.Identifier(name), force))
    except psycopg.Error as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return None


async def _embedded_reference(migration, live_conn, why_not: str, say,
                              live: Catalog | None = None) -> tuple[Catalog, str]:
    from aami_tui.core import embedded
    from aami_tui.core.db import connect

    say(f"Reference: {why_not}; using the embedded PostgreSQL instead.")
    try:
        pg = await asyncio.to_thread(embedded.start, "aami_reference")
    except Exception as exc:  # noqa: BLE001 - any failure to start is one sentence
        raise PlanError(f"Cannot build the reference: {why_not}, and the embedded PostgreSQL did not start "
                        f"({exc}).") from None
    try:
        cat = await _reference_catalog(await connect(pg.settings()), migration, live)
    finally:
        await asyncio.shield(asyncio.to_thread(pg.stop))
    live_major = live_conn.info.server_version // 10000
    ref_major = int(cat.server_version) // 10000
    diff = ("" if live_major == ref_major else
            f"; the server is PostgreSQL {live_major}, so a difference only one version would show is possible")
    return cat, f"the embedded PostgreSQL {_version(cat)} ({why_not}){diff}"


def _version(cat: Catalog) -> str:
    v = int(cat.server_version or 0)
    return f"{v // 10000}.{v % 10000}" if v >= 100000 else str(v)


# -------------------------------------------------------------------------------------------- items

@dataclass(frozen=True)
class Item:
    kind: str  # "safe" | "person" | "note"
    what: str  # e.g. "target_groups.is_default_own"
    title: str  # one sentence
    sql: tuple[str, ...] = ()  # safe: statements; person: suggestions (written commented out)
    facts: tuple[str, ...] = ()
    order: float = 50

    def to_dict(self) -> dict:
        return {"kind": self.kind, "what": self.what, "title": self.title, "sql": list(self.sql),
                "facts": list(self.facts)}


def _coldef(d: dict) -> str:
    out = d["type"]
    if d.get("default") is not None:
        out += f" DEFAULT {d['default']}"
    if d.get("not_null"):
        out += " NOT NULL"
    return out


def _norm_index(name: str, d: dict) -> str:
    """An index's definition without its name (its canonical form when ``canonicalise`` gave it one)."""
    return re.sub(r"^(CREATE (?:UNIQUE )?INDEX )\S+ ON (?:public\.)?", r"\1? ON ", d.get("canon", d["def"]))


_VARCHAR = re.compile(r"^character varying(?:\((\d+)\))?$")


def _widening(old: str, new: str) -> bool:
    """varchar(n) -> varchar(m >= n) or unbounded: PostgreSQL changes only the catalog."""
    a, b = _VARCHAR.match(old), _VARCHAR.match(new)
    if not (a and b) or a.group(1) is None:
        return False
    return b.group(1) is None or int(b.group(1)) >= int(a.group(1))


def _con_key(table: str, d: dict) -> tuple[str, str, str]:
    return (table, d["type"], d.get("canon", d["def"]))


class _Facts:
    """Read-only questions about the live data (autocommit, each one its own statement)."""

    def __init__(self, conn):
        self.conn = conn
        self._counts: dict[str, int] = {}

    async def one(self, query, params=None):
        cur = await self.conn.execute(query, params)
        return (await cur.fetchone())[0]

    async def count(self, table: str) -> int:
        if table not in self._counts:
            self._counts[table] = int(await self.one(q.SQL("SELECT count(*) FROM {}").format(q.Identifier(table))))
        return self._counts[table]

    async def samples(self, table: str, col: str, limit: int = 5) -> str:
        cur = await self.conn.execute(q.SQL("SELECT {c}::text, count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC, 1 "
                                            "LIMIT {n}").format(c=q.Identifier(col), t=q.Identifier(table),
                                                               n=q.Literal(limit)))
        rows = await cur.fetchall()
        if not rows:
            return "no rows"
        return ", ".join(f"{'NULL' if v is None else repr(v)} ×{n}" for v, n in rows)

    async def nulls(self, table: str, col: str) -> int:
        return int(await self.one(q.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
            q.Identifier(table), q.Identifier(col))))

    async def violations(self, table: str, d: dict) -> int | str:
        """Rows that violate a constraint of the reference (0: the data satisfies it), or a sentence."""
        t = q.Identifier(table)
        cols = [q.Identifier(c) for c in d["cols"]]
        try:
            if d["type"] == "c":
                expr = re.sub(r"^CHECK\s*", "", d["def"]).removesuffix(" NOT VALID")
                return int(await self.one(q.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(t, q.SQL(expr))))
            if d["type"] == "f":
                notnull = q.SQL(" AND ").join(q.SQL("c.{} IS NOT NULL").format(c) for c in cols)
                match = q.SQL(" AND ").join(q.SQL("p.{} = c.{}").format(q.Identifier(rc), lc)
                                            for rc, lc in zip(d["ref_cols"], cols, strict=True))
                return int(await self.one(q.SQL("SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS "
                                                "(SELECT 1 FROM {} p WHERE {})").format(
                    t, notnull, q.Identifier(d["ref_table"]), match)))
            if d["type"] in ("u", "p"):
                group = q.SQL(", ").join(cols)
                dup = int(await self.one(q.SQL("SELECT count(*) FROM (SELECT 1 FROM {} GROUP BY {} "
                                               "HAVING count(*) > 1) d").format(t, group)))
                if d["type"] == "p":
                    anynull = q.SQL(" OR ").join(q.SQL("{} IS NULL").format(c) for c in cols)
                    dup += int(await self.one(q.SQL("SELECT count(*) FROM {} WHERE {}").format(t, anynull)))
                return dup
        except psycopg.Error as exc:
            return f"cannot be checked ({str(exc).strip().splitlines()[0]})"
        return "cannot be checked (exclusion constraint)"


async def compare(live: Catalog, ref: Catalog, conn, migration: mig.MigrationFile) -> list[Item]:
    facts = _Facts(conn)
    items: list[Item] = []
    new_tables = [t for t in _file_order(migration, ref.tables) if t not in live.tables]

    # extensions
    for ext in sorted(set(ref.extensions) - set(live.extensions)):
        items.append(Item("safe", f"extension {ext}", f"extension {ext} is missing.",
                          (f"CREATE EXTENSION IF NOT EXISTS {ident(ext)};",), order=0))
    # whole tables: the migration's own statements for them
    for n, t in enumerate(new_tables):  # in the file's order: a table's foreign keys need the ones before it
        stmts = _file_statements_for(migration, t)
        items.append(Item("safe", f"table {t}", f"table {t} is missing; the migration's own statements create it "
                          "(with its keys, indexes and seed rows).", tuple(stmts), order=10 + n / 1000))
    # leftover tables
    for t in sorted(live.tables - ref.tables):
        n = await facts.count(t)
        refs = sorted({tt for (tt, _), d in live.constraints.items() if d["type"] == "f" and d.get("ref_table") == t
                       and tt != t})
        fact = [f"{plural(n, 'row')}; {len(live.table_columns(t))} columns: {', '.join(live.table_columns(t))}."]
        if refs:
            fact.append(f"Referenced by foreign keys from: {', '.join(refs)}.")
        items.append(Item("person", f"table {t}", f"table {t} is not created by {migration.name} (a leftover, or "
                          "a table of your own).", (f"DROP TABLE {ident(t)};",), tuple(fact), order=90))

    common = sorted(ref.tables & live.tables)
    added_cols: dict[tuple[str, str], dict] = {}
    for t in common:
        ref_cols = [c for c in ref.table_columns(t)]
        live_cols = set(live.table_columns(t))
        missing = [c for c in ref_cols if c not in live_cols]
        extra = [c for c in live.table_columns(t) if c not in set(ref_cols)]
        # renamed? an extra and a missing column of the same type
        pairs = []
        for e in list(extra):
            m = next((m for m in missing if ref.columns[(t, m)]["type"] == live.columns[(t, e)]["type"]), None)
            if m is not None:
                pairs.append((e, m))
                extra.remove(e)
                missing.remove(m)
        for e, m in pairs:
            d_ref, d_live = ref.columns[(t, m)], live.columns[(t, e)]
            n = await facts.count(t)
            items.append(Item(
                "person", f"{t}.{e} → {m}",
                f"{t} has {e} ({_coldef(d_live)}), which {migration.name} does not create, and lacks {m} "
                f"({_coldef(d_ref)}): probably the same column under an older name.",
                (f"ALTER TABLE {ident(t)} RENAME COLUMN {ident(e)} TO {ident(m)};",
                 f"ALTER TABLE {ident(t)} ADD COLUMN {ident(m)} {_coldef(d_ref)};  "
                 f"-- and decide about {e}: ALTER TABLE {ident(t)} DROP COLUMN {ident(e)};"),
                (f"{plural(n, 'row')}; {e}: {await facts.samples(t, e)}.",), order=15))
        for m in missing:
            d = ref.columns[(t, m)]
            n = await facts.count(t)
            add = f"ALTER TABLE {ident(t)} ADD COLUMN IF NOT EXISTS {ident(m)} {_coldef(d)};"
            if not d["not_null"] or d.get("default") is not None:
                how = (f"every existing row gets its default {d['default']}" if d.get("default") is not None
                       else "existing rows get NULL")
                items.append(Item("safe", f"{t}.{m}", f"column {t}.{m} ({_coldef(d)}) is missing; the table has "
                                  f"{plural(n, 'row')} and {how}.", (add,), order=20))
                added_cols[(t, m)] = d
            elif n == 0:
                items.append(Item("safe", f"{t}.{m}", f"column {t}.{m} ({_coldef(d)}) is missing; the table is "
                                  "empty, so NOT NULL without a default is safe.", (add,), order=20))
                added_cols[(t, m)] = d
            else:
                items.append(Item(
                    "person", f"{t}.{m}", f"column {t}.{m} ({_coldef(d)}) is missing and has no default, but "
                    f"{t} has {plural(n, 'row')}: each needs a value.",
                    (f"ALTER TABLE {ident(t)} ADD COLUMN {ident(m)} {d['type']};",
                     f"UPDATE {ident(t)} SET {ident(m)} = /* value */ WHERE {ident(m)} IS NULL;",
                     f"ALTER TABLE {ident(t)} ALTER COLUMN {ident(m)} SET NOT NULL;"),
                    (f"{plural(n, 'row')}.",), order=15))
        for e in extra:
            d = live.columns[(t, e)]
            n = await facts.count(t)
            fact = [f"{plural(n, 'row')}; {e}: {await facts.samples(t, e)}."]
            if d["not_null"] and d.get("default") is None:
                fact.append("NOT NULL without a default: the Config Server's INSERTs, which do not know this "
                            "column, fail.")
            items.append(Item("person", f"{t}.{e}", f"column {t}.{e} ({_coldef(d)}) is not created by "
                              f"{migration.name}.", (f"ALTER TABLE {ident(t)} DROP COLUMN {ident(e)};",),
                              tuple(fact), order=50))
        # same column, different definition
        for c in ref_cols:
            if c not in live_cols:
                continue
            dr, dl = ref.columns[(t, c)], live.columns[(t, c)]
            col = f"ALTER TABLE {ident(t)} ALTER COLUMN {ident(c)}"
            if dr["type"] != dl["type"] and _widening(dl["type"], dr["type"]):
                items.append(Item("safe", f"{t}.{c} type", f"column {t}.{c} is {dl['type']}; {migration.name} makes "
                                  f"it {dr['type']} (wider: no rewrite, every value fits).",
                                  (f"{col} TYPE {dr['type']};",), order=24))
            elif dr["type"] != dl["type"]:
                items.append(Item("person", f"{t}.{c} type", f"column {t}.{c} is {dl['type']}; {migration.name} "
                                  f"makes it {dr['type']}.", (f"{col} TYPE {dr['type']} USING {ident(c)}::{dr['type']};",),
                                  (f"{plural(await facts.count(t), 'row')}; values: {await facts.samples(t, c)}.",), order=16))
            if dr.get("canon_default", dr.get("default")) != dl.get("canon_default", dl.get("default")):
                stmt = f"{col} SET DEFAULT {dr['default']};" if dr.get("default") is not None else f"{col} DROP DEFAULT;"
                items.append(Item("safe", f"{t}.{c} default", f"column {t}.{c} has default "
                                  f"{dl.get('default') or 'none'}; {migration.name} gives it "
                                  f"{dr.get('default') or 'none'} (existing rows keep their values).", (stmt,), order=25))
            if dr["not_null"] and not dl["not_null"]:
                nulls = await facts.nulls(t, c)
                if nulls == 0:
                    items.append(Item("safe", f"{t}.{c} NOT NULL", f"column {t}.{c} is nullable; {migration.name} "
                                      "makes it NOT NULL, and no row holds NULL (checked).", (f"{col} SET NOT NULL;",),
                                      order=25))
                else:
                    items.append(Item("person", f"{t}.{c} NOT NULL", f"column {t}.{c} should be NOT NULL but "
                                      f"{plural(nulls, 'row holds', 'rows hold')} NULL.",
                                      (f"UPDATE {ident(t)} SET {ident(c)} = /* value */ WHERE {ident(c)} IS NULL;",
                                       f"{col} SET NOT NULL;"), (f"{nulls:,} of {plural(await facts.count(t), 'row')} are NULL.",),
                                      order=16))
            elif dl["not_null"] and not dr["not_null"]:
                items.append(Item("safe", f"{t}.{c} nullable", f"column {t}.{c} is NOT NULL; {migration.name} "
                                  "allows NULL (relaxing it never fails).", (f"{col} DROP NOT NULL;",), order=25))

    # columns a part for a person decides about (renamed, or NOT NULL without a default on rows)
    pending = {(t, c) for t in common for c in ref.table_columns(t)
               if (t, c) not in live.columns and (t, c) not in added_cols}

    deciding: dict[tuple[str, str], str] = {}  # pending column -> the person's part that decides it
    for i in items:
        if i.kind == "person":
            head, _, to = i.what.partition(" → ")
            key = (head.partition(".")[0], to or head.partition(".")[2])
            if key in pending:
                deciding.setdefault(key, i.what)

    def waits_for(t: str, cols, checked: bool = True) -> str:
        """Words for a part that needs a column a person's part decides about: such a part is a person's too (it
        runs only if that column is made), never "safe"."""
        need = [c for c in cols if (t, c) in pending]
        if not need:
            return ""
        by = "; ".join(sorted({deciding.get((t, c), f"{t}.{c}") for c in need}))
        return (f" It needs column {', '.join(need)}, which a part above leaves to a person ({by}): uncomment it once "
                "that column exists, leave it commented out if the table stays without it."
                + (" Not checked against the data: if rows violate it, apply stops at this statement and rolls back."
                   if checked else ""))

    # constraints
    live_keys = {_con_key(t, d) for (t, _), d in live.constraints.items()}
    ref_keys = {_con_key(t, d) for (t, _), d in ref.constraints.items()}
    order = {"p": 30, "u": 31, "c": 32, "f": 33, "x": 34}
    kind_words = {"p": "primary key", "u": "unique constraint", "c": "check constraint", "f": "foreign key",
                  "x": "exclusion constraint"}
    for (t, name), d in sorted(ref.constraints.items(), key=lambda kv: (order[kv[1]["type"]], kv[0])):
        if t not in live.tables or _con_key(t, d) in live_keys:
            continue
        kind_word = kind_words[d["type"]]
        add = (f"ALTER TABLE {ident(t)} ADD CONSTRAINT {ident(name)} "
               f"{ref.check_sources.get((t, d['def']), d['def'])};")
        what = f"{t} constraint {name}"
        taken = live.constraints.get((t, name))
        stmts: tuple[str, ...] = (add,)
        title = f"{kind_word} {name} on {t} is missing"
        if taken is not None:
            stmts = (f"ALTER TABLE {ident(t)} DROP CONSTRAINT {ident(name)};", add)
            title = f"{kind_word} {name} on {t} is {taken['def']} here; {migration.name} makes it {d['def']}"
        wait = waits_for(t, d["cols"])
        if wait:
            items.append(Item("person", what, title + "." + wait, stmts, order=order[d["type"]] + 10))
            continue
        new_cols = [c for c in d["cols"] if (t, c) in added_cols]
        if d["type"] in ("c", "f") and new_cols and len(new_cols) == len(d["cols"]):
            why = "its columns are new (every row holds the default), as in the migration"
            bad: int | str = 0
        elif any((t, c) not in live.columns for c in d["cols"]):
            continue  # pragma: no cover - every missing column is either added or pending
        elif d["type"] == "f" and any((d["ref_table"], c) not in live.columns for c in d["ref_cols"]):
            # the referenced table is created by this plan (empty): only rows without a key satisfy it
            why = f"{d['ref_table']} is new, and no row of {t} refers to anything (checked)"
            bad = int(await facts.one(q.SQL("SELECT count(*) FROM {} WHERE {}").format(
                q.Identifier(t), q.SQL(" AND ").join(q.SQL("{} IS NOT NULL").format(q.Identifier(c))
                                                      for c in d["cols"]))))
        else:
            bad = await facts.violations(t, d)
            why = "the data satisfies it (checked)"
        if bad == 0:
            items.append(Item("safe", what, f"{title}; {why}.", stmts, order=order[d["type"]]))
        else:
            fact = (f"{bad:,} of {plural(await facts.count(t), 'row')} {'violates' if bad == 1 else 'violate'} it."
                    if isinstance(bad, int) else bad,)
            items.append(Item("person", what, f"{title}, and the data does not satisfy it: fix the rows first.",
                              stmts, fact, order=60))
    for (t, name), d in sorted(live.constraints.items()):
        if t in ref.tables and _con_key(t, d) not in ref_keys and (t, name) not in ref.constraints:
            items.append(Item("note", f"{t} constraint {name}", f"{t} has a constraint {name} ({d['def']}) that "
                              f"{migration.name} does not create; it stays.", order=95))

    # indexes (those behind constraints come with the constraints)
    live_idx = {(t, _norm_index(n, d)) for (t, n), d in live.indexes.items()}
    ref_idx = {(t, _norm_index(n, d)) for (t, n), d in ref.indexes.items()}
    for (t, name), d in sorted(ref.indexes.items()):
        if d["constraint"] or t not in live.tables or (t, _norm_index(name, d)) in live_idx:
            continue
        what = f"index {name}"
        create = re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX IF NOT EXISTS ", d["def"]) + ";"
        n = await facts.count(t)
        cols = [c for c in ref.table_columns(t) if re.search(rf"\b{re.escape(c)}\b", d["def"].split(" USING ", 1)[-1])]
        wait = waits_for(t, cols, checked=d["unique"])
        old = live.indexes.get((t, name))
        if old is not None and not old["constraint"]:
            stmts = (f"DROP INDEX IF EXISTS {ident(name)};", create)
            title = (f"index {name} on {t} is {old['def'].split(' USING ', 1)[-1]} here; {migration.name} makes it "
                     f"{d['def'].split(' USING ', 1)[-1]}; rebuilding it locks {t} against writes while it reads "
                     f"{plural(n, 'row')}")
        elif old is not None:
            items.append(Item("person", what, f"index {name} on {t} belongs to a constraint here; "
                              f"{migration.name} makes it a plain index ({d['def']}).", (create,), order=60))
            continue
        else:
            stmts = (create,)
            title = f"index {name} on {t} is missing; building it locks {t} against writes while it reads {plural(n, 'row')}"
        if d["unique"] and n:
            items.append(Item("person", what, f"{title}; it is unique and {t} has rows: check for duplicates first.",
                              stmts, (f"{plural(n, 'row')}.",), order=60))
        else:
            items.append(Item("person" if wait else "safe", what, title + "." + wait, stmts, order=70))
    for (t, name), d in sorted(live.indexes.items()):
        if (t in ref.tables and not d["constraint"] and (t, _norm_index(name, d)) not in ref_idx
                and (t, name) not in ref.indexes):
            items.append(Item("note", f"index {name}", f"index {name} on {t} is not created by {migration.name}; "
                              "it stays (it costs writes, it never breaks the server).", order=96))

    # seed rows
    for t, (key, rows) in sorted(ref.seed.items()):
        if t not in live.tables or any((t, k) not in live.columns for k in key):
            continue
        cur = await conn.execute(q.SQL("SELECT {} FROM {}").format(
            q.SQL(", ").join(q.SQL("{}::text").format(q.Identifier(c)) for c in ref.table_columns(t)
                             if (t, c) in live.columns), q.Identifier(t)))
        live_cols = [c for c in ref.table_columns(t) if (t, c) in live.columns]
        have = {}
        for r in await cur.fetchall():
            rec = dict(zip(live_cols, r, strict=True))
            have[tuple(rec[k] for k in key)] = rec
        stable = [c for c in ref.table_columns(t) if c in key or not _VOLATILE.search(ref.columns[(t, c)].get("default") or "")]
        missing = [k for k in rows if k not in have]
        if missing:
            stmts = []
            for k in missing:
                rec = rows[k]
                cols = [c for c in stable if (t, c) in live.columns or (t, c) in added_cols]
                stmts.append(f"INSERT INTO {ident(t)} ({', '.join(ident(c) for c in cols)}) VALUES "
                             f"({', '.join(literal(rec[c]) for c in cols)}) ON CONFLICT "
                             f"({', '.join(ident(c) for c in key)}) DO NOTHING;")
            items.append(Item("safe", f"{t} seed rows", f"{len(missing)} of {migration.name}'s {plural(len(rows), 'seed row')} "
                              f"{'is' if len(missing) == 1 else 'are'} missing from {t} ({', '.join('/'.join(k) for k in missing)}).", tuple(stmts),
                              order=80))
        changed = [k for k in rows if k in have and any(have[k].get(c) != rows[k][c] for c in stable
                                                         if c in have[k])]
        if changed:
            items.append(Item("note", f"{t} seed rows edited", f"{plural(len(changed), 'seed row')} of {t} "
                              f"{'differs' if len(changed) == 1 else 'differ'} from "
                              f"{migration.name}'s ({', '.join('/'.join(k) for k in changed)}); the migration never "
                              "updates existing rows, so they stay.", order=97))
    items.sort(key=lambda i: (i.kind == "note", i.order, i.what))
    return items


def _file_order(migration: mig.MigrationFile, tables) -> list[str]:
    return [t for t in migration.tables if t in tables]


def _file_statements_for(migration: mig.MigrationFile, table: str) -> list[str]:
    """The migration's own statements that create `table`, its indexes and its seed rows, in file order."""
    from aami_tui.core.lint import _statements

    out = []
    for s, st in zip(_statements(migration.text), migration.statements, strict=True):
        if s.creates == table or (s.table == table and st.kind in ("IndexStmt", "InsertStmt")):
            out.append(st.sql.rstrip().rstrip(";") + ";")
    return out


# --------------------------------------------------------------------------------------------- plan

@dataclass
class Plan:
    migration: mig.MigrationFile
    reference: str
    database: str
    items: list[Item]
    generated: datetime = field(default_factory=lambda: datetime.now(UTC))

    def of(self, kind: str) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    @property
    def differences(self) -> bool:
        """Anything to do (notes alone are not differences)."""
        return bool(self.of("safe") or self.of("person"))

    def summary(self) -> str:
        s, p, n = len(self.of("safe")), len(self.of("person")), len(self.of("note"))
        if not self.differences:
            return f"No differences from {self.migration.name}" + (f" ({n} notes)." if n else ".")
        return f"{s} safe (SQL), {p} need a person, {n} notes."

    def to_dict(self) -> dict:
        return {"database": self.database, "reference": self.reference, "migration": str(self.migration.path),
                "migration_sha256": self.migration.sha256, "differences": self.differences,
                "summary": self.summary(), "items": [i.to_dict() for i in self.items]}

    def render(self, output_name: str = "plan.sql") -> str:
        from aami_tui import __version__

        m = self.migration
        out = [f"-- aami-tui drift plan for {self.database}",
               f"-- Generated {self.generated:%Y-%m-%d %H:%M} UTC by aami-tui {__version__}.",
               f"-- Reference: {m.path.name} (sha256 {m.sha256[:12]}…) run in {self.reference}.",
               "-- Compared catalogs, never SQL text: tables, columns (type, nullability, default), constraints,",
               "-- indexes, extensions, seed rows.",
               f"-- {self.summary()}",
               "--",
               "-- Review it (it is yours to edit), then run it through the runbook (backup, BEGIN, apply, verify,",
               "-- COMMIT):",
               f"--   aami-tui lint {output_name}",
               f"--   aami-tui apply --migration-file {output_name} --yes      (or the console: --migration-file)",
               ]
        if self.of("person"):
            out += ["--",
                    f"-- It cannot be applied yet: each part marked '{PERSON_MARKER}' needs a decision. Write the SQL",
                    "-- you decide (uncomment a suggestion, or nothing), then delete that marker line."]
        out.append("")
        persons = self.of("person")
        n = 0
        for i in self.items:
            if i.kind == "safe":
                out.append(f"-- {i.title}")
                out += list(i.sql)
            elif i.kind == "person":
                n += 1
                out.append(f"{PERSON_MARKER} {i.what}")
                out.append(f"-- ({n} of {len(persons)} parts for a person) {i.title}")
                out += [f"-- Facts: {f}" for f in i.facts]
                out.append("-- Suggestions (nothing runs until you uncomment it):")
                out += [f"-- {s}" for s in i.sql]
            else:
                continue
            out.append("")
        if self.of("note"):
            out += ["-- ==================================== Notes ====================================", ""]
            out += [f"-- {i.title}" for i in self.of("note")]
            out.append("")
        return "\n".join(out)


async def make_plan(settings, migration_path: Path | str,
                    say: Callable[[str], None] = lambda _m: None) -> Plan:
    """Connect, build the reference, compare, classify. Raises PlanError or ConnectError."""
    from aami_tui.core.db import connect

    try:
        migration = mig.load(migration_path)
    except mig.MigrationError as exc:
        raise PlanError(str(exc)) from None
    conn = await connect(settings)
    try:
        info = conn.info
        where = f"{info.dbname} on {info.host}:{info.port}"
        say(f"Reading the catalog of {where}.")
        live = await snapshot(conn)
        if left := leftovers.note(await leftovers.find(conn)):  # an earlier run killed outright (SIGKILL)
            say(left)
        ref, reference = await build_reference(conn, settings, migration, say, live)
        say("Comparing catalogs.")
        items = await compare(live, ref, conn, migration)
        from aami_tui.core.obstacles import objects_in_the_way

        # what would make the plan (and the migration) build in the wrong place, or fail half-way
        items[:0] = [Item("person", f"in the way: {o.name or 'search_path'}", o.message, order=1)
                     for o in await objects_in_the_way(conn)]
        v = info.server_version
        database = f"{where} (PostgreSQL {v // 10000}.{v % 10000})"
        return Plan(migration, reference, database, items)
    finally:
        await conn.close()


# ------------------------------------------------------------------------------------- the plan file

REVIEW_PARSE_TIMEOUT = 60.0  # the helper process that parses the plan (a plan is small; 001 takes ~0.3 s)
REVIEW_QUERY_TIMEOUT = 15.0  # the connection and the live-facts query


@dataclass(frozen=True)
class FileReview:
    """A plan file as it is on disk now (the operator edits it outside the console): its fingerprint, the parts
    still marked for a person, whether ``apply`` would run it (the same rule: ``migration.load``) and its lint
    (the same core lint as ``aami-tui lint``: squawk, live facts, the runbook's refusals)."""

    path: Path
    sha256: str | None = None
    size: int | None = None
    unedited: tuple[tuple[int, str, str], ...] = ()  # (line, part, its sentence) still marked for a person
    refusal: str | None = None  # apply's one sentence, None when the runbook would take the file
    lint: object | None = None  # core.lint.LintResult, None when it could not run
    problem: str | None = None  # why the lint is missing or partial (no connection, helper failed)
    header: dict | None = None  # the plan's own header (for whom, when, which reference)
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def runnable(self) -> bool:
        return self.sha256 is not None and self.refusal is None

    def refusal_sentence(self) -> str | None:
        """The one sentence that says why the runbook refuses the file now (which parts need a person)."""
        if self.runnable:
            return None
        if self.unedited:
            parts = "; ".join(f'"{what}" (line {line})' for line, what, _ in self.unedited[:3])
            more = f" and {len(self.unedited) - 3} more" if len(self.unedited) > 3 else ""
            n = len(self.unedited)
            return (f"{self.path.name} cannot run yet: {n} part{'s' if n > 1 else ''} still need{'' if n > 1 else 's'}"
                    f" a person: {parts}{more}; edit the file, delete each \"{PERSON_MARKER}\" line, then re-read it.")
        return self.refusal or f"{self.path} cannot be read."


def _unedited(text: str) -> tuple[tuple[int, str, str], ...]:
    """The parts still marked for a person, each with the sentence ``render`` wrote under its marker."""
    lines = text.splitlines()
    out = []
    for line, part in mig.unedited_parts(text):
        after = lines[line] if line < len(lines) else ""
        m = re.match(r"--\s*(?:\(\d+ of \d+ parts for a person\)\s*)?(.*)", after.strip())
        out.append((line, part, m.group(1) if m and m.group(1) else "needs a person's decision"))
    return tuple(out)


async def review_file(settings, path: Path | str) -> FileReview:
    """Re-read a plan file and lint it as ``aami-tui lint`` does (connected: live row estimates and sizes).
    Parsing and squawk run in a helper process (core/offload.py), the queries with a timeout; a database that
    cannot be reached leaves the lint offline, and says so."""
    from aami_tui.core import lint, offload
    from aami_tui.core.db import ConnectError, connect

    path = Path(path).expanduser()
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        return FileReview(path, refusal=f"{path} cannot be read: {exc.strerror or exc}.")
    import hashlib

    text = data.decode("utf-8", errors="replace")
    base = dict(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                unedited=_unedited(text), header=mig.drift_plan_header(text))

    async def off(fn, *args, timeout: float):
        try:
            return await offload.call(fn, *args, timeout=timeout)
        except (OSError, offload.OffloadError):  # no helper process: in a thread, as the pre-flight does
            return await asyncio.to_thread(fn, *args)

    try:
        facts = await off(lint.file_facts, path, timeout=REVIEW_PARSE_TIMEOUT)
    except TimeoutError:
        return FileReview(**base, refusal=f"{path.name} could not be parsed within {REVIEW_PARSE_TIMEOUT:.0f} s.",
                          problem="not linted: parsing timed out")
    live = indexes = version = None
    problem = None
    try:
        conn = await asyncio.wait_for(connect(settings), REVIEW_QUERY_TIMEOUT)
        try:
            live, indexes = await asyncio.wait_for(lint.live_facts(conn, path, facts.names or frozenset()),
                                                   REVIEW_QUERY_TIMEOUT)
            version = f"{conn.info.server_version // 10000}.0"
        finally:
            await conn.close()
    except (ConnectError, psycopg.Error, TimeoutError) as exc:
        live = None
        problem = (f"no live facts ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'timed out'}): "
                   "tables the plan creates are assumed new, and no row counts or sizes are shown")
    try:
        res = await off(lint.lint, path, live, version, None, indexes or frozenset(),
                        timeout=REVIEW_PARSE_TIMEOUT + lint.SQUAWK_TIMEOUT)
    except (TimeoutError, OSError, ValueError) as exc:
        return FileReview(**base, refusal=facts.error, problem=f"not linted ({exc or 'timed out'})")
    return FileReview(**base, refusal=facts.error, lint=res, problem=problem)
