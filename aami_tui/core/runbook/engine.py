"""The runbook engine: the guide's production procedure, driven by the state machine in ``machine``.

One engine for both faces: the TUI displays and drives it; ``aami-tui apply`` drives it headless.
Every operator action goes through ``machine.decide`` (allowed, or one sentence why not); every running
phase settles only where ``machine.SETTLES`` allows. Everything that happens is recorded for the report.
The engine never imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import hashlib
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import psycopg

from aami_tui import __version__
from aami_tui.core import migration as mig
from aami_tui.core import pgtools, report, schema
from aami_tui.core.db import ConnectError, connect
from aami_tui.core.queries import sql
from aami_tui.core.runbook import apply as applying
from aami_tui.core.runbook import backup as backing
from aami_tui.core.runbook import commit as committing
from aami_tui.core.runbook import lockwatch, preflight
from aami_tui.core.runbook.events import (
    ChecksDone,
    CommitWaitAsked,
    CommitWaitClosed,
    Event,
    Listener,
    Log,
    OutcomeRechecked,
    Progress,
    ReportWritten,
    Silence,
    StatementDone,
    StepChanged,
    TxChanged,
)
from aami_tui.core.runbook.machine import (
    ENDED,
    LOST_FROM,
    RUNNING,
    TX_OPEN,
    Action,
    Phase,
    decide,
    may_settle,
    outcome_of,
    tx_of,
)
from aami_tui.core.runbook.model import (
    DEV_ITEMS,
    NOTHING_TO_DO,
    PREFLIGHT_ITEMS,
    STEP_ORDER,
    TX_STEPS,
    Blocker,
    Check,
    CommitWait,
    LockWatch,
    Options,
    Outcome,
    RehearsalRecord,
    RunbookError,
    State,
    StatementRecord,
    Step,
    StepRecord,
    StepSnapshot,
    Tx,
    Verdict,
)
from aami_tui.core.runbook.session import CANCEL_WAIT, Deadline, Session, bounded
from aami_tui.core.secret import Mask
from aami_tui.core.settings import ConnSettings
from aami_tui.core.words import plural
from aami_tui.core.words import size as size_words

log = logging.getLogger("aami_tui.runbook")


# A cancelled step whose session was given up (session.CANCEL_WAIT) fences its backend within this: the operator who
# pressed escape is waiting, and on a dead network the fresh connection cannot succeed either.
CANCEL_FENCE = 0.5

LOSING = "the session stopped answering and is being ended (nothing is committed): a moment"


def _first(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _now() -> datetime:
    return datetime.now().astimezone()


class Runbook:
    """One maintenance-window run against one database."""

    def __init__(self, settings: ConnSettings, migration_path: Path, options: Options | None = None,
                 listener: Listener | None = None, interactive: bool = True):
        self.settings = settings
        self.migration_path = Path(migration_path)
        self.opt = options or Options()
        self.listener = listener or (lambda e: None)
        self.interactive = interactive
        self.phase = Phase.NEW
        self.lost = False  # the session died under the current attempt (the server rolled back)
        self.unconfirmed = False  # ...and nothing confirmed the transaction's end (Outcome.NOT_CONFIRMED)
        # that attempt's backend, (pid, backend_start, attempt), while no connection has seen it end: the run stays
        # 'not committed, rollback unconfirmed' (a retry that cannot connect changes nothing) until one does
        self.unseen_end: tuple[int, object, int] | None = None
        self._losing = False  # an idle session stopped answering: being fenced (no step may start meanwhile)
        self._lost_lock = asyncio.Lock()  # two idle checks can notice the same silent session: it ends the run once
        self.closed_outcome: Outcome | None = None
        self.verdict: Verdict | None = None  # why the run stopped (the last failure), typed
        self.steps: dict[Step, StepRecord] = {s: StepRecord(s) for s in Step}
        self.history: list[tuple[int, tuple[StepSnapshot, ...]]] = []  # earlier attempts' transaction steps
        self._step_changes = 0  # bumped on every step transition (invalidates the cached preview)
        self._preview: tuple[int, schema.ValidationResult] | None = None
        self.checks: list[Check] = []
        self.items = DEV_ITEMS if self.opt.dev else PREFLIGHT_ITEMS  # the operator's checklist
        self.answers: dict[str, bool] = {k: False for k, _ in self.items}
        self.answered_by: dict[str, str] = {}  # who answered each ticked item: the operator, or the evidence
        self.db_empty: bool | None = None  # no tables, views or sequences of its own (pre-flight, dev mode)
        self.migration: mig.MigrationFile | None = None
        self.file_facts = None  # core.lint.FileFacts of the pre-flight (parsed in a helper process)
        self.backup: pgtools.BackupResult | None = None
        self.statements: list[StatementRecord] = []
        self.verify_checks: list[Check] = []
        self.post_commit_lines: list[str] = []
        self.log: list[tuple[float, str, str]] = []
        self.server: dict = {}
        self.dump_tool: pgtools.Tool | None = None
        self.restore_tool: pgtools.Tool | None = None
        self.session = Session(settings, self._notice, self._silent)
        self._silence_said = False  # a Silence event went out for the round trip now out (its 'over' is owed)
        self.monitor: psycopg.AsyncConnection | None = None  # lock watch / blockers
        self.monitor_ident: tuple[int, object] | None = None  # its (pid, backend_start), to fence it
        self._step_task: asyncio.Task | None = None  # the task running the current step (close() stops it)
        self._orphans: list[tuple[int, object]] = []  # monitor sessions abandoned on a deadline (to fence)
        self.attempt = 0
        self.started_at = _now()
        self.ended_at: datetime | None = None
        self.xact_started: float | None = None
        self.last_blockers: list[Blocker] = []
        # a COMMIT whose answer did not come, being resolved (pg_xact_status on a fresh connection after fencing):
        # (why, in a few words: "no answer within --commit-timeout (60s)", monotonic start); None otherwise
        self.resolving: tuple[str, float] | None = None
        self.last_recheck: str = ""  # what the last re-check (o) of an unknown COMMIT outcome found, in words
        # synchronous_standby_names when the COMMIT in flight was seen waiting on SyncRep (the COMMIT watch, on the
        # monitor): committed locally, waiting for a standby. None: not seen.
        self.commit_syncrep: str | None = None
        self.commit_syncrep_since: float | None = None  # monotonic time it was first seen
        # the COMMIT's wait for its synchronous standby was ended: committed on the primary only, in words ("": no)
        self.unreplicated: str = ""
        # the server's warning that the COMMIT's wait for synchronous replication was cancelled or ended ("": none)
        self.syncrep_ended: str = ""
        self._commit_watch: asyncio.Task | None = None  # the COMMIT watch (kept: a task nobody holds may vanish)
        # In the console, --commit-timeout's end while COMMIT waits on SyncRep is the operator's call: the question
        # open now (None: none), its answer's future, when COMMIT was sent (monotonic), and every question asked in
        # this run with its answer (the report).
        self.commit_question: CommitWaitAsked | None = None
        self._commit_answer: asyncio.Future | None = None
        self._commit_sent: float | None = None
        self.commit_waits: list[dict] = []
        # who ended a COMMIT's wait for its standby (why, the bar's label), in words (None: its deadline did)
        self._commit_ended_by: tuple[str, str] | None = None
        self._may_ask = True  # False once the run is closing: no one is left to answer
        # the statements in flight while Phase.APPLYING: (first index, last index, total, monotonic start)
        self.applying_now: tuple[int, int, int, float] | None = None
        self._batch_plan: tuple | None = None  # (file, batching on, its batches): batch_plan()
        self.waiters_seen: dict[tuple, dict] = {}
        self.failure: str = ""
        self.ending_reason = ""  # what ended the run from outside (a signal's words: ``ending``), once known
        self.report_paths: tuple[Path, Path] | None = None
        self._report_thread: ThreadPoolExecutor | None = None  # renders and writes the report, one at a time
        self._report_last: asyncio.Future | None = None  # the last write queued (the ones before it are done first)
        self._rendered = report.Rendered()  # the text of ended attempts' statements (used in the report thread only)
        self._mask: Mask | None = None  # the password's mask for the reports (made at the first write)
        self._adopted: list[str] = []  # markers of earlier unclosed runs said in this run's log (report.unclosed)
        # the report's row of each statement record, built as the record is made (apply.record), a few at a time
        # while the apply runs, not 10,000 at once on the loop as it ends: the rows of the attempts that have ended
        # in chunks that never change (``_row_chunks``, tuples shared by every record), the others in
        # ``statement_rows`` (the last ones of ``statements``, in the same order)
        self._row_chunks: list[tuple[dict, ...]] = []
        self.statement_rows: list[dict] = []
        self.lock_holder: dict | None = None
        self.lint_result = None  # core.lint.LintResult of the pre-flight
        self.inspections: list[dict] = []  # the inspection pane's queries (core/inspect.py), for the report
        self.rehearsals: list[RehearsalRecord] = []  # the optional rehearsal step's results, in order
        self.begin_confirmed: str | None = None  # why BEGIN needed the operator's explicit confirmation, if it did
        # public's tables just after BEGIN (name -> (est rows, size)): what existed before the migration
        self.tables_before_begin: dict[str, tuple] | None = None
        self.inspect_created: dict[str, str] = {}  # table -> the inspection-pane statement that created it
        self.operator = getpass.getuser()
        self.client_host = socket.gethostname()

    # ---- derived state -------------------------------------------------------------------------------
    @property
    def tx(self) -> Tx:
        if self.phase is Phase.CLOSED:
            return {Outcome.COMMITTED: Tx.COMMITTED, Outcome.ROLLED_BACK: Tx.LOST if self.lost else Tx.ROLLED_BACK,
                    Outcome.NOT_CONFIRMED: Tx.LOST, Outcome.UNKNOWN: Tx.UNKNOWN}.get(self.closed_outcome, Tx.NONE)
        return tx_of(self.phase, self.lost)

    @property
    def outcome(self) -> Outcome:
        if self.phase is Phase.CLOSED:
            return self.closed_outcome or Outcome.ABANDONED
        return outcome_of(self.phase, self.unconfirmed)

    @property
    def tx_open(self) -> bool:
        return self.phase in TX_OPEN

    @property
    def finished(self) -> bool:
        return self.phase in ENDED

    @property
    def running(self) -> bool:
        return self.phase in RUNNING

    @property
    def already_migrated(self) -> bool:
        """The last automatic checks found the migration already applied (the console says so before pre-flight)."""
        return any(c.name == NOTHING_TO_DO and c.ok for c in self.checks)

    @property
    def nothing_to_do(self) -> bool:
        """Pre-flight found the migration already applied and ended the run there (Phase.NOTHING_TO_DO): no backup,
        no transaction. The one decision both faces follow: headless apply exits 0, the console's run is over."""
        return self.outcome is Outcome.NOTHING_TO_DO

    @property
    def committed_verdict(self) -> Verdict:
        """A committed run's verdict: committed, or committed on the primary only (its synchronous standby never
        confirmed it)."""
        return Verdict.COMMITTED_PRIMARY_ONLY if self.unreplicated else Verdict.COMMITTED

    def waiting_for_answer(self, after: float = 2.0) -> float | None:
        """Seconds a short round trip of the running step (BEGIN, verify, COMMIT, ROLLBACK: not a statement of the
        apply, which may rightly run long) has been waiting for the server's answer, once past ``after``; else None.
        The faces say so: a server or network that stopped answering is visible before the deadline ends it."""
        out = self.session.in_flight
        if out is None or not self.running or self.steps[Step.APPLY].state is State.RUNNING:
            return None
        waited = time.monotonic() - out[1]
        return waited if waited >= after else None

    def silence_words(self, after: float) -> str | None:
        """Headless's line once the running step's round trip (a statement of the apply too) has had no answer for
        ``after`` seconds, else None: 'Apply: waiting for the server's answer for 12s (statement 10 / 43: CREATE
        INDEX …); the client gives up in 298s (statement_timeout 300s + 10s) if none comes'."""
        out = self.session.in_flight
        if out is None or not self.running:
            return None
        what, t0, seconds = out
        waited = time.monotonic() - t0
        if waited < after:
            return None
        which, bound = "", ""
        if self.phase is Phase.APPLYING and self.applying_now is not None:
            first, last, total, _ = self.applying_now
            st = self.migration.statements[first - 1] if self.migration is not None else None
            which = (f" (statement {first} / {total}" + (f": {st.summary}" if st is not None and first == last else
                                                         f"–{last}, one round trip" if first != last else "") + ")")
            bound = f" (statement_timeout {self.opt.statement_timeout:g}s + {seconds - self.opt.statement_timeout:g}s)"
        elif self.phase is Phase.COMMITTING:
            bound = " (--commit-timeout; then it asks the server on a new connection what became of the COMMIT)"
        head = f"{RUNNING[self.phase]}: waiting for the server's answer for {waited:.0f}s{which}"
        if seconds - waited >= 0.5:
            return f"{head}; the client gives up in {seconds - waited:.0f}s{bound} if none comes"
        # the deadline is now: say what happens then, never 'gives up in 0s' (fresh9 F6)
        if self.phase is Phase.COMMITTING:
            then = ("the operator is asked whether to keep waiting" if self.interactive and self.commit_syncrep
                    else "the client asks the server on a new connection what became of the COMMIT")
            return f"{head}; --commit-timeout ({seconds:g}s) has run out: {then}"
        return f"{head}; the client's deadline{bound or f' ({seconds:g}s)'} has run out: it stops waiting now"

    def _silent(self, flight: tuple[str, float, float] | None) -> None:
        """The session's round trip has gone unanswered past SILENT_AFTER (``flight``), or has ended (None): the
        faces hear it as a Silence event, in silence_words' words, with the step that waits."""
        step = next((r.step for r in self.steps.values() if r.state is State.RUNNING), None)
        if flight is None:
            if self._silence_said:
                self._silence_said = False
                self.emit(Silence(step, 0.0, "", over=True))
            return
        words = self.silence_words(0.0)  # (the session's clock decided it is time)
        if words is None:  # no step runs (a ping, the preview): the faces have their own words for those
            return
        self._silence_said = True
        self.emit(Silence(step, time.monotonic() - flight[1], words))

    @property
    def conn(self) -> psycopg.AsyncConnection | None:
        return self.session.conn

    @property
    def backend_pid(self) -> int | None:
        return self.session.backend_pid

    @property
    def xid(self) -> str | None:
        return self.session.xid

    @property
    def locked(self) -> bool:
        return self.session.locked

    @property
    def connection_lost(self) -> bool:
        return self.lost

    @property
    def statement_deadline(self) -> float:
        """statement_timeout plus a grace for the server's own cancel to arrive: ``grace`` (10 s), but never
        more than the statement_timeout itself, nor less than 2 s."""
        return self.opt.statement_timeout + max(2.0, min(self.opt.grace, self.opt.statement_timeout))

    # ---- plumbing ----------------------------------------------------------------------------
    def emit(self, ev: Event) -> None:
        if isinstance(ev, Log):
            self.log.append((ev.at, ev.level, ev.message))
        try:
            self.listener(ev)
        except Exception as exc:  # a broken listener never breaks the run, but it is never silent either
            log.exception("runbook listener failed on %s", type(ev).__name__)
            self.log.append((time.time(), "error", f"(display error, the run goes on: {type(exc).__name__}: "
                                                   f"{exc} while showing {type(ev).__name__})"))

    def say(self, message: str, level: str = "info", step: Step | None = None) -> None:
        self.emit(Log(message, level, step, time.time()))

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
        self.emit(StepChanged(rec.frozen()))
        if state is State.RUNNING and step is not Step.ROLLBACK:  # a ROLLBACK writes its report as it ends
            self._journal()

    def _journal(self) -> None:
        """The run report, written as the steps happen (queued, off the loop): a run killed with -9 or a power
        cut leaves a report that says what was done up to when, marked as not closed."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.queue_report()

    def _move(self, to: Phase) -> None:
        """Change phase: only along the table (from a resting phase) or SETTLES (from a running one)."""
        frm = self.phase
        if frm in RUNNING:
            ok = may_settle(frm, to)
        else:  # along the table, or the session died under an idle transaction
            ok = to in {decide(frm, a) for a in Action} or (frm in LOST_FROM and to is Phase.ROLLED_BACK)
        if not ok:
            raise AssertionError(f"illegal move {frm.name} -> {to.name}")
        self.phase = to
        if to in ENDED and self.ended_at is None:
            self.ended_at = _now()
        self.emit(TxChanged(to, self.tx))
        if frm in RUNNING and frm in _JOURNALED_ENDS:  # a step has settled: its end, in the report
            self._journal()

    def can(self, step: Step) -> tuple[bool, str]:
        """Whether ``step`` may run now, and if not, why (shown to the operator)."""
        if self._losing:
            return False, LOSING
        nxt = decide(self.phase, Action(step.value))
        return (True, "") if isinstance(nxt, Phase) else (False, nxt)

    def _start(self, action: Action) -> Phase:
        """Enter the running phase for ``action`` or raise the table's sentence. Returns the phase left."""
        nxt = decide(self.phase, action)
        if self._losing:  # a COMMIT must not start under a session that is being declared lost
            nxt = LOSING
        if not isinstance(nxt, Phase):
            raise RunbookError(f"{action.title} is not possible now: {nxt}.")
        frm = self.phase
        self._move(nxt)
        self._step_task = asyncio.current_task()
        return frm

    def _fail(self, msg: str, verdict: Verdict) -> RunbookError:
        self.failure = msg
        self.verdict = verdict
        return RunbookError(msg, verdict)

    def next_step(self) -> Step | None:
        """The step the operator should take next (None when the run is over)."""
        if self.finished:
            return None
        for s in STEP_ORDER:
            if self.steps[s].state not in (State.DONE, State.SKIPPED):
                return s
        return None

    def tick(self, item: str, value: bool = True, by: str = "operator") -> None:
        """Answer a checklist item; ``by`` says who (the operator, or "rehearsal report NAME"), for the report.
        The console's checkbox echoing an answer the engine gave does not make it the operator's."""
        if item not in self.answers:
            raise KeyError(item)
        changed = self.answers[item] != value
        self.answers[item] = value
        if not value:
            self.answered_by.pop(item, None)
        elif changed or item not in self.answered_by:
            self.answered_by[item] = by
        elif by != "operator" and by not in self.answered_by[item]:
            self.answered_by[item] += f" and {by}"

    @property
    def all_ticked(self) -> bool:
        return all(self.answers.values())

    @property
    def missing_items(self) -> list[str]:
        """Checklist items pre-flight still needs ticked: all but "Tested on staging", which the optional rehearsal
        after the backup may answer (BEGIN without either asks for an explicit confirmation: begin_caution)."""
        return [label for k, label in self.items if not self.answers[k] and k != "staging"]

    # ---- connections ---------------------------------------------------------------------------
    async def monitor_conn(self) -> psycopg.AsyncConnection:
        if self.monitor is None or self.monitor.closed:
            mon = await asyncio.wait_for(connect(self.settings, autocommit=True), self.opt.query_timeout)
            cur = await asyncio.wait_for(mon.execute("SELECT pid, backend_start FROM pg_stat_activity "
                                                     "WHERE pid = pg_backend_pid()"), self.opt.query_timeout)
            self.monitor_ident = await cur.fetchone()
            self.monitor = mon
        return self.monitor

    async def drop_monitor(self) -> None:
        """Abandon the monitor connection (no round trip: its network may be dead); it is fenced with the
        migration session if that one is lost too."""
        mon, self.monitor = self.monitor, None
        if mon is not None and self.monitor_ident:
            self._orphans.append(self.monitor_ident)
        if mon is not None:
            with contextlib.suppress(Exception):
                mon.pgconn.finish()

    def _notice(self, diag) -> None:
        # level "notice": every one is kept in the log and the report; the faces may summarise them
        self.say(f"{diag.severity}: {diag.message_primary}", "notice", Step.APPLY)
        if self.phase is Phase.COMMITTING and committing.ends_syncrep_wait(diag):
            self.syncrep_ended = diag.message_primary or "the wait for synchronous replication was ended"

    def _connection_gone(self, exc: BaseException) -> bool:
        """Whether an error means our session is gone (as opposed to a statement that failed)."""
        if isinstance(exc, Deadline):
            return True
        if not self.session.alive:
            return True
        state = getattr(exc, "sqlstate", None)
        # 08: connection exceptions; 57P01-03: admin/crash shutdown, cannot connect now; 25P03 / 57P05: the
        # server ended the session for sitting idle (in a transaction / at all).
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03", "25P03", "57P05")

    async def release_lock(self) -> None:
        """Let go of the one-operator lock while no transaction is open (e.g. for a restore)."""
        if not self.tx_open and not self.running:
            await self.session.unlock(self.opt.query_timeout)

    # ---- step 1: pre-flight ---------------------------------------------------------------------
    def _note_unclosed(self) -> None:
        """Earlier runs on this database that ended without closing (killed, power cut): said in the log (and so in
        this run's report); their markers go once this run has closed (its report names them)."""
        for u in report.unclosed(self.opt.reports_dir, self.settings.dbname):
            if u["marker"] not in self._adopted:
                self._adopted.append(u["marker"])
                self.say(report.unclosed_words(u), "warn", Step.PREFLIGHT)

    def held_by(self, holder: dict) -> str:
        """Who holds the one-operator lock, in one sentence (``commit.held_by``: the restore's words too)."""
        return committing.held_by(self.opt.reports_dir, self.settings.dbname, holder)

    def _preflight_allowed(self) -> None:
        nxt = decide(self.phase, Action.PREFLIGHT)
        if not isinstance(nxt, Phase):
            raise RunbookError(f"Pre-flight is not possible now: {nxt}.")

    async def automatic_checks(self) -> list[Check]:
        """Run (or re-run) the automatic pre-flight checks without completing the step; the console
        shows them beside the checklist as soon as the runbook opens. Keeps no lock."""
        self._preflight_allowed()
        try:
            checks = await preflight.checks(self, keep_lock=False)
        except (Deadline, psycopg.Error) as exc:
            await self.session.close()
            checks = [Check("Connection", False, f"the server stopped answering ({_first(exc)})",
                            verdict=Verdict.CONNECTION)]
        finally:
            if self.phase in (Phase.NEW, Phase.CHECKED, Phase.READY):
                await self.session.unlock(self.opt.query_timeout)  # looking is not holding the window
        self.checks = checks
        self.emit(ChecksDone(Step.PREFLIGHT, tuple(checks)))
        return checks

    async def preflight(self) -> list[Check]:
        """Automatic checks (connection, privileges, standby, pg_dump, disk, lock, migration file)
        plus, in the console, the operator's ticked checklist."""
        if self._start(Action.PREFLIGHT) is Phase.ROLLED_BACK:  # to load a file edited after a failed attempt
            self._archive_attempt()
        self._note_unclosed()
        self._set(Step.PREFLIGHT, State.RUNNING)
        back = Phase.READY if (self.backup is not None or self.steps[Step.BACKUP].state == State.SKIPPED) \
            else Phase.CHECKED
        try:
            checks = await preflight.checks(self)
        except asyncio.CancelledError:
            self._set(Step.PREFLIGHT, State.PENDING, "cancelled")
            await self.session.unlock(CANCEL_WAIT)  # no answer by then: the session is given up, the lock with it
            self._move(Phase.NEW)
            raise
        except (Deadline, psycopg.Error) as exc:
            if isinstance(exc, Deadline | psycopg.OperationalError):
                msg = ("Pre-flight failed: the connection to the server was lost or stopped answering "
                       f"({_first(exc)}); run the pre-flight again.")
                await self.session.close()
                verdict = Verdict.CONNECTION
            else:
                msg = f"Pre-flight failed: the server answered: {_first(exc)}"
                await self.session.unlock(self.opt.query_timeout)
                verdict = Verdict.PREFLIGHT
            self._set(Step.PREFLIGHT, State.FAILED, msg)
            self._move(Phase.NEW)
            raise self._fail(msg, verdict) from None
        self.checks = checks
        if (self.interactive and not self.answers.get("staging", True) and not self.already_migrated
                and not any(c.name == "Tested on staging" for c in checks)):
            checks.append(Check("Tested on staging", False, "not ticked: the optional rehearsal after the backup "
                                "runs the migration on a scratch copy of it and answers this item; BEGIN without "
                                "either asks for an explicit confirmation", blocking=False))
        self.emit(ChecksDone(Step.PREFLIGHT, tuple(checks)))
        failed = [c for c in checks if c.blocking and not c.ok]
        for c in checks:
            self.say(f"{_mark(c)} {c.name}: {c.detail}", _level(c), Step.PREFLIGHT)
        if failed:
            await self.session.unlock(self.opt.query_timeout)  # a failed pre-flight does not keep others out
            self._set(Step.PREFLIGHT, State.FAILED, failed[0].detail)
            self._move(Phase.NEW)
            raise self._fail(f"Pre-flight failed: {failed[0].name}: {failed[0].detail}",
                             failed[0].verdict or Verdict.PREFLIGHT)
        if self.already_migrated:  # before the checklist: it gates running SQL, and none will run
            await self._nothing_to_do(len(checks))
            return checks
        missing = self.missing_items
        if self.interactive and missing:
            await self.session.unlock(self.opt.query_timeout)
            self._set(Step.PREFLIGHT, State.FAILED, "checklist not complete")
            self._move(Phase.NEW)
            raise self._fail("Pre-flight checklist not complete: " + "; ".join(missing) + ".", Verdict.PREFLIGHT)
        self._set(Step.PREFLIGHT, State.DONE, f"{len(checks)} checks passed")
        # BEGIN's lock-wait watch polls on the monitor connection: opened now, while one can still start (behind a
        # lock on pg_class, a VACUUM FULL's taken during the backup, no new connection gets in)
        with contextlib.suppress(ConnectError, psycopg.Error, TimeoutError, OSError):
            await self.monitor_conn()
        if back is Phase.CHECKED and self.backup_skipped_why():  # nothing to back up: BEGIN comes next
            self._skip_backup()
            back = Phase.READY
        self._move(back)
        return checks

    async def _nothing_to_do(self, n_checks: int) -> None:
        """Pre-flight found the migration already applied: the run ends here, as ``init`` does (no pg_dump of a
        production-sized database, no transaction, on every CI run or console visit); the report records it."""
        self.verdict = Verdict.NOTHING_TO_DO
        await self.session.unlock(self.opt.query_timeout)
        self._set(Step.PREFLIGHT, State.DONE, f"{n_checks} checks passed: nothing to do (already migrated)")
        self.say("Nothing to do: the database is already migrated; stopped after pre-flight ("
                 + ("no backup, " if self.backup is None else "") + "no transaction).", "ok", Step.PREFLIGHT)
        self._move(Phase.NOTHING_TO_DO)
        await self.close_connections()
        self.queue_report()

    def backup_skipped_why(self) -> str | None:
        """Why this run takes no backup (--no-backup, or development mode on a database pre-flight found empty),
        or None: the one rule. Pre-flight says it, and settles the backup step as skipped (the run goes to READY, so
        the faces offer BEGIN next: ``next_step``)."""
        if self.opt.skip_backup:
            return self.opt.skip_backup_why
        if self.opt.dev and self.db_empty:
            return "development mode: the database is empty"
        return None

    def _skip_backup(self) -> None:
        why = self.backup_skipped_why()
        self._set(Step.BACKUP, State.SKIPPED, f"skipped ({why})")
        self.say(f"Backup skipped ({why}): recorded in the report.", "warn", Step.BACKUP)

    # ---- step 2: backup ---------------------------------------------------------------------------
    async def backup_step(self) -> pgtools.BackupResult | None:
        if self.phase is Phase.READY and self.steps[Step.BACKUP].state is State.SKIPPED and self.backup_skipped_why():
            return None  # pre-flight settled it (a headless caller runs the steps in order)
        self._start(Action.BACKUP)
        if self.backup_skipped_why():
            self._skip_backup()
            self._move(Phase.READY)
            return None
        assert self.dump_tool and self.restore_tool
        self._set(Step.BACKUP, State.RUNNING)
        paths: list = []
        try:
            result = await backing.take(self, paths)
        except asyncio.CancelledError:
            dump = paths[0] if paths else None
            words = backing.cancelled_words(dump, backing.remove_partial(*(paths or [None, None])))
            self._set(Step.BACKUP, State.PENDING, f"cancelled; {words}")
            self.say(f"Backup cancelled; {words}.", "warn", Step.BACKUP)
            self._move(Phase.CHECKED)
            raise
        except (pgtools.ToolError, OSError) as exc:
            backing.remove_partial(*(paths or [None, None]))
            msg = str(exc) if isinstance(exc, pgtools.ToolError) else f"backup failed: {exc.strerror or exc}"
            self._set(Step.BACKUP, State.FAILED, msg)
            self.say(msg, "error", Step.BACKUP)
            self._move(Phase.CHECKED)
            raise self._fail(msg, Verdict.BACKUP) from None
        self.backup = result
        self._set(Step.BACKUP, State.DONE, f"{size_words(result.size)}, "
                                           f"{result.toc_entries} TOC entries, verified")
        self.say(f"✓ Backup verified: {result.dump_path.name}, {size_words(result.size)}, "
                 f"{plural(result.toc_entries, 'entry', 'entries')}, sha256 {result.sha256[:16]}…", "ok", Step.BACKUP)
        self._move(Phase.READY)
        return result

    # ---- optional, before BEGIN: the rehearsal on a scratch copy ------------------------------------------
    async def rehearsal_cost(self):
        """What the rehearsal's copy costs on disk against what is free where it would go (rehearse.CopyCost), on
        a connection of its own, for the confirmation; ``rehearse()`` asks the same and refuses when it cannot fit.
        """
        from aami_tui.core import rehearse as reh
        from aami_tui.core.db import connect

        async def ask():
            conn = await connect(self.settings)
            try:
                # with no backup in this run (skipped), the rehearsal takes its own first: that needs room too
                return await reh.copy_cost(conn, self.settings, self.opt.backup_dir if self.backup is None else None)
            finally:
                await conn.close()

        return await asyncio.wait_for(ask(), self.opt.query_timeout)

    async def rehearse(self) -> RehearsalRecord:
        """Restore this run's verified backup into a scratch copy and run the same engine there (apply, verify,
        COMMIT on the copy; core/rehearse.py). The real database is only read; the copy is always dropped (also on
        a timeout or a cancel). The result answers the checklist's "Tested on staging" and goes into the report.
        A rehearsal that did not pass is returned, not raised: BEGIN then needs an explicit confirmation."""
        from aami_tui.core import rehearse as reh

        stale = self.stale_file(Action.REHEARSE)
        if stale:  # the rehearsal reads the disk; BEGIN applies what pre-flight loaded: they must be one file
            raise RunbookError(stale)
        self._start(Action.REHEARSE)
        self._set(Step.REHEARSE, State.RUNNING)
        t0 = time.monotonic()
        held: list = []  # the rehearsal's record, as soon as it exists (for its report path on a timeout)

        def say(message: str) -> None:
            self.say(message, "info", Step.REHEARSE)

        src = self.backup.dump_path if self.backup else None
        if src is None:
            say("This run has no backup (skipped): the rehearsal takes its own with pg_dump (read-only for the "
                "database).")
        timeout = self.opt.rehearse_timeout
        try:
            r = await asyncio.wait_for(reh.rehearse(
                self.settings, self.migration_path, backup_dir=self.opt.backup_dir, reports_dir=self.opt.reports_dir,
                from_backup=src, from_label="this run's verified backup", lock_timeout=self.opt.lock_timeout,
                statement_timeout=self.opt.statement_timeout, say=say, started=held.append,
                on_progress=lambda p: self.emit(Progress(Step.REHEARSE, p.done, p.total, p.line(), p.rate, p.eta,
                                                                 bool(p.waiting)))),
                timeout)
        except asyncio.CancelledError:
            rec = self._rehearsal_ended("cancelled", "Cancelled by the operator", held, t0)
            self._set(Step.REHEARSE, State.PENDING, "cancelled")
            self.say(f"Rehearsal {rec.verdict[0].lower()}{rec.verdict[1:]}", "warn", Step.REHEARSE)
            self._move(Phase.READY)
            raise
        except TimeoutError:
            rec = self._rehearsal_ended("timed out", f"The rehearsal did not finish within {timeout:g}s", held, t0)
        except Exception as exc:  # noqa: BLE001 - no copy (RehearsalError), no connection, a tool: one sentence
            rec = self._rehearsal_ended("no copy", f"The rehearsal could not run: {_first(exc)}", held, t0)
        else:
            good, words = reh.evidence(r.report, self.migration, self.settings.dbname) if r.report else (False, "")
            passed = r.exit_code == reh.EXIT_WOULD_SUCCEED and good
            rec = RehearsalRecord("passed" if passed else "failed", r.verdict() if not (r.exit_code == 0 and not good)
                                  else words, r.report, r.copy_where, r.copy_dropped, r.backup, r.total_seconds,
                                  r.restore_seconds, r.apply_seconds, r.statements, tuple(r.locks), r.failed,
                                  r.strict_ok, time.time())
            self.rehearsals.append(rec)
            for line in reh.summary_lines(r):
                self.say(line, ("ok" if passed else "error") if line == r.verdict() else "info", Step.REHEARSE)
            self.say(f"Rehearsal report: {r.report}", "info", Step.REHEARSE)
        self._staging_evidence(rec)
        if rec.passed:
            locks = f"{plural(len(rec.locks), 'lock')} on existing tables" if rec.locks else "no lock on existing tables"
            self._set(Step.REHEARSE, State.DONE, f"passed on a copy: apply {rec.apply_seconds:.2f} s, {locks}")
        else:
            self._set(Step.REHEARSE, State.FAILED, rec.verdict)
            if rec.outcome != "failed":
                self.say(rec.verdict, "error", Step.REHEARSE)
            self.say("BEGIN on the real database now needs an explicit confirmation.", "warn", Step.REHEARSE)
        self._move(Phase.READY)
        self.queue_report()
        return rec

    def stale_file(self, action: Action) -> str | None:
        """Before the rehearsal or BEGIN: the file on disk is not the one pre-flight loaded (what BEGIN applies).
        Returns the sentence that refuses ``action`` (logged) and marks pre-flight to run again (n), or None.
        The console asks before its confirmation; the steps themselves check again as they start."""
        if decide(self.phase, action) not in (Phase.REHEARSING, Phase.BEGINNING):
            return None
        stale = self._file_changed(action)
        if stale:
            self._set(Step.PREFLIGHT, State.PENDING, "the file changed since pre-flight")  # next: pre-flight again
            self.say(stale, "error", Step.REHEARSE if action is Action.REHEARSE else Step.BEGIN)
        return stale

    def _file_changed(self, action: Action = Action.REHEARSE) -> str | None:
        """Why the file on disk is not the one pre-flight loaded (the one BEGIN applies), or None."""
        if self.migration is None:
            return None
        name = self.migration.path.name
        try:
            now = hashlib.sha256(self.migration.path.read_bytes()).hexdigest()
        except OSError as exc:
            now = f"unreadable ({exc.strerror or exc})"
        if now == self.migration.sha256:
            return None
        head, then = ("Not rehearsed", "rehearse") if action is Action.REHEARSE else ("BEGIN not run", "BEGIN")
        return (f"{head}: {name} changed since pre-flight (pre-flight loaded sha256 {self.migration.sha256[:12]}"
                f"…, the file is now {now[:12] + '…' if len(now) == 64 else now}), and BEGIN applies what pre-flight "
                f"loaded: run pre-flight again to load it (n), then {then}.")

    def _rehearsal_ended(self, outcome: str, why: str, held: list, t0: float) -> RehearsalRecord:
        """A rehearsal that did not come back with a result (timed out, cancelled, no copy)."""
        r = held[0] if held else None
        made = bool(r and r.copy_name)
        if not made:
            words = "no copy was made"
        elif r.copy_dropped:
            words = "the copy was dropped"
        else:
            words = f"the copy {r.copy_name} could NOT be dropped: drop it by hand"
        rec = RehearsalRecord(outcome, f"{why.rstrip('.')}; {words}.", r.report if r else None, r.copy_where if r else "",
                              r.copy_dropped if r else False, r.backup if r else "", time.monotonic() - t0,
                              r.restore_seconds if r else 0.0, at=time.time())
        self.rehearsals.append(rec)
        return rec

    def _staging_evidence(self, rec: RehearsalRecord) -> None:
        """The checklist's "Tested on staging", answered by the rehearsal (shown with the pre-flight checks)."""
        if rec.outcome == "cancelled":
            return
        name = Path(rec.report).name if rec.report else "no report"
        check = Check("Tested on staging", rec.passed, (f"rehearsed on a copy in this run ({name}): {rec.verdict}"
                                                        if rec.passed else f"the rehearsal did not pass ({name}): "
                                                        f"{rec.verdict}"), blocking=False)
        self.checks = [c for c in self.checks if c.name != "Tested on staging"] + [check]
        self.emit(ChecksDone(Step.PREFLIGHT, tuple(self.checks)))
        if rec.passed and "staging" in self.answers:
            self.tick("staging", by=f"rehearsal report {name}")

    def begin_caution(self) -> str | None:
        """Why BEGIN on the real database needs the operator's explicit confirmation now, or None: the last
        rehearsal did not pass, or (in the console) "Tested on staging" is neither ticked nor rehearsed."""
        done = [r for r in self.rehearsals if r.outcome != "cancelled"]
        if done and not done[-1].passed:
            last = done[-1]
            verb = "failed" if last.outcome == "failed" else "did not finish"
            return f"the rehearsal on a copy {verb}: {last.verdict.rstrip('.')}"
        if not done and self.interactive and not self.answers.get("staging", True):
            return ("the migration was not tested on staging: the checklist item is not ticked and no rehearsal "
                    "ran")
        return None

    # ---- step 3: BEGIN ------------------------------------------------------------------------------
    async def begin(self, confirmed: bool = False) -> None:
        """BEGIN. ``confirmed``: the operator explicitly accepted ``begin_caution()`` (the console asks for the
        database name); headless never does, so a rehearsal that did not pass stops the run before BEGIN."""
        stale = self.stale_file(Action.BEGIN)
        if stale:  # the DBA fixed the file and expects the fix to run: never a stale copy without a word
            if not self.interactive:  # headless cannot run pre-flight again: the run stops here (exit 3)
                raise self._fail(stale, Verdict.PREFLIGHT)
            raise RunbookError(stale, Verdict.PREFLIGHT)
        why = self.begin_caution() if self.phase is Phase.READY else None
        if why and not confirmed:
            if not self.interactive:
                raise self._fail(f"BEGIN not run: {why}.", Verdict.REHEARSAL_FAILED)
            raise RunbookError(f"BEGIN needs an explicit confirmation: {why}.", Verdict.PREFLIGHT)
        frm = self._start(Action.BEGIN)
        if why:
            self.begin_confirmed = why
            self.say(f"BEGIN confirmed by the operator although {why}.", "warn", Step.BEGIN)
        if frm is Phase.ROLLED_BACK or self.steps[Step.BEGIN].state is State.FAILED:
            self._archive_attempt()  # a retry (after ROLLBACK, or a BEGIN that failed): keep the last attempt's record
        self.attempt += 1  # every BEGIN tried is an attempt with its own number (a failed one too: the report says so)
        if self.unseen_end is None:
            self.lost = self.unconfirmed = False
        back = Phase.READY if frm is not Phase.ROLLED_BACK else Phase.ROLLED_BACK
        self._set(Step.BEGIN, State.RUNNING)
        t = self.opt.query_timeout
        waits: list = []  # the wait the watch saw last, (what, blockers): the sentence if lock_timeout ends it
        try:
            try:
                await self.session.ensure(t)
            except ConnectError as exc:
                raise RunbookError(f"{str(exc).rstrip('.')}{self._still_unseen()}.", Verdict.CONNECTION) from None
            if self.unseen_end is not None:  # first, the earlier attempt's backend: gone, or ended now
                gone, words = await self.confirm_unseen(t)
                if not gone:
                    raise RunbookError(f"BEGIN not run: {words}{self._still_unseen()}.", Verdict.CONNECTION)
            holder = await self.session.try_lock(t)  # re-taken on a retry after ROLLBACK (which released it)
            if holder is not None:
                self.lock_holder = holder
                raise self._fail(await asyncio.to_thread(self.held_by, holder), Verdict.LOCKED)  # reads reports
            async with self._begin_watch(waits):  # says at once whom BEGIN's own queries wait for, while they do
                read_only = await self.session.begin(lock_timeout=self.opt.lock_timeout,
                                                     statement_timeout=self.opt.statement_timeout,
                                                     idle_timeout=self.opt.idle_timeout, seconds=t)
                if read_only:  # statement 1 would fail ("cannot execute … in a read-only transaction"): never opened
                    await self.session.call(self.session.conn.execute("ROLLBACK"), t, "ROLLBACK")
                    raise self._fail(f"BEGIN refused: the transaction would be read-only "
                                     f"({await self._read_only_why(t)}). No transaction is open: nothing changed.",
                                     Verdict.BEGIN_FAILED)
                cur = await self.session.call(self.session.conn.execute(sql("public_tables")), self._begin_deadline(),
                                              "the table list")
                self.tables_before_begin = {name: (rows, size) for name, rows, size in await cur.fetchall()}
            self.inspect_created = {}
        except asyncio.CancelledError:
            self._set(Step.BEGIN, State.FAILED, "cancelled")
            await self.session.close()  # whatever BEGIN had opened goes with the session
            self._move(back)
            raise
        except (ConnectError, RunbookError) as exc:
            self._set(Step.BEGIN, State.FAILED, str(exc))
            self._move(back)
            verdict = getattr(exc, "verdict", None) or Verdict.CONNECTION
            if verdict is Verdict.BEGIN_FAILED:  # the server's refusal: the console's log and headless say it
                self.say(str(exc), "error", Step.BEGIN)
            raise self._fail(str(exc), verdict) from None
        except (Deadline, psycopg.Error) as exc:
            gone = self._connection_gone(exc)
            if gone:
                await self.session.close()
                msg = (f"BEGIN failed: the connection to the server was lost or stopped answering ({_first(exc)}); "
                       f"no transaction was opened: nothing was changed{self._still_unseen()}.")
            else:  # the server refused BEGIN or its set-up; the session is fine: end what it opened
                with contextlib.suppress(Exception):
                    await self.session.call(self.session.conn.execute("ROLLBACK"), t, "ROLLBACK")
                holders = ""
                if isinstance(exc, psycopg.errors.LockNotAvailable):
                    holders = self._seen_holders(waits) or await self._catalog_holders(t)
                msg = f"BEGIN failed: {self._begin_refusal(exc, holders)} No transaction is open: nothing changed."
                self.say(msg, "error", Step.BEGIN)
            self._set(Step.BEGIN, State.FAILED, msg)
            self._move(back)
            raise self._fail(msg, Verdict.CONNECTION if gone else Verdict.BEGIN_FAILED) from None
        self.xact_started = time.time()
        self._set(Step.BEGIN, State.DONE, f"lock_timeout {self.opt.lock_timeout:g}s, statement_timeout "
                                          f"{self.opt.statement_timeout:g}s")
        self._move(Phase.OPEN)
        idle = (f", idle_in_transaction_session_timeout = {int(self.opt.idle_timeout * 1000)}ms"
                if self.opt.idle_timeout else "")
        self.say(f"BEGIN (attempt {self.attempt}); SET LOCAL lock_timeout = {int(self.opt.lock_timeout * 1000)}ms, "
                 f"statement_timeout = {int(self.opt.statement_timeout * 1000)}ms{idle}", "ok", Step.BEGIN)

    def _still_unseen(self) -> str:
        """'; attempt N's transaction (backend P) is still not seen ending: …' while it is not, else ''."""
        if self.unseen_end is None:
            return ""
        pid, _, n = self.unseen_end
        return (f"; attempt {n}'s transaction (backend {pid}) is still not seen ending: not committed, rollback "
                "unconfirmed (the server rolls it back when it notices the session is gone)")

    async def confirm_unseen(self, t: float) -> tuple[bool, str]:
        """On the session's new connection: is the backend of the attempt nobody saw end gone? Ended now if it is
        still there (idle in its transaction behind a dead network, holding the migration lock). Once it is seen
        gone, the run is no longer 'rollback unconfirmed' (said in the log). Returns (gone, in words)."""
        pid, start, n = self.unseen_end
        words = await self.session.end_backend(pid, start, t)
        if not _fenced(words):
            return False, words
        self.unseen_end = None
        self.lost = self.unconfirmed = False
        self.say(f"attempt {n}'s transaction is over: {words} (seen from a new session): the server rolled it back, "
                 "nothing of it was committed.", "warn")
        return True, words

    async def _read_only_why(self, t: float) -> str:
        """Where this session's read-only default comes from, and its fix (asked only when BEGIN found it)."""
        from aami_tui.core.status import read_only_words

        try:
            cur = await self.session.call(self.session.conn.execute(
                "SELECT pg_catalog.pg_is_in_recovery(), (SELECT source FROM pg_catalog.pg_settings "
                "WHERE name = 'default_transaction_read_only'), current_user"), t, "the read-only setting")
            standby, source, user = await cur.fetchone()
        except (Deadline, psycopg.Error):
            return "default_transaction_read_only = on, or the server is a standby now"
        if standby:
            return "the server is a read-only standby now (in recovery: a failover?); run the migration on the primary"
        return read_only_words(source, self.settings.dbname, user)

    @contextlib.asynccontextmanager
    async def _begin_watch(self, waits: list):
        """While BEGIN's own queries run: the migration session's lock waits, polled on the monitor connection
        (opened at pre-flight: no new connection can start behind a lock on pg_class) by restore's and the backup's
        watch (core/progress.py: pg_blocking_pids, any conflicting mode, held or queued ahead). A wait is said as a
        Progress of the BEGIN step ("BEGIN: waiting 3s for a lock on the system catalog pg_class held by pid …"), and
        its end as one with no words; ``waits`` keeps the last one seen, for the sentence if lock_timeout ends it."""
        from aami_tui.core import progress as prog

        said = [False]
        tracker = prog.Tracker("BEGIN", [])

        def on_progress(p: prog.Progress) -> None:
            if p.waiting:
                waits[:] = [tracker.wait_seen]
            if p.waiting or said[0]:
                said[0] = bool(p.waiting)
                self.emit(Progress(Step.BEGIN, 0, 1, p.line() if p.waiting else "", waiting=bool(p.waiting)))

        lt, st = self.opt.lock_timeout, self.opt.statement_timeout
        bound = (f"lock_timeout ({lt:g}s) ends the wait: BEGIN fails, nothing changed" if lt else
                 f"statement_timeout ({st:g}s) ends the wait: BEGIN fails, nothing changed" if st else
                 f"nothing on the server ends the wait (lock_timeout and statement_timeout are 0): the client gives up "
                 f"after {self._begin_deadline():g}s")
        spare: list = []  # a connection opened for the watch alone (the monitor was gone): closed after BEGIN

        async def lend() -> psycopg.AsyncConnection:
            """The monitor, opened at pre-flight; asked again after a poll on it failed, or when it is gone (ended by
            the server: idle_session_timeout, a DBA's pg_terminate_backend, a pooler): a connection to the maintenance
            database instead. One to this database cannot start while BEGIN waits behind a lock on one of its
            catalogs (its start-up and its first catalog reads queue too), and the watch's query reads functions
            only, whose answers (pg_stat_get_activity, pg_lock_status) cover the whole server."""
            if spare:
                return spare[0]
            mon = self.monitor
            if mon is not None and not mon.closed and not lent:
                lent.append(mon)
                return mon
            if mon is not None:
                await self.drop_monitor()  # (no round trip: fenced with the session if it lives on; reopened on demand)
            conn = await connect(self.settings, dbname="template1" if self.settings.dbname == "postgres"
                                 else "postgres")
            spare.append(conn)
            return conn

        lent: list = []
        try:
            async with prog.Watch(self.settings, tracker, on_progress, lock_bound=bound,
                                  pid=self.session.backend_pid, borrow=lend, grace=BEGIN_WATCH_GRACE):
                yield
        finally:
            if said[0]:  # ended while waiting (lock_timeout, a cancel): the line goes with it
                self.emit(Progress(Step.BEGIN, 0, 1, "", waiting=False))
            for conn in spare:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    def _begin_deadline(self) -> float:
        """The client-side bound on BEGIN's own queries, which may queue behind another session's lock until the
        server ends them (lock_timeout, else statement_timeout, both set by BEGIN): past that, never shorter than
        query_timeout. A lock_timeout above query_timeout was cut short as a lost connection."""
        bounds = [x for x in (self.opt.lock_timeout, self.opt.statement_timeout) if x > 0]
        return max(self.opt.query_timeout, min(bounds) + 2.0) if bounds else self.opt.query_timeout

    @staticmethod
    def _seen_holders(waits: list) -> str:
        """'the system catalog pg_class held by pid 123 (…)': the last wait BEGIN's watch saw, or ''."""
        from aami_tui.core import locks

        what, blockers = waits[0] if waits and waits[0] else ("", ())
        return f"{what} held by {locks.describe_blockers(blockers)}" if blockers else ""

    async def _catalog_holders(self, t: float) -> str:
        """After BEGIN's own queries gave up waiting for a lock: 'pg_class held by pid 123 (user …)', the sessions
        holding an exclusive lock on a system catalog, asked with functions only (no catalog read, so the question
        never waits behind the same lock), bounded; "" when none is found or the server cannot be asked."""
        from aami_tui.core import locks

        conn = self.session.conn

        async def ask() -> list[tuple]:
            async with conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = 500; SET LOCAL statement_timeout = 2000")
                cur = await conn.execute(sql("catalog_lock_holders"))
                return await cur.fetchall()

        try:
            rows = await self.session.call(ask(), min(t, 3.0), "the catalog lock's holder")
        except Exception:  # the sentence comes out without the name
            return ""
        by_catalog: dict[str, list[Blocker]] = {}
        for *b, rel in rows:
            what = locks.catalog_words(rel)
            if not any(x.pid == b[0] for x in by_catalog.setdefault(what, [])):
                by_catalog[what].append(Blocker(*b))
        return "; ".join(f"{what} held by {locks.describe_blockers(bs)}" for what, bs in list(by_catalog.items())[:2])

    def _begin_refusal(self, exc: BaseException, holders: str = "") -> str:
        """The server's refusal of BEGIN or its set-up, in one sentence (its message, and what it means here)."""
        from psycopg import errors as pgerr

        said = _first(exc)
        if isinstance(exc, pgerr.LockNotAvailable) and holders:
            return (f"{said}: BEGIN's own queries waited longer than lock_timeout ({self.opt.lock_timeout:g}s) for a "
                    f"lock on {holders}. End that session or wait until it ends, then retry.")
        if isinstance(exc, pgerr.LockNotAvailable):
            return (f"{said}: BEGIN's own queries waited longer than lock_timeout ({self.opt.lock_timeout:g}s) for a "
                    "lock another session holds on a system catalog (VACUUM FULL, REINDEX or a long DDL "
                    "transaction on pg_class, for example; `aami-tui check` names such a session). Retry once it "
                    "has ended.")
        if isinstance(exc, pgerr.QueryCanceled):
            return (f"{said}: BEGIN's own queries ran longer than statement_timeout "
                    f"({self.opt.statement_timeout:g}s).")
        if isinstance(exc, pgerr.ReadOnlySqlTransaction):
            return f"{said}: the server is a read-only standby now (a failover?); run the migration on the primary."
        diag = getattr(exc, "diag", None)
        hint = f" Hint: {diag.message_hint}" if diag is not None and diag.message_hint else ""
        return f"{said}.{hint}"

    def _archive_attempt(self) -> None:
        """A new attempt after a rolled-back one (BEGIN again, or pre-flight first to load an edited file): the
        last attempt's transaction steps go to ``history`` (and the report), and start again as pending."""
        self.history.append((self.attempt, tuple(self.steps[s].frozen() for s in TX_STEPS)))
        for s in TX_STEPS:
            self._set(s, State.PENDING)
        self.verify_checks = []
        self.ended_at = None
        self.failure = ""
        self.verdict = None
        if self.unseen_end is None:  # else the earlier attempt's end is still not seen: said until it is
            self.lost = self.unconfirmed = False

    # ---- losing the session ----------------------------------------------------------------------------
    async def _lost(self, step: Step | None, exc: BaseException, fence: float | None = None, cause: str = ""
                    ) -> RunbookError:
        """Our session is gone or stopped answering. COMMIT was never sent: nothing is committed.
        Fence the old backend (a fresh connection ends it) so that its locks go now; ``fence``: how long that
        may take (a cancelled step's operator is waiting: CANCEL_FENCE)."""
        idle = step is None and not self.running
        self._losing = idle  # until the phase says so, nothing may start (a COMMIT pressed meanwhile is refused)
        try:
            async with self._lost_lock:
                if self.lost and self.phase not in LOST_FROM and self.failure:
                    # Another check (the lock watch's ping, the checklist's preview) noticed the same silent
                    # session first and ended the run: say the same, never move to rolled back twice.
                    return RunbookError(self.failure, self.verdict or Verdict.CONNECTION)
                return await self._lost_inner(step, exc, fence, cause)
        finally:
            self._losing = False

    async def _lost_inner(self, step: Step | None, exc: BaseException, fence_seconds: float | None,
                          cause: str = "") -> RunbookError:
        """``cause``: what made the session go, said first ("Cancelled: the terminal was closed (SIGHUP). ")."""
        fence_seconds = fence_seconds or min(self.opt.query_timeout, 5.0)
        if isinstance(exc, Deadline):
            await self.drop_monitor()  # it goes through the same dead network
            also, self._orphans = tuple(self._orphans), []
            fence = await self.session.fence(fence_seconds, also)
            ended = _fenced(fence)
            bound = (f"at the latest after idle_in_transaction_session_timeout, {self.opt.idle_timeout:g}s"
                     if self.opt.idle_timeout else "through TCP keepalives")
            msg = (f"The server gave no answer: {exc} (the network or the server stopped answering). COMMIT was "
                   f"never sent, so nothing is committed; {fence}"
                   + ("; the server rolled the transaction back: nothing was changed." if ended else
                      f"; the server rolls the transaction back when it notices ({bound}) (not confirmed)."))
        else:
            why = (str(exc).strip().splitlines() or ["?"])[-1]
            # The server said so, or our side dropped the socket: either way make sure no backend of ours lives on.
            self.session.abandon()
            fence = await self.session.fence(fence_seconds)
            ended = _fenced(fence)
            if "ended (pg_terminate_backend)" in fence:
                self.say(f"Fenced: {fence}.", "warn", step)
            msg = (f"The connection to the server was lost ({why}); the server rolled the transaction back: nothing "
                   "was changed." if ended else
                   f"The connection to the server was lost ({why}). COMMIT was never sent, so nothing is committed; "
                   f"{fence}: the server rolls the transaction back when it notices (not confirmed).")
        msg = cause + msg
        await self.session.close(1.0)
        self.lost = True
        self.unconfirmed = not ended
        self._unseen(ended)
        self.lock_holder = None
        if step is not None:
            self._set(step, State.FAILED, msg)
        self.say(msg, "error", step)
        if ended:
            self._set(Step.ROLLBACK, State.DONE, "by the server (connection lost)")
        else:  # nobody saw the transaction end: never recorded as a ROLLBACK that happened
            self._set(Step.ROLLBACK, State.UNCONFIRMED, "not confirmed: the connection was lost and the old backend "
                                                        "could not be ended; the server rolls back when it notices")
        self._move(Phase.ROLLED_BACK)
        err = self._fail(msg, Verdict.CONNECTION)
        self.queue_report()
        return err

    def _unseen(self, ended: bool) -> None:
        """Keep (or forget) this attempt's backend as one nobody saw end."""
        s = self.session
        self.unseen_end = None if ended or s.backend_pid is None else (s.backend_pid, s.backend_start, self.attempt)

    async def _cancel_lost(self, step: Step) -> None:
        """A step inside the transaction was cancelled and its session did not survive: the server closed it, or
        the cancel got no answer within CANCEL_WAIT and the session was given up (then nothing is known of the
        server's side: said as for any connection that stopped answering, never a ROLLBACK we did not see)."""
        why = self.session.gave_up or ConnectionError("cancelled; the session did not survive")
        await self._lost(step, why, CANCEL_FENCE,
                         cause=f"Cancelled: {self.ending_reason}. " if self.ending_reason else "")

    # ---- step 4: apply --------------------------------------------------------------------------------
    async def apply(self) -> None:
        self._start(Action.APPLY)
        assert self.migration and self.session.conn
        self._set(Step.APPLY, State.RUNNING)
        stmts = self.migration.statements
        total = len(stmts)
        # An earlier apply of this attempt (its records are the last ones): forgotten, in place. Never a rebuilt
        # list of every attempt's records, which Python's full collections would walk while this apply runs.
        k = len(self.statement_rows)
        while k and self.statement_rows[k - 1]["attempt"] == self.attempt:
            k -= 1
        if k < len(self.statement_rows):
            del self.statements[len(self.statements) - (len(self.statement_rows) - k):]
            del self.statement_rows[k:]
        groups = self.batch_plan()
        for group in groups:
            st = group[0]
            self.applying_now = (st.index, group[-1].index, total, time.monotonic())
            self.emit(Progress(Step.APPLY, st.index - 1, total, f"statement {st.index} / {total}: {st.summary}"))
            t0 = time.perf_counter()
            try:
                if len(group) == 1:
                    tag, dt = await applying.run_one(self, st)
                else:  # one pipeline, one round trip (apply.py); the statements' records as they completed
                    done: list = []
                    try:
                        await applying.run_batch(self, group, done)
                    finally:
                        for d_st, d_tag, d_dt in done:
                            self._statement_done(d_st, d_tag, d_dt, total, batch=len(group))
                        if len(done) > 1:
                            first, last = done[0][0].index, done[-1][0].index
                            self.emit(Log(f"Statements {first}–{last} went to the server in one round trip "
                                          f"({(time.perf_counter() - t0) * 1000:.1f} ms): each time marked ≈ is an "
                                          "equal share of it, not its own measurement.", "info", Step.APPLY,
                                          time.time(), batch=(first, last)))
                        st = group[min(len(done), len(group) - 1)]  # the one that failed, if one did
            except asyncio.CancelledError:
                applying.record(self, st, "", time.perf_counter() - t0, False,
                                f"cancelled: {self.ending_reason}" if self.ending_reason else "cancelled by the operator")
                if self.session.alive:
                    self._set(Step.APPLY, State.FAILED, f"cancelled at statement {st.index} / {total}")
                    self.say(f"Cancelled at statement {st.index}; the transaction is aborted: ROLLBACK.", "warn",
                             Step.APPLY)
                    self._move(Phase.ABORTED)
                else:
                    await self._cancel_lost(Step.APPLY)
                raise
            except (Deadline, psycopg.Error) as exc:
                dt = time.perf_counter() - t0
                if self._connection_gone(exc):
                    applying.record(self, st, "", dt, False, str(exc))
                    raise await self._lost(Step.APPLY, exc) from None
                # lock_timeout, statement_timeout, out of shared memory, disk full...: the session is fine
                msg = applying.failure_message(self, st, total, exc)
                applying.record(self, st, "ERROR", dt, False, msg)
                self._set(Step.APPLY, State.FAILED, msg)
                self.say(msg, "error", Step.APPLY)
                self.say(f"Failed statement:\n{st.sql}", "error", Step.APPLY)
                self.say("The transaction is aborted; the only way on is ROLLBACK.", "warn", Step.APPLY)
                self._move(Phase.ABORTED)
                raise self._fail(msg, Verdict.APPLY_FAILED) from None
            if len(group) == 1:
                self._statement_done(st, tag, dt, total)
            if self.opt.pace:
                try:
                    await asyncio.sleep(self.opt.pace)
                except asyncio.CancelledError:
                    self._set(Step.APPLY, State.FAILED, f"cancelled after statement {st.index} / {total}")
                    self.say(f"Cancelled after statement {st.index}: the file is half-applied inside the open "
                             "transaction; ROLLBACK.", "warn", Step.APPLY)
                    self._move(Phase.PARTIAL)
                    raise
        self.emit(Progress(Step.APPLY, total, total, f"statement {total} / {total}"))
        self._set(Step.APPLY, State.DONE, plural(total, "statement"))
        self._move(Phase.APPLIED)
        self.say(f"✓ Applied {plural(total, 'statement')} inside the transaction (not committed yet).", "ok", Step.APPLY)

    def batch_plan(self) -> list[list[mig.Statement]]:
        """The file's statements sorted into batches (apply.batches), once per file: sorting 10,000 statements
        held the event loop 18-40 ms at the start of every apply, a key pressed then waiting behind it. Pre-flight
        sorts it in a thread; the apply and a retry's apply take it from here."""
        mf, enabled = self.migration, not self.opt.pace
        assert mf is not None
        plan = self._batch_plan
        if plan is None or plan[0] is not mf or plan[1] != enabled:
            plan = self._batch_plan = (mf, enabled, applying.batches(mf.statements, set(mf.tables), enabled=enabled))
        return plan[2]

    def _statement_done(self, st, tag: str, dt: float, total: int, batch: int = 1) -> None:
        rec = applying.record(self, st, tag, dt, batch=batch)
        # A batch's statements share one round trip: their time is an equal share of it, said as such
        # ("≈"), never passed off as each statement's own measurement.
        timing = f"{dt * 1000:8.1f} ms" if batch == 1 else f"≈{dt * 1000:7.1f} ms"
        self.emit(StatementDone(rec, st.index, total, f"{st.index:>3}/{total} {tag:<16} {timing}  {st.summary}"))

    # ---- step 5: verify ----------------------------------------------------------------------------------
    async def verify(self) -> list[Check]:
        self._start(Action.VERIFY)
        assert self.session.conn and self.migration
        self._set(Step.VERIFY, State.RUNNING)
        s, t = self.session, self.opt.query_timeout
        try:
            # every extra name (not the checklist's capped list): a table the migration created must not hide
            res = await s.call(schema.validate(s.conn, self.migration.tables, extra_limit=None), t, "verify")
            checks = [Check("Required tables", res.ok and not res.drifted,
                            f"{res.summary()}" + (f"; missing: {', '.join(res.missing)}" if res.missing else "")
                            + (f"; drifted: {', '.join(res.drifted)}" if res.drifted else ""))]
            if "alert_templates" in res.present:
                cur = await s.call(s.conn.execute(sql("alert_templates_count")), t, "verify")
                n = (await cur.fetchone())[0]
                checks.append(Check("Default alert templates", n == 6, f"{n} / 6 present"))
            else:
                checks.append(Check("Default alert templates", False, "alert_templates is missing"))
            cur = await s.call(s.conn.execute(sql("public_table_count")), t, "verify")
            n = (await cur.fetchone())[0]
            checks += self._extras_checks(n, res.extra)
            if mig.drift_plan_header(self.migration.text) is not None:
                checks += await self._drift_left()
        except asyncio.CancelledError:
            if s.alive:
                self._set(Step.VERIFY, State.FAILED, "cancelled; the transaction is aborted: ROLLBACK")
                self._move(Phase.ABORTED)
            else:
                await self._cancel_lost(Step.VERIFY)
            raise
        except (Deadline, psycopg.Error) as exc:
            if self._connection_gone(exc):
                raise await self._lost(Step.VERIFY, exc) from None
            msg = f"Verify failed: the server answered: {_first(exc)}. COMMIT is blocked; ROLLBACK."
            self._set(Step.VERIFY, State.FAILED, msg)
            self._move(Phase.ABORTED)
            raise self._fail(msg, Verdict.VERIFY_FAILED) from None
        self.verify_checks = checks
        self.emit(ChecksDone(Step.VERIFY, tuple(checks)))
        for c in checks:
            self.say(f"{_mark(c)} {c.name}: {c.detail}", _level(c), Step.VERIFY)
        bad = [c for c in checks if c.blocking and not c.ok]
        if bad:
            self._set(Step.VERIFY, State.FAILED, bad[0].detail)
            self._move(Phase.APPLIED)
            raise self._fail(f"Verify failed: {bad[0].name}: {bad[0].detail}. COMMIT is blocked; ROLLBACK.",
                             Verdict.VERIFY_FAILED)
        others = [c for c in checks if not c.ok and c.name != "No drift left"]
        self._set(Step.VERIFY, State.DONE, "10 / 10, 6 templates, " + (
            "other tables reported" if others else "exactly 10 tables")
            + ("; drift left" if any(c.name == "No drift left" and not c.ok for c in checks) else ""))
        self._move(Phase.VERIFIED)
        return checks

    async def inspect(self, text: str, *, allow_write: bool = False):
        """One query typed in the inspection pane, inside the open transaction, under a savepoint (an error
        never aborts the migration). Recorded for the report. Raises InspectError or RunbookError."""
        from aami_tui.core import inspect as insp

        if self.running:
            raise RunbookError("A step is running; inspect when it has finished.")
        if self.phase is Phase.ABORTED:
            raise RunbookError("The transaction is aborted (a statement failed): it only accepts ROLLBACK.")
        if self.phase not in (Phase.OPEN, Phase.APPLIED, Phase.PARTIAL, Phase.VERIFIED):
            raise RunbookError("Inspect works while the migration transaction is open (after BEGIN, before "
                               "COMMIT or ROLLBACK).")
        s = self.session
        try:
            if allow_write and self.phase is Phase.VERIFIED and insp.classify(text).kind == "write":
                raise RunbookError("Verify has passed: a write now would change what was verified and COMMIT would "
                                   "not check it again. ROLLBACK and retry, or write before verify.")
            writing = allow_write and insp.classify(text).kind == "write"
            tables_before = (await self._inspect_guard())[1] if writing else None
            r = await s.call(insp.run(s.conn, text, allow_write=allow_write),
                             self.opt.statement_timeout + self.opt.grace, "the inspection query")
            guard, tables_after = await self._inspect_guard()
        except (insp.InspectError, RunbookError) as exc:  # refused, never sent: recorded all the same
            if text.strip():
                self.inspections.append({"attempt": self.attempt,
                                         **insp.refusal(text, getattr(exc, "kind", "write"), str(exc))})
                self.say(f"Inspect: {text.strip()} → refused (not sent): {exc}")
            raise
        except (Deadline, psycopg.Error) as exc:
            self.inspections.append({"attempt": self.attempt, "query": text.strip(), "kind": "?", "outcome": "failed",
                                     "row_count": 0, "status": "", "error": _first(exc), "seconds": 0.0,
                                     "kept": False})
            if self._connection_gone(exc):
                raise await self._lost(None, exc) from None
            raise
        if guard:
            r = dataclasses.replace(r, guard=guard)
        self.inspections.append({"attempt": self.attempt, **r.to_dict()})
        if tables_before is not None and r.kept:
            for name in sorted(tables_after - tables_before):
                self.inspect_created[name] = r.text
        if r.error:
            self.say(f"Inspect: {r.text} → error: {r.error}", "warn")
        else:
            self.say(f"Inspect: {r.text} → {plural(r.row_count, 'row')} ({r.status})" + (" — kept in the transaction"
                                                                                 if r.kept else ""))
        if r.kept:
            self._step_changes += 1  # the preview may have changed
        if guard:
            self.say(f"Inspect: {r.text} → {guard}", "error" if "another session" in guard else "warn")
        return r

    async def _inspect_guard(self) -> tuple[str, set[str]]:
        """After an inspection query (one round trip): the run still holds its one-operator lock (else it is
        re-taken, or said loudly that another session has it) and its timeouts (else they are put back).
        Returns what was found wrong, in words ("" when nothing), and the tables in public."""
        from psycopg import sql as q

        from aami_tui.core import locks
        from aami_tui.core.runbook.session import run_settings

        s, t = self.session, self.opt.query_timeout
        cur = await s.call(s.conn.execute(sql("inspect_guard"), locks.KEY), t, "checking the migration lock")
        locked, timeouts, tables = await cur.fetchone()
        said = []
        want = run_settings(lock_timeout=self.opt.lock_timeout, statement_timeout=self.opt.statement_timeout,
                            idle_timeout=self.opt.idle_timeout, server_version=s.conn.info.server_version)
        now = dict(x.split("=", 1) for x in timeouts or ())
        changed = [k for k, v in want.items() if k in now and f"{now[k]}ms" != v]
        if changed:
            await s.call(s.conn.execute(q.SQL("; ").join(
                q.SQL("SET LOCAL {} = {}").format(q.Identifier(k), q.Literal(want[k])) for k in changed)),
                t, "restoring the run's timeouts")
            said.append(f"it changed {', '.join(f'{k} (to {now[k]}ms)' for k in changed)}: put back to the run's "
                        + ", ".join(want[k] for k in changed))
        if s.locked and not locked:
            holder = await s.call(locks.try_lock(s.conn, settle=0), t + 2, "re-taking the migration lock")
            if holder is None:
                said.append("the run's one-operator migration lock was gone after it (released inside the query): "
                            "re-taken, no other session had taken it")
            else:
                s.locked = False
                said.append("the run's one-operator migration lock was released inside the query and another "
                            f"session has taken it ({locks.describe_holder(holder)}): another operator may be "
                            "migrating too; ROLLBACK is the safe way out")
        return "; ".join(said), set(tables or ())

    def _checklist_columns(self) -> dict | None:
        """The columns the checklists compare against: the file's own tables, or for a drift plan (whose file only
        alters them) the shipped migration's, as the dashboard and check --strict do."""
        if self.migration is None:
            return None
        if mig.drift_plan_header(self.migration.text) is not None:
            from aami_tui.core.expected import expected_columns

            return expected_columns(mig.resolve_migration_path(), parse=False) or self.migration.tables
        return self.migration.tables

    async def _drift_left(self) -> list[Check]:
        """After a drift plan, inside the transaction: do the ten tables now have the shipped migration's
        columns (what ``check --strict`` asks)? Reported before COMMIT, not blocking: a person may have decided
        to keep a column."""
        from aami_tui.core.expected import expected_columns

        shipped = mig.resolve_migration_path()
        columns = expected_columns(shipped, parse=False)  # pre-parsed: no pglast on the event loop
        if not columns:
            return []
        s = self.session
        res = await s.call(schema.validate(s.conn, columns, sizes=False), self.opt.query_timeout, "verify")
        if not res.drifted:
            return [Check("No drift left", True, f"every required table has the columns {shipped.name} creates: "
                          "check --strict would pass after COMMIT")]
        return [Check("No drift left", False, f"{', '.join(res.drifted)} still differ from {shipped.name} (the plan "
                      "left them): check --strict would exit 3 after COMMIT; aami-tui plan shows what is left",
                      blocking=False)]

    def _extras_checks(self, n: int, extra) -> list[Check]:
        """Tables in public beyond the ten: what the migration created is an error; what was there before BEGIN
        is reported (a gate only with --exact)."""
        if not extra:
            return [Check("Exactly ten tables in public", n == 10, f"public holds {plural(n, 'table')}")]
        before = self.tables_before_begin or {}
        created = [x for x in extra if x not in before and x not in self.inspect_created]
        pane = [x for x in extra if x not in before and x in self.inspect_created]
        old = [x for x in extra if x in before]
        out = []
        if pane:
            out.append(Check("Tables created in the inspection pane", False, ", ".join(
                f"{x} (by `{self.inspect_created[x]}`)" for x in pane) + (" were" if len(pane) > 1 else " was") + " created by the operator in the "
                "inspection pane (\\write), not by the migration file; COMMIT keeps them and the Config Server "
                "ignores them" + ("; --exact requires exactly ten" if self.opt.exact else ""),
                blocking=self.opt.exact))
        if created:
            out.append(Check("Tables the migration created", False, f"the migration created {', '.join(created)}, "
                             "which the Config Server does not use (take it out of the file, then retry)"))
        if old:
            from aami_tui.core.runbook.preflight import describe_size

            touched = (set(self.file_facts.touched) if self.file_facts is not None
                       else set(_named_tables(self.migration)) if self.migration else set())
            names = ", ".join(f"{x} ({describe_size(*before[x])}"
                              + (", changed by this migration" if x in touched else "") + ")" for x in old[:10])
            more = f" and {len(old) - 10} more" if len(old) > 10 else ""
            if self.opt.exact:
                out.append(Check("Exactly ten tables in public", False, f"public holds {plural(n, 'table')}: {names}{more} "
                                 "existed before BEGIN; --exact requires exactly ten"))
            else:
                out.append(Check("Other tables in public", False, f"{names}{more} existed before BEGIN and stay; "
                                 "the Config Server ignores them (--exact makes this a gate)", blocking=False))
        return out

    async def ping(self) -> None:
        """While the transaction sits open and idle, make sure our session still exists and answers; if
        not, say so plainly (nothing is committed) and fence the old backend."""
        if not self.tx_open or self.running or self.session.conn is None:
            return
        s = self.session
        try:
            await s.call(s.conn.execute("SELECT 1"), self.opt.query_timeout, "a check that the session is alive")
        except (Deadline, psycopg.Error) as exc:
            if self.running:  # a step (COMMIT) began while the check was out: its own path decides the outcome
                return
            if self._connection_gone(exc):
                raise await self._lost(None, exc) from None

    async def preview(self) -> schema.ValidationResult | None:
        """What the open transaction sees (the checklists show it marked uncommitted).

        Queried once after each step and cached: polling the migration connection would reset the
        server's idle-in-transaction clock (state_change), hiding an operator who walked away from the
        lock watch and from idle_in_transaction_session_timeout.
        """
        if self.tx != Tx.OPEN or self.session.conn is None or self.running:
            return None
        if self._preview is not None and self._preview[0] == self._step_changes:
            return self._preview[1]
        try:
            res = await self.session.call(schema.validate(self.session.conn, self._checklist_columns()),
                                          self.opt.query_timeout, "the preview")
        except (psycopg.Error, Deadline) as exc:
            if self._connection_gone(exc) and self.tx_open and not self.running:
                await self._lost(None, exc)  # said in the log and the bar; the preview just has nothing
            return None
        self._preview = (self._step_changes, res)
        return res

    # ---- step 6: COMMIT / ROLLBACK --------------------------------------------------------------------------
    STANDBY_ASK = 3.0  # seconds the COMMIT prompt waits for the server's answer about synchronous standbys

    async def standby_risk(self) -> Check | None:
        """Pre-flight's synchronous-standby check asked again, for the COMMIT prompt: a standby can go (or
        synchronous_standby_names change) while the DBA verifies and inspects. On a connection of its own (a query
        that failed inside the migration's transaction would abort it), within STANDBY_ASK seconds (the prompt
        waits for it). None: no synchronous standby. A server that does not answer is said as such (not ok)."""
        async def ask():
            conn = await connect(self.settings, autocommit=True)
            try:
                cur = await conn.execute(sql("sync_standbys"))
                return preflight.sync_standbys_check(await cur.fetchone(), preflight.standby_until(self),
                                                     before="COMMIT")
            finally:
                await conn.close()

        limit = min(self.opt.query_timeout, self.STANDBY_ASK)
        try:
            return await asyncio.wait_for(ask(), limit)
        except (TimeoutError, psycopg.Error, ConnectError, OSError) as exc:
            why = f"no answer within {limit:g}s" if isinstance(exc, TimeoutError) else Mask.of(self.settings)(str(exc)).strip()
            return Check("Synchronous standby", False, f"not asked again ({why}); pre-flight's check stands",
                         blocking=False)

    async def commit(self, typed_dbname: str) -> list[str]:
        nxt = decide(self.phase, Action.COMMIT)
        if not isinstance(nxt, Phase):
            raise RunbookError(f"COMMIT is not possible now: {nxt}.")
        if typed_dbname != self.settings.dbname:
            raise RunbookError(f"COMMIT not confirmed: type the database name {self.settings.dbname!r} exactly.")
        self._start(Action.COMMIT)
        self._set(Step.COMMIT, State.RUNNING)
        s = self.session
        self.commit_syncrep = self.commit_syncrep_since = None
        self.syncrep_ended = ""
        stop = asyncio.Event()
        self._commit_watch = asyncio.create_task(self._watch_commit(stop))
        self._commit_sent = time.monotonic()
        self._commit_ended_by = None
        ended = "the COMMIT was interrupted"
        try:
            try:
                # someone at the keyboard decides when a COMMIT waiting on SyncRep stops waiting; headless: the
                # timeout does (no one to ask)
                await s.call(s.conn.execute("COMMIT"), self.opt.commit_timeout, "COMMIT",
                             at_deadline=self._commit_deadline if self.interactive else None)
                ended = "the COMMIT answered before the operator did"
            except psycopg.Error:
                ended = "the COMMIT's connection was lost"
                raise
            finally:
                stop.set()  # the watch ends on its own (never cancelled mid-query: no cancel request on the monitor)
                self._commit_question_gone(ended)
        except Deadline as exc:
            if self._commit_ended_by is not None:  # the operator's answer, or a close with no one left to ask
                why, label = self._commit_ended_by
                return await self._resolve(why, label=label)
            return await self._resolve(f"COMMIT got no answer within {exc.seconds:g}s",
                                       label=f"no answer within --commit-timeout ({exc.seconds:g}s)")
        except asyncio.CancelledError:
            await asyncio.shield(self._resolve("COMMIT was interrupted in flight", raise_=False,
                                               label="interrupted in flight"))
            raise
        except psycopg.Error as exc:
            if self._connection_gone(exc):
                return await self._resolve(f"the connection was lost during COMMIT ({_first(exc)})",
                                           label="the connection was lost")
            # e.g. a deferred constraint trigger: the server rejected COMMIT and rolled back
            msg = (f"COMMIT rejected by the server: {_first(exc)}. The server rolled the transaction back: "
                   "nothing was changed.")
            self._set(Step.COMMIT, State.FAILED, msg)
            self._set(Step.ROLLBACK, State.DONE, "by the server (COMMIT rejected)")
            self.say(msg, "error", Step.COMMIT)
            await s.unlock(self.opt.query_timeout)
            self._move(Phase.ROLLED_BACK)
            err = self._fail(msg, Verdict.COMMIT_REJECTED)
            self.queue_report()
            raise err from None
        if self.syncrep_ended:  # COMMIT answered, but only because someone cancelled its wait for the standby
            names = self.commit_syncrep
            if names is None:
                with contextlib.suppress(Exception):
                    cur = await s.call(s.conn.execute("SHOW synchronous_standby_names"), self.opt.query_timeout,
                                       "SHOW synchronous_standby_names")
                    names = (await cur.fetchone())[0]
            self.unreplicated = committing.unreplicated(names, f"the server: {self.syncrep_ended}")
        return await self._committed()

    async def _watch_commit(self, stop: asyncio.Event) -> None:
        """While COMMIT is out: is our backend waiting on synchronous replication (wait_event SyncRep: committed
        locally, a standby has not confirmed)? Asked on the monitor the engine already has (none: not asked), and
        said once, in the log (both faces), and kept for the bar and the resolver."""
        pid, mon = self.backend_pid, self.monitor
        if pid is None or mon is None or mon.closed:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.3)
        while not stop.is_set():
            try:
                cur = await bounded(mon, mon.execute(sql("commit_wait"), {"pid": pid}), self.opt.query_timeout,
                                    "the COMMIT watch")
                row = await cur.fetchone()
            except Exception:  # noqa: BLE001 - a watch only: a dead monitor says nothing (the COMMIT has its bounds)
                return
            if stop.is_set():
                return
            if row is not None and row[0] == committing.SYNCREP and self.commit_syncrep is None:
                self.commit_syncrep, self.commit_syncrep_since = row[1], time.monotonic()
                self.say(committing.syncrep_waiting(row[1], timeout=self.opt.commit_timeout,
                                                    asks=self.interactive) + ".", "warn", Step.COMMIT)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def commit_waiting_words(self, short: bool = False) -> str:
        """The bar's words for a COMMIT seen waiting on SyncRep ("": not seen); they go on counting while the
        operator is asked (CommitWaitAsked). ``short``: for an 80-column bar."""
        if self.commit_syncrep is None or self.commit_syncrep_since is None:
            return ""
        words = committing.syncrep_bar_short if short else committing.syncrep_bar
        return words(self.commit_syncrep, time.monotonic() - self.commit_syncrep_since)

    async def _commit_deadline(self) -> bool:
        """--commit-timeout ran out, the COMMIT still out. Seen waiting on SyncRep (committed locally, its synchronous
        standby silent), and someone at the keyboard: ask them (CommitWaitAsked), the COMMIT waiting meanwhile; True
        keeps waiting another --commit-timeout. Not seen there (no answer at all: a frozen network…): False, the wait
        ends and the one resolver decides, as always. Cancelled (by ``bounded``) if the COMMIT answers meanwhile."""
        names = self.commit_syncrep
        if names is None or self._commit_sent is None or not self._may_ask:
            return False
        now = time.monotonic()
        number = sum(1 for w in self.commit_waits if w["attempt"] == self.attempt) + 1
        q = CommitWaitAsked(number, names, now - self._commit_sent, self.opt.commit_timeout)
        record = {"attempt": self.attempt, "question": number, "standby": names, "asked": time.time(),
                  "waited_s": round(q.waited, 1), "answer": None, "answered": None, "closed": None}
        self.commit_waits.append(record)
        self.commit_question, self._commit_answer = q, asyncio.get_running_loop().create_future()
        self.say(f"COMMIT: no answer within --commit-timeout ({q.timeout:g}s): committed locally, still waiting for "
                 f"the synchronous standby '{names}' (wait_event SyncRep); asking the operator: keep waiting, or end "
                 "the wait (which leaves the migration committed on the primary only).", "warn", Step.COMMIT)
        self.emit(q)
        choice = await self._commit_answer  # cancelled: the question is closed by commit() (_commit_question_gone)
        self.commit_question = self._commit_answer = None
        waited = time.monotonic() - self._commit_sent
        record["answered"] = time.time()
        if choice is None:  # the run is closing: no one is left to answer (headless's way: the wait ends)
            record["closed"] = "the run was closed: no one left to ask"
            self._commit_ended_by = (f"The run was closed while the COMMIT waited for the synchronous standby "
                                     f"({waited:.0f}s)", "the run was closed: no one left to ask")
            msg = f"COMMIT: the question is withdrawn: {record['closed']}."
        elif choice is CommitWait.KEEP:
            record["answer"] = choice.value
            msg = (f"COMMIT: the operator chose to keep waiting for the synchronous standby '{names}' (asked again "
                   f"in {q.timeout:g}s).")
        else:
            record["answer"] = choice.value
            self._commit_ended_by = (f"The operator ended the COMMIT's wait for the synchronous standby after "
                                     f"{waited:.0f}s", "the operator ended the wait for the standby")
            msg = f"COMMIT: the operator chose to end the wait for the synchronous standby '{names}'."
        self.say(msg, "warn", Step.COMMIT)
        self.emit(CommitWaitClosed(number, choice if record["answer"] else None, msg))
        self._journal()
        return choice is CommitWait.KEEP

    def answer_commit_wait(self, choice: CommitWait, number: int | None = None) -> bool:
        """The operator's answer to the open CommitWaitAsked (``number``: to that question only). False: no such
        question is open (the COMMIT answered meanwhile, or it was answered already): nothing done."""
        q, fut = self.commit_question, self._commit_answer
        if q is None or fut is None or fut.done() or (number is not None and number != q.number):
            return False
        fut.set_result(CommitWait(choice))
        return True

    def _stop_asking(self) -> None:
        """The run is closing (a quit, a signal): no one is left to answer; a COMMIT waiting on SyncRep then ends as
        headless's does, at its deadline (now, if the question is open)."""
        self._may_ask = False
        if self._commit_answer is not None and not self._commit_answer.done():
            self._commit_answer.set_result(None)

    def _commit_question_gone(self, why: str) -> None:
        """COMMIT ended while its question was open: the question is withdrawn (recorded, said, and the faces told)."""
        q = self.commit_question
        if q is None:
            return
        self.commit_question = self._commit_answer = None
        record = self.commit_waits[-1]
        record["closed"], record["answered"] = why, time.time()
        msg = f"COMMIT: the question is withdrawn: {why}."
        self.say(msg, "info", Step.COMMIT)
        self.emit(CommitWaitClosed(q.number, None, msg))

    async def _committed(self, note: str = "") -> list[str]:
        self.verdict = self.committed_verdict
        await self.session.unlock(self.opt.query_timeout)
        self._set(Step.COMMIT, State.DONE, note or "committed")
        self._move(Phase.COMMITTED)
        if self.unreplicated:
            self.say(committing.unreplicated_line(self.unreplicated), "error", Step.COMMIT)
        else:
            self.say("✓ COMMIT: the migration is permanent.", "ok", Step.COMMIT)
        # The server's own start-up validation, on a fresh connection.
        try:
            fresh = await asyncio.wait_for(connect(self.settings), self.opt.query_timeout)
            try:
                res = await asyncio.wait_for(schema.validate(fresh, self._checklist_columns()),
                                             self.opt.query_timeout)
                i = fresh.info
                self.post_commit_lines = schema.server_lines(res, i.host, i.user, i.dbname, i.port)
            finally:
                await fresh.close()
        except (ConnectError, psycopg.Error, TimeoutError) as exc:
            self.post_commit_lines = [f"(could not re-run the validation: {_first(exc)})"]
        for line in self.post_commit_lines:
            self.say(line, "ok" if line.startswith("✓") else "info", Step.COMMIT)
        await self.close_connections()
        self.queue_report()
        return self.post_commit_lines

    async def _resolve(self, why: str, raise_: bool = True, label: str = "") -> list[str]:
        """The one path for a COMMIT whose answer did not come (``label``: ``why`` in a few words, for the bar)."""
        self.say(f"{why}: asking the server what became of transaction {self.xid or '?'} …", "warn", Step.COMMIT)
        self.resolving = (label or why, time.monotonic())
        try:
            r = await committing.resolve(self)
        finally:
            self.resolving = None
        await self.session.close(1.0)
        if r.phase is Phase.COMMITTED:
            if r.syncrep is not None:
                self.unreplicated = committing.unreplicated(r.syncrep, r.fence)
                self.say(f"{why}; the server confirms transaction {self.xid} {self.unreplicated}.", "warn",
                         Step.COMMIT)
                return await self._committed(f"committed on the primary only, NOT confirmed on the synchronous "
                                             f"standby (pg_xact_status after: {why})")
            self.say(f"{why}; the server confirms transaction {self.xid} committed ({r.fence}).", "warn", Step.COMMIT)
            return await self._committed(f"committed (confirmed by pg_xact_status after: {why})")
        if r.phase is Phase.ROLLED_BACK:
            msg = (f"{why}; the server confirms transaction {self.xid} rolled back ({r.fence}): nothing of the "
                   "migration is in the database.")
            self.lost = False  # confirmed by the server, not presumed: plainly rolled back
            self._set(Step.COMMIT, State.FAILED, msg)
            self._set(Step.ROLLBACK, State.DONE, "by the server (COMMIT did not complete)")
            self.say(msg, "error", Step.COMMIT)
            self._move(Phase.ROLLED_BACK)
            err = self._fail(msg, Verdict.CONNECTION)
        else:
            msg = (f"{why}, and the server could not be asked what became of it "
                   f"(pg_xact_status: {r.status or 'no answer'}; {r.fence}). The COMMIT outcome is unknown: do "
                   f"not retry. {committing.fate_words(r.query, self.backend_pid)}.")
            self._set(Step.COMMIT, State.FAILED, msg)
            self.say(msg, "error", Step.COMMIT)
            self._move(Phase.UNKNOWN)
            err = self._fail(msg, Verdict.COMMIT_UNKNOWN)
        self.queue_report()
        if raise_:
            raise err
        return []

    async def recheck(self, wait: float | None = None) -> Phase:
        """Ask the server again what became of a COMMIT whose outcome is unknown, through the one resolver
        (``commit.resolve``: fence our old backend, pg_xact_status on a fresh connection). Ends committed,
        rolled back, or still unknown, and says which (an ``OutcomeRechecked`` event)."""
        self._start(Action.RECHECK)
        xid = self.xid or "?"
        self.say(f"Re-check: asking the server what became of transaction {xid} …", "info", Step.COMMIT)
        try:
            r = await committing.resolve(self, wait)
        except asyncio.CancelledError:
            self._move(Phase.UNKNOWN)
            self.say("Re-check interrupted: the COMMIT's outcome is still unknown.", "warn", Step.COMMIT)
            raise
        if r.phase is Phase.COMMITTED:
            if r.syncrep is not None:
                self.unreplicated = committing.unreplicated(r.syncrep, r.fence)
                msg = f"Re-check: the server confirms transaction {xid} {self.unreplicated}."
            else:
                msg = f"Re-check: the server confirms transaction {xid} committed ({r.fence})."
            self.say(msg, "warn" if self.unreplicated else "ok", Step.COMMIT)
            self.failure = ""
            await self._committed("committed on the primary only, NOT confirmed on the synchronous standby "
                                  "(pg_xact_status on a re-check)" if self.unreplicated else
                                  "committed (confirmed by pg_xact_status on a re-check)")
        elif r.phase is Phase.ROLLED_BACK:
            msg = (f"Re-check: the server confirms transaction {xid} rolled back ({r.fence}): nothing of the "
                   "migration is in the database.")
            # Confirmed, not presumed: the run is plainly rolled back (not 'connection lost: not committed').
            self.lost = self.unconfirmed = False
            self._set(Step.COMMIT, State.FAILED, msg)
            self._set(Step.ROLLBACK, State.DONE, "by the server (COMMIT did not complete)")
            self.say(msg, "warn", Step.COMMIT)
            self._move(Phase.ROLLED_BACK)
            self._fail(msg, Verdict.CONNECTION)
            self.queue_report()
        else:
            msg = (f"Re-check: still unknown (pg_xact_status: {r.status or 'no answer'}; {r.fence}). Do not retry "
                   f"the migration; re-check again later. {committing.fate_words(r.query, self.backend_pid)}")
            self.say(msg, "error", Step.COMMIT)
            self._move(Phase.UNKNOWN)
            self.queue_report()
        self.last_recheck = msg
        self.emit(OutcomeRechecked(self.phase, r.status, r.query, msg))
        return self.phase

    async def rollback(self, reason: str = "operator") -> None:
        self._start(Action.ROLLBACK)
        self._set(Step.ROLLBACK, State.RUNNING)
        s = self.session
        how, unseen = f"rolled back ({reason})", ""
        try:
            if s.conn is None or s.conn.closed:
                raise psycopg.OperationalError("the session is gone")
            await s.call(s.conn.execute("ROLLBACK"), self.opt.commit_timeout, "ROLLBACK")
        except (Deadline, psycopg.Error) as exc:  # no answer, or the session is gone: is our backend gone too?
            if not isinstance(exc, Deadline):
                s.abandon()
            fence = await s.fence(min(self.opt.query_timeout, 5.0))
            self.lost, self.unconfirmed = True, not _fenced(fence)
            self._unseen(not self.unconfirmed)
            what = (f"ROLLBACK got no answer within {exc.seconds:g}s" if isinstance(exc, Deadline) else
                    f"the session was gone ({_first(exc)})")
            how = f"{'not confirmed' if self.unconfirmed else 'rolled back'} ({reason}); {what}: {fence}"
            if self.unconfirmed:
                unseen = f"{what}; {fence}"
        except asyncio.CancelledError:
            s.abandon()
            self.unconfirmed = True  # sent perhaps, never answered
            self._unseen(False)
            self._set(Step.ROLLBACK, State.UNCONFIRMED, how + "; interrupted: the session was closed, the server "
                                                               "rolls back")
            self._move(Phase.ROLLED_BACK)
            raise
        self._set(Step.ROLLBACK, State.UNCONFIRMED if unseen else State.DONE, how)
        if unseen:
            self.say(f"ROLLBACK ({reason}) not confirmed ({unseen}). COMMIT was never sent, so nothing is committed; "
                     "the server rolls the transaction back when it notices.", "error", Step.ROLLBACK)
        else:
            self.say(f"ROLLBACK ({reason}): the database is as it was before BEGIN.", "warn", Step.ROLLBACK)
        if s.alive:
            await s.unlock(self.opt.query_timeout)
        else:
            await s.close(1.0)
        self._move(Phase.ROLLED_BACK)
        self.queue_report()

    def ending(self, reason: str) -> None:
        """The run is being ended from outside (``reason``: a signal's words, "the terminal was closed (SIGHUP)"),
        said before its running step is cancelled: the log and, when that cancel loses the session, the failure
        say what caused it. Only the first reason counts."""
        if self.ending_reason or self.phase in ENDED:
            return
        self.ending_reason = reason
        what = []
        if self.phase is Phase.COMMITTING:
            what.append("COMMIT is in flight: never cancelled, its outcome is awaited")
        elif self.running:
            what.append(f"{RUNNING[self.phase]} is cancelled")
        if self.tx_open and self.phase is not Phase.COMMITTING:
            what.append("the open transaction is rolled back (COMMIT was never sent)")
        self.say(f"The run ends: {reason}" + (f": {'; '.join(what)}." if what else "."), "warn")

    async def close(self, reason: str = "console closed") -> None:
        """End the run: roll back an open transaction, release the lock, write the report, and return once every
        report write is on disk (or said to have failed): the audit trail is complete before the console exits."""
        if self.phase is Phase.CLOSED:
            await self.flush_reports()
            return
        deadline = time.monotonic() + 2 * self.opt.query_timeout + 10.0
        while self._losing and time.monotonic() < deadline:  # a silent session being ended: let it say so first
            await asyncio.sleep(0.05)
        if self.running:
            await self._stop_running_step()
        if self.tx_open and not self.running:
            with contextlib.suppress(Exception):
                await self.rollback(reason)
        if not self.running:
            self.closed_outcome = Outcome.ABANDONED if self.outcome is Outcome.IN_PROGRESS else self.outcome
            if self.unseen_end is not None and self.closed_outcome in (Outcome.ABANDONED, Outcome.ROLLED_BACK):
                self.closed_outcome = Outcome.NOT_CONFIRMED  # a retry's pre-flight failed: still nobody saw it end
            self._move(Phase.CLOSED)
        await self.close_connections()
        await self.flush_reports()  # the writes queued before (a failure they say goes into the last report)
        await self.write_report()

    async def _stop_running_step(self) -> None:
        """close() while a step runs (a signal, a quit): cancel it and let it settle, so that the report
        never says 'transaction open' for a run that is over. COMMIT is never cancelled: it resolves."""
        task = self._step_task
        self._stop_asking()
        limit = self.opt.commit_timeout + 3 * self.opt.query_timeout if self.phase is Phase.COMMITTING else 15.0
        if task is not None and task is not asyncio.current_task() and not task.done() \
                and self.phase is not Phase.COMMITTING:
            task.cancel()
        deadline = time.monotonic() + limit
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.running:
            self.say(f"{RUNNING[self.phase]} did not stop within {limit:g}s of the close.", "error")

    async def close_connections(self) -> None:
        await self.session.close()
        mon, self.monitor = self.monitor, None
        if mon is not None and not mon.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(mon.close(), 5)

    # ---- lock watch ----------------------------------------------------------------------------------------
    async def lock_watch(self) -> LockWatch | None:
        """Sessions waiting on our locks, our transaction's age and idle-in-transaction time."""
        return await lockwatch.sample(self)

    # ---- report ---------------------------------------------------------------------------------------------
    def record(self) -> report.RunRecord:
        """Everything the report needs, frozen."""
        ended = self.phase in ENDED
        s = self.settings.effective()

        def row(r: StepRecord | StepSnapshot) -> report.StepRow:
            state = r.state
            if ended and state == State.PENDING:
                state = State.NOT_RUN
            return report.StepRow(r.step.value, r.step.title, state.value, r.detail, r.started, r.ended,
                                  round(r.elapsed, 3) if r.elapsed is not None else None)

        statements, settled = self._statement_rows()
        return report.RunRecord(
            tool=f"aami-tui {__version__}", operator=self.operator, client_host=self.client_host,
            server={"host": self.server.get("host") or s.get("host"), "port": self.server.get("port") or s.get("port"),
                    "version": self.server.get("server_version"), "user": self.server.get("user") or s.get("user")},
            database=self.settings.dbname, started=self.started_at, ended=self.ended_at,
            final_state=self.outcome.value, transaction=self.tx.value, attempts=self.attempt,
            verdict=self.verdict.words if self.verdict else None,
            exit_code=self.verdict.exit_code if self.verdict else None,
            failure=self.failure or None, transaction_id=self.xid, backend_pid=self.backend_pid,
            timeouts={"lock_timeout_s": self.opt.lock_timeout, "statement_timeout_s": self.opt.statement_timeout,
                      "commit_timeout_s": self.opt.commit_timeout,
                      "idle_in_transaction_session_timeout_s": self.opt.idle_timeout},
            migration=self._migration_record(),
            steps=tuple(row(self.steps[st]) for st in (*STEP_ORDER[:2], Step.REHEARSE, *STEP_ORDER[2:], Step.ROLLBACK)
                        if st is not Step.REHEARSE or self.steps[st].state is not State.PENDING),
            earlier_attempts=tuple((n, tuple(row(r) for r in recs)) for n, recs in self.history),
            checklist=tuple((label, "yes" if self.answers[k] else ("not asked (headless)" if not self.interactive
                                                                   else "no")) for k, label in self.items),
            answered_by=tuple((label, self.answered_by[k]) for k, label in self.items
                              if self.answers[k] and k in self.answered_by),
            mode="development" if self.opt.dev else "production",
            checks=tuple(c.to_dict() for c in self.checks),
            backup=self.backup.to_dict() if self.backup else ("skipped" if self.steps[Step.BACKUP].state
                                                              is State.SKIPPED else None),
            statements=statements,
            settled=settled,
            verify=tuple(c.to_dict() for c in self.verify_checks),
            post_commit_validation=tuple(self.post_commit_lines),
            waiters=tuple(dict(w) for w in self.waiters_seen.values()),  # copies: the thread shares no dict
            log=tuple(self.log),
            inspections=tuple(dict(x) for x in self.inspections),
            lint=self.lint_result.to_dict() if self.lint_result is not None else None,
            rehearsals=tuple(r.to_dict() for r in self.rehearsals),
            begin_confirmed=self.begin_confirmed,
            commit_waits=tuple(dict(w) for w in self.commit_waits),  # copies: the thread shares no dict
            closed=self.phase is Phase.CLOSED,
        )

    def _statement_rows(self) -> tuple[report.Rows, int]:
        """The report's statement rows, and how many of the first ones can no longer change: all of them unless an
        apply runs (an attempt's statements are recorded by its one apply; the next attempt starts at BEGIN). The
        rows are built once, as their records are made (``statement_rows``), and the same objects go into every
        later record: the report thread renders them once too (report.Rendered), and a write costs what is new.
        The rows of attempts before this one become a chunk the first time a record is taken after they ended:
        a record copies the open attempt's rows only (report.Rows)."""
        rows = self.statement_rows
        k = len(rows)
        while k and rows[k - 1]["attempt"] >= self.attempt:
            k -= 1
        if k:
            self._row_chunks.append(tuple(rows[:k]))
            del rows[:k]
        ended = sum(len(c) for c in self._row_chunks)
        if self.phase is not Phase.APPLYING:  # no apply runs: its attempt's records are all made
            ended += len(rows)
        return report.Rows((*self._row_chunks, tuple(rows))), ended

    def _migration_record(self) -> dict:
        """The file that ran: path, sha256, size, statements; a drift plan says so (its own header: for which
        database, when, against which reference), so the report tells a repair from the shipped migration."""
        m = self.migration
        if m is None:
            return {"path": str(self.migration_path)}
        out = {"path": str(m.path), "sha256": m.sha256, "size": m.size, "statements": len(m.statements)}
        header = mig.drift_plan_header(m.text)
        if header is not None:
            out["kind"] = "drift plan"
            out["drift_plan"] = header
        return out

    def queue_report(self) -> asyncio.Future:
        """Queue a write of the run report and return at once: a step ends when its database work ends, not when
        its report is on disk (with nine attempts of a 10,000-statement file a write took seconds, and the
        operator's n waited for it). The record is frozen here, on the loop, and handed to the engine's one report
        thread: writes run one at a time in the order they were queued, so a later report is never overtaken by an
        earlier one. Each says when it is done (a ``ReportWritten`` event) or that it failed (an error in the log,
        which the next report holds). ``close()`` waits for every write queued; ``flush_reports()`` too."""
        rec = self.record()  # a snapshot: nothing the thread reads is mutated afterwards
        if self._mask is None:
            self._mask = Mask.of(self.settings)
        reports_dir, secret, rendered = self.opt.reports_dir, self._mask, self._rendered
        if self._report_thread is None:
            self._report_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aami-report")

        adopted = list(self._adopted) if rec.closed else []
        pause = report.YIELD if self.interactive else 0.0  # under a console the keys come first (report.YIELD)

        def write() -> tuple[Path, Path]:  # in the report thread: self.report_paths only changes here
            self.report_paths = report.write(rec, reports_dir, secret, self.report_paths, rendered,
                                             mark=not rec.closed, pause=pause)
            if rec.closed:  # the last report is on disk: no marker, and the earlier unclosed runs it names are said
                report.unmark(self.report_paths[0])
                for m in adopted:
                    with contextlib.suppress(OSError):
                        Path(m).unlink()
            return self.report_paths

        fut = asyncio.get_running_loop().run_in_executor(self._report_thread, write)  # queued now, in order
        fut.add_done_callback(self._report_done)
        self._report_last = fut
        return fut

    def _report_done(self, fut: asyncio.Future) -> None:
        """On the loop, as each write ends (before anyone awaiting it resumes): say so, or say why not."""
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            self.emit(ReportWritten(*fut.result()))
        elif isinstance(exc, OSError | pgtools.ToolError):
            self.say(f"Could not write the run report: {exc}", "error")
        else:  # a bug in the rendering: still said, never a report lost without a word
            log.error("the run report could not be written", exc_info=exc)
            self.say(f"Could not write the run report: {type(exc).__name__}: {exc}", "error")

    async def write_report(self) -> tuple[Path, Path] | None:
        """Queue a write of the run report (``queue_report``) and wait for it: its paths, or None if it failed
        (said in the log). Waiting is the caller's choice: the steps do not wait."""
        fut = self.queue_report()
        with contextlib.suppress(Exception):
            return await asyncio.shield(fut)
        return None

    async def flush_reports(self) -> tuple[Path, Path] | None:
        """Wait until every report write queued so far has ended (the last one ends last: one thread, in order).
        Returns the report's paths, or None when the last write failed (said in the log)."""
        fut = self._report_last
        if fut is None:
            return self.report_paths
        with contextlib.suppress(Exception):
            return await asyncio.shield(fut)
        return None


BEGIN_WATCH_GRACE = 0.3  # seconds before BEGIN's lock-wait watch first asks (a BEGIN that answers costs nothing)
# The running phases whose settling queues no report write of its own (COMMIT, ROLLBACK and the rehearsal do):
# the journal writes one.
_JOURNALED_ENDS = frozenset({Phase.PREFLIGHT, Phase.BACKUP, Phase.BEGINNING, Phase.APPLYING, Phase.VERIFYING})



def _fenced(fence: str) -> bool:
    """Whether ``Session.fence``'s words say our old backend is gone (its transaction then ended, uncommitted)."""
    return "ended (pg_terminate_backend)" in fence or "had already gone" in fence


def _mark(c: Check) -> str:
    return "✓" if c.ok else ("✗" if c.blocking else "!")


def _level(c: Check) -> str:
    return "ok" if c.ok else ("error" if c.blocking else "warn")


def _named_tables(migration) -> list[str]:
    """Tables the migration file's statements act on (pglast), to tell 'untouched' extras from changed ones."""
    from aami_tui.core.lint import _statements

    try:
        return [t for st in _statements(migration.text) for t in ([st.table] + [x for x, _ in st.locks]) if t]
    except Exception:  # noqa: BLE001 - only used for words in a warning
        return []
