"""`aami-tui lint`: squawk's rules mapped to the runbook, the runbook's own refusals, live table facts."""

from __future__ import annotations

import json
import os
import stat

import pytest
from conftest import MIGRATION, ROOT, apply_migration, cli, run_sql

from aami_tui.core import lint

# A populated table t0 and a required table (groups) exist in the connected database for these examples.
SETUP = """
CREATE TABLE t0 (id int PRIMARY KEY, v text, c3 boolean);
INSERT INTO t0 SELECT g, 'x' || g, true FROM generate_series(1, 5000) g;
CREATE TABLE groups (id int PRIMARY KEY, name text, legacy text, priority int);
CREATE TABLE empty_t (id int PRIMARY KEY);
ANALYZE t0;
"""

# (sql, rule, what the mapping makes of it): a severity, "suppressed" (table created in the same file),
# "satisfied" (by the runbook), "excluded" (off by configuration, never shown).
CASES = [
    ("CREATE INDEX i0 ON t0 (v);", "require-concurrent-index-creation", "warning"),
    ("CREATE TABLE t1 (id int PRIMARY KEY, v text);\nCREATE INDEX i1 ON t1 (v);",
     "require-concurrent-index-creation", "suppressed"),
    ("ALTER TABLE t0 ADD CONSTRAINT ck0 CHECK (id > 0);", "constraint-missing-not-valid", "warning"),
    ("CREATE TABLE t1 (id int PRIMARY KEY);\nALTER TABLE t1 ADD CONSTRAINT ck1 CHECK (id > 0);",
     "constraint-missing-not-valid", "suppressed"),
    ("ALTER TABLE t0 ADD CONSTRAINT fk0 FOREIGN KEY (id) REFERENCES empty_t (id);",
     "adding-foreign-key-constraint", "warning"),
    ("ALTER TABLE t0 ADD CONSTRAINT u0 UNIQUE (v);", "disallowed-unique-constraint", "warning"),
    ("ALTER TABLE t0 ADD COLUMN c2 int NOT NULL;", "adding-required-field", "error"),  # t0 has rows
    ("ALTER TABLE empty_t ADD COLUMN c2 int NOT NULL;", "adding-required-field", "warning"),
    ("ALTER TABLE t0 ALTER COLUMN c3 SET NOT NULL;", "adding-not-nullable-field", "warning"),
    ("ALTER TABLE t0 ALTER COLUMN v TYPE varchar(20);", "changing-column-type", "warning"),
    ("ALTER TABLE t0 ADD COLUMN id2 serial PRIMARY KEY;", "adding-serial-primary-key-field", "warning"),
    ("ALTER TABLE t0 RENAME COLUMN v TO w;", "renaming-column", "warning"),
    ("ALTER TABLE groups RENAME COLUMN name TO title;", "renaming-column", "error"),  # the server needs it
    ("ALTER TABLE groups RENAME COLUMN legacy TO old_legacy;", "renaming-column", "warning"),  # it does not
    ("ALTER TABLE groups DROP COLUMN priority;", "ban-drop-column", "error"),
    ("ALTER TABLE t0 DROP COLUMN v;", "ban-drop-column", "warning"),
    ("DROP TABLE IF EXISTS t0;", "ban-drop-table", "warning"),
    ("DROP TABLE IF EXISTS groups;", "ban-drop-table", "error"),
    ("ALTER TABLE t0 DROP CONSTRAINT t0_pkey;", "ban-drop-constraint", "warning"),  # unmapped: squawk's words
    ("CREATE INDEX i0 ON t0 (v);", "require-lock-timeout", "satisfied"),
    ("CREATE INDEX i0 ON t0 (v);", "require-statement-timeout", "satisfied"),
    ("CREATE INDEX i0 ON t0 (v);", "prefer-robust-stmts", "satisfied"),
    ("CREATE TABLE t1 (id int PRIMARY KEY, at timestamp);", "prefer-timestamp-tz", "excluded"),
    ("CREATE TABLE t1 (id int PRIMARY KEY, v varchar(9));", "prefer-text-field", "excluded"),
    ("CREATE TABLE t1 (id int PRIMARY KEY);", "prefer-bigint-over-int", "excluded"),
]


