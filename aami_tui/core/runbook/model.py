"""The runbook's typed records: steps, their states, outcomes (with exit codes and words), options.

Everything here is data: no I/O, no connection. Records handed to the faces are frozen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum, StrEnum

from aami_tui.core.runbook.options import Options  # noqa: F401  (own module: the first frame needs only it)

PREFLIGHT_ITEMS: tuple[tuple[str, str], ...] = (
    ("review", "Reviewed the migration SQL"),
    ("staging", "Tested the migration on staging first"),
    ("window", "Maintenance window scheduled and started"),
    ("rollback_plan", "Rollback plan prepared"),
    ("stakeholders", "Stakeholders notified"),
)


# Development mode (a local or throwaway database): the one item that still matters before running SQL.
DEV_ITEMS: tuple[tuple[str, str], ...] = (("review", "Reviewed the migration SQL"),)


# The pre-flight check that finds the migration already applied (the run then ends: Phase.NOTHING_TO_DO).
NOTHING_TO_DO = "Nothing to do"


# How steps (and the machine's actions, which share their names) are shown to the operator.
TITLES = {"preflight": "Pre-flight", "backup": "Backup", "rehearse": "Rehearsal", "begin": "BEGIN", "apply": "Apply",
          "verify": "Verify", "commit": "COMMIT", "rollback": "ROLLBACK", "close": "Close", "recheck": "Re-check"}


class Step(StrEnum):
    PREFLIGHT = "preflight"
    BACKUP = "backup"
    REHEARSE = "rehearse"  # optional, before BEGIN: not in STEP_ORDER (n goes on to BEGIN without it)
    BEGIN = "begin"
    APPLY = "apply"
    VERIFY = "verify"
    COMMIT = "commit"
    ROLLBACK = "rollback"

    @property
    def title(self) -> str:
        return TITLES[self.value]


STEP_ORDER = (Step.PREFLIGHT, Step.BACKUP, Step.BEGIN, Step.APPLY, Step.VERIFY, Step.COMMIT)
TX_STEPS = (Step.BEGIN, Step.APPLY, Step.VERIFY, Step.COMMIT, Step.ROLLBACK)  # one set per attempt


class State(StrEnum):
    """A step's state (the run's state is machine.Phase)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"  # the run ended before this step was reached
    # ROLLBACK only: the session was lost with the transaction open and nobody saw it end (no ROLLBACK answered,
    # the old backend could not be ended or seen gone): COMMIT was never sent, the server rolls back when it notices.
    UNCONFIRMED = "not confirmed"


StepState = State


class Tx(StrEnum):
    """What the migration transaction is, in words for the transaction bar."""

    NONE = "no transaction"
    OPEN = "transaction open"
    ABORTED = "transaction aborted (ROLLBACK only)"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    LOST = "connection lost: not committed"
    UNKNOWN = "COMMIT outcome unknown"


class Outcome(StrEnum):
    """The run's final state (what the database holds), as written in the report."""

    IN_PROGRESS = "in progress"
    COMMITTED = "committed"
    NOTHING_TO_DO = "nothing to do: already migrated, nothing changed"  # the run ended after pre-flight
    ROLLED_BACK = "rolled back"  # seen: our ROLLBACK answered, the server said so, or our backend is gone
    # The session was lost with the transaction open and nothing confirmed its end (no ROLLBACK answered, the old
    # backend could not be ended or seen gone): COMMIT was never sent, the server rolls back when it notices.
    NOT_CONFIRMED = "not committed, rollback unconfirmed"
    UNKNOWN = "outcome unknown"
    ABANDONED = "abandoned (nothing changed)"


class CommitWait(StrEnum):
    """The operator's answer when --commit-timeout runs out while COMMIT waits on synchronous replication (wait_event
    SyncRep: committed locally, its synchronous standby has not confirmed): the console asks, headless never does."""

    KEEP = "keep waiting"  # another --commit-timeout, then asked again
    END = "end the wait"  # the backend is ended: committed on the primary only


