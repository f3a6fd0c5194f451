"""`aami-tui rehearse`: the migration on a scratch copy of a populated database, the copy always dropped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest
from conftest import MIGRATION, apply_migration, catalog_fingerprint, cli, run_sql
from test_plan import build_upstream

from aami_tui.core import rehearse


def scratch_databases(settings) -> list[str]:
    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'aami_rehearse_%'")]


def args(tmp_path, *extra):
    return ["rehearse", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r"), *extra]


def test_populated_database_rehearsed_copy_dropped_real_untouched(pg_server, fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE TABLE site_notes (id int PRIMARY KEY, note text);"
                      "INSERT INTO site_notes SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
    before = catalog_fingerprint(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    r = cli(*args(tmp_path, "--json"), env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == ("The real run would succeed and leave no drift: aami-tui check --strict passes on the copy.")  # no `
    assert out["committed"] and out["strict_ok"] and out["copy_dropped"]
    assert out["copy_where"].startswith("a new database aami_rehearse_") and "same server" in out["copy_where"]
    assert out["statements"] == 43 and out["apply_seconds"] > 0 and out["restore_seconds"] > 0
    assert out["locks"] == []  # the migration only touches new tables (site_notes is left alone)
    assert any(c["name"] == "Other tables in public" for c in out["verify"])
    assert catalog_fingerprint(fresh_db) == before  # the real database: only read
    assert scratch_databases(fresh_db) == []
    report = json.loads(open(out["report"].removesuffix(".md") + ".json").read())
    assert report["exit_code"] == 0
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o700  # created for r/rehearsal-runs: owner-only too


async def test_an_already_migrated_database_rehearses_as_nothing_to_do(fresh_db, tmp_path):
    """The engine ends a run on an already-migrated database after pre-flight (no backup, no transaction): the
    rehearsal says the real run would do just that (exit 0), not "would fail" at a backup it no longer takes."""
    apply_migration(fresh_db)
    r = await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r")
    assert r.exit_code == rehearse.EXIT_WOULD_SUCCEED and r.failed is None, r.verdict()
    assert r.verdict().startswith("Nothing to do: the database is already migrated"), r.verdict()
    assert r.statements == 0 and not r.committed and r.strict_ok and r.copy_dropped
    assert scratch_databases(fresh_db) == []


def test_drifted_database_would_fail_then_the_plan_rehearses_clean(pg_server, fresh_db, tmp_path):
    build_upstream(fresh_db, tmp_path)
    run_sql(fresh_db, "DELETE FROM target_groups WHERE target_id <> '00000000-0000-0000-0000-000000000001'")
    env = pg_server.env(fresh_db.dbname)
    r = cli(*args(tmp_path), env=env, timeout=180)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("The real run would fail: Pre-flight failed: Schema drift: tables target_groups")
    plan = tmp_path / "plan.sql"
    assert cli("plan", "--output", str(plan), env=env, timeout=120).returncode == 3
    r = cli(*args(tmp_path, "--migration-file", str(plan)), env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    # the table that existed, with its size; one row is "1 row" (fresh8 R6: "~1 rows")
    assert "Lock: ACCESS EXCLUSIVE on target_groups (~1 row, " in r.stdout, r.stdout
    assert "dropped" in r.stdout and scratch_databases(fresh_db) == []
    assert cli("check", "--strict", env=env).returncode == 3  # the real database is untouched
    # the report is pre-flight's evidence for "Tested on staging"
    report = r.stdout.split("Report: ")[1].split(" ")[0]
    a = cli("apply", "--migration-file", str(plan), "--no-backup", "--rehearsal-report", report, "--reports-dir",
            str(tmp_path / "r2"), env=env, timeout=120)
    assert a.returncode == 6, a.stdout + a.stderr  # dry run (no --yes)
    assert "✓ Tested on staging: rehearsed on a copy" in a.stdout
    other = cli("apply", "--no-backup", "--rehearsal-report", report, "--reports-dir", str(tmp_path / "r3"), env=env,
                timeout=120)
    assert "! Tested on staging: " in other.stdout and "rehearsed another file" in other.stdout


def test_unreadable_backup_makes_no_copy(pg_server, fresh_db, tmp_path):
    bad = tmp_path / "not_a_dump.dump"
    bad.write_text("hello")
    r = cli(*args(tmp_path, "--from-backup", str(bad)), env=pg_server.env(fresh_db.dbname), timeout=60)
    assert r.returncode == 4
    assert "not_a_dump.dump is not a pg_dump custom-format archive" in r.stderr
    assert scratch_databases(fresh_db) == []
    # fresh5 F13: a missing file was said after the disk-space sentence (as if a copy were being weighed)
    r = cli(*args(tmp_path, "--from-backup", str(tmp_path / "nonexist.dump")), env=pg_server.env(fresh_db.dbname),
            timeout=60)
    assert r.returncode == 4 and f"--from-backup {tmp_path / 'nonexist.dump'}: no such file." in r.stderr, r.stderr
    assert "disk" not in r.stdout + r.stderr, r.stdout + r.stderr


async def test_cancelled_mid_apply_still_drops_the_copy(fresh_db, tmp_path):
    said: list[str] = []
    task = asyncio.create_task(rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b",
                                                 reports_dir=tmp_path / "r", pace=0.2, say=said.append))
    for _ in range(300):
        await asyncio.sleep(0.1)
        if scratch_databases(fresh_db) and any(m.startswith("Rehearsing") for m in said):
            break
    await asyncio.sleep(1.0)  # inside apply (0.2 s per statement)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scratch_databases(fresh_db) == []
    reports = list((tmp_path / "r").glob("rehearsal_*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["interrupted"] is True


async def test_embedded_copy_when_the_role_may_not_create_databases(fresh_db, tmp_path):
    import os

    role = f"plain_r_{os.getpid()}"
    run_sql(fresh_db, f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw' NOCREATEDB;"
                      "CREATE TABLE site_notes (id int); INSERT INTO site_notes VALUES (1);"
                      f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        limited = fresh_db.__class__({**fresh_db.params, "user": role, "password": "pw"}, "--dsn")
        r = await rehearse.rehearse(limited, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r")
        assert r.copy_where.startswith("the embedded PostgreSQL 18 (the role may not create databases)")
        assert r.copy_dropped and r.exit_code == 0, r.failed
    finally:
        run_sql(fresh_db, f"DROP OWNED BY {role}; DROP ROLE {role}")


async def test_backup_from_the_newest_pg_dump_restores_into_an_older_server(fresh_db, tmp_path):
    """On PostgreSQL 15 (AAMI_TEST_SERVER=pg15): a pg_dump 18 archive only pg_restore 18 reads, whose direct
    connection sends `SET transaction_timeout` (17+); its script goes through psql without that line."""
    from aami_tui.core import pgtools

    run_sql(fresh_db, "CREATE TABLE site_notes (id int); INSERT INTO site_notes VALUES (1), (2)")
    newest = pgtools.all_tools("pg_dump")[0]
    dump = tmp_path / "newest.dump"
    await pgtools.run_dump(newest, fresh_db, dump)
    seen: list = []
    r = await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r",
                                from_backup=dump, on_progress=seen.append)
    assert r.exit_code == 0, r.failed
    assert r.backup.endswith("(given with --from-backup)") and r.copy_dropped
    # progress through either path (pg_restore direct, or its script through psql): weighed, and done at the end
    assert seen and seen[-1].total > 0 and seen[-1].done == seen[-1].total, seen[-1:]


async def test_a_backup_of_another_database_is_refused_and_is_no_evidence(fresh_db, db_factory, tmp_path):
    """--from-backup with another database's backup rehearsed that one (exit 0, "would succeed"), and
    --rehearsal-report then counted it as "Tested on staging" for this database."""
    from aami_tui.core import migration, pgtools

    dump = tmp_path / "backup_drift1_20261127_210211.dump"
    await pgtools.run_dump(pgtools.all_tools("pg_dump")[0], fresh_db, dump)
    pgtools.write_checksum(dump, pgtools.sha256_file(dump), {"host": fresh_db.host, "port": str(fresh_db.port),
                                                             "dbname": "drift1"})
    with pytest.raises(rehearse.RehearsalError) as exc:
        await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r",
                                from_backup=dump)
    assert str(exc.value).startswith(f"--from-backup {dump.name} was made from drift1 on {fresh_db.host}:"
                                     f"{fresh_db.port}, not from {fresh_db.dbname} on ")
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*.json"))
    # fresh6 F1: without metadata beside it, the archive's header still says which database was dumped
    bare = tmp_path / "bare.dump"
    await pgtools.run_dump(pgtools.all_tools("pg_dump")[0], db_factory("aami_rt"), bare)
    with pytest.raises(rehearse.RehearsalError) as exc:
        await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r",
                                from_backup=bare)
    assert str(exc.value).startswith("--from-backup bare.dump is a dump of database aami_rt_"), exc.value
    assert f"(its archive header says so; no metadata beside it), not of {fresh_db.dbname}" in str(exc.value)
    # a report written before the source was recorded: the backup it names says where it came from
    shipped = migration.load(MIGRATION)
    report = tmp_path / "rehearsal_old.json"
    report.write_text(json.dumps({"kind": "aami-tui rehearsal", "started_at": "2026-11-27T21:05:00+00:00",
                                  "migration_sha256": shipped.sha256, "exit_code": 0,
                                  "database": f"{fresh_db.dbname} on {fresh_db.host}:{fresh_db.port} (PostgreSQL 18.0)",
                                  "backup": f"{dump} (given with --from-backup)", "verdict": "would succeed"}))
    good, words = rehearse.evidence(report, shipped, fresh_db.dbname)
    assert not good and words == (f"rehearsal_old.json rehearsed a backup of drift1 on {fresh_db.host}:"
                                  f"{fresh_db.port}, not of {fresh_db.dbname}: it is no evidence for {fresh_db.dbname}")


# ---- the rehearsal as an optional runbook step, before BEGIN (the engine both faces drive) -------------------------
NOTES = ("CREATE TABLE site_notes (id int PRIMARY KEY, note text);"
         "INSERT INTO site_notes SELECT g, 'x' FROM generate_series(1, 500) g")


async def test_runbook_rehearsal_step_is_the_staging_evidence(fresh_db, tmp_path, monkeypatch):
    import stat
    import threading

    from faults import off_the_loop, runbook

    from aami_tui.core import pgtools
    from aami_tui.core.runbook import Phase, RunbookError, State, Step

    # the backup's .json/.sha256 and the rehearsal's report are written off the console's event loop
    wrote = [off_the_loop(monkeypatch, pgtools, "write_checksum"), off_the_loop(monkeypatch, rehearse, "write_report")]
    run_sql(fresh_db, NOTES)
    rb = runbook(fresh_db, tmp_path, interactive=True)
    for key, _ in rb.items:
        if key != "staging":  # left for the rehearsal to answer
            rb.tick(key)
    await rb.preflight()
    assert rb.can(Step.REHEARSE) == (False, "take (and verify) the backup first: the rehearsal restores it")
    await rb.backup_step()
    assert rb.begin_caution().startswith("the migration was not tested on staging")
    with pytest.raises(RunbookError, match="BEGIN needs an explicit confirmation: the migration was not tested"):
        await rb.begin()
    assert rb.phase is Phase.READY
    before = catalog_fingerprint(fresh_db)
    r = await rb.rehearse()
    assert r.passed and r.copy_dropped and rb.phase is Phase.READY, r.verdict
    assert r.backup.startswith(str(rb.backup.dump_path))  # the run's own verified backup, restored
    assert rb.steps[Step.REHEARSE].state is State.DONE and r.apply_seconds > 0 and r.statements == 43
    assert rb.answers["staging"] and rb.begin_caution() is None
    (staging,) = [c for c in rb.checks if c.name == "Tested on staging"]
    assert staging.ok and staging.detail.startswith("rehearsed on a copy")
    assert catalog_fingerprint(fresh_db) == before and scratch_databases(fresh_db) == []
    await rb.begin()
    await rb.close("test")
    data = json.loads(rb.report_paths[1].read_text())
    (rec,) = data["rehearsals"]
    assert rec["outcome"] == "passed" and rec["report"] == r.report and rec["copy_dropped"]
    assert {s["step"]: s["state"] for s in data["steps"]}["rehearse"] == "done"
    md = rb.report_paths[0].read_text()
    assert "## Rehearsal on a copy, before BEGIN" in md and f"- passed: {r.verdict} ({r.report})" in md
    # who answered "Tested on staging": the rehearsal, not the operator (the report read "[x] … (yes)")
    staging_label = dict(rb.items)["staging"]
    by = f"rehearsal report {Path(r.report).name}"
    assert data["preflight"]["answered_by"][staging_label] == by
    assert data["preflight"]["answered_by"][dict(rb.items)["review"]] == "operator"
    assert f"- [x] {staging_label} (yes, answered by {by})" in md
    # ...and their files are whole and owner-only
    assert all(wrote) and threading.get_ident() not in wrote[0] + wrote[1]
    written = [rb.backup.dump_path.with_name(rb.backup.dump_path.name + x) for x in (".json", ".sha256")]
    written += [Path(r.report), Path(r.report).with_suffix(".json")]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    assert json.loads(written[0].read_text())["sha256"] == rb.backup.sha256
    assert json.loads(written[3].read_text())["copy_dropped"] is True


async def test_failed_rehearsal_needs_an_explicit_begin_and_a_timeout_drops_the_copy(fresh_db, tmp_path):
    from faults import migration_with, runbook

    from aami_tui.core.runbook import Phase, RunbookError, State, Step

    run_sql(fresh_db, NOTES)
    bad, _ = migration_with(tmp_path, "CREATE UNIQUE INDEX site_notes_note ON site_notes (note);", after=1)
    rb = runbook(fresh_db, tmp_path, bad, interactive=True)
    for key, _ in rb.items:
        rb.tick(key)  # ticked on trust
    await rb.preflight()
    await rb.backup_step()
    assert rb.begin_caution() is None
    r = await rb.rehearse()
    assert not r.passed and "could not create unique index" in r.failed and r.copy_dropped
    assert rb.steps[Step.REHEARSE].state is State.FAILED and rb.phase is Phase.READY
    assert rb.begin_caution().startswith("the rehearsal on a copy failed: The real run would fail: Statement 2 / 44")
    with pytest.raises(RunbookError, match="BEGIN needs an explicit confirmation: the rehearsal on a copy failed"):
        await rb.begin()
    rb.opt.rehearse_timeout = 0.01  # no restore and run finishes in 10 ms (0.5 s was enough on a quiet machine)
    r2 = await rb.rehearse()
    assert r2.outcome == "timed out" and r2.verdict in (
        "The rehearsal did not finish within 0.01s; the copy was dropped.",
        "The rehearsal did not finish within 0.01s; no copy was made.")
    assert scratch_databases(fresh_db) == [] and rb.phase is Phase.READY
    rb.opt.rehearse_timeout = 3600.0
    task = asyncio.create_task(rb.rehearse())  # escape in the console, Ctrl+C headless: cancelled mid-way
    for _ in range(200):
        if scratch_databases(fresh_db):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rb.rehearsals[-1].outcome == "cancelled" and rb.steps[Step.REHEARSE].state is State.PENDING
    assert scratch_databases(fresh_db) == [] and rb.phase is Phase.READY
    assert rb.begin_caution().startswith("the rehearsal on a copy did not finish: The rehearsal did not finish")
    await rb.begin(confirmed=True)  # the operator's explicit decision, recorded
    assert rb.phase is Phase.OPEN
    await rb.close("test")
    data = json.loads(rb.report_paths[1].read_text())
    assert [x["outcome"] for x in data["rehearsals"]] == ["failed", "timed out", "cancelled"]
    assert any("BEGIN confirmed by the operator although the rehearsal on a copy" in e["message"] for e in data["log"])


def test_headless_apply_rehearse_stops_before_begin_when_the_copy_fails(pg_server, fresh_db, tmp_path):
    from faults import migration_with

    run_sql(fresh_db, NOTES)
    bad, _ = migration_with(tmp_path, "CREATE UNIQUE INDEX site_notes_note ON site_notes (note);", after=1)
    before = catalog_fingerprint(fresh_db)
    r = cli("apply", "--rehearse", "--yes", "--migration-file", str(bad), "--backup-dir", str(tmp_path / "b"),
            "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname), timeout=180)
    assert r.returncode == 10, r.stdout + r.stderr
    assert "== Rehearsal ==" in r.stdout and "Copy: restoring backup_" in r.stdout
    assert "  restoring the copy: " in r.stdout and "(100 %), done" in r.stdout  # the copy's progress, as a backup's
    assert "aami-tui: BEGIN not run: the rehearsal on a copy failed: The real run would fail" in r.stderr
    assert catalog_fingerprint(fresh_db) == before and scratch_databases(fresh_db) == []
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("report_*.json")]
    assert report["exit_code"] == 10 and report["rehearsals"][0]["outcome"] == "failed"



def test_rehearse_timeout_bounds_the_rehearsal_and_says_so(pg_server, fresh_db, tmp_path):
    """`aami-tui rehearse` had no bound at all and `apply --rehearse` only the engine's fixed hour: now
    --rehearse-timeout bounds both, the copy is dropped, and the sentence names the flag."""
    run_sql(fresh_db, NOTES)
    env = pg_server.env(fresh_db.dbname)
    r = cli(*args(tmp_path, "--rehearse-timeout", "0.2"), env=env, timeout=120)
    assert r.returncode == rehearse.EXIT_TIMED_OUT, r.stdout + r.stderr
    assert "The rehearsal did not finish within 0.2s (--rehearse-timeout)" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and scratch_databases(fresh_db) == []
    r = cli("apply", "--rehearse", "--rehearse-timeout", "0.2", "--backup-dir", str(tmp_path / "b2"),
            "--reports-dir", str(tmp_path / "r2"), env=env, timeout=120)
    assert r.returncode == 10, r.stdout + r.stderr
    assert "The rehearsal did not finish within 0.2s" in r.stdout + r.stderr
    assert scratch_databases(fresh_db) == []


async def test_a_file_fixed_after_pre_flight_is_not_rehearsed_until_pre_flight_loads_it(fresh_db, tmp_path):
    """Fixed on disk after a failed rehearsal, the file rehearsed clean, yet the step stayed failed ("rehearsed
    another file"): the rehearsal read the disk while BEGIN applies the copy pre-flight loaded. Now the engine
    says the file changed and that pre-flight must load it; once it has, the rehearsal of that version counts."""
    from faults import migration_with, runbook

    from aami_tui.core.runbook import Phase, RunbookError, State, Step

    run_sql(fresh_db, NOTES)
    bad, _ = migration_with(tmp_path, "CREATE UNIQUE INDEX site_notes_note ON site_notes (note);", after=1)
    rb = runbook(fresh_db, tmp_path, bad, interactive=True)
    for key, _ in rb.items:
        rb.tick(key)
    await rb.preflight()
    await rb.backup_step()
    assert not (await rb.rehearse()).passed
    loaded = rb.migration.sha256
    bad.write_text(MIGRATION.read_text())  # fixed on disk
    with pytest.raises(RunbookError, match="changed since pre-flight") as exc:
        await rb.rehearse()
    assert "run pre-flight again to load it" in str(exc.value) and loaded[:12] in str(exc.value)
    assert rb.phase is Phase.READY and rb.migration.sha256 == loaded and len(rb.rehearsals) == 1
    assert rb.next_step() is Step.PREFLIGHT  # n in the console re-runs pre-flight
    await rb.preflight()
    assert rb.phase is Phase.READY and rb.migration.sha256 != loaded  # the backup is kept
    r = await rb.rehearse()
    assert r.passed, r.verdict
    assert rb.steps[Step.REHEARSE].state is State.DONE and rb.begin_caution() is None
    await rb.close("test")


async def test_the_rehearsals_own_backup_is_bounded_by_lock_timeout_and_names_the_holder(fresh_db, tmp_path):
    """The rehearsal's own pg_dump had no --lock-wait-timeout: a lock another session held made it wait silently,
    for ever. It now waits at most lock_timeout, as the backup step does, and says who holds the lock."""
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        c.execute("CREATE TABLE held (id int)")
    with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
        holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(rehearse.RehearsalError) as e:
            await asyncio.wait_for(rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b",
                                                     reports_dir=tmp_path / "r", lock_timeout=1.0), 30)
        pid = holder.info.backend_pid
    msg = str(e.value)
    assert msg.startswith("The backup for the rehearsal failed: pg_dump waited more than 1s for a lock on "), msg
    assert f"held by pid {pid} " in msg and "'dba-maintenance'" in msg, msg
    assert not list((tmp_path / "b").glob("*.dump")) and scratch_databases(fresh_db) == []