@pytest.fixture
def live_db(fresh_db):
    run_sql(fresh_db, SETUP)
    return fresh_db


async def _lint_connected(settings, path):
    from aami_tui.core.db import connect

    conn = await connect(settings)
    try:
        tables, indexes = await lint.live_facts(conn, path)
        return lint.lint(path, tables, f"{conn.info.server_version // 10000}.0", live_indexes=indexes)
    finally:
        await conn.close()


@pytest.mark.parametrize("text,rule,expect", CASES, ids=[f"{r}-{e}-{i}" for i, (_, r, e) in enumerate(CASES)])
async def test_rule_mapping(live_db, tmp_path, text, rule, expect):
    path = tmp_path / "m.sql"
    path.write_text(text + "\n")
    res = await _lint_connected(live_db, path)
    found = [f for f in res.findings if f.rule == rule]
    assert res.squawk and res.squawk.startswith("squawk")
    if expect == "suppressed":
        assert not found and res.suppressed.get(rule)
    elif expect == "satisfied":
        assert not found and "runbook" in res.satisfied[rule]
    elif expect == "excluded":
        assert not found and rule not in res.satisfied and rule in lint.EXCLUDED
    else:
        assert [f.severity for f in found] == [expect], res.findings
        f = found[0]
        assert f.line >= 1 and f.column >= 1 and f.statement >= 1
        assert f.message.endswith(".") and "\n" not in f.message
        if "t0" in text.split(";")[0] and rule != "ban-drop-constraint":
            assert "Live: ~5,000 rows" in f.message  # what squawk cannot know
    if expect == "error":
        assert res.exit_code == lint.EXIT_ERRORS
    elif expect == "warning":
        assert res.exit_code == lint.EXIT_WARNINGS


async def test_locks_on_existing_tables_carry_live_sizes(live_db, tmp_path):
    path = tmp_path / "m.sql"
    path.write_text("CREATE TABLE t1 (id int PRIMARY KEY REFERENCES t0 (id));\nCREATE INDEX i0 ON t0 (v);\n")
    res = await _lint_connected(live_db, path)
    locks = {(lk.statement, lk.table, lk.mode) for lk in res.locks}
    assert locks == {(1, "t0", "SHARE ROW EXCLUSIVE"), (2, "t0", "SHARE")}
    assert all(lk.est_rows == 5000 and lk.size_bytes > 0 for lk in res.locks)
    info = [f for f in res.findings if f.rule == "locks-existing-table"]
    assert info[1].message.startswith("Statement 2 takes SHARE on t0 (~5,000 rows, ")