class Verdict(Enum):
    """Why a run ended the way it did: one exit code and one sentence each (headless and the console)."""

    COMMITTED = (0, "committed")
    # The COMMIT waited on synchronous replication (SyncRep) and that wait was ended (our --commit-timeout's resolver,
    # a signal, anyone's pg_terminate_backend): the server committed locally, no standby confirmed. Exit 0: the
    # migration is in and must not be retried; the words say what a failover now can do.
    COMMITTED_PRIMARY_ONLY = (0, "committed on the primary only: NOT confirmed on the synchronous standby (a "
                                 "failover now can lose it)")
    # Pre-flight found the migration already applied (the ten tables as the file creates them, the six default
    # templates): the run stops there, as `init` does: no backup, no transaction. Exit 0 like init's "Nothing to do".
    NOTHING_TO_DO = (0, "nothing to do: already migrated, stopped after pre-flight (no backup, no transaction)")
    VERIFY_FAILED = (1, "verify failed: not committed")
    CONNECTION = (2, "cannot connect, or the connection was lost: not committed")
    PREFLIGHT = (3, "pre-flight failed: nothing changed")
    BACKUP = (4, "backup failed: nothing changed")
    APPLY_FAILED = (5, "a statement failed: rolled back, nothing changed")
    DRY_RUN = (6, "dry run passed: verified, then rolled back (no --yes)")
    LOCKED = (7, "another operator holds the migration lock: nothing changed")
    COMMIT_REJECTED = (8, "COMMIT rejected by the server: it rolled the transaction back, nothing changed")
    COMMIT_UNKNOWN = (9, "COMMIT outcome unknown: check the transaction before doing anything else")
    REHEARSAL_FAILED = (10, "the rehearsal on a copy did not pass: BEGIN not run, nothing changed")
    # The server refused or could not finish BEGIN and its set-up (a read-only transaction, a lock on a catalog
    # its queries need...): no statement of the file ran and no transaction stays open.
    BEGIN_FAILED = (11, "BEGIN failed on the server: no statement ran, no transaction is open, nothing changed")
    INTERRUPTED = (130, "interrupted: not committed")

    @property
    def exit_code(self) -> int:
        return self.value[0]

    @property
    def words(self) -> str:
        return self.value[1]


class RunbookError(Exception):
    """A step could not run or failed; the message is what the operator reads; ``verdict`` is why (typed)."""

    def __init__(self, message: str, verdict: Verdict | None = None):
        super().__init__(message)
        self.verdict = verdict


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    blocking: bool = True
    verdict: Verdict | None = None  # what a failure of this check means (CONNECTION, LOCKED...)

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

    def frozen(self) -> StepSnapshot:
        return StepSnapshot(self.step, self.state, self.started, self.ended, self.detail)


@dataclass(frozen=True)
class RehearsalRecord:
    """One rehearsal of this run on a scratch copy (core/rehearse.py), as the run keeps and reports it."""

    outcome: str  # "passed" | "failed" (would fail, or drift left) | "no copy" | "timed out"
    verdict: str  # one sentence
    report: str | None = None  # the rehearsal's own report (Markdown; its .json beside it)
    copy: str = ""  # where the copy lived (and the version difference, if any)
    copy_dropped: bool = False
    backup: str = ""  # which dump was restored
    seconds: float = 0.0
    restore_seconds: float = 0.0
    apply_seconds: float = 0.0
    statements: int = 0
    locks: tuple[dict, ...] = ()  # locks held until COMMIT on tables that existed, with their sizes
    failed: str | None = None
    strict_ok: bool | None = None  # would the result pass `check --strict`
    at: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict:
        d = dict(vars(self))
        d["locks"] = list(self.locks)
        return d


@dataclass(frozen=True)
class StepSnapshot:
    """A step's record at one moment (what events carry and reports keep)."""

    step: Step
    state: State
    started: float | None
    ended: float | None
    detail: str

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


@dataclass(frozen=True)
class StatementRecord:
    index: int
    summary: str
    line: int
    tag: str = ""
    seconds: float = 0.0
    ok: bool = True
    error: str = ""
    attempt: int = 1
    batch: int = 1  # statements sent in the same round trip; above 1, ``seconds`` is an equal share of it

    def row(self) -> dict:
        """The run report's row of this statement."""
        return {"attempt": self.attempt, "index": self.index, "statement": self.summary, "line": self.line,
                "tag": self.tag, "ms": round(self.seconds * 1000, 2), "ok": self.ok, "error": self.error or None,
                "batch": self.batch}


@dataclass(frozen=True)
class Blocker:
    pid: int
    user: str
    application_name: str
    state: str
    query_start: object
    query: str
    client: object = None  # pg_stat_activity's client_addr (None: a Unix socket, or not visible)
    client_port: int | None = None  # -1: a Unix socket

    def describe(self) -> str:
        from aami_tui.core.locks import client_words

        since = self.query_start.strftime("%H:%M:%S") if hasattr(self.query_start, "strftime") else "?"
        q = " ".join((self.query or "").split())
        q = q[:80] + "…" if len(q) > 80 else q
        return (f"pid {self.pid}, user {self.user}, application '{self.application_name or '-'}', "
                f"{client_words(self.client, self.client_port)}, {self.state}, query started {since}: {q}")


@dataclass(frozen=True)
class LockWatch:
    xact_age: float | None
    idle_for: float | None
    waiters: tuple[dict, ...] | list[dict]
    warning: str = ""  # set past Options.idle_warn_seconds: what the faces show prominently
    idle_timeout: float = 0.0  # the server ends the session after this long idle in transaction (0: never)
    blockers: tuple[Blocker, ...] = ()  # sessions OUR transaction is waiting for (pg_blocking_pids of our pid)
    waiting: str = ""  # while an apply waits for them: which statement, for whom, how long (the step pane's line)
