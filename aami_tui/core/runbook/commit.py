"""COMMIT, and the one outcome resolver.

A COMMIT that gets no answer (deadline), is cancelled, or loses its connection may or may not have
committed. Exactly one path decides: ``pg_xact_status`` of the xid recorded at BEGIN, asked on a fresh
connection, after fencing our old backend. The answer is committed, rolled back, or "outcome unknown"
with the xid and the exact query to run later. It never guesses.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aami_tui.core.runbook.machine import Phase
from aami_tui.core.runbook.model import Outcome

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook


SYNCREP = "SyncRep"  # pg_stat_activity.wait_event of a COMMIT that committed locally and waits for a standby


@dataclass(frozen=True)
class Resolution:
    phase: Phase  # COMMITTED, ROLLED_BACK or UNKNOWN
    status: str | None  # pg_xact_status's answer (None: could not ask)
    fence: str  # what happened to our old backend, in words
    query: str  # the query that tells the transaction's fate
    # synchronous_standby_names when our backend was seen waiting on SyncRep (by the COMMIT watch, or as it was
    # fenced): a COMMIT whose wait was ended there is committed on the primary only. None: not seen waiting there.
    syncrep: str | None = None


def status_query(xid: str | None) -> str:
    return f"SELECT pg_xact_status('{xid}'::xid8);" if xid else "(no transaction id was recorded)"


def standby_words(names: str | None) -> str:
    """'the synchronous standby named by synchronous_standby_names = 'ghost''."""
    return f"the synchronous standby named by synchronous_standby_names = '{names or '?'}'"


def syncrep_waiting(names: str | None, seconds: float | None = None, timeout: float | None = None,
                    asks: bool = False) -> str:
    """What a COMMIT waiting on synchronous replication is doing, for both faces (the log, the bar). ``asks``: the
    console, where --commit-timeout's end asks the operator instead of ending the wait."""
    took = f" for {seconds:.0f}s" if seconds is not None else ""
    if timeout and asks:
        bound = (f"; at --commit-timeout ({timeout:g}s) you are asked: keep waiting, or end the wait (the migration "
                 "then stays committed on the primary, NOT confirmed on the standby)")
    else:
        bound = (f"; --commit-timeout ({timeout:g}s) ends the wait: the migration then stays committed on the "
                 "primary, NOT confirmed on the standby" if timeout else "")
    return (f"COMMIT: committed locally, waiting on synchronous replication (wait_event SyncRep){took}: "
            f"{standby_words(names)} has not confirmed it (is it connected? pg_stat_replication){bound}")


def syncrep_bar(names: str | None, seconds: float) -> str:
    """``syncrep_waiting`` short enough for the console's transaction bar."""
    return (f"COMMIT: committed locally, waiting for the synchronous standby '{names or '?'}' (wait_event SyncRep, "
            f"{seconds:.0f}s)")


def syncrep_bar_short(names: str | None, seconds: float) -> str:
    """``syncrep_bar`` for an 80-column bar (the badge beside it says COMMITTED LOCALLY): the count never cut."""
    return f"COMMIT: waiting for standby '{names or '?'}' {seconds:.0f}s (wait_event SyncRep)"


def unreplicated(names: str | None, fence: str, what: str = "the migration") -> str:
    """The truth about a COMMIT whose wait for its synchronous standby was ended (by our resolver, or anyone):
    committed on the primary, never confirmed by the standby; one sentence for the log, the faces and the report
    (``what``: "the restore" for a restore's)."""
    return (f"committed on the primary only, NOT confirmed on {standby_words(names)}: the COMMIT waited for it "
            f"(wait_event SyncRep) and that wait was ended ({fence}); a failover now can lose {what}: "
            "do not fail over before that standby has caught up (pg_stat_replication)")


def unreplicated_line(words: str) -> str:
    """The ⚠ line for ``unreplicated``'s words: headless apply's log line, the console's, and what the shell hears
    once the console has closed (the failover risk must outlive the screen that showed it)."""
    return f"⚠ COMMIT: {words}."


def ends_syncrep_wait(diag) -> bool:
    """The server's WARNING, during COMMIT, that its wait for synchronous replication was cancelled (a cancel
    request, ours on Ctrl+C or anyone's pg_cancel_backend: the COMMIT then answers as if done; the server gives it no
    code of its own: 01000) or ended (57P01: pg_terminate_backend). Told by severity and code, not by its words
    (lc_messages may translate them): the only warnings a COMMIT of an open transaction gives."""
    return (getattr(diag, "severity_nonlocalized", None) or getattr(diag, "severity", "")) == "WARNING" \
        and diag.sqlstate in ("01000", "57P01")


def fate_words(query: str, pid: int | None) -> str:
    """How to read pg_xact_status's three answers for a COMMIT whose outcome is unknown."""
    who = f"backend {pid}" if pid else "our old backend"
    return (f"Find out with: {query} (committed: the migration is in; aborted: nothing changed; in progress: "
            f"{who} still runs it: SELECT state, wait_event FROM pg_stat_activity WHERE pid = {pid or '<pid>'}; "
            "wait_event SyncRep means committed locally, waiting for the synchronous standby: it becomes "
            "committed when the standby confirms or the backend is ended, then NOT confirmed on the standby)")