async def test_unique_and_primary_key_get_advice_postgresql_accepts(live_db, tmp_path):
    """fresh6 F5: squawk says 'Use NOT VALID' for ADD CONSTRAINT … UNIQUE / PRIMARY KEY too, and lint passed it on
    ('ADD … NOT VALID then VALIDATE avoids the long lock'): PostgreSQL refuses NOT VALID there. Now NOT VALID is
    advised only for CHECK and FOREIGN KEY; UNIQUE and PRIMARY KEY get the index built CONCURRENTLY beforehand, then
    ADD CONSTRAINT … USING INDEX, and that advice works on the server."""
    import psycopg

    path = tmp_path / "m.sql"
    path.write_text("ALTER TABLE t0 ADD CONSTRAINT u0 UNIQUE (v);\n"
                    "ALTER TABLE t0 ADD CONSTRAINT ck0 CHECK (id > 0);\n"
                    "ALTER TABLE empty_t DROP CONSTRAINT empty_t_pkey, ADD CONSTRAINT pk0 PRIMARY KEY (id);\n")
    res = await _lint_connected(live_db, path)
    not_valid = [f.statement for f in res.findings if f.rule == "constraint-missing-not-valid"]
    assert not_valid == [2], res.findings  # the CHECK only
    (unique,) = [f for f in res.findings if f.rule == "disallowed-unique-constraint"]
    (pk,) = [f for f in res.findings if f.rule == "adding-serial-primary-key-field"]
    assert "NOT VALID" not in unique.message + pk.message
    assert "CREATE UNIQUE INDEX CONCURRENTLY" in unique.message and "UNIQUE USING INDEX" in unique.message, unique
    assert "CREATE UNIQUE INDEX CONCURRENTLY" in pk.message and "PRIMARY KEY USING INDEX" in pk.message, pk
    with psycopg.connect(live_db.conninfo(), autocommit=True) as c:  # what the server says of each advice
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute("ALTER TABLE t0 ADD CONSTRAINT u0 UNIQUE (v) NOT VALID")
        c.execute("CREATE UNIQUE INDEX CONCURRENTLY u0_idx ON t0 (v)")
        c.execute("ALTER TABLE t0 ADD CONSTRAINT u0 UNIQUE USING INDEX u0_idx")


def test_our_migration_has_no_noise_offline():
    res = lint.lint(MIGRATION)
    assert res.exit_code == lint.EXIT_CLEAN
    assert [f for f in res.findings if f.severity != "info"] == []
    assert set(res.satisfied) == {"require-lock-timeout", "require-statement-timeout"}
    assert res.suppressed == {"require-concurrent-index-creation": 31}
    assert len(res.created_tables) == 10


async def test_our_migration_on_an_already_migrated_populated_database_has_no_noise(fresh_db):
    apply_migration(fresh_db)
    run_sql(fresh_db, "INSERT INTO namespaces (name) SELECT 'ns' || g FROM generate_series(1, 300) g")
    res = await _lint_connected(fresh_db, MIGRATION)
    assert [f for f in res.findings if f.severity != "info"] == []
    assert res.exit_code == 0 and res.noop.get("require-concurrent-index-creation") == 31
    # the one statement that still locks a live table: the seed INSERT
    assert [(lk.table, lk.mode) for lk in res.locks] == [("alert_templates", "ROW EXCLUSIVE")]


async def test_upstream_built_database_index_on_live_table_is_a_warning(fresh_db):
    # the table exists (CREATE TABLE IF NOT EXISTS is a no-op there), so a new index is built on live rows
    apply_migration(fresh_db)
    run_sql(fresh_db, "DROP INDEX idx_groups_name")
    res = await _lint_connected(fresh_db, MIGRATION)
    warns = [f for f in res.warnings if f.rule == "require-concurrent-index-creation"]
    assert len(warns) == 1 and "groups" in warns[0].message and "Live:" in warns[0].message


def test_runbook_refusals_are_errors(tmp_path):
    p = tmp_path / "c.sql"
    p.write_text("CREATE TABLE t1 (id int);\nCREATE INDEX CONCURRENTLY i ON t1 (id);\n")
    res = lint.lint(p)
    ref = [f for f in res.findings if f.rule == "refused-by-runbook"]
    assert ref and ref[0].severity == "error" and ref[0].line == 2 and "CONCURRENTLY" in ref[0].message
    archived = lint.lint(ROOT / "migrations" / "archive" / "003_add_soft_delete.sql")
    assert archived.exit_code == lint.EXIT_ERRORS and "archived migration" in archived.errors[0].message


