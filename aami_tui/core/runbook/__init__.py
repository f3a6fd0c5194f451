"""The runbook engine, as a package (see README, "The runbook state machine").

* ``model``     typed records: Step, State (a step's), Tx, Outcome, Verdict (exit code + words), Options…
* ``machine``   the run's Phase enum and the pure transition table (``decide``)
* ``events``    one frozen dataclass per event kind, for the faces
* ``session``   the migration connection: deadlines, keepalives, fencing
* ``preflight`` / ``backup`` / ``apply`` / ``commit`` (the one outcome resolver) / ``lockwatch``
* ``engine``    the Runbook that ties them together
"""

# Each name loads its own module on first use (PEP 562): the console's first frame needs only Options (its own
# module), not the model's records, the events' forty dataclasses nor the transition table, and ``Runbook`` and
# ``Deadline`` load the engine (pre-flight, lint, pglast, psycopg) only when a runbook is opened.
_WHERE = {
    **dict.fromkeys(("ChecksDone", "CommitWaitAsked", "CommitWaitClosed", "Event", "Listener", "Log", "OutcomeRechecked", "Progress", "ReportWritten",
                     "Silence", "StatementDone", "StepChanged", "TxChanged"), "events"),
    **dict.fromkeys(("Action", "Phase"), "machine"),
    **dict.fromkeys(("DEV_ITEMS", "PREFLIGHT_ITEMS", "STEP_ORDER", "Blocker", "Check", "CommitWait", "LockWatch",
                     "Outcome", "RehearsalRecord", "RunbookError", "State", "StatementRecord", "Step", "StepRecord",
                     "StepState", "Tx", "Verdict"), "model"),
    "Options": "options",
    "Runbook": "engine",
    "Deadline": "session",
}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "DEV_ITEMS", "PREFLIGHT_ITEMS", "STEP_ORDER", "Action", "Blocker", "Check", "ChecksDone", "CommitWait",
    "CommitWaitAsked", "CommitWaitClosed", "Deadline", "Event", "Listener",
    "LockWatch", "Log", "Options", "OutcomeRechecked", "Outcome", "Phase", "Progress", "RehearsalRecord",
    "ReportWritten", "Runbook", "RunbookError", "Silence",
    "State", "StatementDone", "StatementRecord", "Step", "StepChanged", "StepRecord", "StepState", "Tx",
    "TxChanged", "Verdict",
]
