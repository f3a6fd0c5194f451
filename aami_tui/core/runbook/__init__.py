"""The runbook engine, as a package (see README, "The runbook state machine").

* ``model``     typed records: Step, State (a step's), Tx, Outcome, Verdict (exit code + words), Options…
* ``machine``   the run's Phase enum and the pure transition table (``decide``)
* ``events``    one frozen dataclass per event kind, for the faces
* ``session``   the migration connection: deadlines, keepalives, fencing
* ``preflight`` / ``backup`` / ``apply`` / ``commit`` (the one outcome resolver) / ``lockwatch``
* ``engine``    the Runbook that ties them together
"""

from aami_tui.core.runbook.events import (
    ChecksDone,
    Event,
    Listener,
    Log,
    OutcomeRechecked,
    Progress,
    ReportWritten,
    StatementDone,
    StepChanged,
    TxChanged,
)
from aami_tui.core.runbook.machine import Action, Phase
from aami_tui.core.runbook.model import (
    DEV_ITEMS,
    PREFLIGHT_ITEMS,
    STEP_ORDER,
    Blocker,
    Check,
    LockWatch,
    Options,
    Outcome,
    RehearsalRecord,
    RunbookError,
    State,
    StatementRecord,
    Step,
    StepRecord,
    StepState,
    Tx,
    Verdict,
)


def __getattr__(name: str):
    """``Runbook`` and ``Deadline`` load the engine (pre-flight, lint, pglast, psycopg) on first use: the model,
    the machine and the events stay light for the faces that only show them (the console's first frame)."""
    if name == "Runbook":
        from aami_tui.core.runbook.engine import Runbook

        return Runbook
    if name == "Deadline":
        from aami_tui.core.runbook.session import Deadline

        return Deadline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEV_ITEMS", "PREFLIGHT_ITEMS", "STEP_ORDER", "Action", "Blocker", "Check", "ChecksDone", "Deadline", "Event", "Listener",
    "LockWatch", "Log", "Options", "OutcomeRechecked", "Outcome", "Phase", "Progress", "RehearsalRecord",
    "ReportWritten", "Runbook", "RunbookError",
    "State", "StatementDone", "StatementRecord", "Step", "StepChanged", "StepRecord", "StepState", "Tx",
    "TxChanged", "Verdict",
]