def test_squawk_missing_or_failing_is_said_and_the_rest_works(tmp_path):
    p = tmp_path / "c.sql"
    p.write_text("CREATE INDEX CONCURRENTLY i ON t1 (id);\n")
    res = lint.lint(p, squawk_binary="")
    assert res.squawk is None and "squawk is not installed" in res.squawk_problem
    assert {f.rule for f in res.findings} == {"squawk-unavailable", "refused-by-runbook"}
    broken = tmp_path / "squawk"
    broken.write_text("#!/bin/sh\necho 'thread main panicked' >&2\nexit 101\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    res = lint.lint(MIGRATION, squawk_binary=str(broken))
    assert res.exit_code == lint.EXIT_WARNINGS
    assert res.findings[0].message == "squawk failed (thread main panicked); its rules were not checked."


def test_cli_exit_codes_and_json(pg_server, fresh_db, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "PG"))}
    ok = cli("lint", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 errors, 0 warnings" in ok.stdout and "satisfied by the runbook: require-lock-timeout" in ok.stdout
    warn = tmp_path / "w.sql"
    warn.write_text("ALTER TABLE t0 ADD CONSTRAINT ck0 CHECK (id > 0);\n")
    r = cli("lint", str(warn), env=env)
    assert r.returncode == 1 and f"{warn}:1:16: warning: constraint-missing-not-valid:" in r.stdout
    r = cli("lint", str(ROOT / "migrations" / "archive" / "001_initial_schema.sql"), "--json", env=env)
    out = json.loads(r.stdout)
    assert r.returncode == 3 and out["exit_code"] == 3 and out["findings"][0]["rule"] == "refused-by-runbook"
    # connected through the Config Server's DB_* variables: live facts
    run_sql(fresh_db, SETUP)
    r = cli("lint", str(warn), "--json", env=pg_server.env(fresh_db.dbname))
    out = json.loads(r.stdout)
    assert out["connected"] and out["locks"][0]["table"] == "t0" and out["locks"][0]["est_rows"] == 5000
    bad = pg_server.env(fresh_db.dbname) | {"DB_PORT": "1"}
    r = cli("lint", str(warn), env=bad)
    assert r.returncode == 2 and "Cannot reach PostgreSQL" in r.stderr
    assert f"{warn}:1:16: warning: constraint-missing-not-valid:" in r.stdout  # the file's findings all the same
    assert "linted without live facts" in r.stderr
    assert cli("lint", str(warn), "--offline", env=bad).returncode == 1
    # A syntax error is never hidden behind the connection's error: it is said, and it decides the exit code.
    broken = tmp_path / "broken.sql"
    broken.write_text("CREATE TABLE ok_one (id int);\nCREAT TABLE oops (id int);\n")
    r = cli("lint", str(broken), env=bad)
    assert r.returncode == 3 and "Cannot reach PostgreSQL" in r.stderr, r.stdout + r.stderr
    assert f"{broken}:2:1: error: refused-by-runbook:" in r.stdout and 'syntax error at or near "CREAT"' in r.stdout
    assert "syntax-error" not in r.stdout, r.stdout  # squawk's token-by-token recovery does not bury it


def test_database_unreachable_message_never_has_password(pg_server, fresh_db):
    if not pg_server.admin.password:
        return
    r = cli("lint", env=pg_server.env(fresh_db.dbname))
    assert pg_server.admin.password not in r.stdout + r.stderr



def test_preflight_runs_the_lint_and_an_error_blocks_before_the_backup(pg_server, fresh_db, tmp_path):
    apply_migration(fresh_db)
    bad = tmp_path / "drop.sql"
    bad.write_text("ALTER TABLE groups DROP COLUMN IF EXISTS priority;\n")
    args = ["apply", "--yes", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r"),
            "--migration-file", str(bad)]
    r = cli(*args, env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 3, r.stdout + r.stderr
    assert ("Pre-flight failed: Lint: 1 error, 0 warnings (squawk" in r.stderr
            and "line 1: Dropping priority of groups deletes its data" in r.stderr
            and "and the Config Server uses it." in r.stderr)
    assert not list((tmp_path / "b").glob("*.dump"))


def test_a_missing_file_is_a_usage_error_not_a_rule(tmp_path):
    r = cli("lint", str(tmp_path / "nope.sql"), "--offline")
    assert r.returncode == 64, r.stdout + r.stderr
    # an absolute path is not "relative to" anything
    assert r.stderr.strip() == f"aami-tui: {tmp_path / 'nope.sql'} does not exist; give the migration file's path."
    r = cli("lint", "no/such/nope.sql", "--offline")
    assert r.returncode == 64 and r.stderr.strip() == (f"aami-tui: no/such/nope.sql does not exist (relative to "
                                                       f"{ROOT}); give the migration file's path.")
    assert "refused-by-runbook" not in r.stdout + r.stderr


def test_each_statement_s_line_and_column_are_where_it_starts_in_the_file(tmp_path):
    """Lines and columns by bisection over where the file's lines start (parsing counted the newlines from the
    file's start for every statement: quadratic, 3.2 s of the 10,000-statement file's parse), the same as counting:
    statements after comments, blank lines, several on one line, over several lines, at the very end."""
    from aami_tui.core import migration

    text = ("-- head\n\nCREATE TABLE a (id int);  CREATE TABLE b (\n  id int\n);\n/* c */ INSERT INTO a VALUES (1);"
            "\n\n\n   INSERT INTO a\n VALUES (2);" + "".join(f"\nINSERT INTO a VALUES ({i});" for i in range(50)))
    path = tmp_path / "f.sql"
    path.write_text(text)

    def counted(offset: int) -> tuple[int, int]:
        return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1

    stmts = migration.load(path).statements
    facts = lint._statements(text)
    assert len(stmts) == len(facts) == 54
    for st, fact in zip(stmts, facts, strict=True):
        assert (st.line, st.column) == (fact.line, fact.column) == counted(text.index(st.sql, fact.start)), st.sql
    assert [(s.line, s.column) for s in stmts[:5]] == [(3, 1), (3, 27), (6, 9), (9, 4), (11, 1)]
    index = migration.LineIndex(text)
    assert all(index(i) == counted(i) for i in range(len(text) + 1))


def test_the_automatic_checks_parse_the_file_once_each_and_find_what_they_found(tmp_path, monkeypatch):
    """Issue 8: pre-flight's checks of the 10,000-statement file took 7-9 s, most of it pglast building the same
    parse tree six times (file_facts: the migration's statements, its tables, lint's facts; lint: the same
    again). Each parses once now, and finds what separate parses find, CRLF files (read two ways) included."""
    import pglast

    from aami_tui.core import migration

    parses = []  # of more than one statement (created_extensions parses each CREATE EXTENSION alone)
    parse_sql = pglast.parse_sql
    monkeypatch.setattr(pglast, "parse_sql", lambda text: (text.count(";") > 1 and parses.append(len(text)),
                                                          parse_sql(text))[1])
    crlf = tmp_path / "crlf.sql"
    crlf.write_bytes(MIGRATION.read_bytes().replace(b"\n", b"\r\n"))
    for path in (MIGRATION, crlf):
        text = path.read_text(encoding="utf-8")
        parses.clear()
        facts = lint.file_facts(path)
        assert len(parses) == (1 if path == MIGRATION else 2), parses  # CRLF: the file as it is, and as read
        parses.clear()
        found = lint.lint(path)
        assert len(parses) == (1 if path == MIGRATION else 2), parses
        assert facts.error is None and facts.migration.tables == migration.created_tables(facts.migration.text)
        assert facts.migration.statements == migration.parse_text(facts.migration.text, path)
        assert facts.names == frozenset(lint._names(lint._statements(text)))
        assert found.created_tables == tuple(facts.migration.tables) and not found.errors
    parses.clear()
    assert migration.load(MIGRATION).tables and len(parses) == 1
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE a (id int);\nCREATE INDEX CONCURRENTLY i ON a (id);\n")
    parses.clear()
    assert "CONCURRENTLY" in lint.file_facts(bad).error and lint.file_facts(bad).names == frozenset({"a"})
    assert len(parses) == 2  # one each
