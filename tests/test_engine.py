"""The runbook engine, driven directly (no UI) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import stat

import psycopg
import pytest
from conftest import (
    MIGRATION,
    apply_migration,
    apply_migration_but_one_template,
    catalog_fingerprint,
    run_sql,
)
from faults import (
    advisory_locks,
    migration_with,
    observe,
    public_tables,
    query,
    run_to_begin,
    run_to_verify,
    runbook,
    terminate,
)

from aami_tui.core import pgtools
from aami_tui.core.runbook import (
    PREFLIGHT_ITEMS,
    Outcome,
    Phase,
    ReportWritten,
    RunbookError,
    State,
    StatementDone,
    Step,
    Tx,
)
from aami_tui.core.schema import MSG_OK, MSG_VALIDATING, REQUIRED_TABLES
from aami_tui.core.secret import Mask


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# ---- step order -------------------------------------------------------------------------------------
async def test_step_order_rules(fresh_db, tmp_path):
    rb = runbook(fresh_db, tmp_path, interactive=True)
    assert rb.can(Step.PREFLIGHT) == (True, "")
    assert rb.can(Step.BACKUP) == (False, "pre-flight must pass first")
    assert rb.can(Step.BEGIN) == (False, "pre-flight must pass first")
    assert rb.can(Step.APPLY) == (False, "BEGIN first")
    assert rb.can(Step.COMMIT) == (False, "no open transaction")
    assert rb.can(Step.ROLLBACK) == (False, "no open transaction")
    with pytest.raises(RunbookError) as e:
        await rb.backup_step()
    assert str(e.value) == "Backup is not possible now: pre-flight must pass first."

    # Interactive: the automatic checks pass, but the checklist must be ticked, every item but "Tested on staging"
    # (the rehearsal step after the backup answers it; BEGIN without either asks for an explicit confirmation).
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == "Pre-flight checklist not complete: " + "; ".join(
        lbl for k, lbl in PREFLIGHT_ITEMS if k != "staging") + "."
    assert rb.steps[Step.PREFLIGHT].state == State.FAILED
    assert all(c.ok or (c.name == "Tested on staging" and not c.blocking) for c in rb.checks)
    assert rb.can(Step.BACKUP)[0] is False
    for key, _ in PREFLIGHT_ITEMS[:-1]:
        rb.tick(key)
    with pytest.raises(RunbookError) as e:
        await rb.preflight()
    assert str(e.value) == f"Pre-flight checklist not complete: {PREFLIGHT_ITEMS[-1][1]}."
    rb.tick(PREFLIGHT_ITEMS[-1][0])
    await rb.preflight()
    assert rb.steps[Step.PREFLIGHT].state == State.DONE

    assert rb.can(Step.BACKUP) == (True, "")
    assert rb.can(Step.BEGIN) == (False, "take (and verify) the backup first")
    await rb.backup_step()
    assert rb.can(Step.BEGIN) == (True, "")
    await rb.begin()
    assert rb.tx == Tx.OPEN
    assert rb.can(Step.ROLLBACK) == (True, "")
    assert rb.can(Step.BACKUP) == (False, "the transaction is already open")
    assert rb.can(Step.VERIFY) == (False, "apply the migration first")
    assert rb.can(Step.COMMIT) == (False, "verify must pass before COMMIT")
    await rb.apply()
    assert rb.can(Step.ROLLBACK) == (True, "")
    assert rb.can(Step.APPLY) == (False, "the file has been applied in this transaction")
    assert rb.can(Step.COMMIT) == (False, "verify must pass before COMMIT")
    with pytest.raises(RunbookError, match="COMMIT is not possible now: verify must pass before COMMIT"):
        await rb.commit(fresh_db.dbname)
    await rb.verify()
    assert rb.can(Step.COMMIT) == (True, "")
    assert rb.can(Step.ROLLBACK) == (True, "")

    # COMMIT with the wrong database name typed: refused, nothing happens, still open.
    with pytest.raises(RunbookError) as e:
        await rb.commit(fresh_db.dbname.upper())
    assert str(e.value) == f"COMMIT not confirmed: type the database name {fresh_db.dbname!r} exactly."
    assert rb.tx == Tx.OPEN and rb.can(Step.COMMIT) == (True, "")
    assert public_tables(fresh_db) == []  # another session still sees nothing
    await rb.rollback()
    assert rb.can(Step.ROLLBACK) == (False, "this run has ended (rolled back)")
    assert rb.can(Step.COMMIT)[0] is False
    # Three pre-flights took the one-operator lock once: ROLLBACK released it.
    assert advisory_locks(fresh_db) == []
    await rb.close()
    # The checklist answers were recorded.
    data = json.loads(rb.report_paths[1].read_text())
    assert set(data["preflight"]["checklist"].values()) == {"yes"}


# ---- full run to COMMIT -------------------------------------------------------------------------------
async def test_full_run_to_commit(pg_server, fresh_db, db_factory, tmp_path):
    # Something worth backing up, outside public (public must end with exactly ten tables).
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int PRIMARY KEY, body text);"
                      "INSERT INTO app_data.notes SELECT g, 'note ' || g FROM generate_series(1, 50) g")
    events = []
    rb = runbook(fresh_db, tmp_path, events=events)
    await run_to_verify(rb)
    lines = await rb.commit(fresh_db.dbname)

    assert lines == [MSG_VALIDATING, MSG_OK]
    assert rb.outcome == Outcome.COMMITTED and rb.tx == Tx.COMMITTED
    assert [rb.steps[s].state for s in (Step.PREFLIGHT, Step.BACKUP, Step.BEGIN, Step.APPLY, Step.VERIFY,
                                        Step.COMMIT)] == [State.DONE] * 6
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    assert query(fresh_db, "SELECT count(*) FROM alert_templates")[0][0] == 6
    assert advisory_locks(fresh_db) == []

    # Backup: 0600 files in a 0700 directory the tool created, sha256 recorded and matching, restorable.
    b = rb.backup
    assert b is not None and b.verified and b.toc_entries > 0
    bdir = tmp_path / "backups"
    assert _mode(bdir) == 0o700
    assert b.dump_path.parent == bdir and b.dump_path.name.startswith(f"backup_{fresh_db.dbname}_")
    side = b.dump_path.with_name(b.dump_path.name + ".sha256")
    for p in (b.dump_path, b.schema_path, side):
        assert p.exists() and _mode(p) == 0o600, p
    digest = hashlib.sha256(b.dump_path.read_bytes()).hexdigest()
    assert b.sha256 == digest and side.read_text() == f"{digest}  {b.dump_path.name}\n"
    assert b.size == b.dump_path.stat().st_size
    assert "CREATE TABLE app_data.notes" in b.schema_path.read_text()
    entry = pgtools.list_backups(bdir, fresh_db.dbname)[0]
    assert entry.path == b.dump_path and entry.matches() is True

    other = db_factory("aami_restore")
    await pgtools.run_restore(rb.restore_tool, other, b.dump_path)
    assert query(other, "SELECT count(*), max(body) FROM app_data.notes")[0] == (50, "note 9")
    assert public_tables(other) == []  # the backup was taken before the migration

    # The report: Markdown and JSON, 0600 in a 0700 directory, everything a DBA asks for, no password.
    md, js = rb.report_paths
    assert _mode(md.parent) == 0o700 and _mode(md) == 0o600 and _mode(js) == 0o600
    data = json.loads(js.read_text())
    assert data["operator"] == getpass.getuser()
    assert data["final_state"] == "committed" and data["database"] == fresh_db.dbname
    assert data["backup"]["sha256"] == digest and data["backup"]["verified"] is True
    tags = [s["tag"] for s in data["statements"]]
    assert len(tags) == len(rb.migration.statements) == 43
    assert tags[0] == "CREATE EXTENSION" and tags[1] == "CREATE TABLE" and tags[2] == "CREATE INDEX"
    assert tags[-1] == "INSERT 0 6" and tags.count("CREATE TABLE") == 10
    assert all(s["ok"] and s["attempt"] == 1 for s in data["statements"])
    assert data["post_commit_validation"] == [MSG_VALIDATING, MSG_OK]
    assert [s["state"] for s in data["steps"]][:6] == ["done"] * 6
    text = md.read_text()
    assert "**committed**" in text and "| 1 | 43 | INSERT INTO alert_templates | INSERT 0 6 |" in text
    assert f"- Operator: {getpass.getuser()} on " in text
    if fresh_db.password:
        assert fresh_db.password not in text and fresh_db.password not in js.read_text()
    # The faces heard about every statement, with progress.
    stmts = [e for e in events if isinstance(e, StatementDone)]
    assert [e.done for e in stmts] == list(range(1, 44)) and {e.total for e in stmts} == {43}
    assert any(isinstance(e, ReportWritten) for e in events)


# ---- full run to ROLLBACK --------------------------------------------------------------------------------
async def test_full_run_to_rollback_leaves_catalog_identical(fresh_db, tmp_path):
    before = catalog_fingerprint(fresh_db)
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_verify(rb)
    seen = await rb.preview()  # what the open transaction sees, for the dashboard
    assert seen is not None and len(seen.present) == 10
    await rb.rollback()
    assert rb.outcome == Outcome.ROLLED_BACK and rb.tx == Tx.ROLLED_BACK
    assert catalog_fingerprint(fresh_db) == before
    assert advisory_locks(fresh_db) == []
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == "rolled back" and data["backup"] == "skipped"
    await rb.close()
    assert catalog_fingerprint(fresh_db) == before


# ---- a failing statement ------------------------------------------------------------------------------------
async def test_error_at_statement_n_stops_there_and_only_rollback_is_left(fresh_db, tmp_path):
    bad = "    INSERT INTO groups (name, no_such_column) VALUES ('x', 1);"
    path, line = migration_with(tmp_path, bad, after=5)
    col = bad.index("no_such_column") + 1
    before = catalog_fingerprint(fresh_db)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    await run_to_begin(rb)
    with pytest.raises(RunbookError) as e:
        await rb.apply()
    msg = str(e.value)
    assert msg == (f'Statement 6 / 44 (INSERT INTO groups, line {line}, column {col}) failed: column '
                   '"no_such_column" of relation "groups" does not exist')
    assert rb.failure == msg
    assert [s.index for s in rb.statements] == [1, 2, 3, 4, 5, 6]
    assert [s.ok for s in rb.statements] == [True] * 5 + [False]
    assert rb.tx == Tx.ABORTED and rb.steps[Step.APPLY].state == State.FAILED
    assert rb.can(Step.ROLLBACK) == (True, "")
    assert rb.can(Step.APPLY) == (False, "the transaction is aborted: ROLLBACK")
    assert rb.can(Step.VERIFY) == (False, "the transaction is aborted: ROLLBACK")
    assert rb.can(Step.COMMIT) == (False, "the transaction is aborted: ROLLBACK")
    assert rb.can(Step.BEGIN) == (False, "the transaction is already open")
    assert ("error", "Failed statement:\n" + bad.strip().rstrip(";")) in [(lvl, m) for _, lvl, m in rb.log]
    await rb.rollback()
    assert catalog_fingerprint(fresh_db) == before
    # Retry of the whole transaction from BEGIN works (and fails the same way, at the same place).
    assert rb.can(Step.BEGIN) == (True, "")
    await rb.begin()
    assert rb.tx == Tx.OPEN and rb.attempt == 2
    assert rb.steps[Step.APPLY].state == State.PENDING
    with pytest.raises(RunbookError, match="^Statement 6 / 44"):
        await rb.apply()
    await rb.close()
    assert rb.outcome == Outcome.ROLLED_BACK
    assert catalog_fingerprint(fresh_db) == before
    data = json.loads(rb.report_paths[1].read_text())
    assert [(s["attempt"], s["index"], s["ok"]) for s in data["statements"] if not s["ok"]] == [(1, 6, False),
                                                                                                 (2, 6, False)]


async def test_error_position_on_a_later_line_of_the_statement(fresh_db, tmp_path):
    bad = "INSERT INTO groups (name)\n  VALUES (no_such_function(1));"
    path, line = migration_with(tmp_path, bad, after=5)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    await run_to_begin(rb)
    with pytest.raises(RunbookError) as e:
        await rb.apply()
    assert str(e.value).startswith(f"Statement 6 / 44 (INSERT INTO groups, line {line + 1}, column 11) failed: "
                                   "function no_such_function(integer) does not exist")
    assert "Hint: No function matches" in str(e.value)
    await rb.close()


# ---- re-run on an already-migrated database -------------------------------------------------------------------
async def test_rerun_on_a_nearly_migrated_database_puts_back_only_what_is_missing(fresh_db, tmp_path):
    """(A database already migrated in full is "nothing to do": test_already_migrated.py.)"""
    apply_migration(fresh_db)
    before = catalog_fingerprint(fresh_db)
    apply_migration_but_one_template(fresh_db)
    rb = runbook(fresh_db, tmp_path)
    await run_to_verify(rb)
    tags = [s.tag for s in rb.statements]
    assert tags[-1] == "INSERT 0 1"
    notices = [m for _, _, m in rb.log if m.startswith("NOTICE: ")]
    assert 'NOTICE: relation "namespaces" already exists, skipping' in notices
    assert 'NOTICE: extension "uuid-ossp" already exists, skipping' in notices
    assert all(c.ok for c in rb.verify_checks)
    await rb.commit(fresh_db.dbname)
    assert catalog_fingerprint(fresh_db) == before
    assert rb.outcome == Outcome.COMMITTED


async def test_verify_blocks_commit_when_the_migration_creates_an_extra_table(fresh_db, tmp_path):
    before = catalog_fingerprint(fresh_db)
    path = tmp_path / "with_extra.sql"
    path.write_text(MIGRATION.read_text() + "\nCREATE TABLE IF NOT EXISTS scratch_notes (id int);\n")
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()
    with pytest.raises(RunbookError) as e:
        await rb.verify()
    assert str(e.value) == ("Verify failed: Tables the migration created: the migration created scratch_notes, "
                            "which the Config Server does not use (take it out of the file, then retry). COMMIT is "
                            "blocked; ROLLBACK.")
    assert rb.can(Step.COMMIT) == (False, "verify must pass before COMMIT")
    assert rb.can(Step.ROLLBACK) == (True, "")
    # The console's bar points to what the table allows after a failed verify: ROLLBACK first, or verify again
    # (after a fix inside the transaction). It said "n → Verify", as if verify had not run.
    from aami_tui.ui.runbook_screen import RunbookScreen

    assert RunbookScreen(rb).next_hint() == "x → ROLLBACK, or n → Verify again"
    await rb.inspect("DROP TABLE scratch_notes", allow_write=True)  # the fix, inside the transaction
    await rb.verify()
    assert rb.can(Step.COMMIT) == (True, "") and RunbookScreen(rb).next_hint() == "c → COMMIT or x → ROLLBACK"
    await rb.rollback()
    assert catalog_fingerprint(fresh_db) == before



# ---- issue 7: the lock is held for a run, not for a look ------------------------------------------------------
async def test_automatic_checks_keep_no_lock_so_ci_and_restore_are_not_refused(pg_server, fresh_db, tmp_path):
    """Item 4: the console runs the automatic checks as soon as the runbook screen opens. They used to keep
    the one-operator lock, so a CI apply got exit 7 while a DBA merely had the screen open."""
    from conftest import cli

    looking = runbook(fresh_db, tmp_path / "console", interactive=True)
    checks = await looking.automatic_checks()
    assert [c for c in checks if c.name == "One operator"][0].ok  # the check itself still runs
    assert advisory_locks(fresh_db) == []
    r = await asyncio.to_thread(cli, "apply", "--yes", "--no-backup", "--backup-dir", str(tmp_path / "b"),
                                "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 0, r.stdout + r.stderr
    await looking.close()


async def test_the_consoles_restore_is_not_refused_by_its_own_runbook(fresh_db, tmp_path):
    """Item 4: a passed pre-flight holds the lock until BEGIN; the console releases it for its own restore
    (BEGIN takes it again, and refuses if someone else took it meanwhile)."""
    from aami_tui.core import restore as core_restore

    rb = runbook(fresh_db, tmp_path)
    await rb.preflight()
    await rb.backup_step()
    assert advisory_locks(fresh_db) == [(rb.backend_pid, 0x41414D49, 1, True)]
    await rb.release_lock()
    assert advisory_locks(fresh_db) == []
    (entry,) = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)
    await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
    await rb.begin()  # the lock is taken again for the transaction
    assert advisory_locks(fresh_db) == [(rb.backend_pid, 0x41414D49, 1, True)]
    await rb.close()
    assert advisory_locks(fresh_db) == []


# ---- issue 7 item 10: never silent, never 'failed' for a step that never ran -----------------------------------
async def test_a_broken_listener_is_logged_and_the_run_goes_on(fresh_db, tmp_path, caplog):
    def broken(ev):
        if isinstance(ev, StatementDone) and ev.done == 3:
            raise ValueError("widget gone")

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    rb.listener = broken
    await run_to_verify(rb)
    await rb.commit(fresh_db.dbname)
    assert rb.outcome == Outcome.COMMITTED
    assert ("error", "(display error, the run goes on: ValueError: widget gone while showing StatementDone)") in \
        [(lvl, m) for _, lvl, m in rb.log]
    assert any("runbook listener failed on StatementDone" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_connection_lost_while_idle_before_apply_records_what_really_happened(fresh_db, tmp_path):
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    terminate(fresh_db, rb.backend_pid)
    with pytest.raises(RunbookError) as e:
        await rb.ping()
    assert str(e.value).startswith("The connection to the server was lost (")
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    steps = {s["step"]: s for s in data["steps"]}
    assert steps["begin"]["state"] == "done"
    assert steps["apply"]["state"] == "not run" and steps["verify"]["state"] == "not run"  # never 'failed'
    assert steps["commit"]["state"] == "not run"
    assert steps["rollback"]["detail"] == "by the server (connection lost)"
    assert data["ended"] is not None and data["final_state"] == "rolled back"
    assert data["transaction"] == "connection lost: not committed"
    await rb.close()


# ---- reports a change ticket can trust ------------------------------------------------------------------------------
ISO_TZ = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?[+-]\d\d:\d\d"


async def test_report_keeps_every_attempt_with_timezones_and_the_true_toc_count(fresh_db, tmp_path):
    import re
    import subprocess

    rb = runbook(fresh_db, tmp_path)
    await run_to_verify(rb)
    await rb.rollback("operator")
    await rb.begin()  # retry
    await rb.apply()
    await rb.verify()
    await rb.commit(fresh_db.dbname)
    await rb.close()
    data = json.loads(rb.report_paths[1].read_text())
    # Timestamps carry a timezone, everywhere.
    stamps = [data["started"], data["ended"]] + [s[k] for s in data["steps"] for k in ("started", "ended") if s[k]]
    stamps += [e["at"] for e in data["log"]]
    assert stamps and all(re.fullmatch(ISO_TZ, t) for t in stamps), [t for t in stamps if not re.fullmatch(ISO_TZ, t)]
    # Every attempt is kept: the first one's ROLLBACK is in it; the last one never rolled back.
    assert data["final_state"] == "committed" and data["attempts"] == 2
    (first,) = data["earlier_attempts"]
    assert first["attempt"] == 1
    assert {s["step"]: s["state"] for s in first["steps"]} == {"begin": "done", "apply": "done", "verify": "done",
                                                               "commit": "not run", "rollback": "done"}
    last = {s["step"]: s["state"] for s in data["steps"]}
    assert last["commit"] == "done" and last["rollback"] == "not run"  # not 'pending' in a finished run
    md = rb.report_paths[0].read_text()
    assert "### Attempt 1 (retried afterwards)" in md and "| ROLLBACK | pending |" not in md
    assert [s["attempt"] for s in data["statements"]] == [1] * 43 + [2] * 43
    # The TOC count is the one pg_restore --list states.
    out = subprocess.run([rb.restore_tool.path, "--list", str(rb.backup.dump_path)], capture_output=True,
                         text=True, check=True).stdout
    stated = int(re.search(r"TOC Entries: (\d+)", out).group(1))
    assert data["backup"]["toc_entries"] == stated
    assert f"TOC entries (pg_restore --list): {stated}" in md


async def test_report_records_the_sessions_that_waited_on_our_locks(fresh_db, tmp_path):
    from faults import Waiter

    apply_migration_but_one_template(fresh_db)  # a re-run: CREATE INDEX IF NOT EXISTS takes SHARE on every table
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_verify(rb)
    waiter = Waiter(fresh_db, "INSERT INTO namespaces (name) VALUES ('server-write')", app="config-server")
    waiter.start()
    for _ in range(100):
        lw = await rb.lock_watch()
        if lw and lw.waiters:
            break
        await asyncio.sleep(0.05)
    await rb.commit(fresh_db.dbname)
    await asyncio.to_thread(waiter.join, 10)
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    data = json.loads(rb.report_paths[1].read_text())
    (w,) = data["waiting_sessions"]
    assert w["pid"] == waiter.pid and w["application_name"] == "config-server" and w["attempt"] == 1
    assert w["query"] == "INSERT INTO namespaces (name) VALUES ('server-write')" and waiter.error is None
    assert "## Sessions that waited on the migration's locks" in rb.report_paths[0].read_text()


async def test_close_while_verify_runs_rolls_back_and_the_report_says_so(fresh_db, tmp_path, monkeypatch):
    """Item 10: after a signal at verify the report said the transaction was still open (the step stayed
    'running', so the close's ROLLBACK was refused)."""
    from aami_tui.core import schema

    real = schema.validate
    started = asyncio.Event()

    async def slow_validate(*a, **kw):
        started.set()
        await asyncio.sleep(60)  # a verify that takes its time (a busy catalog): the signal arrives now
        return await real(*a, **kw)

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()
    monkeypatch.setattr(schema, "validate", slow_validate)
    task = asyncio.create_task(rb.verify())
    await started.wait()
    task.cancel()  # what the console's signal handler and headless Ctrl+C do to the running step
    with pytest.raises(asyncio.CancelledError):
        await task
    await rb.close("signal: SIGTERM")
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == "rolled back" and data["transaction"] == "rolled back"
    steps = {s["step"]: s for s in data["steps"]}
    assert steps["verify"]["state"] == "failed" and steps["rollback"]["state"] == "done"
    assert public_tables(fresh_db) == [] and advisory_locks(fresh_db) == []


async def test_the_pre_flight_prompt_says_run_the_first_time_and_re_run_after(fresh_db, tmp_path):
    """fresh8 R6: the first 'Run Pre-flight?' prompt said 'Re-run the automatic checks'."""
    from aami_tui.ui.runbook_screen import RunbookScreen

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    screen = RunbookScreen(rb)
    assert screen.explain(Step.PREFLIGHT).startswith("Run the automatic checks and confirm the checklist.")
    for key, _ in rb.items:
        rb.tick(key)
    await rb.preflight()
    assert screen.explain(Step.PREFLIGHT).startswith("Re-run the automatic checks and confirm the checklist.")
    await rb.close()


async def test_close_while_a_step_runs_in_another_task_stops_it_first(fresh_db, tmp_path):
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(30);", after=10)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    await run_to_begin(rb)
    task = asyncio.create_task(rb.apply())
    await asyncio.to_thread(lambda: __import__("faults").wait_until(
        lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE 'SELECT pg_sleep%%'",
                      (rb.backend_pid,)), 10))
    await rb.close("signal: SIGHUP")  # nobody cancelled the apply: close does
    assert task.done()
    data = json.loads(rb.report_paths[1].read_text())
    assert data["final_state"] == "rolled back" and data["transaction"] == "rolled back"
    assert public_tables(fresh_db) == [] and advisory_locks(fresh_db) == []


