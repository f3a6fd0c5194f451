"""Inspecting inside the open migration transaction (core): savepoints, read-only by default, meta commands."""

from __future__ import annotations

import pytest
from conftest import MIGRATION, run_sql

from aami_tui.core import inspect
from aami_tui.core.db import connect
from aami_tui.core.migration import parse_text


@pytest.fixture
async def open_tx(fresh_db):
    """A connection inside the migration transaction (as the runbook holds it), the migration applied."""
    run_sql(fresh_db, "SET check_function_bodies = off; CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS "
                      "'DELETE FROM alert_templates; SELECT 1'")
    conn = await connect(fresh_db)
    await conn.execute("BEGIN")
    for s in parse_text(MIGRATION.read_text(), MIGRATION):
        await conn.execute(s.sql)
    yield conn
    await conn.execute("ROLLBACK")
    await conn.close()


@pytest.mark.parametrize("text,kind", [
    ("SELECT 1", "read"), ("show lock_timeout;", "read"), ("EXPLAIN SELECT * FROM groups", "read"),
    ("EXPLAIN (ANALYZE false) SELECT 1", "read"), ("\\dt", "meta"), ("\\d groups", "meta"), ("\\di", "meta"),
    ("\\dx", "meta"), ("EXPLAIN ANALYZE SELECT 1", "write"), ("EXPLAIN (ANALYZE) DELETE FROM groups", "write"),
    ("SELECT * FROM groups FOR UPDATE", "write"), ("SELECT 1 INTO t2", "write"),
    ("WITH d AS (DELETE FROM groups RETURNING *) SELECT * FROM d", "write"), ("UPDATE groups SET name = 'x'", "write"),
    ("SET lock_timeout = 0", "write"), ("DROP TABLE groups", "write"),
])
def test_classify(text, kind):
    assert inspect.classify(text).kind == kind


@pytest.mark.parametrize("text,msg", [
    ("", "Type a query"), ("SELECT 1; SELECT 2", "One statement at a time"), ("COMMIT", "Transaction control"),
    ("SAVEPOINT x", "Transaction control"), ("\\dn", "\\dn is not one of the meta commands"),
    ("SELEC 1", "Not valid SQL: syntax error at or near \"SELEC\""),
])
def test_refused_before_sending(text, msg):
    with pytest.raises(inspect.InspectError) as exc:
        inspect.classify(text)
    assert str(exc.value).startswith(msg)


async def test_dt_and_d_see_the_uncommitted_tables(open_tx):
    r = await inspect.run(open_tx, "\\dt")
    assert r.error is None and r.columns[:2] == ("Schema", "Name")
    assert sorted(row[1] for row in r.rows if row[0] == "public") == sorted(
        ["namespaces", "groups", "targets", "target_groups", "exporters", "alert_templates", "alert_rules",
         "check_templates", "check_instances", "bootstrap_tokens"])
    d = await inspect.run(open_tx, "\\d target_groups")
    cols = [row[0] for row in d.rows]
    assert cols[:4] == ["target_id", "group_id", "is_default_own", "created_at"]
    assert "constraint target_groups_pkey" in cols and "index idx_target_groups_group" in cols
    assert (await inspect.run(open_tx, "\\dx")).rows[0][0] in ("plpgsql", "uuid-ossp")
    assert (await inspect.run(open_tx, "\\d nowhere")).error == "Did not find any relation named nowhere."


async def test_failing_query_never_aborts_the_migration(open_tx):
    bad = await inspect.run(open_tx, "SELECT * FROM no_such_table")
    assert bad.error.startswith('relation "no_such_table" does not exist')
    assert "rolled back to the savepoint" in bad.error
    bad = await inspect.run(open_tx, "SELECT 1/0")
    assert bad.error.startswith("division by zero")
    ok = await inspect.run(open_tx, "SELECT count(*) FROM alert_templates")
    assert ok.error is None and ok.rows == ((6,),) and ok.row_count == 1 and ok.status == "SELECT 1"
    # the transaction is still the migration's: its tables are there and it can commit
    cur = await open_tx.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert (await cur.fetchone())[0] == 10


