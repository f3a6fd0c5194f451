"""`aami-tui check`: the server's start-up validation, headless."""

from __future__ import annotations

import json

import pytest
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
    assert r.stderr.count("HINT: `aami-tui plan --output plan.sql` writes the repair") == 1
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


# Issue 7 item 7: a closed stdout (| head) never changes the outcome or the exit code, and prints no traceback.
def _with_closed_pipes(args, env, *, stderr_too=False):
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first byte: every write gets EPIPE
    try:
        err_r, err_w = os.pipe()
        if stderr_too:
            os.close(err_r)
        p = subprocess.Popen([sys.executable, "-m", "aami_tui", *args], stdout=w,
                             stderr=err_w, env=env, cwd=MIGRATION.parent.parent)
        os.close(err_w)
        err = b""
        if not stderr_too:
            with os.fdopen(err_r, "rb") as f:
                err = f.read()
        return p.wait(60), err.decode()
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [("check",), ("check", "--json"), ("check", "--strict"),
                                  ("check", "--json", "--strict")])
def test_check_keeps_its_exit_code_when_stdout_is_closed(pg_server, fresh_db, args):
    env = pg_server.env(fresh_db.dbname)
    rc, err = _with_closed_pipes(args, env)
    assert rc == 1 and "Traceback" not in err and "Exception ignored" not in err, err
    rc, err = _with_closed_pipes(args, env, stderr_too=True)
    assert rc == 1


def test_check_json_piped_into_head_on_a_long_output(pg_server, fresh_db):
    import subprocess
    import sys

    apply_migration(fresh_db)
    # A database with thousands of unrelated tables: the JSON lists them all (~0.5 MB, far beyond a pipe's buffer).
    run_sql(fresh_db, "DO $$BEGIN FOR i IN 1..3000 LOOP EXECUTE format('CREATE TABLE site_notes_%s (id int)', i); "
                      "END LOOP; END$$")
    env = pg_server.env(fresh_db.dbname)
    for args, first in (("check --json", "{"), ("check", "Validating database schema...")):
        p = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m aami_tui {args} | head -1"],
                           capture_output=True, text=True, env=env, cwd=MIGRATION.parent.parent, timeout=60)
        assert p.returncode == 0 and p.stdout == first + "\n", (args, p.stdout[:200], p.stderr[-2000:])
        assert p.stderr == ""


def _extras(settings, n: int) -> None:
    if n:
        run_sql(settings, "".join(f"CREATE TABLE zz_extra_{i:03d} (id int);" for i in range(n)))


def test_extra_count_at_zero_one_and_many_with_a_capped_list(pg_server, db_factory):
    from aami_tui.core.schema import EXTRA_LIMIT

    for n in (0, 1, EXTRA_LIMIT + 15):
        db = db_factory()
        apply_migration(db)
        _extras(db, n)
        out = json.loads(cli("check", "--json", env=pg_server.env(db.dbname)).stdout)
        assert out["extra_count"] == n
        assert out["extra"] == [f"zz_extra_{i:03d}" for i in range(min(n, EXTRA_LIMIT))]  # capped, by name
        assert out["public_table_count"] == 10 + n
        assert len([t for t in out["tables"] if not t["required"]]) == min(n, EXTRA_LIMIT)
        assert out["ok"] is True and out["exit_code"] == 0


async def test_validate_counts_every_extra_and_lists_all_only_on_request(fresh_db):
    from aami_tui.core import schema
    from aami_tui.core.db import connect

    _extras(fresh_db, schema.EXTRA_LIMIT + 3)
    conn = await connect(fresh_db)
    try:
        capped = await schema.validate(conn)
        full = await schema.validate(conn, extra_limit=None)
    finally:
        await conn.close()
    assert len(capped.extra) == schema.EXTRA_LIMIT and capped.extra_count == schema.EXTRA_LIMIT + 3
    assert capped.extra_truncated and f"({schema.EXTRA_LIMIT + 3} in all)" in capped.extra_summary()
    assert len(full.extra) == full.extra_count == schema.EXTRA_LIMIT + 3 and not full.extra_truncated