async def test_begin_never_applies_a_stale_copy_of_a_file_edited_since_pre_flight(fresh_db, tmp_path):
    """BEGIN applied pre-flight's copy of the file without a word after the DBA had fixed it on disk (the fix did
    not run; after a failed apply, the retry failed the same way). Now BEGIN refuses an edited file, as the
    rehearsal does, and pre-flight loads it: also after a ROLLBACK, where the retry used to be the only way on."""
    from aami_tui.ui.runbook_screen import RunbookScreen

    path, _ = migration_with(tmp_path, "SELECT 1/0;", after=3)
    loaded = hashlib.sha256(path.read_bytes()).hexdigest()
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    for key, _ in rb.items:  # as the console's operator would
        rb.tick(key)
    await rb.preflight()
    await rb.backup_step()
    path.write_text(path.read_text() + "\n-- reviewed\n")  # edited after pre-flight
    with pytest.raises(RunbookError) as e:
        await rb.begin()
    assert str(e.value).startswith(f"BEGIN not run: {path.name} changed since pre-flight (pre-flight loaded sha256 "
                                   f"{loaded[:12]}…, the file is now "), e.value
    assert str(e.value).endswith("and BEGIN applies what pre-flight loaded: run pre-flight again to load it (n), "
                                 "then BEGIN.")
    assert rb.phase is Phase.READY and rb.tx == Tx.NONE and rb.next_step() is Step.PREFLIGHT
    assert RunbookScreen(rb).next_hint() == "n → Pre-flight"
    await rb.preflight()  # loads the edit (the backup step stays done)
    await rb.begin()
    with pytest.raises(RunbookError):
        await rb.apply()  # statement 4 fails
    await rb.rollback()
    path.write_text(MIGRATION.read_text())  # the DBA fixes the file, then presses n (retry from BEGIN)
    with pytest.raises(RunbookError, match="changed since pre-flight"):
        await rb.begin()
    assert rb.phase is Phase.ROLLED_BACK and rb.can(Step.PREFLIGHT) == (True, "")
    assert RunbookScreen(rb).next_hint() == "n → Pre-flight (the file changed)"
    assert "Press n to run pre-flight again: the file changed" in RunbookScreen(rb)._done_text_raw().plain
    await rb.preflight()
    assert rb.phase is Phase.READY and rb.migration.sha256 == hashlib.sha256(MIGRATION.read_bytes()).hexdigest()
    assert rb.next_step() is Step.BEGIN  # the failed attempt is history, not the next step
    await rb.begin()
    await rb.apply()
    await rb.verify()
    assert rb.attempt == 2 and [n for n, _ in rb.history] == [1]
    await rb.rollback()
    await rb.close()


