"""The runbook engine: the guide's production procedure as a state machine.

One engine for both faces: the TUI displays and drives it; ``aami-tui apply`` drives it headless.
Steps run in order; ``can(step)`` says what may follow what (and why not); everything that happens
is recorded for the run report. The engine never imports Textual.

Step order: PREFLIGHT -> BACKUP -> BEGIN -> APPLY -> VERIFY -> COMMIT | ROLLBACK.
ROLLBACK is available whenever the migration transaction is open; after a ROLLBACK the whole
transaction can be retried from BEGIN (the backup stays valid).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg import errors as pgerr

from aami_tui.core import locks, pgtools, schema
from aami_tui.core import migration as mig
from aami_tui.core.db import ConnectError, connect
from aami_tui.core.queries import sql
from aami_tui.core.settings import ConnSettings
from aami_tui.core.status import server_status

PREFLIGHT_ITEMS: tuple[tuple[str, str], ...] = (
    ("review", "Reviewed the migration SQL"),
    ("staging", "Tested the migration on staging first"),
    ("window", "Maintenance window scheduled and started"),
    ("rollback_plan", "Rollback plan prepared"),
    ("stakeholders", "Stakeholders notified"),
)


class Step(StrEnum):
    PREFLIGHT = "preflight"
    BACKUP = "backup"
    BEGIN = "begin"
    APPLY = "apply"
    VERIFY = "verify"
    COMMIT = "commit"
    ROLLBACK = "rollback"

    @property
    def title(self) -> str:
        return {"preflight": "Pre-flight", "backup": "Backup", "begin": "BEGIN", "apply": "Apply",
                "verify": "Verify", "commit": "COMMIT", "rollback": "ROLLBACK"}[self.value]


STEP_ORDER = (Step.PREFLIGHT, Step.BACKUP, Step.BEGIN, Step.APPLY, Step.VERIFY, Step.COMMIT)


class State(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Tx(StrEnum):
    NONE = "no transaction"
    OPEN = "transaction open"
    ABORTED = "transaction aborted (ROLLBACK only)"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    LOST = "connection lost (server rolled back)"


class Outcome(StrEnum):
    IN_PROGRESS = "in progress"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"
    ABANDONED = "abandoned (nothing changed)"


class RunbookError(Exception):
    """A step could not run or failed; the message is what the operator reads."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    blocking: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "blocking": self.blocking}


@dataclass
class StepRecord:
    step: Step
    state: State = State.PENDING
    started: float | None = None
    ended: float | None = None
    detail: str = ""

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


@dataclass
class StatementRecord:
    index: int
    summary: str
    line: int
    tag: str = ""
    seconds: float = 0.0
    ok: bool = True
    error: str = ""
    attempt: int = 1


@dataclass
class Blocker:
    pid: int
    user: str
    application_name: str
    state: str
    query_start: object
    query: str
    client: str = ""

    def describe(self) -> str:
        since = self.query_start.strftime("%H:%M:%S") if hasattr(self.query_start, "strftime") else "?"
        q = " ".join((self.query or "").split())
        q = q[:80] + "…" if len(q) > 80 else q
        return (f"pid {self.pid}, user {self.user}, application '{self.application_name or '-'}', "
                f"{self.state}, query started {since}: {q}")


@dataclass
class LockWatch:
    xact_age: float | None
    idle_for: float | None
    waiters: list[dict]
    warning: str = ""  # set past Options.idle_warn_seconds: what the faces show prominently


# ---- events the faces listen to -------------------------------------------------------------
@dataclass
class Event:
    kind: str  # "step", "log", "progress", "statement", "tx", "checks", "report"
    step: Step | None = None
    message: str = ""
    level: str = "info"  # info / ok / warn / error
    done: int = 0
    total: int = 0
    data: object = None


Listener = Callable[[Event], None]


@dataclass
class Options:
    backup_dir: Path = Path("backups")
    reports_dir: Path = Path("reports")
    lock_timeout: float = 5.0
    statement_timeout: float = 300.0
    commit_timeout: float = 60.0
    idle_warn_seconds: float = 60.0
    skip_backup: bool = False
    pace: float = 0.0  # seconds to pause between statements (demo "slow motion", screenshots)


