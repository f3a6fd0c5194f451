"""An already-migrated database: pre-flight says there is nothing to do, and headless apply does not print the
server's 42 'already exists' notices (one line says how many; the report keeps them all)."""

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


def test_headless_apply_summarises_server_notices(pg_server, fresh_db, tmp_path):
    apply_migration(fresh_db)
    r = cli("apply", "--yes", "--no-backup", "--reports-dir", str(tmp_path / "reports"),
            env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 0, r.stdout + r.stderr
    notice_lines = [ln for ln in r.stdout.splitlines() if "NOTICE" in ln or "already exists" in ln]
    assert len(notice_lines) == 1, notice_lines
    # fresh5 F13: "Nothing to do: … (you can close the runbook: d or q)": console keys in a pipeline's output
    assert "the migration would change nothing" in r.stdout + r.stderr and "d or q" not in r.stdout + r.stderr
    assert "server notices" in notice_lines[0] and "kept in full in the report" in notice_lines[0]
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    kept = [e for e in report["log"] if "already exists" in e["message"]]
    assert len(kept) >= 20