# ---- the report is written off the event loop ---------------------------------------------------------------
def _held_render(monkeypatch, loop: asyncio.AbstractEventLoop):
    """report.to_markdown made slow deterministically: each call says it started (on the loop, thread-safely)
    and waits until the test releases it. Returns (started, release, threads, markers)."""
    import threading

    from aami_tui.core import report

    real, started, release, threads = report.to_markdown, asyncio.Event(), threading.Event(), []

    def held(d):
        threads.append(threading.get_ident())
        loop.call_soon_threadsafe(started.set)  # runs only if the loop is free while we wait
        assert release.wait(10), "the event loop never ran while the report was rendered: it was blocked"
        release.clear()
        return real(d)

    monkeypatch.setattr(report, "to_markdown", held)
    return started, release, threads


async def test_the_report_is_rendered_and_written_off_the_event_loop(fresh_db, tmp_path, monkeypatch):
    import threading

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.flush_reports()  # the journal's writes of the steps so far are on disk
    started, release, threads = _held_render(monkeypatch, asyncio.get_running_loop())
    served = []

    async def probe():  # the console's loop keeps serving (keys, timers) while the report is rendered
        await started.wait()
        served.append("probe")
        release.set()

    task = asyncio.create_task(probe())
    await rb.rollback()  # writes the report
    await task
    assert served == ["probe"] and threads and threading.get_ident() not in threads
    await rb.flush_reports()  # a step does not wait for its report: its write is queued
    assert json.loads(rb.report_paths[1].read_text())["final_state"] == "rolled back"
    assert _mode(rb.report_paths[0]) == _mode(rb.report_paths[1]) == 0o600
    monkeypatch.undo()
    await rb.close()