def _ms(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


class Runbook:
    """One maintenance-window run against one database."""

    def __init__(self, settings: ConnSettings, migration_path: Path, options: Options | None = None,
                 listener: Listener | None = None, interactive: bool = True):
        self.settings = settings
        self.migration_path = Path(migration_path)
        self.opt = options or Options()
        self.listener = listener or (lambda e: None)
        self.interactive = interactive
        self.steps: dict[Step, StepRecord] = {s: StepRecord(s) for s in Step}
        self._step_changes = 0  # bumped on every step transition (invalidates the cached preview)
        self._preview: tuple[int, schema.ValidationResult] | None = None
        self.tx = Tx.NONE
        self.outcome = Outcome.IN_PROGRESS
        self.checks: list[Check] = []
        self.answers: dict[str, bool] = {k: False for k, _ in PREFLIGHT_ITEMS}
        self.migration: mig.MigrationFile | None = None
        self.backup: pgtools.BackupResult | None = None
        self.statements: list[StatementRecord] = []
        self.verify_checks: list[Check] = []
        self.post_commit_lines: list[str] = []
        self.log: list[tuple[float, str, str]] = []
        self.server: dict = {}
        self.dump_tool: pgtools.Tool | None = None
        self.restore_tool: pgtools.Tool | None = None
        self.conn: psycopg.AsyncConnection | None = None  # migration connection (holds the advisory lock)
        self.monitor: psycopg.AsyncConnection | None = None  # lock watch / blockers
        self.backend_pid: int | None = None
        self.attempt = 0
        self.started_at = datetime.now()
        self.ended_at: datetime | None = None
        self.xact_started: float | None = None
        self.last_blockers: list[Blocker] = []
        self.failure: str = ""
        self.report_paths: tuple[Path, Path] | None = None
        self.lock_holder: dict | None = None
        self.locked = False  # we hold the one-operator advisory lock (on self.conn)
        self.xid: str | None = None  # the migration transaction's id (to ask its fate after a lost COMMIT)
        self.connection_lost = False  # our session died at some point in this run
        self.operator = getpass.getuser()
        self.client_host = socket.gethostname()

    # ---- plumbing ----------------------------------------------------------------------------
    def emit(self, kind: str, **kw) -> None:
        ev = Event(kind, **kw)
        if kind == "log":
            self.log.append((time.time(), ev.level, ev.message))
        try:
            self.listener(ev)
        except Exception:  # a broken listener never breaks the run
            pass

    def say(self, message: str, level: str = "info", step: Step | None = None) -> None:
        self.emit("log", message=message, level=level, step=step)

    def _set(self, step: Step, state: State, detail: str = "") -> None:
        self._step_changes += 1
        rec = self.steps[step]
        if state == State.RUNNING:
            rec.started, rec.ended = time.time(), None
        elif state in (State.DONE, State.FAILED, State.SKIPPED):
            rec.ended = time.time()
            if rec.started is None:
                rec.started = rec.ended
        elif state == State.PENDING:
            rec.started = rec.ended = None
        rec.state = state
        rec.detail = detail
        self.emit("step", step=step, message=detail, data=rec)

    def _set_tx(self, tx: Tx) -> None:
        self.tx = tx
        self.emit("tx", message=tx.value, data=tx)

    @property
    def tx_open(self) -> bool:
        return self.tx in (Tx.OPEN, Tx.ABORTED)

    @property
    def finished(self) -> bool:
        return self.outcome != Outcome.IN_PROGRESS

    def can(self, step: Step) -> tuple[bool, str]:
        """Whether ``step`` may run now, and if not, why (shown to the operator)."""
        st = self.steps
        if self.finished and step is not Step.BEGIN:
            return False, f"this run has ended ({self.outcome.value})"
        if any(r.state == State.RUNNING for r in st.values()):
            running = next(r.step.title for r in st.values() if r.state == State.RUNNING)
            return False, f"{running} is still running"
        if step is Step.PREFLIGHT:
            if self.tx_open or st[Step.BEGIN].state == State.DONE and self.tx != Tx.ROLLED_BACK:
                return False, "pre-flight is over once the transaction has begun"
            return True, ""
        if step is Step.BACKUP:
            if st[Step.PREFLIGHT].state != State.DONE:
                return False, "pre-flight must pass first"
            if self.tx_open:
                return False, "the transaction is already open"
            return True, ""
        if step is Step.BEGIN:
            if self.outcome == Outcome.COMMITTED:
                return False, "the migration is already committed"
            if self.tx_open:
                return False, "the transaction is already open"
            if st[Step.PREFLIGHT].state != State.DONE:
                return False, "pre-flight must pass first"
            if st[Step.BACKUP].state not in (State.DONE, State.SKIPPED):
                return False, "take (and verify) the backup first"
            return True, ""
        if step is Step.APPLY:
            if self.tx != Tx.OPEN:
                return False, "BEGIN first" if not self.tx_open else "the transaction is aborted: ROLLBACK"
            if st[Step.APPLY].state == State.FAILED:
                return False, "the apply stopped part-way: ROLLBACK, then retry from BEGIN"
            if st[Step.APPLY].state == State.DONE:
                return False, "the file has been applied in this transaction"
            return True, ""
        if step is Step.VERIFY:
            if self.tx != Tx.OPEN:
                return False, "no open transaction to verify"
            if st[Step.APPLY].state == State.FAILED:
                return False, "the apply stopped part-way: ROLLBACK, then retry from BEGIN"
            if st[Step.APPLY].state != State.DONE:
                return False, "apply the migration first"
            return True, ""
        if step is Step.COMMIT:
            if self.tx != Tx.OPEN:
                return False, "no open transaction" if not self.tx_open else "the transaction is aborted: ROLLBACK"
            if st[Step.VERIFY].state != State.DONE:
                return False, "verify must pass before COMMIT"
            return True, ""
        if step is Step.ROLLBACK:
            if not self.tx_open:
                return False, "no open transaction"
            return True, ""
        return False, "unknown step"

    def _require(self, step: Step) -> None:
        ok, why = self.can(step)
        if not ok:
            raise RunbookError(f"{step.title} is not possible now: {why}.")

    def next_step(self) -> Step | None:
        """The step the operator should take next (None when the run is over)."""
        if self.finished:
            return None
        for s in STEP_ORDER:
            if self.steps[s].state not in (State.DONE, State.SKIPPED):
                return s
        return None

    def tick(self, item: str, value: bool = True) -> None:
        if item not in self.answers:
            raise KeyError(item)
        self.answers[item] = value

    @property
    def all_ticked(self) -> bool:
        return all(self.answers.values())

    # ---- connections ---------------------------------------------------------------------------
    async def _ensure_conn(self) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed:
            self.conn = await connect(self.settings, autocommit=True)
            self.conn.add_notice_handler(self._notice)
            cur = await self.conn.execute("SELECT pg_backend_pid()")
            self.backend_pid = (await cur.fetchone())[0]
        return self.conn

    async def _ensure_monitor(self) -> psycopg.AsyncConnection:
        if self.monitor is None or self.monitor.closed:
            self.monitor = await connect(self.settings, autocommit=True)
        return self.monitor

    def _notice(self, diag) -> None:
        self.say(f"{diag.severity}: {diag.message_primary}", "info", Step.APPLY)

    async def _lock(self) -> None:
        """Take the one-operator advisory lock on the migration connection; refuse with the holder.

        Taken once: session-level advisory locks stack, so taking it twice would need two unlocks.
        """
        conn = await self._ensure_conn()
        if self.locked:
            return
        holder = await locks.try_lock(conn)
        if holder is None:
            self.lock_holder = None
            self.locked = True
            return
        since = holder.get("since")
        self.lock_holder = {**holder, "since": since.isoformat() if hasattr(since, "isoformat") else None}
        raise RunbookError(f"Another operator is running the migration on {self.settings.dbname}: "
                           f"{locks.describe_holder(holder)}.")

    async def _unlock(self) -> None:
        if not self.locked or self.tx_open:
            return
        if self.conn is not None and not self.conn.closed:
            with contextlib.suppress(Exception):
                await locks.unlock(self.conn)
                self.locked = False
        else:
            self.locked = False  # the session is gone, and its lock with it

    # ---- step 1: pre-flight ---------------------------------------------------------------------
    async def automatic_checks(self) -> list[Check]:
        """Run (or re-run) the automatic pre-flight checks without completing the step; the console
        shows them beside the checklist as soon as the runbook opens."""
        self._require(Step.PREFLIGHT)
        checks = await self._preflight_checks()
        self.checks = checks
        self.emit("checks", step=Step.PREFLIGHT, data=checks)
        return checks

    async def preflight(self) -> list[Check]:
        """Automatic checks (connection, privileges, standby, pg_dump, disk, lock, migration file)
        plus, in the console, the operator's ticked checklist."""
        self._require(Step.PREFLIGHT)
        self._set(Step.PREFLIGHT, State.RUNNING)
        checks: list[Check] = []
        try:
            checks = await self._preflight_checks()
        except asyncio.CancelledError:
            self._set(Step.PREFLIGHT, State.PENDING, "cancelled")
            raise
        except psycopg.Error as exc:
            msg = f"Pre-flight failed: the server answered: {str(exc).strip().splitlines()[0]}"
            if isinstance(exc, psycopg.OperationalError):
                msg = "Pre-flight failed: the connection to the server was lost; run the pre-flight again."
                with contextlib.suppress(Exception):
                    await self.conn.close()
                self.conn, self.locked, self.connection_lost = None, False, True
            self._set(Step.PREFLIGHT, State.FAILED, msg)
            raise RunbookError(msg) from None
        self.checks = checks
        self.emit("checks", step=Step.PREFLIGHT, data=checks)
        failed = [c for c in checks if c.blocking and not c.ok]
        for c in checks:
            self.say(f"{'✓' if c.ok else '✗'} {c.name}: {c.detail}", "ok" if c.ok else "error", Step.PREFLIGHT)
        if failed:
            await self._unlock()  # a failed pre-flight does not keep other operators out
            self._set(Step.PREFLIGHT, State.FAILED, failed[0].detail)
            raise RunbookError(f"Pre-flight failed: {failed[0].name}: {failed[0].detail}")
        if self.interactive and not self.all_ticked:
            missing = [label for k, label in PREFLIGHT_ITEMS if not self.answers[k]]
            await self._unlock()
            self._set(Step.PREFLIGHT, State.FAILED, "checklist not complete")
            raise RunbookError("Pre-flight checklist not complete: " + "; ".join(missing) + ".")
        self._set(Step.PREFLIGHT, State.DONE, f"{len(checks)} checks passed")
        return checks

    async def _preflight_checks(self) -> list[Check]:
        checks: list[Check] = []
        # Migration file first: parse errors are found before anything touches the server.
        try:
            self.migration = mig.load(self.migration_path)
            checks.append(Check("Migration file", True, f"{self.migration.path} · {len(self.migration.statements)} "
                                f"statements · sha256 {self.migration.sha256[:12]}…"))
        except mig.MigrationError as exc:
            checks.append(Check("Migration file", False, str(exc)))
        try:
            conn = await self._ensure_conn()
        except ConnectError as exc:
            checks.append(Check("Connection", False, str(exc)))
            return checks
        st = await server_status(conn)
        self.server = dict(vars(st))
        major = st.server_major
        checks.append(Check("Connection", True, f"PostgreSQL {st.server_version} at {st.host}:{st.port}, "
                            f"database {st.dbname}, user {st.user}"))
        if st.in_recovery:
            checks.append(Check("Not a standby", False, "the server is a read-only standby (in recovery); "
                                "run the migration on the primary."))
        else:
            checks.append(Check("Not a standby", True, "primary (not in recovery)"))
        if st.can_create_in_db and st.can_create_in_public:
            checks.append(Check("Privileges", True, f"{st.user} may CREATE in the database and in schema public"))
        else:
            from psycopg import sql as q
            grant = (q.SQL("GRANT ALL PRIVILEGES ON DATABASE {} TO {}; GRANT ALL ON SCHEMA public TO {};")
                     .format(q.Identifier(st.dbname), q.Identifier(st.user), q.Identifier(st.user)).as_string(conn))
            what = [w for w, ok in (("the database", st.can_create_in_db),
                                    ("schema public", st.can_create_in_public)) if not ok]
            checks.append(Check("Privileges", False, f"user {st.user} may not CREATE in {' and '.join(what)}; as an "
                                f"administrator run: {grant}"))
        try:
            await self._lock()
            checks.append(Check("One operator", True, "migration lock taken (no other console on this database)"))
        except RunbookError as exc:
            checks.append(Check("One operator", False, str(exc)))
        if self.opt.skip_backup:
            checks.append(Check("pg_dump", True, "backup skipped (--no-backup)", blocking=False))
        else:
            try:
                # find_tool runs `--version` subprocesses: keep them off the event loop (the UI stays live)
                self.dump_tool = await asyncio.to_thread(pgtools.find_tool, "pg_dump", major)
                self.restore_tool = await asyncio.to_thread(pgtools.find_tool, "pg_restore", major)
                checks.append(Check("pg_dump", True, f"{self.dump_tool.describe()}; pg_restore "
                                    f"{self.restore_tool.version}"))
            except pgtools.ToolError as exc:
                checks.append(Check("pg_dump", False, str(exc)))
            try:
                d = pgtools.ensure_private_dir(self.opt.backup_dir)
                free = shutil.disk_usage(d).free
                need = st.db_size_bytes
                import humanize
                ok = free > need * 1.2 + 16 * 1024 * 1024
                checks.append(Check("Disk for backup", ok, f"{humanize.naturalsize(free, binary=True)} free in "
                                    f"{d.resolve()}, database is {humanize.naturalsize(need, binary=True)}"
                                    + ("" if ok else "; not enough room for the backup")))
            except pgtools.ToolError as exc:
                checks.append(Check("Backup directory", False, str(exc)))
        if self.migration is not None:
            res = await schema.validate(conn, self.migration.tables)
            if res.drifted:
                names = ", ".join(res.drifted)
                checks.append(Check("Schema drift", False, f"tables {names} exist with columns that differ from "
                                    f"{self.migration.name} (built by the archived migrations?); IF NOT EXISTS "
                                    "never repairs them, so the migration would fail or leave them wrong."))
            else:
                checks.append(Check("Current schema", True, f"{res.summary()}"
                                    + (f", extra tables: {', '.join(res.extra)}" if res.extra else "")))
        return checks

    # ---- step 2: backup ---------------------------------------------------------------------------
    async def backup_step(self) -> pgtools.BackupResult | None:
        self._require(Step.BACKUP)
        if self.opt.skip_backup:
            self._set(Step.BACKUP, State.SKIPPED, "skipped (--no-backup)")
            self.say("Backup skipped (--no-backup): recorded in the report.", "warn", Step.BACKUP)
            return None
        assert self.dump_tool and self.restore_tool
        self._set(Step.BACKUP, State.RUNNING)
        t0 = time.time()
        dump = schema_sql = None
        total = int(self.server.get("db_size_bytes") or 0)
        try:
            dump, schema_sql = pgtools.unique_backup_paths(pgtools.ensure_private_dir(self.opt.backup_dir),
                                                           self.settings.dbname)
            result = pgtools.BackupResult(dump, schema_sql, tool=self.dump_tool.describe())
            self.say(f"pg_dump -Fc → {dump}", step=Step.BACKUP)
            major = self.server.get("server_major")
            await pgtools.run_dump(self.dump_tool, self.settings, dump, server_major=major,
                                   progress=lambda n: self.emit("progress", step=Step.BACKUP, done=n, total=total,
                                                                message="bytes written"))
            self.say(f"pg_dump -s → {schema_sql}", step=Step.BACKUP)
            await pgtools.run_dump(self.dump_tool, self.settings, schema_sql, schema_only=True, server_major=major)
            self.say("Verifying: pg_restore --list …", step=Step.BACKUP)
            result.toc_entries = await pgtools.toc_count(self.restore_tool, dump)
            result.size = dump.stat().st_size
            result.sha256 = await asyncio.to_thread(pgtools.sha256_file, dump)
            srv = self.server
            pgtools.write_checksum(dump, result.sha256, {
                "host": srv.get("host"), "port": srv.get("port"), "dbname": self.settings.dbname,
                "server_version": srv.get("server_version"), "taken_at": datetime.now().isoformat(timespec="seconds"),
                "toc_entries": result.toc_entries, "size": result.size, "operator": self.operator})
            result.verified = True
            result.seconds = time.time() - t0
        except asyncio.CancelledError:
            for p in (dump, schema_sql, dump and dump.with_name(dump.name + ".sha256")):
                if p is not None:
                    with contextlib.suppress(OSError):
                        p.unlink()
            self._set(Step.BACKUP, State.PENDING, "cancelled; partial files removed")
            self.say("Backup cancelled; partial files removed.", "warn", Step.BACKUP)
            raise
        except (pgtools.ToolError, OSError) as exc:
            # Only this attempt's files (their names were free when it started): never an older backup.
            for p in (dump, schema_sql, dump and dump.with_name(dump.name + ".sha256")):
                if p is not None:
                    with contextlib.suppress(OSError):
                        p.unlink()
            msg = str(exc) if isinstance(exc, pgtools.ToolError) else f"backup failed: {exc.strerror or exc}"
            self._set(Step.BACKUP, State.FAILED, msg)
            self.say(msg, "error", Step.BACKUP)
            raise RunbookError(msg) from None
        self.backup = result
        import humanize
        self._set(Step.BACKUP, State.DONE, f"{humanize.naturalsize(result.size, binary=True)}, "
                                           f"{result.toc_entries} TOC entries, verified")
        self.say(f"✓ Backup verified: {dump.name}, {humanize.naturalsize(result.size, binary=True)}, "
                 f"{result.toc_entries} entries, sha256 {result.sha256[:16]}…", "ok", Step.BACKUP)
        return result

    # ---- step 3: BEGIN ------------------------------------------------------------------------------
    async def begin(self) -> None:
        self._require(Step.BEGIN)
        if self.tx == Tx.ROLLED_BACK or self.outcome == Outcome.ROLLED_BACK:  # retry of the whole transaction
            self.outcome = Outcome.IN_PROGRESS
            for s in (Step.APPLY, Step.VERIFY, Step.COMMIT, Step.ROLLBACK):
                self._set(s, State.PENDING)
            self.verify_checks = []
        self._set(Step.BEGIN, State.RUNNING)
        try:
            conn = await self._ensure_conn()
            await self._lock()  # re-taken on a retry after ROLLBACK (which released it)
            await conn.execute("BEGIN")
            await conn.execute("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                               (_ms(self.opt.lock_timeout), _ms(self.opt.statement_timeout)))
            if conn.info.server_version >= 140000:
                # If this client dies mid-statement (kill -9), the server notices within a second and
                # rolls back, instead of finishing the statement first with our locks held.
                await conn.execute("SELECT set_config('client_connection_check_interval', '1000', true)")
            self.xid = None
            if conn.info.server_version >= 130000:
                cur = await conn.execute("SELECT pg_catalog.pg_current_xact_id()::text")
                self.xid = (await cur.fetchone())[0]
        except (ConnectError, RunbookError) as exc:
            self._set(Step.BEGIN, State.FAILED, str(exc))
            raise RunbookError(str(exc)) from None
        except psycopg.Error as exc:
            if self._connection_gone(exc):
                await self._lost(Step.BEGIN, exc)
            with contextlib.suppress(Exception):
                await self.conn.execute("ROLLBACK")
            msg = f"BEGIN failed: {str(exc).strip().splitlines()[0]}"
            self._set(Step.BEGIN, State.FAILED, msg)
            raise RunbookError(msg) from None
        self.attempt += 1
        self.xact_started = time.time()
        self._set_tx(Tx.OPEN)
        self._set(Step.BEGIN, State.DONE, f"lock_timeout {self.opt.lock_timeout:g}s, statement_timeout "
                                          f"{self.opt.statement_timeout:g}s")
        self.say(f"BEGIN (attempt {self.attempt}); SET LOCAL lock_timeout = {_ms(self.opt.lock_timeout)}, "
                 f"statement_timeout = {_ms(self.opt.statement_timeout)}", "ok", Step.BEGIN)

    async def _lost(self, step: Step, exc: BaseException) -> None:
        """Our session is gone: the server has rolled the transaction back."""
        self._set_tx(Tx.LOST)
        msg = ("The connection to the server was lost (" + (str(exc).strip().splitlines() or ["?"])[-1] +
               "); the server rolled the transaction back: nothing was changed.")
        self._set(step, State.FAILED, msg)
        self.say(msg, "error", step)
        self.failure = msg
        with contextlib.suppress(Exception):
            await self.conn.close()
        self.conn = None
        self.lock_holder = None
        self.locked = False  # the session, and so its advisory lock, is gone
        self.connection_lost = True
        self.tx = Tx.ROLLED_BACK
        self.outcome = Outcome.ROLLED_BACK
        self._set(Step.ROLLBACK, State.DONE, "by the server (connection lost)")
        self.write_report()
        raise RunbookError(msg)

    def _connection_gone(self, exc: BaseException) -> bool:
        """Whether an error means our session is gone (as opposed to a statement that failed)."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            return True
        state = getattr(exc, "sqlstate", None)
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")

    # ---- step 4: apply --------------------------------------------------------------------------------
    async def apply(self) -> None:
        self._require(Step.APPLY)
        assert self.migration and self.conn
        self._set(Step.APPLY, State.RUNNING)
        stmts = self.migration.statements
        total = len(stmts)
        self.statements = [r for r in self.statements if r.attempt != self.attempt]
        for st in stmts:
            self.emit("progress", step=Step.APPLY, done=st.index - 1, total=total,
                      message=f"statement {st.index} / {total}: {st.summary}")
            t0 = time.perf_counter()
            watcher = asyncio.create_task(self._watch_blockers())
            try:
                cur = await self.conn.execute(st.sql)
                tag = cur.statusmessage or ""
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await self.conn.cancel_safe(timeout=5)
                self._set_tx(Tx.ABORTED)
                self.statements.append(StatementRecord(st.index, st.summary, st.line, "", time.perf_counter() - t0,
                                                       False, "cancelled by the operator", self.attempt))
                self._set(Step.APPLY, State.FAILED, f"cancelled at statement {st.index} / {total}")
                self.say(f"Cancelled at statement {st.index}; the transaction is aborted: ROLLBACK.", "warn",
                         Step.APPLY)
                raise
            except psycopg.OperationalError as exc:
                if self._connection_gone(exc):
                    await self._lost(Step.APPLY, exc)
                # lock_timeout, statement_timeout, out of shared memory, disk full...: the session is fine
                await self._statement_failed(st, total, exc, time.perf_counter() - t0)
            except psycopg.Error as exc:
                await self._statement_failed(st, total, exc, time.perf_counter() - t0)
            finally:
                watcher.cancel()
            dt = time.perf_counter() - t0
            rec = StatementRecord(st.index, st.summary, st.line, tag, dt, True, "", self.attempt)
            self.statements.append(rec)
            self.emit("statement", step=Step.APPLY, data=rec, done=st.index, total=total,
                      message=f"{st.index:>3}/{total} {tag:<16} {dt * 1000:8.1f} ms  {st.summary}")
            if self.opt.pace:
                try:
                    await asyncio.sleep(self.opt.pace)
                except asyncio.CancelledError:
                    self._set(Step.APPLY, State.FAILED, f"cancelled after statement {st.index} / {total}")
                    self.say(f"Cancelled after statement {st.index}: the file is half-applied inside the open "
                             "transaction; ROLLBACK.", "warn", Step.APPLY)
                    raise
        self.emit("progress", step=Step.APPLY, done=total, total=total, message=f"statement {total} / {total}")
        self._set(Step.APPLY, State.DONE, f"{total} statements")
        self.say(f"✓ Applied {total} statements inside the transaction (not committed yet).", "ok", Step.APPLY)

    async def _watch_blockers(self) -> None:
        """While a statement runs, remember who blocks it (for a lock-timeout message)."""
        self.last_blockers = []
        try:
            await asyncio.sleep(0.3)
            mon = await self._ensure_monitor()
            while True:
                cur = await mon.execute(sql("blocking_sessions"), {"pid": self.backend_pid})
                rows = await cur.fetchall()
                if rows:
                    self.last_blockers = [Blocker(*r) for r in rows]
                await asyncio.sleep(0.5)
        except (asyncio.CancelledError, psycopg.Error, ConnectError):
            return

    async def _statement_failed(self, st: mig.Statement, total: int, exc: psycopg.Error, dt: float) -> None:
        self._set_tx(Tx.ABORTED)
        diag = exc.diag
        primary = diag.message_primary or str(exc).splitlines()[0]
        where = f"line {st.line}"
        if diag.statement_position:
            try:
                pos = int(diag.statement_position) - 1
                line = st.line + st.sql.count("\n", 0, pos)
                col = pos - (st.sql.rfind("\n", 0, pos) + 1) + 1
                if line == st.line:  # the statement may not start at column 1 of its line
                    col += st.column - 1
                where = f"line {line}, column {col}"
            except ValueError:
                pass
        msg = f"Statement {st.index} / {total} ({st.summary}, {where}) failed: {primary}"
        if isinstance(exc, pgerr.LockNotAvailable):
            blockers = self.last_blockers
            if not blockers:
                blockers = []
            who = "; ".join(b.describe() for b in blockers) or "the blocking session had already gone"
            msg = (f"Statement {st.index} / {total} ({st.summary}) waited longer than lock_timeout "
                   f"({self.opt.lock_timeout:g}s) for a lock held by: {who}. Nothing is applied: ROLLBACK, then "
                   "retry the transaction (or stop the blocking session).")
        elif isinstance(exc, pgerr.QueryCanceled):
            msg = (f"Statement {st.index} / {total} ({st.summary}) ran longer than statement_timeout "
                   f"({self.opt.statement_timeout:g}s) and was cancelled. Nothing is applied: ROLLBACK.")
        elif isinstance(exc, pgerr.OutOfMemory) and "shared memory" in primary:
            msg = (f"Statement {st.index} / {total} ({st.summary}) failed: out of shared memory. The lock table "
                   f"is full: raise max_locks_per_transaction (now {self.server.get('max_locks_per_transaction')}) "
                   "in postgresql.conf and restart the server, then retry. Nothing is applied: ROLLBACK.")
        elif diag.message_detail:
            msg += f" ({diag.message_detail})"
        if diag.message_hint and not isinstance(exc, pgerr.OutOfMemory):
            msg += f" Hint: {diag.message_hint}"
        self.statements.append(StatementRecord(st.index, st.summary, st.line, "ERROR", dt, False, msg, self.attempt))
        self.failure = msg
        self._set(Step.APPLY, State.FAILED, msg)
        self.say(msg, "error", Step.APPLY)
        self.say(f"Failed statement:\n{st.sql}", "error", Step.APPLY)
        self.say("The transaction is aborted; the only way on is ROLLBACK.", "warn", Step.APPLY)
        raise RunbookError(msg)

    # ---- step 5: verify ----------------------------------------------------------------------------------
    async def verify(self) -> list[Check]:
        self._require(Step.VERIFY)
        assert self.conn and self.migration
        self._set(Step.VERIFY, State.RUNNING)
        try:
            res = await schema.validate(self.conn, self.migration.tables)
            checks = [Check("Required tables", res.ok and not res.drifted,
                            f"{res.summary()}" + (f"; missing: {', '.join(res.missing)}" if res.missing else "")
                            + (f"; drifted: {', '.join(res.drifted)}" if res.drifted else ""))]
            if "alert_templates" in res.present:
                cur = await self.conn.execute(sql("alert_templates_count"))
                n = (await cur.fetchone())[0]
                checks.append(Check("Default alert templates", n == 6, f"{n} / 6 present"))
            else:
                checks.append(Check("Default alert templates", False, "alert_templates is missing"))
            cur = await self.conn.execute(sql("public_table_count"))
            n = (await cur.fetchone())[0]
            checks.append(Check("Exactly ten tables in public", n == 10, f"public holds {n} tables"
                                + (f" (extra: {', '.join(res.extra)})" if res.extra else "")))
        except psycopg.Error as exc:
            if self._connection_gone(exc):
                await self._lost(Step.VERIFY, exc)
            self._set_tx(Tx.ABORTED)
            msg = f"Verify failed: the server answered: {str(exc).strip().splitlines()[0]}. COMMIT is blocked; ROLLBACK."
            self.failure = msg
            self._set(Step.VERIFY, State.FAILED, msg)
            raise RunbookError(msg) from None
        self.verify_checks = checks
        self.emit("checks", step=Step.VERIFY, data=checks)
        for c in checks:
            self.say(f"{'✓' if c.ok else '✗'} {c.name}: {c.detail}", "ok" if c.ok else "error", Step.VERIFY)
        bad = [c for c in checks if not c.ok]
        if bad:
            self._set(Step.VERIFY, State.FAILED, bad[0].detail)
            raise RunbookError(f"Verify failed: {bad[0].name}: {bad[0].detail}. COMMIT is blocked; ROLLBACK.")
        self._set(Step.VERIFY, State.DONE, "10 / 10, 6 templates, exactly 10 tables")
        return checks

    async def ping(self) -> None:
        """While the transaction sits open and idle, make sure our session still exists; if it was
        terminated, say so plainly (the server rolled the transaction back)."""
        if not self.tx_open or self.conn is None or any(r.state == State.RUNNING for r in self.steps.values()):
            return
        try:
            await asyncio.wait_for(self.conn.execute("SELECT 1"), 10)
        except psycopg.OperationalError as exc:
            await self._lost(Step.COMMIT if self.steps[Step.VERIFY].state == State.DONE else Step.APPLY, exc)
        except (psycopg.errors.InFailedSqlTransaction, TimeoutError):
            pass

    async def preview(self) -> schema.ValidationResult | None:
        """What the open transaction sees (the checklists show it marked uncommitted).

        Queried once after each step and cached: polling the migration connection would reset the
        server's idle-in-transaction clock (state_change), hiding an operator who walked away from the
        lock watch and from idle_in_transaction_session_timeout.
        """
        if self.tx != Tx.OPEN or self.conn is None or any(r.state == State.RUNNING for r in self.steps.values()):
            return None
        if self._preview is not None and self._preview[0] == self._step_changes:
            return self._preview[1]
        try:
            res = await schema.validate(self.conn, self.migration.tables if self.migration else None)
        except psycopg.Error:
            return None
        self._preview = (self._step_changes, res)
        return res

    # ---- step 6: COMMIT / ROLLBACK --------------------------------------------------------------------------
    async def commit(self, typed_dbname: str) -> list[str]:
        self._require(Step.COMMIT)
        if typed_dbname != self.settings.dbname:
            raise RunbookError(f"COMMIT not confirmed: type the database name {self.settings.dbname!r} exactly.")
        assert self.conn
        self._set(Step.COMMIT, State.RUNNING)
        try:
            await asyncio.wait_for(self.conn.execute("COMMIT"), self.opt.commit_timeout)
        except TimeoutError:
            msg = (f"COMMIT got no answer within {self.opt.commit_timeout:g}s; its outcome is unknown until the "
                   "server answers. Check the table checklist before doing anything else.")
            self._set(Step.COMMIT, State.FAILED, msg)
            self.failure = msg
            self.outcome = Outcome.FAILED
            self.write_report()
            raise RunbookError(msg) from None
        except asyncio.CancelledError:
            self._set(Step.COMMIT, State.FAILED, "cancelled while COMMIT was in flight: outcome unknown")
            raise
        except psycopg.Error as exc:
            if not self._connection_gone(exc):  # e.g. a deferred constraint: the server rolled back
                msg = (f"COMMIT failed: {str(exc).strip().splitlines()[0]}; the server rolled the transaction back: "
                       "nothing was changed.")
                self.failure = msg
                self._set(Step.COMMIT, State.FAILED, msg)
                self._set_tx(Tx.ROLLED_BACK)
                self.outcome = Outcome.ROLLED_BACK
                self.ended_at = datetime.now()
                await self._unlock()
                self.write_report()
                raise RunbookError(msg) from None
            # The session died during COMMIT: it may have committed before the answer was lost. Ask.
            status = await self._xact_status()
            if status == "aborted":
                await self._lost(Step.COMMIT, exc)
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn, self.locked, self.connection_lost = None, False, True
            if status != "committed":
                msg = (f"The connection was lost during COMMIT and the server could not confirm the outcome "
                       f"(transaction {self.xid or '?'}: {status or 'no answer'}). Check the table checklist "
                       "before doing anything else.")
                self._set_tx(Tx.LOST)
                self._set(Step.COMMIT, State.FAILED, msg)
                self.failure = msg
                self.outcome = Outcome.FAILED
                self.ended_at = datetime.now()
                self.write_report()
                raise RunbookError(msg) from None
            self.say(f"The connection was lost as COMMIT completed; the server confirms transaction {self.xid} "
                     "committed.", "warn", Step.COMMIT)
        self._set_tx(Tx.COMMITTED)
        self.outcome = Outcome.COMMITTED
        self.ended_at = datetime.now()
        await self._unlock()
        self._set(Step.COMMIT, State.DONE, "committed")
        self.say("✓ COMMIT: the migration is permanent.", "ok", Step.COMMIT)
        # The server's own start-up validation, on a fresh connection.
        try:
            fresh = await connect(self.settings)
            try:
                res = await schema.validate(fresh, self.migration.tables if self.migration else None)
                i = fresh.info
                self.post_commit_lines = schema.server_lines(res, i.host, i.user, i.dbname, i.port)
            finally:
                await fresh.close()
        except (ConnectError, psycopg.Error) as exc:
            self.post_commit_lines = [f"(could not re-run the validation: {exc})"]
        for line in self.post_commit_lines:
            self.say(line, "ok" if line.startswith("✓") else "info", Step.COMMIT)
        await self.close_connections()
        self.write_report()
        return self.post_commit_lines

    async def _xact_status(self, wait: float = 3.0) -> str | None:
        """pg_xact_status() of the migration transaction, asked on a fresh connection (None: no answer)."""
        if not self.xid:
            return None
        deadline = time.monotonic() + wait
        while True:
            try:
                fresh = await connect(self.settings)
                try:
                    cur = await fresh.execute("SELECT pg_catalog.pg_xact_status(%s::xid8)", (self.xid,))
                    status = (await cur.fetchone())[0]
                finally:
                    await fresh.close()
            except (ConnectError, psycopg.Error):
                status = None
            # "in progress": the dying session has not finished yet; give it a moment.
            if status in ("committed", "aborted") or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.2)

    async def rollback(self, reason: str = "operator") -> None:
        self._require(Step.ROLLBACK)
        assert self.conn
        self._set(Step.ROLLBACK, State.RUNNING)
        try:
            await asyncio.wait_for(self.conn.execute("ROLLBACK"), self.opt.commit_timeout)
        except psycopg.OperationalError:
            pass  # the session is gone: the server rolled back
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn = None
        self._set_tx(Tx.ROLLED_BACK)
        self.outcome = Outcome.ROLLED_BACK
        self.ended_at = datetime.now()
        self._set(Step.ROLLBACK, State.DONE, f"rolled back ({reason})")
        self.say(f"ROLLBACK ({reason}): the database is as it was before BEGIN.", "warn", Step.ROLLBACK)
        await self._unlock()
        self.write_report()

    async def close(self, reason: str = "console closed") -> None:
        """End the run: roll back an open transaction, release the lock, write the report."""
        if self.tx_open and self.conn is not None:
            with contextlib.suppress(Exception):
                await self.rollback(reason)
        if self.outcome == Outcome.IN_PROGRESS:
            self.outcome = Outcome.ABANDONED if self.tx == Tx.NONE else Outcome.FAILED
            self.ended_at = datetime.now()
        await self.close_connections()
        self.write_report()

    async def close_connections(self) -> None:
        for c in (self.conn, self.monitor):
            if c is not None and not c.closed:
                with contextlib.suppress(Exception):
                    await c.close()
        self.conn = self.monitor = None

    # ---- lock watch ----------------------------------------------------------------------------------------
    async def lock_watch(self) -> LockWatch | None:
        """Sessions waiting on our locks, our transaction's age and idle-in-transaction time."""
        if not self.tx_open or self.backend_pid is None:
            return None
        try:
            mon = await self._ensure_monitor()
            cur = await mon.execute(sql("transaction_age"), {"pid": self.backend_pid})
            row = await cur.fetchone()
            cur = await mon.execute(sql("waiting_on_us"), {"pid": self.backend_pid})
            waiters = [dict(zip([d.name for d in cur.description], r, strict=True)) for r in await cur.fetchall()]
        except (psycopg.Error, ConnectError):
            return None
        age = row[0].total_seconds() if row and row[0] is not None else None
        idle = row[1].total_seconds() if row and row[1] is not None else None
        return LockWatch(age, idle, waiters, self._lock_warning(idle, waiters))

    def _lock_warning(self, idle: float | None, waiters: list[dict]) -> str:
        """One sentence once the open transaction has sat idle, or kept a session waiting, too long."""
        limit = self.opt.idle_warn_seconds
        waits = [w["waiting_for"].total_seconds() for w in waiters if w.get("waiting_for") is not None]
        longest = max(waits, default=0.0)
        if (idle or 0) < limit and longest < limit:
            return ""
        parts = []
        if idle is not None:
            parts.append(f"the migration transaction has been idle for {idle:.0f}s holding its locks")
        if waiters:
            n = len(waiters)
            parts.append(f"{n} session{'s' if n != 1 else ''} waiting on them (longest {longest:.0f}s)")
        return ("Warning: " + (" and ".join(parts) or "the migration transaction is holding its locks")
                + ": COMMIT or ROLLBACK now.")

    # ---- report ---------------------------------------------------------------------------------------------
    def write_report(self) -> tuple[Path, Path] | None:
        from aami_tui.core import report

        try:
            self.report_paths = report.write(self, self.report_paths)
        except (OSError, pgtools.ToolError) as exc:
            self.say(f"Could not write the run report: {exc}", "error")
            return None
        self.emit("report", message=str(self.report_paths[0]), data=self.report_paths)
        return self.report_paths
