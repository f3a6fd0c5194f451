"""What the engine tells its faces: one frozen dataclass per kind of event.

The console maps each to a Textual Message (``ui/messages.py``); headless prints some of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aami_tui.core.runbook.machine import Phase
from aami_tui.core.runbook.model import Check, CommitWait, StatementRecord, Step, StepSnapshot, Tx


@dataclass(frozen=True)
class StepChanged:
    record: StepSnapshot

    @property
    def step(self) -> Step:
        return self.record.step


@dataclass(frozen=True)
class Log:
    message: str
    level: str = "info"  # info / ok / warn / error
    step: Step | None = None
    at: float = 0.0
    batch: tuple[int, int] | None = None  # the statements (first, last) this line says went in one round trip


@dataclass(frozen=True)
class Progress:
    step: Step
    done: int
    total: int
    message: str = ""
    rate: float | None = None  # units of done/total per second (backup: bytes of table data), smoothed
    eta: float | None = None  # seconds
    waiting: bool = False  # the tool waits for another session's lock (the message names it): no rate, no ETA


@dataclass(frozen=True)
class StatementDone:
    record: StatementRecord
    done: int
    total: int
    message: str


@dataclass(frozen=True)
class TxChanged:
    """The run's phase changed (and with it, perhaps, the transaction)."""

    phase: Phase
    tx: Tx


@dataclass(frozen=True)
class ChecksDone:
    step: Step  # PREFLIGHT or VERIFY
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class OutcomeRechecked:
    """A re-check of a COMMIT whose outcome was unknown: what pg_xact_status said, and where the run is now."""

    phase: Phase  # COMMITTED, ROLLED_BACK or (still) UNKNOWN
    status: str | None  # pg_xact_status's answer (None: the server could not be asked)
    query: str  # the query that tells the transaction's fate
    message: str


@dataclass(frozen=True)
class CommitWaitAsked:
    """--commit-timeout ran out while COMMIT waits on synchronous replication (wait_event SyncRep: committed locally,
    its synchronous standby has not confirmed): keep waiting, or end the wait? The console asks the operator and
    answers with ``Runbook.answer_commit_wait``; the COMMIT goes on waiting meanwhile. Headless never asks."""

    number: int  # 1 for this COMMIT's first question, 2 after one 'keep waiting'…
    standby: str  # synchronous_standby_names
    waited: float  # seconds since COMMIT was sent
    timeout: float  # --commit-timeout: how long 'keep waiting' waits before asking again


@dataclass(frozen=True)
class CommitWaitClosed:
    """The question is closed: answered (``choice``), or withdrawn (None: the COMMIT answered first, was interrupted,
    or lost its connection; ``message`` says which)."""

    number: int
    choice: CommitWait | None
    message: str


@dataclass(frozen=True)
class Silence:
    """A round trip of the running step has had no answer from the server for ``waited`` seconds (a frozen network,
    a server that stopped, or a long statement): sent SILENT_AFTER (session.py) into the wait, then about every
    second while it lasts, ``message`` in the engine's words ("Apply: waiting for the server's answer for 12s
    (statement 10 / 43: CREATE TABLE targets); the client gives up in 298s (…) if none comes"); then once with
    ``over`` (and no words) when the round trip ends, answered or not. Headless prints some; the console shows the
    words while they hold."""

    step: Step | None
    waited: float
    message: str
    over: bool = False


@dataclass(frozen=True)
class ReportWritten:
    markdown: Path
    json: Path


Event = (StepChanged | Log | Progress | StatementDone | TxChanged | ChecksDone | ReportWritten | OutcomeRechecked
         | CommitWaitAsked | CommitWaitClosed | Silence)
Listener = Callable[[Event], None]