async def resolve(rb: Runbook, wait: float | None = None) -> Resolution:
    """The migration session is no longer usable; find out what became of its transaction."""
    s = rb.session
    t = min(rb.opt.query_timeout, max(2.0, rb.settings.connect_timeout + 1.0))
    wait = t if wait is None else wait
    s.abandon()
    status = await s.xact_status(t)
    # Our backend may live on (a half-open network, or waiting for a synchronous standby after it has
    # committed locally): end it, so that its locks go and its fate is final.
    fence = await s.fence(t)
    syncrep = rb.commit_syncrep
    if s.fenced_activity is not None and (s.fenced_activity[0] == SYNCREP or rb.syncrep_ended):
        syncrep = s.fenced_activity[1]
    elif rb.syncrep_ended and syncrep is None:  # the server warned that the wait was ended; names not read
        syncrep = "?"
    deadline = time.monotonic() + wait
    while status not in ("committed", "aborted") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status = await s.xact_status(t)
        if status is None:
            break
    phase = {"committed": Phase.COMMITTED, "aborted": Phase.ROLLED_BACK}.get(status, Phase.UNKNOWN)
    return Resolution(phase, status, fence, status_query(s.xid), syncrep if phase is Phase.COMMITTED else None)


def held_by_our_run(database: str, holder: dict, run: dict) -> str:
    """The one-operator lock's holder is the migration session of an earlier run of ours (report.run_of_backend):
    say which run, its report, its outcome, and what the backend does now (still in COMMIT, waiting on SyncRep)."""
    pid, wait, state = holder.get("pid"), holder.get("wait_event"), holder.get("state")
    if wait == SYNCREP:
        doing = ("it is still in COMMIT, waiting on synchronous replication (wait_event SyncRep): committed locally, "
                 "waiting for the synchronous standby; ending it (SELECT pg_terminate_backend("
                 f"{pid});) leaves the migration committed on the primary only, NOT on the standby")
    elif state == "idle in transaction":
        doing = (f"it is idle in transaction (its transaction open, not committed: its COMMIT never reached the "
                 f"server); ending it (SELECT pg_terminate_backend({pid});) rolls it back")
    else:
        doing = f"it is {state or 'there'}" + (f" (wait_event {wait})" if wait else "")
    outcome = run.get("verdict") or run.get("final_state") or "its end not recorded"
    xid = run.get("transaction_id")
    unsure = not run.get("closed") or run.get("final_state") == Outcome.UNKNOWN.value
    fate = (f" Do not retry nor restore before you know. {fate_words(status_query(xid), pid)}." if xid and unsure
            else "")
    return (f"The migration lock on {database} is held by backend {pid}: the session of an earlier aami-tui run "
            f"(started {run.get('started')}: {outcome}; its report: {run.get('report')}); {doing}.{fate}")


def held_by(reports_dir, database: str, holder: dict) -> str:
    """Who holds the one-operator lock, in one sentence, the same wherever a step is refused for it (pre-flight,
    BEGIN, the restore): an earlier run of ours whose report in ``reports_dir`` names that backend (its COMMIT outcome
    unknown, its backend still in COMMIT…: ``held_by_our_run``), or another operator. Reads a few reports: call it
    off the event loop."""
    from pathlib import Path

    from aami_tui.core import locks, report

    pid = holder.get("pid") if holder else None
    ours = pid is not None and holder.get("application_name") == "aami-tui"
    run = report.run_of_backend(reports_dir, database, pid, holder.get("since")) if ours else None
    if run is not None:
        return held_by_our_run(database, holder, run)
    where = ""
    if ours:  # the matching only reads this run's reports directory: say so, a run's reports may be elsewhere
        where = (f" No ended run of aami-tui whose report is in {Path(reports_dir).absolute()} had that session: "
                 "a console or apply still running, or a run whose reports are in another directory.")
        # and what the DBA can do about it (fresh9 F7: the refusal said neither that its transaction is open nor that)
        end = f"SELECT pg_terminate_backend({pid});"
        if holder.get("wait_event") == SYNCREP:
            where += (f" It is in COMMIT, waiting for the synchronous standby (wait_event SyncRep): committed locally; "
                      f"ending it ({end}) leaves that migration committed on the primary only, NOT on the standby.")
        elif holder.get("state") == "idle in transaction":
            where += (" Its migration transaction is open, not committed: COMMIT or ROLLBACK it in its console, "
                      f"or end that session ({end}), which rolls it back.")
        else:
            where += (f" Let that run finish or quit it in its console, or end that session ({end}): what it has "
                      "not committed is rolled back.")
    return f"Another operator is running the migration on {database}: {locks.describe_holder(holder)}.{where}"
