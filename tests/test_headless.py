"""`aami-tui apply`: the engine without the UI, one exit code per outcome, as a pipeline sees it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal

import pytest
from conftest import MIGRATION, ROOT, catalog_fingerprint, cli, run_sql
from faults import (
    advisory_locks,
    migration_with,
    observe,
    public_tables,
    query,
    runbook,
    signal_child,
    spawn_cli,
    tool_locks,
    tool_sessions,
    tool_waits_for_a_lock,
    wait_until,
)

from aami_tui.core.schema import MSG_OK, MSG_VALIDATING, REQUIRED_TABLES


def apply_args(tmp_path, *extra: str) -> list[str]:
    return ["apply", "--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports"), *extra]


def reports(tmp_path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "reports").glob("report_*.json"))]


def test_dry_run_without_yes_exits_6_and_changes_nothing(pg_server, fresh_db, tmp_path):
    before = catalog_fingerprint(fresh_db)
    r = cli(*apply_args(tmp_path), env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 6, r.stdout + r.stderr
    assert "Dry run passed: everything verified, rolled back because --yes was not given." in r.stdout
    for title in ("Pre-flight", "Backup", "BEGIN", "Apply", "Verify", "ROLLBACK"):
        assert f"== {title} ==" in r.stdout
    assert "43/43 INSERT 0 6" in r.stdout
    assert r.stderr == ""
    assert catalog_fingerprint(fresh_db) == before
    assert [d["final_state"] for d in reports(tmp_path)] == ["rolled back"]
    assert len(list((tmp_path / "backups").glob("backup_*.dump"))) == 1  # the backup is still taken


def test_yes_commits_exit_0_then_check_exits_0(pg_server, fresh_db, tmp_path):
    env = pg_server.env(fresh_db.dbname)
    r = cli(*apply_args(tmp_path, "--yes"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"  {MSG_OK}" in r.stdout and "✓ COMMIT: the migration is permanent." in r.stdout
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)
    (report,) = reports(tmp_path)
    assert report["final_state"] == "committed" and report["backup"]["verified"] is True
    assert f"Report: {tmp_path / 'reports'}" in r.stdout
    c = cli("check", env=env)
    assert c.returncode == 0 and c.stdout.splitlines() == [MSG_VALIDATING, MSG_OK]
    if fresh_db.password:
        assert fresh_db.password not in r.stdout + r.stderr
        assert fresh_db.password not in "".join(p.read_text() for p in (tmp_path / "reports").iterdir())


def test_bad_password_exits_2_with_one_sentence(pg_server, fresh_db, tmp_path):
    if not fresh_db.password:
        pytest.skip("server without password authentication")
    env = pg_server.env(fresh_db.dbname)
    env["DB_PASSWORD"] = "wrong-" + fresh_db.password
    r = cli(*apply_args(tmp_path, "--yes"), env=env)
    e = fresh_db.effective()
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f'aami-tui: Pre-flight failed: Connection: Authentication failed: the server at '
                                     f'{e["host"]}:{e["port"]} rejected the password for user "{e["user"]}". '
                                     "The password comes from DB_PASSWORD, which wins over ~/.pgpass."]
    assert "Traceback" not in r.stdout + r.stderr
    assert env["DB_PASSWORD"] not in r.stdout + r.stderr


def test_missing_database_exits_2(pg_server, tmp_path):
    r = cli(*apply_args(tmp_path, "--yes"), env=pg_server.env("no_such_db_headless"))
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert line.startswith('aami-tui: Pre-flight failed: Connection: Database "no_such_db_headless" does not exist')


def test_failing_statement_exits_5_and_changes_nothing(pg_server, fresh_db, tmp_path):
    path, line = migration_with(tmp_path, "INSERT INTO groups (name, no_such_column) VALUES ('x', 1);", after=5)
    before = catalog_fingerprint(fresh_db)
    r = cli(*apply_args(tmp_path, "--yes", "--no-backup", "--migration-file", str(path)),
            env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 5, r.stdout + r.stderr
    assert r.stderr.splitlines() == [f'aami-tui: Statement 6 / 44 (INSERT INTO groups, line {line}, column 27) failed: '
                                     'column "no_such_column" of relation "groups" does not exist']
    assert "ROLLBACK (step failed): the database is as it was before BEGIN." in r.stdout
    assert catalog_fingerprint(fresh_db) == before
    (report,) = reports(tmp_path)
    assert report["final_state"] == "rolled back" and report["backup"] == "skipped"


def test_verify_failure_exits_1(pg_server, fresh_db, tmp_path):
    before = catalog_fingerprint(fresh_db)
    path = tmp_path / "with_extra.sql"
    path.write_text(MIGRATION.read_text() + "\nCREATE TABLE IF NOT EXISTS scratch_notes (id int);\n")
    r = cli(*apply_args(tmp_path, "--yes", "--no-backup", "--migration-file", str(path)),
            env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.splitlines() == ["aami-tui: Verify failed: Tables the migration created: the migration created "
                                     "scratch_notes, which the Config Server does not use (take it out of the file, "
                                     "then retry). COMMIT is blocked; ROLLBACK."]
    assert catalog_fingerprint(fresh_db) == before


def test_extra_table_from_before_is_a_warning_and_exact_a_gate(pg_server, fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE TABLE legacy_settings (id int)")
    env = pg_server.env(fresh_db.dbname)
    exact = cli(*apply_args(tmp_path, "--yes", "--exact"), env=env)
    assert exact.returncode == 3, exact.stdout + exact.stderr  # pre-flight: before any backup
    assert "Exactly ten tables in public: public also holds legacy_settings" in exact.stderr
    # fresh8 R6: it ended "Final state: abandoned (nothing changed) (exit 3: pre-flight failed: nothing changed)"
    assert exact.stdout.splitlines()[-2] == "Final state: pre-flight failed: nothing changed (exit 3)", exact.stdout
    assert not list((tmp_path / "backups").glob("*.dump"))
    r = cli(*apply_args(tmp_path, "--yes", "--no-backup"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  ! Other tables in public: legacy_settings (~" in r.stdout
    (report,) = [x for x in reports(tmp_path) if x["final_state"] == "committed"]
    other = [c for c in report["verify"] if c["name"] == "Other tables in public"]
    assert other and other[0]["blocking"] is False


async def test_second_concurrent_run_exits_7_naming_the_holder(pg_server, fresh_db, tmp_path):
    first = runbook(fresh_db, tmp_path / "console", skip_backup=True)
    await first.preflight()
    await first.backup_step()
    await first.begin()  # an operator is mid-run in the console
    try:
        r = await asyncio.to_thread(cli, *apply_args(tmp_path, "--yes"), env=pg_server.env(fresh_db.dbname))
        assert r.returncode == 7, r.stdout + r.stderr
        (line,) = r.stderr.splitlines()
        assert line.startswith(f"aami-tui: Pre-flight failed: One operator: Another operator is running the migration "
                               f"on {fresh_db.dbname}: pid {first.backend_pid}, user {fresh_db.user}, host ")
        assert "application 'aami-tui', connected since " in line
        assert public_tables(fresh_db) == []
        assert advisory_locks(fresh_db) == [(first.backend_pid, 0x41414D49, 1, True)]
    finally:
        await first.close()
    assert advisory_locks(fresh_db) == []


def test_ctrl_c_mid_statement_exits_130_and_rolls_back(pg_server, fresh_db, tmp_path):
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=15)
    before = catalog_fingerprint(fresh_db)
    p = spawn_cli(*apply_args(tmp_path, "--yes", "--no-backup", "--migration-file", str(path)),
                  env=pg_server.env(fresh_db.dbname))
    out, err = signal_child(p, signal.SIGINT, lambda: wait_until(lambda: query(
        fresh_db, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aami-tui' AND state = 'active' AND "
                  "query LIKE 'SELECT pg_sleep%%'"), 20, what="the slow statement"), timeout=20)
    assert p.returncode == 130, out + err
    assert "aami-tui: interrupted; rolling back." in err and "Traceback" not in err
    assert "Cancelled at statement 16; the transaction is aborted: ROLLBACK." in out
    assert catalog_fingerprint(fresh_db) == before
    assert tool_sessions(fresh_db) == [] and tool_locks(fresh_db) == [] and advisory_locks(fresh_db) == []
    (report,) = reports(tmp_path)
    assert report["final_state"] == "rolled back"


def test_ctrl_c_during_the_backup_removes_the_partial_files(pg_server, fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int)")
    holder = observe(fresh_db, app="holder", autocommit=False)
    holder.execute("LOCK TABLE app_data.notes IN ACCESS EXCLUSIVE MODE")  # pg_dump waits on it
    try:
        p = spawn_cli(*apply_args(tmp_path, "--yes"), env=pg_server.env(fresh_db.dbname))

        def waiting() -> None:
            wait_until(lambda: tool_waits_for_a_lock(fresh_db), 20, what="pg_dump waiting")
            assert list((tmp_path / "backups").glob("backup_*.dump"))  # the partial dump is there

        out, err = signal_child(p, signal.SIGINT, waiting, timeout=20)
    finally:
        holder.rollback()
        holder.close()
    assert p.returncode == 130, out + err
    assert "Backup cancelled; partial file backup_" in out and ".dump removed." in out, out
    assert os.listdir(tmp_path / "backups") == []
    assert public_tables(fresh_db) == []
    wait_until(lambda: not tool_sessions(fresh_db), 10, what="pg_dump's session to end")


def test_connection_killed_mid_apply_exits_2_and_changes_nothing(pg_server, fresh_db, tmp_path):
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=15)
    before = catalog_fingerprint(fresh_db)
    p = spawn_cli(*apply_args(tmp_path, "--yes", "--no-backup", "--migration-file", str(path)),
                  env=pg_server.env(fresh_db.dbname))
    try:
        (pid,) = wait_until(lambda: query(fresh_db, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                                                    "'aami-tui' AND query LIKE 'SELECT pg_sleep%%'"),
                            20, what="the slow statement")[0]
        query(fresh_db, "SELECT pg_terminate_backend(%s)", (pid,))
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 2, out + err
    assert err.splitlines() == ["aami-tui: The connection to the server was lost (terminating connection due to "
                                "administrator command); the server rolled the transaction back: nothing was changed."]
    assert catalog_fingerprint(fresh_db) == before
    assert tool_sessions(fresh_db) == [] and advisory_locks(fresh_db) == []


def test_unanswering_host_exits_2_within_connect_timeout(pg_server, tmp_path):
    import socket
    import time

    with socket.socket() as s:  # accepts TCP, never answers the startup packet
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        env = pg_server.env("aami_config")
        env.update({"DB_HOST": "127.0.0.1", "DB_PORT": str(s.getsockname()[1])})
        t0 = time.monotonic()
        r = cli(*apply_args(tmp_path, "--yes", "--connect-timeout", "1"), env=env)
        took = time.monotonic() - t0
    assert r.returncode == 2 and took < 10
    assert r.stderr.splitlines() == [f"aami-tui: Pre-flight failed: Connection: No answer from 127.0.0.1:"
                                     f"{env['DB_PORT']} within 2 s (connect_timeout): the host is unreachable or a "
                                     "firewall drops the connection."]


@pytest.mark.parametrize(("yes", "code", "state"), [(True, 0, "committed"), (False, 6, "rolled back")])
def test_a_closed_stdout_never_changes_the_outcome_or_the_exit_code(pg_server, fresh_db, tmp_path, yes, code, state):
    """Issue 7 item 7: `apply --yes | head -2` committed, then crashed with BrokenPipeError and exited 1."""
    import subprocess
    import sys

    from faults import child_env

    cmd = [sys.executable, "-m", "aami_tui", *apply_args(tmp_path, "--no-backup", *(["--yes"] if yes else []))]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=child_env(pg_server.env(fresh_db.dbname)))
    first = [p.stdout.readline(), p.stdout.readline()]  # like `| head -2`: read two lines, then go away
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == code, err
    assert first[0].startswith("== Pre-flight ==")
    assert "Traceback" not in err and "BrokenPipe" not in err
    (report,) = reports(tmp_path)
    assert report["final_state"] == state and report["exit_code"] == code
    assert public_tables(fresh_db) == (sorted(REQUIRED_TABLES) if yes else [])


def test_exit_codes_and_words_come_from_one_typed_table():
    from aami_tui import headless
    from aami_tui.core.runbook import Verdict

    # 0 as init: "the database is ready"; and committed on the primary only (fresh7 N1): the migration is in, never
    # to be retried: exit 0, its own words
    codes = [v.exit_code for v in Verdict if v not in (Verdict.NOTHING_TO_DO, Verdict.COMMITTED_PRIMARY_ONLY)]
    assert len(codes) == len(set(codes))  # one code per outcome
    assert (headless.EXIT_COMMITTED, headless.EXIT_CONNECT, headless.EXIT_LOCKED, headless.EXIT_COMMIT_REJECTED,
            headless.EXIT_COMMIT_UNKNOWN) == (0, 2, 7, 8, 9)
    readme = (ROOT / "README.md").read_text()
    for v in Verdict:  # the README's table lists every code
        assert f"\n| {v.exit_code} | " in readme, v


def test_frozen_network_mid_apply_exits_2_not_committed_within_its_deadline(pg_server, fresh_db, tmp_path):
    """Issue 7 item 5, as reported: `apply --statement-timeout 10` behind a frozen proxy was still waiting
    200 s later. Now: statement_timeout + grace, exit 2, 'not committed', the backend fenced."""
    import time

    from faults import Proxy, spawn_cli

    path, _ = migration_with(tmp_path, "SELECT pg_sleep(0.5);", after=12)
    proxy = Proxy(fresh_db.host, fresh_db.port)
    try:
        env = pg_server.env(fresh_db.dbname)
        env["DB_HOST"], env["DB_PORT"] = "127.0.0.1", str(proxy.port)
        p = spawn_cli(*apply_args(tmp_path, "--yes", "--no-backup", "--statement-timeout", "1", "--migration-file",
                                  str(path)), env=env)
        try:
            (pid,) = wait_until(lambda: query(fresh_db, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                                                        "'aami-tui' AND query LIKE 'SELECT pg_sleep%%'"), 20)[0]
            proxy.freeze()
            t0 = time.monotonic()
            out, err = p.communicate(timeout=30)
            took = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
    finally:
        proxy.close()
    assert p.returncode == 2, out + err
    assert took < 15, took  # 1 s + 2 s grace, then the fence (slack for a loaded machine)
    (line,) = err.splitlines()
    assert "COMMIT was never sent, so nothing is committed" in line and f"backend {pid} ended" in line
    assert public_tables(fresh_db) == [] and tool_locks(fresh_db) == [] and advisory_locks(fresh_db) == []
    (report,) = reports(tmp_path)
    assert report["final_state"] == "rolled back" and report["exit_code"] == 2
    assert report["transaction"] == "connection lost: not committed"


async def test_ctrl_c_on_a_frozen_network_says_not_committed_rollback_unconfirmed(fresh_db, tmp_path, proxy, capsys,
                                                                                     monkeypatch):
    """Ctrl-C mid-statement with the network frozen: the cancel cannot reach the server, nor can the fence. The run
    used to print 'rolling back' and write 'rolled back' in the report, although nobody saw a ROLLBACK. Now the
    final state says what is certain: not committed, the rollback unconfirmed (in process: cheaper than a child).
    fresh7 N4: meanwhile it printed nothing for up to statement_timeout + grace (the console says 'waiting for the
    server's answer'): now a line after SILENT_AFTER (10 s; shortened here), then every SILENT_EVERY, with the
    deadline; and the cancel's end printed psycopg's raw 'query cancellation interrupted (CancelledError): closing
    connection' warning: it goes to the report's log, never the terminal."""
    from aami_tui import headless
    from aami_tui.cli import build_parser
    from aami_tui.core.runbook import session

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as outside pytest: no handler, Python's last resort
    monkeypatch.setattr(session, "SILENT_AFTER", 0.5)
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=12)
    args = build_parser().parse_args(apply_args(tmp_path, "--yes", "--no-backup", "--migration-file", str(path),
                                                "--statement-timeout", "40"))
    task = asyncio.create_task(headless._run(proxy.settings(fresh_db), args))
    await asyncio.to_thread(wait_until, lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE application_name"
                                                                " = 'aami-tui' AND query LIKE 'SELECT pg_sleep%%'"), 20)
    proxy.freeze(new=True)
    said = ""
    for _ in range(100):  # the line comes once the statement has had no answer for SILENT_AFTER
        await asyncio.sleep(0.05)
        said += capsys.readouterr().out
        if "waiting for the server's answer" in said:
            break
    assert re.search(r"\n  Apply: waiting for the server's answer for \d+s \(statement 13 / 44: SELECT pg_sleep\(60\)"
                     r"\); the client gives up in \d+s \(statement_timeout 40s \+ 10s\) if none comes\n", said), said
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: headless's handler (aami_tui.signals) cancels the run
    code = await asyncio.wait_for(task, 30)
    out, err = capsys.readouterr()
    assert code == 130, out + err
    assert "rolling back" not in err, err
    assert "cancellation" not in err + out and "closing connection" not in err + out, err
    assert "Final state: not committed, rollback unconfirmed (exit 130: interrupted: not committed)" in out, out
    (report,) = reports(tmp_path)
    assert report["final_state"] == "not committed, rollback unconfirmed" and report["exit_code"] == 130
    assert any("query cancellation interrupted" in e["message"] for e in report["log"]), report["log"]
    # fresh8 R5: the report says that Ctrl-C caused the cancel that got no answer, in its Failure and its log
    assert report["failure"].startswith("Cancelled: interrupted (SIGINT). The server gave no answer: the cancel of "
                                        "statement 13 "), report["failure"]
    assert any(e["message"].startswith("The run ends: interrupted (SIGINT)") for e in report["log"]), report["log"]
    proxy.drop()  # the network is back: the server notices the dead client and rolls back
    wait_until(lambda: not tool_sessions(fresh_db), 15, what="the orphaned session to end")
    assert public_tables(fresh_db) == []


def test_apply_waiting_for_a_lock_says_for_whom_while_it_waits(pg_server, fresh_db, tmp_path):
    """Headless apply printed nothing while a statement queued behind another session's lock: it now prints the
    console's step-pane line (LockWatch.waiting), at most every PROGRESS_EVERY seconds, until lock_timeout ends it."""
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int)")
    path, _ = migration_with(tmp_path, "SELECT count(*) FROM app_data.notes;", after=15)
    holder = observe(fresh_db, app="holder", autocommit=False)
    holder.execute("LOCK TABLE app_data.notes IN ACCESS EXCLUSIVE MODE")
    try:
        r = cli(*apply_args(tmp_path, "--yes", "--no-backup", "--lock-timeout", "3", "--migration-file", str(path)),
                env=pg_server.env(fresh_db.dbname))
        hpid = holder.info.backend_pid
    finally:
        holder.rollback()
        holder.close()
    assert r.returncode == 5, r.stdout + r.stderr
    waits = [ln for ln in r.stdout.splitlines() if "waiting for a lock" in ln]
    assert len(waits) == 1, r.stdout  # the first sample; the next would be 4 s later, after lock_timeout
    assert waits[0].startswith("  Statement 16 / 44: waiting for a lock held by pid "), waits
    assert (f"pid {hpid} (user {fresh_db.user}, application 'holder', host 127.0.0.1, idle in transaction) for "
            in waits[0]
            and "s; lock_timeout (3s) ends the wait with an error" in waits[0]), waits
    assert r.stdout.index(waits[0]) < r.stdout.index("Final state")