async def test_report_writes_keep_their_order_and_quitting_leaves_the_complete_report(fresh_db, tmp_path,
                                                                                        monkeypatch):
    from aami_tui.core import report

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.flush_reports()  # the journal's writes of the steps so far are on disk
    started, release, _ = _held_render(monkeypatch, asyncio.get_running_loop())
    first = asyncio.create_task(rb.rollback())  # its report is held in the render
    await started.wait()
    rb.say("a later line, written by the later report")
    second = asyncio.create_task(rb.write_report())  # queued behind the first, which is still rendering
    for _ in range(5):
        await asyncio.sleep(0)  # the second write gets every chance to overtake
    started.clear()
    release.set()
    await first
    await started.wait()
    release.set()
    assert await second == rb.report_paths
    md, js = rb.report_paths
    assert "a later line, written by the later report" in md.read_text()
    monkeypatch.undo()
    # quitting right after a step: close() returns only once the complete report is on disk
    await rb.close("console closed")
    on_disk = json.loads(js.read_text())
    assert on_disk == json.loads(json.dumps(report.to_dict(rb.record()), default=str))
    assert on_disk["log"][-1]["message"] == rb.log[-1][2] and on_disk["final_state"] == rb.outcome.value
    assert (md, js) == rb.report_paths and len(list(tmp_path.rglob("report_*.json"))) == 1


