"""``aami-tui init``: the guide's "New Developer Setup", headless, in one command.

Create the database if it is missing, apply ``001_initial_schema.sql`` in one transaction through the
runbook engine (no backup: the database is empty), verify, COMMIT, and hand back the Config Server's
DB_* lines (never the password). It never drops anything: a database that already holds tables gets one
sentence sending the developer to the production runbook instead; a migrated database is "nothing to do".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql as q

from aami_tui.core import db, files, schema, status
from aami_tui.core import migration as mig
from aami_tui.core.queries import sql
from aami_tui.core.runbook import Event, Options, Runbook, RunbookError, State, Step, StepChanged
from aami_tui.core.settings import ConnSettings
from aami_tui.core.words import plural

# Exit codes of `aami-tui init` (README: "aami-tui init").
EXIT_READY = 0  # migrated now, or it already was ("nothing to do")
EXIT_VERIFY_FAILED = 1  # rolled back
EXIT_CONNECT = 2  # cannot connect, or cannot create the missing database
EXIT_PREFLIGHT = 3  # the migration file or a pre-flight check refused: nothing was done
EXIT_APPLY_FAILED = 5  # a statement failed: rolled back
EXIT_LOCKED = 7  # another operator holds the migration lock
# 8 (COMMIT rejected) and 9 (COMMIT outcome unknown) come from the engine, as for `aami-tui apply`
EXIT_NOT_EMPTY = 10  # the database holds tables: nothing was done; use the production runbook
EXIT_INTERRUPTED = 130

Say = Callable[[str], None]


@dataclass
class InitResult:
    code: int
    message: str  # the last sentence: what happened, or why not and what to do
    env_lines: list[str] = field(default_factory=list)  # DB_HOST=… (never the password)
    created_database: bool = False
    applied: bool = False
    report: Path | None = None


@dataclass(frozen=True)
class Inspection:
    result: schema.ValidationResult
    relations: tuple[tuple[str, str, str], ...]  # (schema, name, relkind) of user relations
    templates: int | None  # default alert templates present (None: no alert_templates table)
    server: status.ServerStatus

    @property
    def migrated(self) -> bool:
        r = self.result
        return r.ok and not r.drifted and self.templates == 6

    @property
    def empty(self) -> bool:
        return not self.relations


async def inspect(conn, expected: dict[str, tuple[str, ...]] | None) -> Inspection:
    res = await schema.validate(conn, expected)
    cur = await conn.execute(sql("user_relations"))
    rels = tuple((r[0], r[1], r[2]) for r in await cur.fetchall())
    templates = None
    if "alert_templates" in res.present:
        cur = await conn.execute(sql("alert_templates_count"))
        templates = (await cur.fetchone())[0]
    return Inspection(res, rels, templates, await status.server_status(conn))


def runbook_sentence(dbname: str, why: str, drifted: bool = False) -> str:
    head = (f"Database {dbname} {why}, so init does nothing (it never drops anything and only sets up empty "
            "development databases); ")
    if drifted:  # apply refuses drift (IF NOT EXISTS never repairs it): the way forward is the drift plan
        return head + ("repair it with a drift plan, run through the production runbook, which backs it up first: "
                       "`aami-tui plan --output plan.sql` (or the console's p (the Drift view)), review the file, "
                       "then `aami-tui apply --migration-file plan.sql --yes`.")
    return head + ("migrate it with the production runbook, which backs it up first: "
                   "`aami-tui` (the console) or `aami-tui apply --yes`.")


def not_empty_reason(ins: Inspection) -> str:
    r = ins.result
    if r.drifted:
        return (f"has tables {', '.join(r.drifted)} with columns that differ from 001_initial_schema.sql "
                "(built by the archived migrations?)")
    if r.ok and ins.templates != 6:
        return f"has the ten tables but {ins.templates or 0} / 6 default alert templates"
    tables = [f"{s}.{n}" if s != "public" else n for s, n, k in ins.relations if k in ("r", "p")]
    others = len(ins.relations) - len(tables)
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    if tables:
        return (f"is not empty ({len(tables)} table{'s' if len(tables) != 1 else ''}: {shown}"
                + (f", plus {plural(others, 'view or sequence', 'views or sequences')}" if others else "") + ")")
    return f"is not empty ({plural(others, 'view or sequence', 'views or sequences')})"


def _create_error(exc: BaseException, s: ConnSettings) -> str:
    user, name = s.user, s.dbname
    if isinstance(exc, db.ConnectError):
        return (f"Database {name} does not exist, and it cannot be created: connecting to the maintenance database "
                f"postgres failed: {exc}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        stmt = f'CREATE DATABASE {q.Identifier(name).as_string()} OWNER {q.Identifier(user).as_string()};'
        return (f'Database {name} does not exist and user "{user}" may not create databases; ask an administrator '
                f"to run {stmt} (or ALTER ROLE … CREATEDB), then run aami-tui init again.")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"Database {name} does not exist and CREATE DATABASE failed: {first}."


async def run_init(settings: ConnSettings, migration_path: Path, *, reports_dir: Path = Path("reports"),
                   lock_timeout: float = 5.0, statement_timeout: float = 300.0, say: Say = print) -> InitResult:
    """The whole day-one setup. ``say`` gets one line per thing that happened (for stderr)."""
    dbname = settings.dbname
    try:
        mf = mig.load(migration_path)
    except mig.MigrationError as exc:
        return InitResult(EXIT_PREFLIGHT, str(exc))
    created = False
    try:
        conn = await db.connect(settings)
    except db.ConnectError as exc:
        if exc.kind != "no_database":
            return InitResult(EXIT_CONNECT, str(exc))
        try:
            await db.create_database(settings)
        except (db.ConnectError, psycopg.Error) as cexc:
            return InitResult(EXIT_CONNECT, _create_error(cexc, settings))
        created = True
        say(f"Created database {dbname} on {settings.host}:{settings.port} (CREATE DATABASE: the guide's step 1).")
        try:
            conn = await db.connect(settings)
        except db.ConnectError as exc2:
            return InitResult(EXIT_CONNECT, str(exc2), created_database=True)
    try:
        ins = await inspect(conn, mf.tables)
    finally:
        await conn.close()
    env = status.config_server_env(ins.server)
    if ins.migrated:
        return InitResult(EXIT_READY, f"Nothing to do: {dbname} already has the ten required tables and the six "
                                      "default alert templates.", env)
    if not ins.empty:
        return InitResult(EXIT_NOT_EMPTY, runbook_sentence(dbname, not_empty_reason(ins), bool(ins.result.drifted)), env)

    def listen(e: Event) -> None:
        if isinstance(e, StepChanged) and e.step not in (Step.BACKUP, Step.COMMIT) and e.record.state == State.DONE:
            say(f"✓ {e.step.title}: {e.record.detail}")

    opts = Options(reports_dir=reports_dir, lock_timeout=lock_timeout, statement_timeout=statement_timeout,
                   skip_backup=True, skip_backup_why="init: the database is empty")
    rb = Runbook(settings, migration_path, opts, listen, interactive=False)
    step = Step.PREFLIGHT
    result: InitResult | None = None
    try:
        await rb.preflight()
        step = Step.BACKUP
        await rb.backup_step()
        say("– Backup: skipped (the database is empty; recorded in the report)")
        step = Step.BEGIN
        await rb.begin()
        step = Step.APPLY
        await rb.apply()
        step = Step.VERIFY
        await rb.verify()
        step = Step.COMMIT
        lines = await rb.commit(dbname)
        for line in lines:
            say(line)
        result = InitResult(EXIT_READY, f"{dbname} is ready: {mf.name} applied in one transaction "
                                        f"({len(mf.statements)} statements), verified and committed.", env,
                            created, True)
    except RunbookError as exc:
        if rb.tx_open:
            await rb.rollback("step failed")
        if exc.verdict is not None:  # the engine's typed outcome: the same codes as `aami-tui apply`
            code = exc.verdict.exit_code
        else:
            code = {Step.PREFLIGHT: EXIT_PREFLIGHT, Step.VERIFY: EXIT_VERIFY_FAILED,
                    Step.APPLY: EXIT_APPLY_FAILED}.get(step, EXIT_CONNECT)
        result = InitResult(code, str(exc), [], created)
    except asyncio.CancelledError:
        result = InitResult(EXIT_INTERRUPTED, "Interrupted: rolled back, nothing was changed"
                            + (f" (the database {dbname} it created stays, empty)." if created else "."),
                            [], created)
    finally:
        await asyncio.shield(rb.close("init ended"))
        if result is not None and rb.report_paths:
            result.report = rb.report_paths[0]
    return result


def env_file_words(given: Path, written: Path, lines: list[str]) -> str:
    """What init says after writing the env file: which lines, where (through a symbolic link, if it was one) and
    whether DB_PASSWORD is there already (kept as it was) or still to be added."""
    names = ", ".join(ln.split("=")[0] for ln in lines)
    given = Path(given).expanduser()
    where = f"{written} (through the symbolic link {given})" if given.is_symlink() else f"{written}"
    has_password = False
    with contextlib.suppress(OSError, UnicodeDecodeError):
        has_password = any(ln.split("=", 1)[0].strip().removeprefix("export ").strip() == "DB_PASSWORD"
                           and ln.split("=", 1)[1].strip() not in ("", "''", '""')
                           for ln in written.read_text(encoding="utf-8").splitlines() if "=" in ln)
    return (f"Wrote {names} to {where} (0600); "
            + ("its DB_PASSWORD line is kept as it was." if has_password else "add DB_PASSWORD yourself."))


def write_env_file(path: Path, lines: list[str]) -> Path:
    """Write (or update) an env file for ``source`` / docker compose, owner-only (0600).

    An existing file keeps its other lines (a DB_PASSWORD you added, say); only the DB_HOST/DB_PORT/
    DB_USER/DB_NAME lines are replaced. Written to a temporary file then renamed: never half-written. A symbolic
    link is followed (the file it points to is updated and the link stays; ``env_file_words`` says so): the rename
    would otherwise replace the link with a copy and leave the file it points to as it was.
    """
    path = Path(path).expanduser()
    if path.is_symlink():
        path = path.resolve()
    new = dict(line.split("=", 1) for line in lines)
    kept: list[str] = []
    if path.exists():
        for raw in path.read_text(encoding="utf-8").splitlines():
            key = raw.split("=", 1)[0].strip().removeprefix("export ").strip()
            if key not in new:
                kept.append(raw)
    else:
        kept = ["# AAMI Config Server database settings, written by `aami-tui init`.",
                "# DB_PASSWORD is never written here: add it yourself (or set it in the environment)."]
    body = "\n".join([*kept, *(f"{k}={v}" for k, v in new.items())]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)  # the user's own folder: its mode is theirs
    return files.write_private(path, body)

