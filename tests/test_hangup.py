"""fresh6 F2/F3: every headless command ends on SIGHUP (an SSH session that drops) and SIGTERM as on Ctrl+C.

SIGHUP killed apply, restore, plan and rehearse outright (exit 129, no sentence, no closing report, apply's
report left "in progress", rehearse's copy and plan's temporary database left on the server); plan died on SIGTERM
too. Now one mechanism (aami_tui.signals) cancels each the same way: the transaction rolled back, the scratch
database dropped, the sentence, the report, exit 130. A later plan or rehearse names the temporary databases a run
killed outright left behind, with the DROP DATABASE line, and drops none it did not create.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid

import psycopg
import pytest
from conftest import catalog_fingerprint, run_sql
from faults import (
    migration_with,
    observe,
    query,
    signal_child,
    spawn_cli,
    take_verified_backup,
    tool_sessions,
    tool_waits_for_a_lock,
    wait_until,
)
from psycopg import sql

SLEEPING = ("SELECT datname FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%%' "
            "AND datname LIKE %s")


def databases(settings, like: str) -> list[str]:
    return [r[0] for r in query(settings, "SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))]


@pytest.mark.parametrize(("command", "sig"), [("apply", "SIGHUP"), ("plan", "SIGHUP"), ("plan", "SIGTERM"),
                                              ("rehearse", "SIGHUP")])
def test_a_signal_mid_run_ends_it_as_ctrl_c_does(pg_server, fresh_db, tmp_path, command, sig):
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=15)  # where each command's run waits
    where = {"apply": fresh_db.dbname, "plan": "aami_ref_%", "rehearse": "aami_rehearse_%"}[command]
    leftover = f"aami_ref_{uuid.uuid4().hex[:12]}"  # as a plan killed by SIGKILL leaves it
    admin = observe(pg_server.admin)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(leftover)))
    before = catalog_fingerprint(fresh_db)
    dirs = ("--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports"))
    args = {"apply": ("apply", "--yes", "--no-backup", *dirs), "plan": ("plan", "-o", str(tmp_path / "plan.sql")),
            "rehearse": ("rehearse", *dirs)}[command]
    try:
        p = spawn_cli(*args, "--migration-file", str(path), env=pg_server.env(fresh_db.dbname))
        sleeping: list = []  # (the database of the session that sleeps)
        out, err = signal_child(p, getattr(signal, sig), lambda: sleeping.extend(wait_until(
            lambda: query(fresh_db, SLEEPING, (where,)), 30, what=f"{command} to reach pg_sleep")[0]))
        (scratch,) = sleeping
        assert p.returncode == 130, out + err
        assert "Traceback" not in out + err
        assert catalog_fingerprint(fresh_db) == before
        assert databases(fresh_db, scratch) == [] or command == "apply", f"{scratch} left on the server"
        assert databases(fresh_db, leftover) == [leftover]  # never dropped: not this run's
        if command == "apply":
            assert "aami-tui: interrupted; rolling back." in err
            assert "Final state: rolled back (exit 130: " in out, out
            (report,) = [json.loads(x.read_text()) for x in (tmp_path / "reports").glob("report_*.json")]
            assert report["final_state"] == "rolled back"
            wait_until(lambda: not tool_sessions(fresh_db), 10, what="the tool's session to end")
            return
        # F3: a later run names what an earlier one killed outright left, and how to drop it
        assert f"{leftover} (" in err and "nobody connected" in err, err
        assert f"DROP DATABASE {leftover};" in err, err
        if command == "plan":
            assert f"Reference: interrupted; dropping the temporary database {scratch}." in err, err
            assert err.rstrip().endswith("aami-tui: interrupted: no plan was written; the database was only read.")
            assert not (tmp_path / "plan.sql").exists()
        else:
            assert "aami-tui: interrupted: the copy was dropped; the real database was only read. Report: " in err
            (report,) = [json.loads(x.read_text()) for x in (tmp_path / "reports").glob("rehearsal_*.json")]
            assert report["interrupted"] is True
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(leftover)))
        admin.close()


@pytest.mark.parametrize(("stage", "sig", "yes"), [("restoring", "SIGHUP", True), ("checking", "SIGTERM", True),
                                                 ("checking", "SIGHUP", False)])
def test_a_signal_cancels_a_headless_restore_with_its_sentence_and_report(pg_server, fresh_db, tmp_path, stage, sig,
                                                                          yes):
    """A restore waiting for a lock when the SSH session drops: cancelled, the same sentence as SIGTERM, a report,
    exit 130, the database untouched (it wrote no report and exited 129). The same in its read-only checks, before
    "Restoring into" (a catalog they read locked by another session): it exited 129 or 143 with no sentence and no
    report; now "cancelled before anything ran", exit 130, and with --yes the report (a dry run writes none)."""
    run_sql(fresh_db, "CREATE TABLE site_notes (id int PRIMARY KEY); INSERT INTO site_notes VALUES (1)")
    asyncio.run(take_verified_backup(fresh_db, tmp_path / "backups"))
    before = catalog_fingerprint(fresh_db)
    holder = observe(fresh_db, app="config-server", autocommit=False)
    if stage == "restoring":
        holder.execute("SELECT count(*) FROM site_notes").fetchone()  # the restore's DROP TABLE waits behind it
    else:  # the checks' query of what exists now (restore_live_objects) waits behind it
        holder.execute("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
    try:
        p = spawn_cli("restore", *(["--yes"] if yes else []), "--backup-dir", str(tmp_path / "backups"),
                      "--reports-dir", str(tmp_path / "reports"), env=pg_server.env(fresh_db.dbname))
        out, err = signal_child(p, getattr(signal, sig), lambda: wait_until(
            lambda: tool_waits_for_a_lock(fresh_db), 30, what="the restore to wait for the lock"))
    finally:
        holder.rollback()
        holder.close()
    assert p.returncode == 130, out + err
    assert "Traceback" not in err
    assert "Final state: cancelled (exit 130)" in out, out
    why = {"SIGHUP": "the terminal was closed (SIGHUP)", "SIGTERM": "terminated (SIGTERM)"}[sig]
    if stage == "restoring":  # fresh7 N6: what cancelled it, as apply's report says it (it said only "cancelled")
        assert f"aami-tui: restore cancelled ({why}): " in err, err
        assert f"{fresh_db.dbname} is as it was before the restore" in err
    else:
        assert "Restoring into" not in out, out
        assert f"aami-tui: restore cancelled ({why}) before anything ran: {fresh_db.dbname} is as it was." in err, err
    reports = [json.loads(x.read_text()) for x in (tmp_path / "reports").glob("restore_*.json")]
    if yes:
        (report,) = reports
        assert report["outcome"] == "cancelled" and report["error"].startswith(f"cancelled ({why})")
        assert report["cancelled_by"] == why
        assert f"— cancelled ({why})" in next((tmp_path / "reports").glob("restore_*.md")).read_text()
        assert f"Report: {tmp_path / 'reports'}" in out, out
    else:
        assert reports == [] and "Report:" not in out  # a dry run writes none
    assert catalog_fingerprint(fresh_db) == before


async def test_a_temporary_database_in_use_is_named_without_a_drop_line(pg_server, fresh_db):
    """One that a session is connected to may be a plan or rehearse running now: named, with who, but no DROP offered."""
    from aami_tui.core import leftovers
    from aami_tui.core.db import connect

    busy, idle = (f"aami_rehearse_{uuid.uuid4().hex[:12]}", f"aami_ref_{uuid.uuid4().hex[:12]}")
    admin = observe(pg_server.admin)
    for name in (busy, idle):
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    user = psycopg.connect(pg_server.admin.with_dbname(busy).conninfo())
    conn = await connect(fresh_db)
    try:
        words = leftovers.note(await leftovers.find(conn))
    finally:
        await conn.close()
        user.close()
        for name in (busy, idle):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
    assert f"{busy} (" in words and "1 session connected: a plan or rehearse running now?" in words, words
    assert f"{idle} (" in words and f"DROP DATABASE {idle};" in words and f"DROP DATABASE {busy}" not in words, words