# ---- BEGIN refused by the server (not the connection) ---------------------------------------------------------
async def test_a_read_only_database_is_refused_at_pre_flight_not_at_statement_1(fresh_db, tmp_path):
    """A database set read-only (`ALTER DATABASE … SET default_transaction_read_only = on`, a freeze) passed
    pre-flight and the backup, and BEGIN opened a read-only transaction: the run then failed at statement 1
    ('cannot execute CREATE EXTENSION in a read-only transaction', exit 5). Pre-flight now says so, with the fix."""
    run_sql(fresh_db, f'ALTER DATABASE "{fresh_db.dbname}" SET default_transaction_read_only = on')
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    with pytest.raises(RunbookError):
        await rb.preflight()
    (check,) = [c for c in rb.checks if c.name == "Read-write"]
    assert not check.ok and check.blocking, check
    assert check.detail.startswith(f"transactions on {fresh_db.dbname} are read-only by default "
                                   "(default_transaction_read_only = on, set on the database"), check.detail
    assert f'ALTER DATABASE "{fresh_db.dbname}" RESET default_transaction_read_only;' in check.detail, check.detail
    await rb.close()
    assert public_tables(fresh_db) == []


async def test_begin_refused_by_the_server_is_its_own_outcome_and_changes_nothing(fresh_db, tmp_path):
    """BEGIN failing for a reason other than the connection ended as 'a statement failed: rolled back' (exit 5),
    and a read-only transaction even opened (the file then failed at statement 1). Here the session is cut after
    pre-flight (a failover) and the retry reaches a database that is now read-only: BEGIN refuses it in its own
    words (exit 11), says where the setting comes from, and no transaction stays open."""
    from aami_tui.core.runbook import Verdict
    from aami_tui.ui.runbook_screen import RunbookScreen

    rb = runbook(fresh_db, tmp_path, skip_backup=True, interactive=False)
    await rb.preflight()
    await rb.backup_step()
    run_sql(fresh_db, f'ALTER DATABASE "{fresh_db.dbname}" SET default_transaction_read_only = on')
    terminate(fresh_db, rb.backend_pid)
    with pytest.raises(RunbookError) as e:
        await rb.begin()
    assert e.value.verdict is Verdict.CONNECTION
    with pytest.raises(RunbookError) as e:
        await rb.begin()  # a new session: the database is read-only now
    assert e.value.verdict is Verdict.BEGIN_FAILED and rb.verdict is Verdict.BEGIN_FAILED
    assert Verdict.BEGIN_FAILED.exit_code == 11
    msg = str(e.value)
    assert msg.startswith("BEGIN refused: the transaction would be read-only (default_transaction_read_only = on, "
                          "set on the database"), msg
    assert msg.endswith("No transaction is open: nothing changed."), msg
    assert rb.phase is Phase.READY and rb.tx == Tx.NONE and rb.steps[Step.BEGIN].state is State.FAILED
    assert any(m == msg for _, level, m in rb.log if level == "error")  # the console's log says it
    pane = RunbookScreen(rb)._begin_failed_text().plain
    assert Verdict.BEGIN_FAILED.words in pane and msg in pane, pane
    assert not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                               "AND state LIKE 'idle in transaction%%'")
    await rb.close()
    assert public_tables(fresh_db) == []
    data = json.loads(rb.report_paths[1].read_text())
    assert data["exit_code"] == 11 and data["verdict"] == Verdict.BEGIN_FAILED.words, data