async def test_read_only_by_default_and_a_reads_side_effects_are_undone(open_tx):
    with pytest.raises(inspect.InspectError) as exc:
        await inspect.run(open_tx, "DELETE FROM alert_templates")
    assert "Read-only" in str(exc.value) and "type \\write" in str(exc.value)
    r = await inspect.run(open_tx, "SELECT sneaky()")  # a function that deletes, called from a SELECT
    assert r.error is None and r.kind == "read" and not r.kept
    assert (await inspect.run(open_tx, "SELECT count(*) FROM alert_templates")).rows == ((6,),)


async def test_unlocked_write_is_kept_in_the_transaction(open_tx):
    r = await inspect.run(open_tx, "DELETE FROM alert_templates WHERE id = 'node_down'", allow_write=True)
    assert r.kept and r.row_count == 1 and r.status == "DELETE 1"
    assert (await inspect.run(open_tx, "SELECT count(*) FROM alert_templates")).rows == ((5,),)
    assert r.to_dict() == {"query": "DELETE FROM alert_templates WHERE id = 'node_down'", "kind": "write",
                           "outcome": "kept", "row_count": 1, "status": "DELETE 1", "error": None, "seconds": r.to_dict()["seconds"],
                           "kept": True}


async def test_large_result_is_capped_but_counted(open_tx):
    r = await inspect.run(open_tx, "SELECT g FROM generate_series(1, 1234) g", max_rows=100)
    assert len(r.rows) == 100 and r.row_count == 1234 and r.truncated


async def test_engine_inspection_survives_a_failing_query_and_is_in_the_report(fresh_db, tmp_path):
    from faults import run_to_begin, runbook

    from aami_tui.core.runbook import Outcome, RunbookError

    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    with pytest.raises(RunbookError, match="while the migration transaction is open"):
        await rb.inspect("\\dt")
    await run_to_begin(rb)
    await rb.apply()
    dt = await rb.inspect("\\dt")
    assert sum(1 for row in dt.rows if row[0] == "public") == 10
    bad = await rb.inspect("SELECT * FROM alert_templatez")
    assert bad.error and "rolled back to the savepoint" in bad.error
    with pytest.raises(inspect.InspectError, match="Read-only"):
        await rb.inspect("DELETE FROM alert_templates")
    with pytest.raises(inspect.InspectError, match="Not valid SQL"):
        await rb.inspect("SELEC 1")
    kept = await rb.inspect("UPDATE alert_templates SET description = 'edited' WHERE id = 'node_down'",
                            allow_write=True)
    assert kept.kept and kept.row_count == 1
    await rb.verify()  # the failing query did not abort the migration transaction
    with pytest.raises(RunbookError, match="Verify has passed"):
        await rb.inspect("DELETE FROM alert_templates", allow_write=True)
    await rb.commit(fresh_db.dbname)
    assert rb.outcome == Outcome.COMMITTED
    md, js = await rb.write_report()
    import json

    rec = json.loads(js.read_text())["inspections"]
    # every query typed, in order, with its outcome: the refused ones (never sent) too
    assert [(x["query"], x["kind"], x["outcome"], x["row_count"]) for x in rec] == [
        ("\\dt", "meta", "ok", dt.row_count), ("SELECT * FROM alert_templatez", "read", "failed", 0),
        ("DELETE FROM alert_templates", "write", "refused", 0), ("SELEC 1", "invalid", "refused", 0),
        ("UPDATE alert_templates SET description = 'edited' WHERE id = 'node_down'", "write", "kept", 1),
        ("DELETE FROM alert_templates", "write", "refused", 0)]
    assert rec[2]["error"].startswith("Read-only: DELETE changes the database or the session; this pane only reads.") and rec[5]["error"].startswith(
        "Verify has passed: a write now")
    text = md.read_text()
    assert "## Inspections inside the transaction" in text
    assert "| 1 | `SELEC 1` | invalid | 0 | refused (not sent): Not valid SQL: syntax error at or near \"SELEC\"" in text
    assert "| 1 | `SELECT * FROM alert_templatez` | read | 0 | failed: relation \"alert_templatez\" does not exist" in text
    assert f"| 1 | `\\dt` | meta | {dt.row_count} | ok: SELECT {dt.row_count} |" in text
    run_sql(fresh_db, "SELECT 1")
    with __import__("psycopg").connect(fresh_db.conninfo()) as c:
        assert c.execute("SELECT description FROM alert_templates WHERE id = 'node_down'").fetchone() == ("edited",)