def test_exclusive_lock_on_a_required_table_does_not_make_check_wait(pg_server, fresh_db):
    """Issue 7 item 6: another session's LOCK TABLE … ACCESS EXCLUSIVE made check wait as long as the lock."""
    import psycopg

    apply_migration(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
        holder.execute("LOCK TABLE groups IN ACCESS EXCLUSIVE MODE;")  # as typed in psql
        pid = holder.info.backend_pid
        r = cli("check", env=env, timeout=30)  # used to wait until the lock went away
        assert r.returncode == 0, r.stdout + r.stderr  # the server's own check does not wait either: it starts
        assert "✓ Database schema validation successful" in r.stdout
        warning = r.stderr.strip()
        assert warning.startswith("WARNING: Table groups is locked in ACCESS EXCLUSIVE mode")
        assert f"pid {pid}" in warning and "application 'dba-maintenance'" in warning
        # the query's own ; is not said before the sentence's punctuation (fresh5 F13: "…EXCLUSIVE MODE;.")
        assert "LOCK TABLE groups IN ACCESS EXCLUSIVE MODE)" in warning and "pg_terminate_backend" in warning
        out = json.loads(cli("check", "--json", env=env, timeout=30).stdout)
        assert out["ok"] and out["locked"]["groups"][0]["pid"] == pid
        sizes = {t["name"]: t["size_bytes"] for t in out["tables"]}
        assert sizes["groups"] is None and sizes["targets"] > 0  # the locked table's size would have waited


def test_check_that_cannot_finish_exits_4_in_one_sentence(pg_server, fresh_db):
    """A lock the validation cannot avoid (here on the catalog itself) ends in its own lock_timeout, exit 4."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    apply_migration(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
        holder.execute("LOCK TABLE pg_catalog.pg_namespace IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # side by side: each waits out its own lock_timeout
            text = pool.submit(cli, "check", env=env, timeout=60)  # used to wait for as long as the lock was held
            as_json = pool.submit(cli, "check", "--json", env=env, timeout=60)
            r, rj = text.result(), as_json.result()
        waited = time.monotonic() - t0
    assert r.returncode == 4, r.stdout + r.stderr
    assert waited < 50  # not a timing target: "returns at all, by itself"
    assert r.stderr.startswith("aami-tui: The schema validation did not finish within its own limits")
    assert "pg_locks" in r.stderr and "Traceback" not in r.stderr
    out = json.loads(rj.stdout)
    assert rj.returncode == 4 and out["exit_code"] == 4 and out["error_kind"] == "timeout"


def test_check_loads_neither_textual_nor_pglast_nor_humanize(pg_server, fresh_db):
    """Nor the migration parser's module (its regular expressions and dataclasses): check only needs the path."""
    import subprocess
    import sys

    code = ("import sys; from aami_tui.cli import main; rc = main(['check']); "
            "print(sorted(({m.split('.')[0] for m in sys.modules} & {'textual', 'rich', 'pglast', 'humanize'})"
            " | ({'aami_tui.core.migration'} & set(sys.modules))), file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=pg_server.env(fresh_db.dbname), timeout=60)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == "[]", r.stderr


def test_shipped_expected_columns_match_the_parser(tmp_path, pg_server, fresh_db):
    """check reads the shipped file's columns pre-parsed; they must be what pglast finds (regenerate with
    `python -m aami_tui.core.expected`), and any other file is still parsed."""
    from aami_tui.core import expected, migration

    assert expected.expected_columns(MIGRATION) == migration.load(MIGRATION).tables
    edited = tmp_path / "001_initial_schema.sql"
    edited.write_text(MIGRATION.read_text().replace("is_default_own", "is_default_owned"))
    assert "is_default_owned" in expected.expected_columns(edited)["target_groups"]
    apply_migration(fresh_db)
    r = cli("check", "--strict", "--migrations-dir", str(tmp_path), env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 3 and "is_default_own" in r.stderr


async def test_check_while_a_migration_is_open_keeps_the_server_lines_and_names_the_migration(pg_server, fresh_db,
                                                                                              tmp_path):
    """fresh6 F8: with the runbook's transaction open (after Apply) check printed the server's 'Please run database
    migrations … psql -f …' and nothing else: a CI log told to run psql -f beside a migration in progress. The
    server's lines stay exact; a NOTE (and --json's migration_in_progress) names the session running it."""
    import asyncio

    from faults import run_to_begin, runbook

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    try:
        await run_to_begin(rb)
        await rb.apply()
        env = pg_server.env(fresh_db.dbname)
        r = await asyncio.to_thread(cli, "check", env=env)
        j = await asyncio.to_thread(cli, "check", "--json", env=env)
    finally:
        await rb.close()
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines()[1] == f"ERROR: Missing required database tables: {ALL_TEN}"  # what the server says
    assert r.stdout.splitlines()[2] == "Please run database migrations before starting the server:"
    (note,) = [ln for ln in r.stderr.splitlines() if ln.startswith("NOTE:")]
    assert f"a migration is in progress on {fresh_db.dbname}" in note and f"pid {rb.backend_pid}," in note, note
    assert "host 127.0.0.1, application 'aami-tui'" in note and "transaction open since" in note and "psql -f" in note, note
    out = json.loads(j.stdout)
    assert out["exit_code"] == 1 and out["server_lines"][1].startswith("ERROR: Missing required database tables")
    held = out["migration_in_progress"]
    assert held["pid"] == rb.backend_pid and held["application_name"] == "aami-tui" and held["transaction_since"]
    none = cli("check", "--json", env=env)  # once it has ended: no note
    assert json.loads(none.stdout)["migration_in_progress"] is None