async def test_headless_begin_behind_a_catalog_lock_exits_11_in_the_same_words(fresh_db, tmp_path, monkeypatch,
                                                                                capsys):
    """BEGIN's own queries waited behind another session's lock on a system catalog (VACUUM FULL pg_class) and
    the run ended 'a statement failed: rolled back' (exit 5) although no statement ran. Now: exit 11, one
    sentence, the final line and the report in the verdict's words (in process: cheaper than a child)."""
    from aami_tui import headless
    from aami_tui.cli import build_parser
    from aami_tui.core.runbook import Runbook, Verdict

    real_begin = Runbook.begin
    pids: list[int] = []

    async def begin_behind_a_catalog_lock(self, *a, **kw):
        blocker = observe(fresh_db, app="vacuum-full", autocommit=False)
        blocker.execute("LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE")
        pids.append(blocker.info.backend_pid)
        try:
            return await real_begin(self, *a, **kw)
        finally:
            blocker.rollback()
            blocker.close()

    monkeypatch.setattr(Runbook, "begin", begin_behind_a_catalog_lock)
    args = build_parser().parse_args(["apply", "--backup-dir", str(tmp_path / "b"), "--reports-dir",
                                      str(tmp_path / "reports"), "--yes", "--no-backup", "--lock-timeout", "0.2"])
    code = await asyncio.wait_for(headless._run(fresh_db, args), 60)
    out, err = capsys.readouterr()
    assert code == 11, out + err
    assert "aami-tui: BEGIN failed: canceling statement due to lock timeout" in err, err
    # the session in the way is named, as the apply names a blocker (it said only "`aami-tui check` names such a
    # session")
    assert f"for a lock on the system catalog pg_class held by pid {pids[0]} (user " in err, err
    assert "application 'vacuum-full', host 127.0.0.1, idle in transaction)" in err, err
    assert f"Final state: {Verdict.BEGIN_FAILED.words} (exit 11)" in out, out  # (no transaction: the verdict's words)
    assert "statement failed" not in out + err
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["exit_code"] == 11 and report["verdict"] == Verdict.BEGIN_FAILED.words
    assert public_tables(fresh_db) == [] and advisory_locks(fresh_db) == []


async def _queued_catalog_lock(settings):
    """VACUUM FULL's mode on pg_class, queued behind a reader (its ACCESS SHARE, until ``reader`` ends): any session
    that reads pg_class now queues behind that LOCK TABLE. Returns (reader, the LOCK TABLE's Waiter, the words that
    name it as a BEGIN wait's holder)."""
    from faults import Waiter

    reader = observe(settings, app="reader", autocommit=False)
    reader.execute("SELECT count(*) FROM pg_catalog.pg_class")  # ACCESS SHARE on pg_class, until it ends
    locker = Waiter(settings, "BEGIN; LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE", app="vacuum-full")
    locker.start()
    for _ in range(200):  # (bounded) until the LOCK TABLE queues behind the reader; asked on the reader's own
        # connection: a new one would queue behind it too
        if reader.execute("SELECT count(*) FROM pg_catalog.pg_lock_status() WHERE pid = %s AND NOT granted",
                          (locker.pid,)).fetchone()[0]:
            break
        await asyncio.sleep(0.05)
    return reader, locker, (f"the system catalog pg_class held by pid {locker.pid} (user {settings.user}, "
                            "application 'vacuum-full', host 127.0.0.1, active)")


async def test_begin_behind_a_queued_catalog_lock_names_the_session_in_the_way_while_it_waits(fresh_db, tmp_path,
                                                                                            capsys):
    """BEGIN's own queries queued behind another session's lock on pg_class said nothing until lock_timeout, and
    then named only a session holding ACCESS EXCLUSIVE. Here the session in the way holds no lock yet: its LOCK
    TABLE (VACUUM FULL's mode) is itself queued behind a reader, and ours queues behind it. While BEGIN waits, the
    step names it at once (pg_blocking_pids, as restore's waiting line) and headless prints it; lock_timeout's
    sentence names it too (not "the connection was lost": the client's own bound on BEGIN's queries was shorter
    than lock_timeout). A retry that waits again goes on once the way is free, and the line goes."""
    from faults import options

    from aami_tui import headless
    from aami_tui.core.runbook import Progress, Runbook
    from aami_tui.ui.runbook_screen import RunbookScreen

    events: list = []

    def listen(e) -> None:
        events.append(e)
        headless._printer(e)  # the headless face, in process

    def begin_waits() -> list:
        return [e for e in events if isinstance(e, Progress) and e.step is Step.BEGIN]

    async def said_waiting(task: asyncio.Task, n: int) -> Progress:
        for _ in range(200):  # (bounded, 10 s) until the step says whom it waits for
            if len([e for e in begin_waits() if e.waiting]) > n or task.done():
                break
            await asyncio.sleep(0.05)
        assert not task.done() and len([e for e in begin_waits() if e.waiting]) > n, begin_waits()
        return [e for e in begin_waits() if e.waiting][n]

    rb = Runbook(fresh_db, MIGRATION, options(tmp_path, skip_backup=True, lock_timeout=3.0), listen,
                 interactive=False)
    await rb.preflight()
    await rb.backup_step()
    # A client-side bound on round trips below lock_timeout (the DBA's --lock-timeout above the default 15 s): the
    # wait was cut short as "the connection to the server was lost or stopped answering"
    rb.opt.query_timeout = 1.0
    reader, locker, who = await _queued_catalog_lock(fresh_db)
    task = None
    try:
        task = asyncio.create_task(rb.begin())
        line = (await said_waiting(task, 0)).message
        assert line.startswith("BEGIN: waiting ") and line.endswith(
            f"s for a lock on {who}; lock_timeout (3s) ends the wait: BEGIN fails, nothing changed"), line
        # lock_timeout ends it: the sentence names the same session (it said only "a lock another session holds
        # on a system catalog"), and the step's line goes
        with pytest.raises(RunbookError) as e:
            await asyncio.wait_for(task, 30)
        assert f"lock_timeout (3s) for a lock on {who}. End that session" in str(e.value), str(e.value)
        assert not begin_waits()[-1].waiting and rb.phase is Phase.READY
        # A retry waits again, and goes on once the way is free
        task = asyncio.create_task(rb.begin())
        again = await said_waiting(task, 1)
        assert RunbookScreen.begin_wait(again).plain == f"⏳ {again.message}"  # the console's step line
        reader.rollback()  # the LOCK TABLE gets pg_class, its session ends, and BEGIN goes on
        await asyncio.wait_for(task, 30)
        locker.join(10)
    finally:
        reader.close()
        if task is not None and not task.done():
            task.cancel()
    assert rb.tx_open and rb.steps[Step.BEGIN].state is State.DONE
    assert not begin_waits()[-1].waiting and RunbookScreen.begin_wait(begin_waits()[-1]).plain == ""
    out = capsys.readouterr().out
    said = [ln for ln in out.splitlines() if "waiting" in ln]
    assert said and said[0] == f"  {line}", out  # at once (then at most every 4 s)
    await rb.rollback()
    await rb.close()