@pytest.mark.parametrize("text,msg", [
    ("select pg_advisory_unlock_all()", "pg_advisory_unlock_all() would release the run's one-operator migration lock"),
    ("select pg_catalog.pg_advisory_lock(1)", "pg_advisory_lock() would"),
    ("select pg_terminate_backend(pg_backend_pid())", "pg_terminate_backend() ends server sessions"),
    ("select * from pg_stat_activity where pg_cancel_backend(pid)", "pg_cancel_backend() "),
])
def test_lock_and_session_killers_are_refused_even_unlocked(text, msg):
    with pytest.raises(inspect.InspectError) as exc:
        inspect.classify(text)
    assert str(exc.value).startswith(msg) and exc.value.kind == "admin"


@pytest.mark.parametrize("text,fn", [
    ("select set_config('lock_timeout', '0', false)", "set_config"), ("select nextval('s')", "nextval"),
    ("select pg_notify('c', 'x')", "pg_notify"), ("select lo_unlink(1)", "lo_unlink"),
    ("select * from dblink('x', 'select 1') as t(a int)", "dblink"), ("select pg_reload_conf()", "pg_reload_conf"),
    ("select pg_switch_wal()", "pg_switch_wal"), ("select pg_create_physical_replication_slot('s')",
                                                   "pg_create_physical_replication_slot"),
])
def test_side_effecting_functions_are_writes(text, fn):
    c = inspect.classify(text)
    assert c.kind == "write" and c.what.startswith(f"calls {fn}()")
    for ordinary in ("select count(*), pg_size_pretty(pg_total_relation_size('groups')) from groups",
                     "select current_setting('lock_timeout'), now(), format_type(23, -1)"):
        assert inspect.classify(ordinary).kind == "read"


async def test_inspection_cannot_break_the_lock_or_the_timeouts_and_its_tables_are_its_own(fresh_db, tmp_path):
    """The pane ran pg_advisory_unlock_all() as a "read": a second apply then took the migration lock."""
    from faults import run_to_begin, runbook

    run_sql(fresh_db, "CREATE FUNCTION quiet_unlock() RETURNS bool LANGUAGE sql AS "
                      "'SELECT pg_advisory_unlock_all() IS NULL'")
    rb = runbook(fresh_db, tmp_path, skip_backup=True)
    await run_to_begin(rb)
    await rb.apply()

    def advisory_locks():
        with __import__("psycopg").connect(fresh_db.conninfo()) as c:
            return c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]

    for allow in (False, True):
        with pytest.raises(inspect.InspectError, match=r"pg_advisory_unlock_all\(\) would release"):
            await rb.inspect("select pg_advisory_unlock_all()", allow_write=allow)
    with pytest.raises(inspect.InspectError, match=r"Read-only: calls set_config\(\).*type \\write"):
        await rb.inspect("select set_config('lock_timeout', '0', false)")
    assert advisory_locks() == 1
    # a function the name check cannot see into: the check after the query finds the lock gone and re-takes it
    r = await rb.inspect("select quiet_unlock()")
    assert r.error is None and advisory_locks() == 1
    assert "migration lock" in r.guard and "re-taken" in r.guard and rb.inspections[-1]["guard"] == r.guard
    # SET in write mode is kept, but the run's timeouts are put back and it is said
    await rb.inspect("SET lock_timeout = 0", allow_write=True)
    assert "lock_timeout" in rb.inspections[-1]["guard"]
    await rb.inspect("RESET ALL", allow_write=True)
    assert "statement_timeout" in rb.inspections[-1]["guard"]
    assert "client_connection_check_interval" in rb.inspections[-1]["guard"]
    assert (await rb.inspect("show client_connection_check_interval")).rows == (("1s",),)
    assert (await rb.inspect("show lock_timeout")).rows == (("5s",),)
    await rb.inspect("CREATE TABLE extra_tbl (id int)", allow_write=True)
    checks = await rb.verify()
    details = " ".join(c.detail for c in checks)
    assert "the migration created" not in details and "take it out of the file" not in details
    (pane,) = [c for c in checks if c.name == "Tables created in the inspection pane"]
    assert "extra_tbl" in pane.detail and not pane.ok and not pane.blocking
    await rb.rollback()
    md, _ = await rb.write_report()
    assert "re-taken, no other session had taken it" in md.read_text()
