"""Objects in the way of the migration, named before any backup (core check; the runbook's pre-flight uses it)."""

from __future__ import annotations

from conftest import apply_migration, run_sql

from aami_tui.core.db import connect
from aami_tui.core.obstacles import objects_in_the_way


async def _obstacles(settings):
    conn = await connect(settings)
    try:
        return await objects_in_the_way(conn)
    finally:
        await conn.close()


async def test_nothing_in_the_way_of_an_empty_or_migrated_database(fresh_db):
    assert await _obstacles(fresh_db) == []
    apply_migration(fresh_db)
    assert await _obstacles(fresh_db) == []


async def test_view_and_type_named_like_required_tables(fresh_db):
    run_sql(fresh_db, "CREATE VIEW groups AS SELECT 1 AS id; CREATE TYPE targets AS ENUM ('a');"
                      "CREATE SEQUENCE exporters")
    found = await _obstacles(fresh_db)
    assert [(o.kind, o.name) for o in found] == [("not_a_table", "exporters"), ("not_a_table", "groups"),
                                                 ("type_name", "targets")]
    assert found[1].message == ("public.groups is a view, not a table: CREATE TABLE IF NOT EXISTS groups would skip "
                                "it and a later statement on it would fail; rename or drop that view first.")
    assert "enum type named targets" in found[2].message


async def test_search_path_set_on_the_database_and_a_shadowing_table(fresh_db):
    run_sql(fresh_db, "CREATE SCHEMA other; CREATE TABLE other.namespaces (id int);"
                      "CREATE SCHEMA later; CREATE TABLE later.groups (id int);"
                      f'ALTER DATABASE "{fresh_db.dbname}" SET search_path = other, public, later')
    found = await _obstacles(fresh_db)
    assert [(o.kind, o.name) for o in found] == [("creation_schema", None), ("shadowed", "namespaces")]
    assert found[0].message.startswith("search_path is 'other, public, later' (set on the database (ALTER DATABASE "
                                       "… SET search_path)): the migration's unqualified CREATE TABLE statements "
                                       "would create the tables in schema other, not in public")
    assert f'ALTER DATABASE {fresh_db.dbname} RESET search_path' in found[0].message
    assert found[1].message.startswith("other.namespaces (a table) comes before public in search_path")


async def test_schema_named_after_the_user_takes_the_tables(fresh_db):
    user = fresh_db.effective()["user"]
    run_sql(fresh_db, f'CREATE SCHEMA "{user}"')
    found = await _obstacles(fresh_db)
    assert [(o.kind, o.name) for o in found] == [("creation_schema", None)]
    assert f"in schema {user}, not in public" in found[0].message


def test_preflight_names_them_before_the_backup(pg_server, fresh_db, tmp_path):
    """Before: the view passed pre-flight, the backup ran, and apply failed at the CREATE INDEX on it."""
    from conftest import cli

    run_sql(fresh_db, "CREATE VIEW groups AS SELECT 1 AS id")
    args = ["apply", "--yes", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r")]
    r = cli(*args, env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stderr.splitlines()[0] == ("aami-tui: Pre-flight failed: In the way: public.groups is a view, not a "
                                        "table: CREATE TABLE IF NOT EXISTS groups would skip it and a later "
                                        "statement on it would fail; rename or drop that view first.")
    assert not list((tmp_path / "b").glob("*.dump"))
    run_sql(fresh_db, f'DROP VIEW groups; CREATE SCHEMA other; ALTER DATABASE "{fresh_db.dbname}" '
                      "SET search_path = other, public")
    r = cli(*args, env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 3 and "In the way: search_path is 'other, public'" in r.stderr
    run_sql(fresh_db, f'ALTER DATABASE "{fresh_db.dbname}" RESET search_path')
    r = cli(*args, "--no-backup", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✓ Nothing in the way:" in r.stdout and "✓ Lint: 0 errors, 0 warnings (squawk" in r.stdout