async def test_begin_names_the_session_in_the_way_when_its_monitor_connection_was_ended(fresh_db, tmp_path,
                                                                                         capsys):
    """BEGIN's lock-wait watch polls on the monitor connection opened at pre-flight; when that one is gone (ended
    by the server: idle_session_timeout, a DBA's pg_terminate_backend, a pooler), it asks for another (untested
    until now). BEGIN queued behind a lock on pg_class still names the session in the way while it waits, headless
    prints it, lock_timeout ends the wait in its bound, no traceback, and no connection of ours is left over. It said
    nothing until lock_timeout, then not whom: a new connection to the database cannot start behind that lock."""
    from faults import options, wait_until

    from aami_tui import headless
    from aami_tui.core.runbook import Progress, Runbook

    events: list = []

    def listen(e) -> None:
        events.append(e)
        headless._printer(e)  # the headless face, in process

    rb = Runbook(fresh_db, MIGRATION, options(tmp_path, skip_backup=True, lock_timeout=3.0), listen,
                 interactive=False)
    await rb.preflight()
    await rb.backup_step()
    rb.opt.query_timeout = 1.0
    assert rb.monitor is not None
    old = rb.monitor_ident[0]
    terminate(fresh_db, old)
    wait_until(lambda: not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (old,)), 10,
               what="the monitor's backend to go")
    reader, locker, who = await _queued_catalog_lock(fresh_db)
    try:
        task = asyncio.create_task(rb.begin())
        with pytest.raises(RunbookError) as e:
            await asyncio.wait_for(task, 30)  # lock_timeout (3 s) ends it: nothing hangs
    finally:
        reader.close()
        locker.join(10)
    waits = [e for e in events if isinstance(e, Progress) and e.step is Step.BEGIN and e.waiting]
    assert waits, [e for e in events if isinstance(e, Progress)]  # named while it waited, not only at the end
    assert waits[0].message.startswith("BEGIN: waiting ") and waits[0].message.endswith(
        f"s for a lock on {who}; lock_timeout (3s) ends the wait: BEGIN fails, nothing changed"), waits[0].message
    assert f"lock_timeout (3s) for a lock on {who}. End that session" in str(e.value), str(e.value)
    assert rb.phase is Phase.READY and not rb.tx_open
    out, err = capsys.readouterr()
    assert f"  {waits[0].message}" in out.splitlines() and "Traceback" not in out + err, out + err
    # the watch's own connection (to the maintenance database) went with BEGIN, the run's with its close: nothing of
    # ours is left on the server
    ours = ("SELECT datname::text FROM pg_stat_activity WHERE application_name = 'aami-tui' "
            "AND datname IN (current_database(), 'postgres')")
    wait_until(lambda: "postgres" not in {d for (d,) in query(fresh_db, ours)}, 10,
               what="the watch's connection to go")  # (a closed session is listed for a moment after)
    await rb.close()
    wait_until(lambda: query(fresh_db, ours) == [], 10, what="the run's sessions to go")


def _gated_writes(monkeypatch, loop: asyncio.AbstractEventLoop):
    """report.write held in the report thread until the test opens ``gate``; ``entered`` is set (on the loop) as
    each write begins. The database stays real: only the writing of the file waits."""
    import threading

    from aami_tui.core import report

    real, gate, entered = report.write, threading.Event(), asyncio.Event()

    def held(*args, **kw):
        loop.call_soon_threadsafe(entered.set)
        assert gate.wait(30), "the test never opened the gate"
        return real(*args, **kw)

    monkeypatch.setattr(report, "write", held)
    return gate, entered


async def test_a_rollback_ends_with_its_database_work_and_begin_may_retry_while_its_report_is_written(
        fresh_db, tmp_path, monkeypatch):
    from aami_tui.core import report

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()
    await rb.flush_reports()  # the journal's writes of the steps so far are on disk
    gate, entered = _gated_writes(monkeypatch, asyncio.get_running_loop())
    try:
        step = asyncio.create_task(rb.rollback())
        await entered.wait()  # the ROLLBACK's report is being written, and held there
        # The step is over when its database work is: the operator's n (BEGIN again) is accepted at once.
        assert step.done() and step.exception() is None
        assert rb.phase is Phase.ROLLED_BACK and rb.can(Step.BEGIN) == (True, "")
        await rb.begin()
        await rb.apply()
        assert rb.tx == Tx.OPEN and rb.attempt == 2
        # the ROLLBACK's write is still held: the report on disk is the journal's, from before it (attempt 1 open)
        (early,) = [json.loads(p.read_text()) for p in tmp_path.rglob("report_*.json")]
        assert early["attempts"] == 1 and early["transaction"] != "rolled back" and early["closed"] is False
        closing = asyncio.create_task(rb.close("console closed"))  # quitting: rolls attempt 2 back, then waits
    finally:
        gate.set()
    await closing
    # close() returned only once every queued write was on disk: the last one holds both attempts.
    md, js = rb.report_paths
    on_disk = json.loads(js.read_text())
    assert on_disk == json.loads(json.dumps(report.to_dict(rb.record()), default=str))
    assert on_disk["attempts"] == 2 and [a["attempt"] for a in on_disk["earlier_attempts"]] == [1]
    assert {s["attempt"] for s in on_disk["statements"]} == {1, 2}
    assert on_disk["final_state"] == "rolled back" and "### Attempt 1 (retried afterwards)" in md.read_text()
    assert _mode(md) == _mode(js) == 0o600 and len(list(tmp_path.rglob("report_*.json"))) == 1


async def test_a_report_write_that_fails_after_its_step_has_ended_is_said_and_kept_in_the_next_report(
        fresh_db, tmp_path, monkeypatch):
    from aami_tui.core import report

    events: list = []
    rb = runbook(fresh_db, tmp_path, skip_backup=True, events=events)
    await run_to_begin(rb)
    await rb.flush_reports()  # the journal's writes of the steps so far are on disk
    real, calls = report.write, []

    def failing_once(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kw)

    monkeypatch.setattr(report, "write", failing_once)
    await rb.rollback()  # the step itself ends well: its report is written after it
    assert await rb.flush_reports() is None  # nothing could be written yet
    said = [e.message for e in events if getattr(e, "level", "") == "error"]
    assert said == ["Could not write the run report: [Errno 28] No space left on device"], said
    await rb.close()
    data = json.loads(rb.report_paths[1].read_text())
    assert any(e["message"] == said[0] for e in data["log"])  # the failure is in the audit trail, not lost


