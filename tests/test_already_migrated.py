"""An already-migrated database: pre-flight says there is nothing to do and headless apply stops there (no backup,
no transaction). On a database that still needs a little (one default template deleted), headless apply does not
print the server's 42 'already exists' notices (one line says how many; the report keeps them all)."""

from __future__ import annotations

import json

import pytest
from conftest import apply_migration, apply_migration_but_one_template, cli, run_sql
from faults import runbook

from aami_tui.core.runbook import Outcome, RunbookError, Step, Tx, Verdict


async def test_preflight_says_nothing_to_do_and_the_engine_ends_the_run_there(fresh_db, tmp_path):
    """One decision for both faces: the console's runbook (interactive, its checklist not ticked: nothing will run)
    let n go on to the backup, BEGIN and 43 statements after pre-flight's "Nothing to do", where headless apply
    stopped. The engine now ends the run there: no backup, no transaction, recorded in the report."""
    apply_migration(fresh_db)
    rb = runbook(fresh_db, tmp_path, interactive=True)
    await rb.preflight()
    nothing = [c for c in rb.checks if c.name == "Nothing to do"]
    assert nothing and nothing[0].ok and not nothing[0].blocking
    assert "all ten required tables" in nothing[0].detail and "6 default alert templates" in nothing[0].detail
    assert rb.nothing_to_do and rb.finished and rb.verdict is Verdict.NOTHING_TO_DO and rb.tx is Tx.NONE
    assert rb.next_step() is None and rb.outcome is Outcome.NOTHING_TO_DO
    assert any("stopped after pre-flight" in m for _, _, m in rb.log)
    for step, go in ((Step.BACKUP, rb.backup_step), (Step.BEGIN, rb.begin)):
        ok, why = rb.can(step)
        assert not ok and "nothing to do" in why, why
        with pytest.raises(RunbookError, match="nothing to do"):
            await go()
    assert not rb.session.locked  # a finished run keeps no one out
    await rb.close("console closed")
    assert not list((tmp_path / "backups").glob("backup_*"))
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["exit_code"] == 0 and "nothing to do" in report["verdict"]
    assert report["final_state"] == Outcome.NOTHING_TO_DO.value and report["transaction"] == "no transaction"
    steps = {s["step"]: s["state"] for s in report["steps"]}
    assert steps["preflight"] == "done" and steps["backup"] == steps["begin"] == "not run"


async def test_a_migrated_but_drifted_database_is_not_nothing_to_do(fresh_db, tmp_path):
    """The ten tables present, one with a column the file does not create: pre-flight fails on the drift (exit 3),
    as headless apply always did; never "nothing to do"."""
    apply_migration(fresh_db)
    run_sql(fresh_db, "ALTER TABLE groups DROP COLUMN description")
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    with pytest.raises(RunbookError, match="Schema drift") as e:
        await rb.preflight()
    assert e.value.verdict is Verdict.PREFLIGHT and not rb.nothing_to_do and not rb.finished
    await rb.close()


def test_headless_apply_stops_after_preflight_when_nothing_to_do(pg_server, fresh_db, tmp_path):
    """fresh6 F7: pre-flight said "Nothing to do", then apply took a pg_dump, BEGIN, 43 statements and COMMIT anyway
    (a new backup on every CI dry run). Now it stops after pre-flight, exit 0, as init does."""
    apply_migration(fresh_db)
    r = cli("apply", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "reports"),
            env=pg_server.env(fresh_db.dbname))  # a dry run, as CI runs it
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "✓ Nothing to do" in out and "stopped after pre-flight" in out
    # fresh7 N6: the final state is the engine's outcome, never "abandoned" for a run that had nothing to do
    assert "Final state: nothing to do: already migrated, nothing changed (exit 0: " in r.stdout, r.stdout
    assert "abandoned" not in out, out
    assert "== Backup ==" not in out and "== BEGIN ==" not in out and "Dry run" not in out
    assert not list((tmp_path / "b").glob("*.dump*"))  # no backup taken
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["exit_code"] == 0 and "nothing to do" in report["verdict"]
    assert report["final_state"] == "nothing to do: already migrated, nothing changed", report["final_state"]
    assert {s["step"]: s["state"] for s in report["steps"]}["begin"] == "not run"


def test_headless_apply_summarises_server_notices(pg_server, fresh_db, tmp_path):
    apply_migration_but_one_template(fresh_db)  # the migration puts it back
    r = cli("apply", "--yes", "--no-backup", "--reports-dir", str(tmp_path / "reports"),
            env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 0, r.stdout + r.stderr
    notice_lines = [ln for ln in r.stdout.splitlines() if "NOTICE" in ln or "already exists" in ln]
    assert len(notice_lines) == 1, notice_lines
    assert "d or q" not in r.stdout + r.stderr  # fresh5 F13: no console keys in a pipeline's output
    assert "server notices" in notice_lines[0] and "kept in full in the report" in notice_lines[0]
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    kept = [e for e in report["log"] if "already exists" in e["message"]]
    assert len(kept) >= 20