async def test_apply_asks_about_synchronous_standbys_again_before_commit(pg_server, fresh_db, tmp_path, capsys,
                                                                        monkeypatch):
    """Known-left since the console's COMMIT prompt learnt it: a synchronous standby can go (or
    synchronous_standby_names change) after pre-flight, while the run backs up, applies and verifies. `apply --yes`
    committed without a word, then hung until --commit-timeout. It now asks the server again just before COMMIT and
    says what it found, in its output and in the report's log (COMMIT still runs, bounded by its timeout, as the
    console's does once the DBA has read the same words)."""
    import contextlib

    import psycopg.sql
    from faults import commit_never_answered

    from aami_tui import headless
    from aami_tui.cli import build_parser
    from aami_tui.core.runbook.engine import Runbook

    verify = Runbook.verify
    with contextlib.ExitStack() as stack:
        async def verify_then_the_standby_goes(self, *a, **kw):
            result = await verify(self, *a, **kw)
            stack.enter_context(commit_never_answered(pg_server, fresh_db, standby="gone"))
            # a standby gone for a while: the checkpointer tells the backends that synchronous standbys are now
            # defined when it reloads the configuration itself, a moment after the new value shows
            await asyncio.sleep(1.0)
            return result

        monkeypatch.setattr(Runbook, "verify", verify_then_the_standby_goes)
        # (the recipe sets synchronous_commit for the database's new sessions: the run's, here, from its start)
        run_sql(pg_server.admin, psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(
            psycopg.sql.Identifier(fresh_db.dbname)).as_string())
        args = build_parser().parse_args(apply_args(tmp_path, "--yes", "--no-backup", "--commit-timeout", "3"))
        code = await asyncio.wait_for(headless._run(fresh_db, args), 60)
    out, err = capsys.readouterr()
    said = ("  ! Synchronous standby, asked again before COMMIT: COMMIT waits for 1 synchronous standby "
            "(synchronous_standby_names = 'gone', synchronous_commit = on), and 0 are connected as synchronous "
            "(pg_stat_replication): COMMIT will hang waiting for it")
    assert said in out, out + err
    assert out.index(said) < out.index("== COMMIT ==")
    (report,) = reports(tmp_path)
    assert any(e["message"].startswith(said.strip()) for e in report["log"]), report["log"]
    assert code == report["exit_code"] == 0, (code, out, err)  # what the warning said came true, and is said
    assert "Final state: committed (exit 0: committed on the primary only: NOT confirmed on the synchronous standby" \
        in out, out