async def test_a_report_rewrite_does_not_mask_the_statements_of_ended_attempts_again(fresh_db, tmp_path,
                                                                                    monkeypatch):
    """Kept statements are kept masked and encoded: a rewrite (the run report is written at every step) scans for
    the password only what is new. Masking the whole report again held the interpreter ~0.4 s per write of a 75 MB
    report (25 attempts of the 10,000-statement file), and a key pressed meanwhile waited for it."""
    from aami_tui.core import report

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()
    await rb.flush_reports()  # the write at the apply's end has rendered (and kept) its statements
    row = report._statement_md(rb.record().statements[-1])
    scanned: list[str] = []
    real = Mask.__call__
    monkeypatch.setattr(Mask, "__call__", lambda self, text: (scanned.append(text), real(self, text))[1])
    await rb.verify()  # written as it starts and ends
    await rb.flush_reports()
    assert scanned and not [t for t in scanned if row in t]
    assert row in rb.report_paths[0].read_text()  # still in the report


async def test_a_record_shares_the_ended_attempts_statement_rows_instead_of_copying_them(fresh_db, tmp_path):
    """Each report write takes a snapshot of the record on the loop. It copied every statement row of every attempt,
    and each apply rebuilt the lists of records: new containers of all the run's statements, which every full
    collection of Python's garbage collector then walked while the apply ran (37 ms with 25 attempts of 10,000
    statements, a key press waiting behind it). The ended attempts' rows are shared, in chunks that never change,
    and an apply keeps its lists."""
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()
    n = len(rb.migration.statements)
    await rb.rollback()
    await rb.begin()
    records = rb.statements
    first = rb.record().statements
    await rb.apply()
    second = rb.record().statements
    assert rb.statements is records  # kept, not rebuilt
    assert second.chunks[0] is first.chunks[0] and len(second.chunks[0]) == n  # attempt 1's rows, not copied
    assert [r["attempt"] for r in second] == [1] * n + [2] * n and len(second) == 2 * n
    assert second[n] is second[n:n + 1][0] and second[-1]["index"] == n and second[n]["attempt"] == 2
    await rb.close()


async def test_a_report_write_renders_only_the_statements_of_attempts_not_rendered_before(fresh_db, tmp_path,
                                                                                       monkeypatch):
    """The record only grows (an ended attempt never changes): each write renders the new statements only, and
    its files are byte for byte those of a report rendered from nothing."""
    from aami_tui.core import report

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()
    await rb.flush_reports()
    rendered: list[int] = []
    real_md, real_js = report._statement_md, report._statement_json
    monkeypatch.setattr(report, "_statement_md", lambda x: (rendered.append(x["attempt"]), real_md(x))[1])
    monkeypatch.setattr(report, "_statement_json", lambda x: (rendered.append(x["attempt"]), real_js(x))[1])
    n = len(rb.migration.statements)
    await rb.rollback()
    await rb.flush_reports()
    assert rendered == []  # attempt 1 was rendered by the write at its apply's end, once; not again
    rendered.clear()
    await rb.begin()
    await rb.apply()
    await rb.flush_reports()  # the write at the apply's end renders attempt 2 (its Markdown row and JSON, once each)
    assert rendered == [2] * 2 * n
    rendered.clear()
    await rb.verify()  # its start and end are written as they happen, as is its ROLLBACK's below
    await rb.write_report()
    await rb.close()  # rolls attempt 2 back
    # attempt 2 is open, but its apply has ended: its statements can no longer change and are not rendered again
    # (each write rendered the open attempt's 10,000 statements: key presses waited behind them)
    assert rendered == []
    md, js = rb.report_paths
    cold = report.write(rb.record(), tmp_path / "cold", fresh_db.password)  # no reuse: every statement rendered
    assert len(rendered) == 2 * 2 * n
    assert md.read_bytes() == cold[0].read_bytes() and js.read_bytes() == cold[1].read_bytes()
    # ...and what the one-piece rendering gives, a secret scrubbed: part by part ("namespaces"), or, when it could
    # straddle the seams between the kept parts ("}," ends attempt 1's last item and starts the separator), whole.
    rec, data = rb.record(), report.to_dict(rb.record())
    for i, secret in enumerate(("namespaces", "},")):
        got = report.write(rec, tmp_path / f"scrubbed{i}", secret, rendered=rb._rendered)  # the run's kept parts
        assert got[0].read_text() == Mask(secret)(report.to_markdown(data))
        assert got[1].read_text() == Mask(secret)(json.dumps(data, indent=2, default=str))
        assert Mask(secret)(got[1].read_text()) == got[1].read_text() and "********" in got[1].read_text()


async def test_a_runbook_screen_made_without_a_console_starts_no_timer_that_fails_later(fresh_db, tmp_path,
                                                                                          monkeypatch):
    """Tests read the console's words from a RunbookScreen made without a console (no app). It still took the
    engine's events: the stream's timer then ran with no app and failed at the process's end ('Task exception was
    never retrieved … LookupError: active_app', a clean-clone CI's lane 2). With no console it posts at once."""
    import textual.timer

    from aami_tui.ui.runbook_screen import RunbookScreen

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    RunbookScreen(rb)
    timers: list[str] = []
    real = textual.timer.create_task
    monkeypatch.setattr(textual.timer, "create_task",
                        lambda coro, **kw: (timers.append(kw.get("name", "")), real(coro, **kw))[1])
    await run_to_begin(rb)  # log lines, then other events, then log lines again a moment later: a timer's wait
    await rb.rollback()
    await rb.close()
    assert timers == []


async def test_the_standby_question_at_commit_says_when_the_server_could_not_be_asked(pg_server, fresh_db, tmp_path):
    """The COMMIT prompt asks about synchronous standbys on a connection of its own. When no new connection can be
    made (here the database refuses new connections; the migration's session stays), the prompt says the question
    went unanswered rather than nothing, and the migration's transaction is untouched."""
    rb = runbook(fresh_db, tmp_path, MIGRATION, skip_backup=True)
    ident = psycopg.sql.Identifier(fresh_db.dbname)
    try:
        await run_to_verify(rb)
        assert await rb.standby_risk() is None  # no synchronous standby: nothing to say
        run_sql(pg_server.admin, psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident)
                .as_string())
        try:
            risk = await rb.standby_risk()
        finally:
            run_sql(pg_server.admin, psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident)
                    .as_string())
        assert risk is not None and not risk.ok and not risk.blocking
        assert risk.detail.startswith("not asked again (") and risk.detail.endswith("pre-flight's check stands")
        assert "not currently accepting connections" in risk.detail, risk.detail
        assert rb.tx_open and rb.phase is Phase.VERIFIED
        await rb.rollback("test")
    finally:
        await rb.close("test")
