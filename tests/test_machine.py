"""The runbook's state machine, pure: every phase × action pair (no database needed)."""

from __future__ import annotations

import pytest

from aami_tui.core.runbook.machine import (
    ENDED,
    LOST_FROM,
    RUNNING,
    SETTLES,
    TABLE,
    TX_OPEN,
    Action,
    Phase,
    decide,
    diagram,
    outcome_of,
    tx_of,
)
from aami_tui.core.runbook.model import Outcome, Tx

# The rule book, written out by hand (not derived from the table it checks).
# A phase name: the action is allowed and leads there. Anything else: the sentence the operator reads.
PF, BK, RH, BG, AP, VF, CM, RB, CL, RC = list(Action)
OVER = "pre-flight is over once the transaction has begun"
ALREADY = "the transaction is already open"
NO_TX = "no open transaction"
ABORTED = "the transaction is aborted: ROLLBACK"
PART = "the apply stopped part-way: ROLLBACK, then retry from BEGIN"
VFIRST = "verify must pass before COMMIT"
APPLIED = "the file has been applied in this transaction"
NOVERIFY = "no open transaction to verify"
LATE = "the rehearsal comes before BEGIN (the transaction is open)"
RFIRST = "take (and verify) the backup first: the rehearsal restores it"
UNKNOWN = ("the COMMIT's outcome is unknown: re-check it first (o in the console; the report gives the query "
           "to run)")
NOT_UNKNOWN = "only a COMMIT whose outcome is unknown is re-checked"
NOTHING = "this run has ended: nothing to do, the database is already migrated (pre-flight found it so)"

EXPECTED: dict[Phase, tuple] = {
    #                 preflight    backup                        rehearse       begin                      apply          verify                        commit        rollback        close
    Phase.NEW:       ("PREFLIGHT", "pre-flight must pass first", "pre-flight must pass first", "pre-flight must pass first", "BEGIN first", NOVERIFY, NO_TX, NO_TX, "CLOSED"),
    Phase.CHECKED:   ("PREFLIGHT", "BACKUP",                     RFIRST,        "take (and verify) the backup first", "BEGIN first", NOVERIFY, NO_TX, NO_TX, "CLOSED"),
    Phase.READY:     ("PREFLIGHT", "BACKUP",                     "REHEARSING",  "BEGINNING",               "BEGIN first", NOVERIFY,                     NO_TX,        NO_TX,          "CLOSED"),
    Phase.OPEN:      (OVER,        ALREADY,                      LATE,          ALREADY,                   "APPLYING",    "apply the migration first",  VFIRST,       "ROLLING_BACK", "ROLLING_BACK"),
    Phase.APPLIED:   (OVER,        ALREADY,                      LATE,          ALREADY,                   APPLIED,       "VERIFYING",                  VFIRST,       "ROLLING_BACK", "ROLLING_BACK"),
    Phase.PARTIAL:   (OVER,        ALREADY,                      LATE,          ALREADY,                   PART,          PART,                         PART,         "ROLLING_BACK", "ROLLING_BACK"),
    Phase.VERIFIED:  (OVER,        ALREADY,                      LATE,          ALREADY,                   APPLIED,       "VERIFYING",                  "COMMITTING", "ROLLING_BACK", "ROLLING_BACK"),
    Phase.ABORTED:   (OVER,        ALREADY,                      LATE,          ALREADY,                   ABORTED,       ABORTED,                      ABORTED,      "ROLLING_BACK", "ROLLING_BACK"),
    Phase.COMMITTED: ("this run has ended (committed)",) * 3 + ("the migration is already committed",)
                     + ("this run has ended (committed)",) * 4 + ("CLOSED",),
    Phase.ROLLED_BACK: ("PREFLIGHT",) + ("this run has ended (rolled back)",) * 2 + ("BEGINNING",)
                       + ("this run has ended (rolled back)",) * 4 + ("CLOSED",),
    # pre-flight found the migration already applied: the run is over (no backup, no BEGIN), in both faces
    Phase.NOTHING_TO_DO: (NOTHING,) * 8 + ("CLOSED",),
    Phase.UNKNOWN:   (UNKNOWN,) * 8 + ("CLOSED",),
    Phase.CLOSED:    ("this run is closed",) * 9,
}
# The last column, recheck: only from an unknown COMMIT outcome.
for _phase in list(EXPECTED):
    EXPECTED[_phase] += ("RECHECKING" if _phase is Phase.UNKNOWN else
                         EXPECTED[_phase][1] if _phase in (Phase.CLOSED, Phase.COMMITTED, Phase.ROLLED_BACK,
                                                           Phase.NOTHING_TO_DO)
                         else NOT_UNKNOWN,)
