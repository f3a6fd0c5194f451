"""The runbook as a state machine: one Phase enum and a pure transition table.

``decide(phase, action)`` is the whole rule book: the next phase, or one sentence saying why not.
``SETTLES`` lists where each running phase may end (the engine checks every move against it).
Nothing here does I/O; ``tests/test_machine.py`` checks every phase × action pair.
"""

from __future__ import annotations

from enum import StrEnum

from aami_tui.core.runbook.model import TITLES, Outcome, Tx


class Phase(StrEnum):
    NEW = "new"  # nothing has passed yet (or the last pre-flight failed)
    PREFLIGHT = "pre-flight running"
    CHECKED = "pre-flight passed"  # next: the backup
    BACKUP = "backup running"
    READY = "ready to BEGIN"  # pre-flight passed, backup verified (or skipped)
    REHEARSING = "rehearsal running"  # optional: the backup restored into a scratch copy, the run done there
    BEGINNING = "BEGIN running"
    OPEN = "transaction open"
    APPLYING = "applying"
    APPLIED = "applied, not verified"
    PARTIAL = "applied part-way"  # cancelled between statements: ROLLBACK only
    VERIFYING = "verifying"
    VERIFIED = "verified"  # the COMMIT prompt
    ABORTED = "transaction aborted"  # a statement failed: ROLLBACK only
    COMMITTING = "COMMIT in flight"
    ROLLING_BACK = "ROLLBACK in flight"
    COMMITTED = "committed"
    # Pre-flight found the migration already applied (the ten tables as the file creates them, the six default
    # templates): the run ends there, in both faces (no backup, no transaction). Not a drifted database: drift
    # fails pre-flight.
    NOTHING_TO_DO = "nothing to do (already migrated)"
    ROLLED_BACK = "rolled back"  # by us, by the server, or never committed; BEGIN may retry (pre-flight first)
    UNKNOWN = "COMMIT outcome unknown"
    RECHECKING = "re-checking the COMMIT's outcome"  # pg_xact_status again, on a fresh connection
    CLOSED = "closed"


class Action(StrEnum):
    PREFLIGHT = "preflight"
    BACKUP = "backup"
    REHEARSE = "rehearse"
    BEGIN = "begin"
    APPLY = "apply"
    VERIFY = "verify"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    CLOSE = "close"
    RECHECK = "recheck"  # ask the server again what became of a COMMIT whose outcome is unknown

    @property
    def title(self) -> str:
        return TITLES[self.value]


RUNNING = {Phase.PREFLIGHT: "Pre-flight", Phase.BACKUP: "Backup", Phase.REHEARSING: "Rehearsal", Phase.BEGINNING: "BEGIN",
           Phase.APPLYING: "Apply", Phase.VERIFYING: "Verify", Phase.COMMITTING: "COMMIT",
           Phase.ROLLING_BACK: "ROLLBACK", Phase.RECHECKING: "Re-check"}

# Phases with the migration transaction open on the server (ROLLBACK possible).
TX_OPEN = frozenset({Phase.OPEN, Phase.APPLYING, Phase.APPLIED, Phase.PARTIAL, Phase.VERIFYING, Phase.VERIFIED,
                     Phase.ABORTED, Phase.COMMITTING, Phase.ROLLING_BACK})
ENDED = frozenset({Phase.COMMITTED, Phase.NOTHING_TO_DO, Phase.ROLLED_BACK, Phase.UNKNOWN, Phase.CLOSED})

_OVER = "pre-flight is over once the transaction has begun"
_ALREADY = "the transaction is already open"
_NO_TX = "no open transaction"
_ABORTED = "the transaction is aborted: ROLLBACK"
_PART = "the apply stopped part-way: ROLLBACK, then retry from BEGIN"
_VERIFY_FIRST = "verify must pass before COMMIT"
_APPLIED = "the file has been applied in this transaction"
_LATE = "the rehearsal comes before BEGIN (the transaction is open)"
_UNKNOWN = ("the COMMIT's outcome is unknown: re-check it first (o in the console; the report gives the query "
            "to run)")
