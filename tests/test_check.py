"""`aami-tui check`: the server's start-up validation, headless."""

from __future__ import annotations

import json

from conftest import MIGRATION, apply_migration, catalog_fingerprint, cli, run_sql

from aami_tui.core.schema import REQUIRED_TABLES

ALL_TEN = "[" + " ".join(REQUIRED_TABLES) + "]"


def test_empty_database_exits_1_naming_all_ten(pg_server, fresh_db):
    r = cli("check", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 1, r.stderr
    e = fresh_db.effective()
    port = "" if e["port"] == "5432" else f" -p {e['port']}"
    assert r.stdout.splitlines() == [
        "Validating database schema...",
        f"ERROR: Missing required database tables: {ALL_TEN}",
        "Please run database migrations before starting the server:",
        f"  psql -h {e['host']}{port} -U {e['user']} -d {fresh_db.dbname} -f migrations/001_initial_schema.sql",
    ]


def test_after_migration_exits_0_with_server_line(pg_server, fresh_db):
    apply_migration(fresh_db)
    r = cli("check", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["Validating database schema...",
                                     "✓ Database schema validation successful - all required tables exist"]
    assert r.stderr == ""


def test_migration_twice_gives_identical_catalog_ten_tables_six_templates(fresh_db):
    apply_migration(fresh_db)
    first = catalog_fingerprint(fresh_db)
    apply_migration(fresh_db)
    assert catalog_fingerprint(fresh_db) == first
    assert sum(1 for r in first if r[0] == "rel" and r[2] == "r") == 10
    assert ("rows", "alert_templates", "6", "") in first


def test_dropped_table_is_named(pg_server, fresh_db):
    apply_migration(fresh_db)
    run_sql(fresh_db, "DROP TABLE bootstrap_tokens; DROP TABLE target_groups")
    r = cli("check", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 1
    assert "ERROR: Missing required database tables: [target_groups bootstrap_tokens]" in r.stdout


def test_view_or_other_schema_does_not_satisfy(pg_server, fresh_db):
    apply_migration(fresh_db)
    run_sql(fresh_db, "DROP TABLE bootstrap_tokens; ALTER TABLE groups RENAME TO groups_real;"
                      "CREATE VIEW groups AS SELECT * FROM groups_real;"
                      "CREATE SCHEMA other; CREATE TABLE other.bootstrap_tokens (id int)")
    r = cli("check", "--json", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["missing"] == ["groups", "bootstrap_tokens"]
    assert out["extra"] == ["groups_real"]
    assert out["ok"] is False and out["exit_code"] == 1


def test_json_success(pg_server, fresh_db):
    apply_migration(fresh_db)
    r = cli("check", "--json", env=pg_server.env(fresh_db.dbname))
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["ok"] and out["missing"] == [] and out["public_table_count"] == 10
    assert out["database"]["dbname"] == fresh_db.dbname


def test_archived_chain_database_is_reported_as_drifted(pg_server, fresh_db):
    for f in sorted((MIGRATION.parent / "archive").glob("0*.sql")):
        apply_migration(fresh_db, f)
    env = pg_server.env(fresh_db.dbname)
    r = cli("check", env=env)
    assert r.returncode == 0  # the server itself would start: the names exist
    assert "WARNING: table check_instances differs" in r.stderr and "is_active" in r.stderr
    strict = cli("check", "--strict", env=env)
    assert strict.returncode == 3
    out = json.loads(cli("check", "--json", env=env).stdout)
    assert "alert_rules" in out["drifted"] and "template_id" in out["drifted"]["alert_rules"]["missing_columns"]
    assert out["extra"] == ["check_settings"]


def test_password_never_printed(pg_server, fresh_db):
    if not pg_server.admin.password:
        return
    env = pg_server.env(fresh_db.dbname)
    for args in (("check",), ("check", "--json")):
        r = cli(*args, env=env)
        assert pg_server.admin.password not in r.stdout + r.stderr
    env["DB_PASSWORD"] = "wrong-" + pg_server.admin.password
    r = cli("check", env=env)
    assert env["DB_PASSWORD"] not in r.stdout + r.stderr


def test_embedded_flag(tmp_path):
    r = cli("check", "--embedded", timeout=120)
    assert r.returncode == 1
    assert "ERROR: Missing required database tables: " + ALL_TEN in r.stdout
