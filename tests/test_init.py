"""`aami-tui init`: the new developer's one command, against a real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from conftest import catalog_fingerprint, cli, run_sql
from faults import public_tables
from psycopg import sql

from aami_tui.core.schema import MSG_OK, REQUIRED_TABLES


@pytest.fixture
def missing_db(pg_server):
    """A database name that does not exist yet (dropped afterwards if a test created it)."""
    name = f"aami_init_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def init(pg_server, dbname, tmp_path, *extra):
    return cli("init", "--reports-dir", str(tmp_path / "reports"), *extra, env=pg_server.env(dbname))


def env_lines(pg_server, dbname) -> list[str]:
    e = pg_server.admin.effective()
    return [f"DB_HOST={e['host']}", f"DB_PORT={e['port']}", f"DB_USER={e['user']}", f"DB_NAME={dbname}"]


def test_init_creates_applies_and_prints_the_env_then_nothing_to_do(pg_server, missing_db, tmp_path):
    r = init(pg_server, missing_db, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == env_lines(pg_server, missing_db)  # stdout: only the DB_* lines
    assert f"Created database {missing_db}" in r.stderr
    assert MSG_OK in r.stderr and f"{missing_db} is ready" in r.stderr
    assert "Traceback" not in r.stderr
    if pg_server.admin.password:
        assert pg_server.admin.password not in r.stdout + r.stderr
    settings = pg_server.settings(missing_db)
    assert public_tables(settings) == sorted(REQUIRED_TABLES)
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["final_state"] == "committed" and report["backup"] == "skipped"
    # fresh5 F13: the report said "backup skipped (--no-backup)", a flag nobody gave
    md = next((tmp_path / "reports").glob("report_*.md")).read_text()
    assert "pg_dump: backup skipped (init: the database is empty)" in md and "--no-backup" not in md, md
    assert cli("check", env=pg_server.env(missing_db)).returncode == 0

    before = catalog_fingerprint(settings)
    again = init(pg_server, missing_db, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stderr
    assert again.stdout.splitlines() == env_lines(pg_server, missing_db)
    assert catalog_fingerprint(settings) == before
    assert len(list((tmp_path / "reports").glob("report_*.json"))) == 1  # nothing ran, nothing reported


def test_env_file_values_are_shell_quoted(tmp_path):
    """`source` the file: a database name with a space and non-ASCII letters stays whole (it was written bare)."""
    import subprocess

    from aami_tui.core import devinit
    from aami_tui.core.status import config_server_env

    lines = config_server_env({"host": "127.0.0.1", "port": "5432", "user": "o'neil", "dbname": "My DB-ü"})
    path = devinit.write_env_file(tmp_path / "config.env", lines)
    devinit.write_env_file(path, lines)  # updated in place: its own quoted lines are replaced, not kept
    got = subprocess.run(["bash", "-c", 'set -e; . "$1"; printf "%s|%s" "$DB_NAME" "$DB_USER"', "sh", str(path)],
                         capture_output=True, text=True)
    assert got.returncode == 0 and got.stdout == "My DB-ü|o'neil", got.stderr
    assert sum(ln.startswith("DB_NAME=") for ln in path.read_text().splitlines()) == 1


def test_init_env_file_is_0600_and_keeps_other_lines(pg_server, fresh_db, tmp_path):
    path = tmp_path / "config.env"
    path.write_text("# mine\nDB_PASSWORD=keep-me\nDB_NAME=old\n")
    path.chmod(0o644)
    r = init(pg_server, fresh_db.dbname, tmp_path, "--env-file", str(path))
    assert r.returncode == 0, r.stderr
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    lines = path.read_text().splitlines()
    assert lines == ["# mine", "DB_PASSWORD=keep-me", *env_lines(pg_server, fresh_db.dbname)]
    # fresh5 F13: it said "add DB_PASSWORD yourself" to a file that holds one
    assert f"to {path} (0600); its DB_PASSWORD line is kept as it was." in r.stderr, r.stderr
    # ...and replaced a symbolic link with a copy of its target's lines, the target left as it was
    target, link = tmp_path / "target.env", tmp_path / "link.env"
    target.write_text("FOO=bar\n")
    link.symlink_to(target)
    r = init(pg_server, fresh_db.dbname, tmp_path, "--env-file", str(link))
    assert r.returncode == 0 and link.is_symlink(), r.stderr
    assert target.read_text().splitlines() == ["FOO=bar", *env_lines(pg_server, fresh_db.dbname)]
    assert f"to {target} (through the symbolic link {link}) (0600); add DB_PASSWORD yourself." in r.stderr, r.stderr
    fresh = tmp_path / "sub" / "new.env"
    r = init(pg_server, fresh_db.dbname, tmp_path, "--env-file", str(fresh))
    assert r.returncode == 0 and "Nothing to do" in r.stderr
    assert oct(fresh.stat().st_mode & 0o777) == "0o600"
    assert [ln for ln in fresh.read_text().splitlines() if not ln.startswith("#")] == env_lines(
        pg_server, fresh_db.dbname)
    if fresh_db.password:
        assert fresh_db.password not in fresh.read_text()


@pytest.mark.parametrize("setup, words, way", [
    ("CREATE TABLE customers (id int); INSERT INTO customers VALUES (1);", "is not empty (1 table: customers)",
     "aami-tui apply --yes"),
    # apply refuses drift (exit 3): the way forward is the plan, then apply runs the plan file
    ("CREATE TABLE namespaces (id int); CREATE TABLE groups (id int);",
     "has tables namespaces, groups with columns that differ", "`aami-tui plan --output plan.sql`"),
    ("CREATE SCHEMA app; CREATE VIEW app.v AS SELECT 1;", "is not empty (1 view or sequence)", "aami-tui apply --yes"),
])
def test_init_never_touches_a_database_that_is_not_empty(pg_server, fresh_db, tmp_path, setup, words, way):
    run_sql(fresh_db, setup)
    before = catalog_fingerprint(fresh_db)
    r = init(pg_server, fresh_db.dbname, tmp_path)
    assert r.returncode == 10, r.stdout + r.stderr
    assert words in r.stderr
    assert "production runbook" in r.stderr and way in r.stderr
    if "differ" in words:
        assert "p (the Drift view)" in r.stderr and "--migration-file plan.sql" in r.stderr
        assert "`aami-tui apply --yes`" not in r.stderr
    assert r.stdout == ""
    assert catalog_fingerprint(fresh_db) == before
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


def test_init_cannot_connect_exits_2(pg_server, tmp_path):
    env = pg_server.env("whatever")
    env["DB_PORT"] = "1"
    env["DB_HOST"] = "127.0.0.1"
    r = cli("init", "--reports-dir", str(tmp_path / "r"), env=env)
    assert r.returncode == 2 and "connection refused" in r.stderr and "Traceback" not in r.stderr


def test_init_on_the_embedded_server_says_its_lines_point_at_a_throwaway(tmp_path):
    r = cli("init", "--embedded", "--reports-dir", str(tmp_path / "reports"), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "DB_NAME=aami_config" in r.stdout.splitlines()
    assert "--embedded is a throwaway server, stopped and removed when this command exits" in r.stderr