_NOT_UNKNOWN = "only a COMMIT whose outcome is unknown is re-checked"
_NOTHING = "this run has ended: nothing to do, the database is already migrated (pre-flight found it so)"

# Rows the run goes through before BEGIN: (preflight, backup, rehearse, begin) verdicts. The rehearsal is optional:
# READY may go to BEGIN with or without it, and the rehearsal always comes back to READY (SETTLES).
_BEFORE = {
    Phase.NEW: (Phase.PREFLIGHT, "pre-flight must pass first", "pre-flight must pass first",
                "pre-flight must pass first"),
    Phase.CHECKED: (Phase.PREFLIGHT, Phase.BACKUP, "take (and verify) the backup first: the rehearsal restores it",
                    "take (and verify) the backup first"),
    Phase.READY: (Phase.PREFLIGHT, Phase.BACKUP, Phase.REHEARSING, Phase.BEGINNING),
}
# Rows with the transaction open: (apply, verify, commit) verdicts; pre-flight/backup/BEGIN are over, ROLLBACK is open.
_INSIDE = {
    Phase.OPEN: (Phase.APPLYING, "apply the migration first", _VERIFY_FIRST),
    Phase.APPLIED: (_APPLIED, Phase.VERIFYING, _VERIFY_FIRST),
    Phase.VERIFIED: (_APPLIED, Phase.VERIFYING, Phase.COMMITTING),
    Phase.ABORTED: (_ABORTED, _ABORTED, _ABORTED),
    Phase.PARTIAL: (_PART, _PART, _PART),
}


def _build() -> dict[tuple[Phase, Action], Phase | str]:
    t: dict[tuple[Phase, Action], Phase | str] = {}
    for phase, (pf, bk, rh, bg) in _BEFORE.items():
        t.update({(phase, Action.PREFLIGHT): pf, (phase, Action.BACKUP): bk, (phase, Action.REHEARSE): rh,
                  (phase, Action.BEGIN): bg,
                  (phase, Action.APPLY): "BEGIN first", (phase, Action.VERIFY): "no open transaction to verify",
                  (phase, Action.COMMIT): _NO_TX, (phase, Action.ROLLBACK): _NO_TX,
                  (phase, Action.CLOSE): Phase.CLOSED})
    for phase, (ap, vf, cm) in _INSIDE.items():
        t.update({(phase, Action.PREFLIGHT): _OVER, (phase, Action.BACKUP): _ALREADY, (phase, Action.REHEARSE): _LATE,
                  (phase, Action.BEGIN): _ALREADY,
                  (phase, Action.APPLY): ap, (phase, Action.VERIFY): vf, (phase, Action.COMMIT): cm,
                  (phase, Action.ROLLBACK): Phase.ROLLING_BACK,
                  (phase, Action.CLOSE): Phase.ROLLING_BACK})  # closing rolls back first
    for phase in Phase:
        t[(phase, Action.RECHECK)] = _NOT_UNKNOWN
    for phase, title in RUNNING.items():
        for a in Action:
            t[(phase, a)] = f"{title} is still running"
    for a in Action:
        t[(Phase.COMMITTED, a)] = "this run has ended (committed)"
        t[(Phase.ROLLED_BACK, a)] = "this run has ended (rolled back)"
        t[(Phase.UNKNOWN, a)] = _UNKNOWN
        t[(Phase.CLOSED, a)] = "this run is closed"
        t[(Phase.NOTHING_TO_DO, a)] = _NOTHING
    t[(Phase.COMMITTED, Action.BEGIN)] = "the migration is already committed"
    t[(Phase.ROLLED_BACK, Action.BEGIN)] = Phase.BEGINNING  # retry the whole transaction (the backup stays valid)
    t[(Phase.ROLLED_BACK, Action.PREFLIGHT)] = Phase.PREFLIGHT  # first load a file edited since (then BEGIN)
    for phase in (Phase.COMMITTED, Phase.NOTHING_TO_DO, Phase.ROLLED_BACK, Phase.UNKNOWN):
        t[(phase, Action.CLOSE)] = Phase.CLOSED
    t[(Phase.UNKNOWN, Action.RECHECK)] = Phase.RECHECKING
    return t


