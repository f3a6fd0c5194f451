"""An already-migrated database: pre-flight says there is nothing to do and headless apply stops there (no backup,
no transaction). On a database that still needs a little (one default template deleted), headless apply does not
print the server's 42 'already exists' notices (one line says how many; the report keeps them all)."""

from __future__ import annotations

import json

from conftest import apply_migration, cli
from faults import runbook


async def test_preflight_says_nothing_to_do(fresh_db, tmp_path):
    apply_migration(fresh_db)
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await rb.preflight()
    nothing = [c for c in rb.checks if c.name == "Nothing to do"]
    assert nothing and nothing[0].ok and not nothing[0].blocking
    assert "all ten required tables" in nothing[0].detail and "6 default alert templates" in nothing[0].detail
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
    assert "== Backup ==" not in out and "== BEGIN ==" not in out and "Dry run" not in out
    assert not list((tmp_path / "b").glob("*.dump*"))  # no backup taken
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["exit_code"] == 0 and "nothing to do" in report["verdict"]
    assert {s["step"]: s["state"] for s in report["steps"]}["begin"] == "not run"


def test_headless_apply_summarises_server_notices(pg_server, fresh_db, tmp_path):
    import psycopg

    apply_migration(fresh_db)
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:  # the migration puts it back
        c.execute("DELETE FROM alert_templates WHERE id = (SELECT min(id) FROM alert_templates)")
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