for _phase, _title in [(Phase.PREFLIGHT, "Pre-flight"), (Phase.BACKUP, "Backup"), (Phase.REHEARSING, "Rehearsal"),
                       (Phase.BEGINNING, "BEGIN"), (Phase.APPLYING, "Apply"), (Phase.VERIFYING, "Verify"),
                       (Phase.COMMITTING, "COMMIT"), (Phase.ROLLING_BACK, "ROLLBACK"), (Phase.RECHECKING, "Re-check")]:
    EXPECTED[_phase] = (f"{_title} is still running",) * 10

PAIRS = [(p, a) for p in Phase for a in Action]


def test_the_expectation_covers_every_phase():
    assert set(EXPECTED) == set(Phase) and all(len(v) == len(Action) for v in EXPECTED.values())
    assert set(TABLE) == set(PAIRS)


@pytest.mark.parametrize(("phase", "action"), PAIRS, ids=[f"{p.name}-{a.name}" for p, a in PAIRS])
def test_every_phase_and_action(phase, action):
    want = EXPECTED[phase][list(Action).index(action)]
    got = decide(phase, action)
    if want in Phase.__members__:
        assert got is Phase[want]
    else:
        assert got == want
        # One sentence, for a person: no trailing full stop (the engine adds "X is not possible now: …."),
        # no newline, not empty.
        assert got and "\n" not in got and not got.endswith(".")


@pytest.mark.parametrize("running", sorted(RUNNING, key=list(Phase).index), ids=lambda p: p.name)
def test_running_phases_settle_only_in_resting_phases(running):
    ends = SETTLES[running]
    assert ends and not (ends & set(RUNNING))


def test_settles():
    assert set(SETTLES) == set(RUNNING)
    # COMMIT ends committed, rolled back, or honestly unknown: never back in an open transaction.
    assert SETTLES[Phase.COMMITTING] == {Phase.COMMITTED, Phase.ROLLED_BACK, Phase.UNKNOWN}
    assert SETTLES[Phase.ROLLING_BACK] == {Phase.ROLLED_BACK}
    # A re-check ends in a certain outcome, or honestly still unknown.
    assert SETTLES[Phase.RECHECKING] == {Phase.COMMITTED, Phase.ROLLED_BACK, Phase.UNKNOWN}
    # A failed BEGIN opened nothing.
    assert not (SETTLES[Phase.BEGINNING] & (TX_OPEN - {Phase.OPEN}))
    assert LOST_FROM <= TX_OPEN and not (LOST_FROM & set(RUNNING))
    # The rehearsal works on a copy: whatever happens there, the real run is back where it was, ready to BEGIN.
    assert SETTLES[Phase.REHEARSING] == {Phase.READY}
    assert [p for p in Phase if decide(p, Action.REHEARSE) is Phase.REHEARSING] == [Phase.READY]


def test_commit_only_from_verified_and_rollback_whenever_a_transaction_is_open():
    assert [p for p in Phase if decide(p, Action.COMMIT) is Phase.COMMITTING] == [Phase.VERIFIED]
    resting_open = TX_OPEN - set(RUNNING)
    assert {p for p in Phase if decide(p, Action.ROLLBACK) is Phase.ROLLING_BACK} == resting_open


def test_transaction_words_and_outcomes():
    assert tx_of(Phase.READY) is Tx.NONE and tx_of(Phase.VERIFIED) is Tx.OPEN and tx_of(Phase.ABORTED) is Tx.ABORTED
    assert tx_of(Phase.ROLLED_BACK) is Tx.ROLLED_BACK and tx_of(Phase.ROLLED_BACK, lost=True) is Tx.LOST
    assert tx_of(Phase.UNKNOWN) is Tx.UNKNOWN and tx_of(Phase.COMMITTING) is Tx.OPEN
    assert tx_of(Phase.RECHECKING) is Tx.UNKNOWN and outcome_of(Phase.RECHECKING) is Outcome.UNKNOWN
    assert outcome_of(Phase.UNKNOWN) is Outcome.UNKNOWN and outcome_of(Phase.VERIFIED) is Outcome.IN_PROGRESS
    # a lost session nobody saw end is not "rolled back"; only a rolled-back phase can be unconfirmed
    assert outcome_of(Phase.ROLLED_BACK, unconfirmed=True) is Outcome.NOT_CONFIRMED
    assert outcome_of(Phase.COMMITTED, unconfirmed=True) is Outcome.COMMITTED
    assert ENDED == {Phase.COMMITTED, Phase.NOTHING_TO_DO, Phase.ROLLED_BACK, Phase.UNKNOWN, Phase.CLOSED}
    assert outcome_of(Phase.NOTHING_TO_DO) is Outcome.NOTHING_TO_DO and tx_of(Phase.NOTHING_TO_DO) is Tx.NONE
    # only pre-flight ends a run as "nothing to do"
    assert [p for p in RUNNING if Phase.NOTHING_TO_DO in SETTLES[p]] == [Phase.PREFLIGHT]


def test_the_readme_shows_the_current_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert diagram() in readme, "regenerate the README's state table: python -m aami_tui.core.runbook.machine"