TABLE: dict[tuple[Phase, Action], Phase | str] = _build()

# Where each running phase may settle (the engine refuses any other move).
SETTLES: dict[Phase, frozenset[Phase]] = {
    Phase.PREFLIGHT: frozenset({Phase.NEW, Phase.CHECKED, Phase.READY, Phase.NOTHING_TO_DO}),
    Phase.BACKUP: frozenset({Phase.CHECKED, Phase.READY}),
    # Passed, failed, timed out or cancelled: the copy is dropped and the real database was only read.
    Phase.REHEARSING: frozenset({Phase.READY}),
    # A failed BEGIN opened nothing: back to READY (or to ROLLED_BACK when it was a retry).
    Phase.BEGINNING: frozenset({Phase.OPEN, Phase.READY, Phase.ROLLED_BACK}),
    Phase.APPLYING: frozenset({Phase.APPLIED, Phase.ABORTED, Phase.PARTIAL, Phase.ROLLED_BACK}),
    Phase.VERIFYING: frozenset({Phase.VERIFIED, Phase.APPLIED, Phase.ABORTED, Phase.ROLLED_BACK}),
    Phase.COMMITTING: frozenset({Phase.COMMITTED, Phase.ROLLED_BACK, Phase.UNKNOWN}),
    Phase.ROLLING_BACK: frozenset({Phase.ROLLED_BACK}),
    Phase.RECHECKING: frozenset({Phase.COMMITTED, Phase.ROLLED_BACK, Phase.UNKNOWN}),
}
# Events outside the operator's actions: the session dies while the transaction sits idle.
LOST_FROM = frozenset({Phase.OPEN, Phase.APPLIED, Phase.PARTIAL, Phase.VERIFIED, Phase.ABORTED})


def decide(phase: Phase, action: Action) -> Phase | str:
    """The next phase for ``action`` in ``phase``, or one sentence saying why not."""
    return TABLE[(phase, action)]


def allowed(phase: Phase, action: Action) -> bool:
    return isinstance(decide(phase, action), Phase)


def may_settle(running: Phase, to: Phase) -> bool:
    return to in SETTLES.get(running, frozenset())


def tx_of(phase: Phase, lost: bool = False) -> Tx:
    if phase is Phase.ABORTED:
        return Tx.ABORTED
    if phase in TX_OPEN:
        return Tx.OPEN
    if phase is Phase.COMMITTED:
        return Tx.COMMITTED
    if phase is Phase.ROLLED_BACK:
        return Tx.LOST if lost else Tx.ROLLED_BACK
    if phase in (Phase.UNKNOWN, Phase.RECHECKING):
        return Tx.UNKNOWN
    return Tx.NONE


def outcome_of(phase: Phase, unconfirmed: bool = False) -> Outcome:
    """``unconfirmed``: the run ended not committed but nobody saw the transaction end (a lost session)."""
    if phase is Phase.ROLLED_BACK and unconfirmed:
        return Outcome.NOT_CONFIRMED
    return {Phase.COMMITTED: Outcome.COMMITTED, Phase.NOTHING_TO_DO: Outcome.NOTHING_TO_DO,
            Phase.ROLLED_BACK: Outcome.ROLLED_BACK,
            Phase.UNKNOWN: Outcome.UNKNOWN, Phase.RECHECKING: Outcome.UNKNOWN}.get(phase, Outcome.IN_PROGRESS)


def diagram() -> str:
    """The table as text (the README's picture): each phase, then what each action leads to."""
    width = max(len(p.name) for p in Phase)
    lines = [f"{'phase'.ljust(width)}  allowed actions → next phase", f"{'-' * width}  {'-' * 40}"]
    for p in Phase:
        moves = [f"{a.value} → {decide(p, a).name}" for a in Action if allowed(p, a)]
        settle = sorted(s.name for s in SETTLES.get(p, ()))
        text = ", ".join(moves) if moves else (f"(running; ends in {' | '.join(settle)})" if settle else "(none)")
        lines.append(f"{p.name.ljust(width)}  {text}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m aami_tui.core.runbook.machine  (the README's table)
    print(diagram())
