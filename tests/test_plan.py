"""`aami-tui plan`: the drift plan and its repair, on the upstream-built and archive-chain databases."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import psycopg
import pytest
from conftest import MIGRATION, apply_migration, cli, run_sql

from aami_tui.core import migration, plan

UPSTREAM_LINE = "    is_default_own BOOLEAN NOT NULL DEFAULT false,\n"


def build_upstream(settings, tmp_path):
    """Our 001 with target_groups.is_default_own left out (as the upstream project's 001 builds it)."""
    text = MIGRATION.read_text()
    start = text.index("CREATE TABLE IF NOT EXISTS target_groups")
    pos = text.index(UPSTREAM_LINE, start)
    f = tmp_path / "upstream_001.sql"
    f.write_text(text[:pos] + text[pos + len(UPSTREAM_LINE):])
    apply_migration(settings, f)
    run_sql(settings, """
        INSERT INTO namespaces (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'prod');
        INSERT INTO groups (id, name, namespace_id) VALUES
            ('00000000-0000-0000-0000-0000000000a1', 'gpu', '00000000-0000-0000-0000-000000000001');
        INSERT INTO targets (id, hostname, ip_address)
            SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'node' || g, '10.0.0.' || g
            FROM generate_series(1, 40) g;
        INSERT INTO target_groups (target_id, group_id) SELECT id, '00000000-0000-0000-0000-0000000000a1' FROM targets;
    """)


def build_archive_chain(settings):
    for f in sorted((MIGRATION.parent / "archive").glob("0*.sql")):
        apply_migration(settings, f)


def rows(settings, query):
    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        return c.execute(query).fetchall()


def test_upstream_built_database_plan_and_repair(pg_server, fresh_db, tmp_path):
    build_upstream(fresh_db, tmp_path)
    env = pg_server.env(fresh_db.dbname)
    assert cli("check", "--strict", env=env).returncode == 3
    before = rows(fresh_db, "SELECT target_id, group_id, created_at FROM target_groups ORDER BY 1")
    out = tmp_path / "plan.sql"
    r = cli("plan", "--output", str(out), env=env, timeout=120)
    assert r.returncode == 3, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "ALTER TABLE target_groups ADD COLUMN IF NOT EXISTS is_default_own boolean DEFAULT false NOT NULL;" in text
    assert plan.PERSON_MARKER not in text
    assert "a temporary database on the same server" in text
    # no scratch database left behind
    assert not rows(fresh_db, "SELECT datname FROM pg_database WHERE datname LIKE 'aami_ref_%'")
    r = cli("apply", "--migration-file", str(out), "--yes", "--no-backup", "--reports-dir", str(tmp_path / "r"),
            env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # the report records the plan file that ran (path, sha256, that it is a drift plan and for what) and its lint
    report = json.loads(next((tmp_path / "r").glob("report_*.json")).read_text())
    assert report["migration"]["path"] == str(out)
    assert report["migration"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert report["migration"]["kind"] == "drift plan"
    assert report["migration"]["drift_plan"]["database"].startswith(f"{fresh_db.dbname} on ")
    assert report["migration"]["drift_plan"]["reference"].startswith("001_initial_schema.sql (sha256 ")
    assert report["lint"]["file"] == str(out) and report["lint"]["connected"]
    assert [f["rule"] for f in report["lint"]["findings"]] == ["locks-existing-table"]
    md = next((tmp_path / "r").glob("report_*.md")).read_text()
    assert "- The migration file is a drift plan (aami-tui plan) for " in md
    assert "0 errors, 0 warnings, exit code" in md  # counted nouns (it said "0 errors, 1 warnings")
    assert "## Lint (pre-flight)" in md and "info locks-existing-table: Statement 1 takes ACCESS EXCLUSIVE on " \
        "target_groups (" in md
    assert cli("check", "--strict", env=env).returncode == 0
    after = rows(fresh_db, "SELECT target_id, group_id, created_at FROM target_groups ORDER BY 1")
    assert after == before and len(after) == 40
    assert rows(fresh_db, "SELECT DISTINCT is_default_own FROM target_groups") == [(False,)]
    # and now there is nothing left to do
    again = cli("plan", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "No differences" in again.stderr


def act_as_a_person(text: str) -> str:
    """What a DBA does with each part marked for a person: take the first suggestion, delete the marker."""
    out, uncomment = [], False
    for line in text.splitlines():
        if line.startswith(plan.PERSON_MARKER):
            continue
        if line.startswith("-- Suggestions"):
            uncomment = True
            continue
        if uncomment and line.startswith("-- "):
            out.append(line[3:])
            uncomment = False
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def test_archive_chain_plan_needs_a_person_then_repairs(pg_server, fresh_db, tmp_path):
    build_archive_chain(fresh_db)
    run_sql(fresh_db, "INSERT INTO namespaces (name) SELECT 'team' || g FROM generate_series(1, 25) g")
    env = pg_server.env(fresh_db.dbname)
    assert cli("check", "--strict", env=env).returncode == 3
    before = rows(fresh_db, "SELECT id, name FROM namespaces ORDER BY id")
    out = tmp_path / "plan.sql"
    r = cli("plan", "--output", str(out), env=env, timeout=120)
    assert r.returncode == 3, r.stderr
    text = out.read_text()
    # the renamed columns are recognised, the leftover table and extra columns are left to a person
    for part in ("check_instances.is_active → enabled", "alert_rules.created_from_template_id → template_id",
                 "table check_settings", "check_templates.hash"):
        assert f"{plan.PERSON_MARKER} {part}\n" in text
    assert "NOT NULL without a default: the Config Server's INSERTs, which do not know this column, fail." in text
    assert "-- Facts: 0 rows; 9 columns: id, group_id, check_type" in text
    # the safe parts are SQL; a widening is safe, a narrower CHECK the data satisfies was checked
    assert "ALTER TABLE check_templates ALTER COLUMN check_type TYPE character varying(255);" in text
    assert "namespaces_merge_strategy_check" in text and "the data satisfies it (checked)" in text
    # apply refuses the unedited plan, naming the first part, before anything happens
    r = cli("apply", "--migration-file", str(out), "--yes", "--no-backup", "--reports-dir", str(tmp_path / "r"),
            env=env, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    first = text.index("\n" + plan.PERSON_MARKER) + 1
    line = text.count("\n", 0, first) + 1
    assert (f'plan.sql is a drift plan whose part "alert_rules.created_from_template_id → template_id" at line '
            f"{line} needs a person's decision (and 17 more such parts)") in r.stdout + r.stderr
    # the person decides; the plan is linted and applied through the runbook
    out.write_text(act_as_a_person(text))
    lint = cli("lint", str(out), env=env)
    assert lint.returncode in (0, 1), lint.stdout  # warnings (drops, renames) but no refusal
    assert "refused-by-runbook" not in lint.stdout
    r = cli("apply", "--migration-file", str(out), "--yes", "--no-backup", "--reports-dir", str(tmp_path / "r"),
            env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    strict = cli("check", "--strict", env=env)
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert rows(fresh_db, "SELECT id, name FROM namespaces ORDER BY id") == before
    again = cli("plan", env=env, timeout=120)
    assert again.returncode == 0, again.stdout


def test_unedited_marker_refused_by_load(tmp_path):
    f = tmp_path / "plan.sql"
    f.write_text("ALTER TABLE t ADD COLUMN IF NOT EXISTS c int;\n\n  --   AAMI-TUI NEEDS A PERSON: table x\n"
                 "-- DROP TABLE x;\n")
    with pytest.raises(migration.MigrationError) as exc:
        migration.load(f)
    assert str(exc.value) == ('plan.sql is a drift plan whose part "table x" at line 3 needs a person\'s decision: '
                              'edit it, then delete its "-- AAMI-TUI NEEDS A PERSON:" line.')
    f.write_text("ALTER TABLE t ADD COLUMN IF NOT EXISTS c int;\n-- table x: kept, decided by the DBA\n")
    assert len(migration.load(f).statements) == 1


def test_no_differences_exits_0_and_json(pg_server, fresh_db, tmp_path):
    apply_migration(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    r = cli("plan", env=env, timeout=120)
    assert r.returncode == 0 and r.stdout == "" and "No differences from 001_initial_schema.sql" in r.stderr
    run_sql(fresh_db, "CREATE TABLE site_notes (id int PRIMARY KEY, note text); INSERT INTO site_notes VALUES (1, 'x');"
                      "DROP INDEX idx_targets_status; ALTER TABLE exporters DROP CONSTRAINT exporters_port_check;"
                      "DELETE FROM alert_templates WHERE id = 'node_down';"
                      "UPDATE alert_templates SET name = 'CPU!' WHERE id = 'high_cpu_usage'")
    r = cli("plan", "--json", env=env, timeout=120)
    assert r.returncode == 3
    out = json.loads(r.stdout)
    kinds = {i["what"]: i["kind"] for i in out["items"]}
    assert kinds == {"table site_notes": "person", "index idx_targets_status": "safe",
                     "exporters constraint exporters_port_check": "safe", "alert_templates seed rows": "safe",
                     "alert_templates seed rows edited": "note"}
    seed = next(i for i in out["items"] if i["what"] == "alert_templates seed rows")
    assert seed["sql"][0].startswith("INSERT INTO alert_templates (id, name, description, severity, query_template, "
                                     "default_config, deleted_at) VALUES ('node_down', 'Node Down',")
    assert "ON CONFLICT (id) DO NOTHING" in seed["sql"][0]
    site = next(i for i in out["items"] if i["what"] == "table site_notes")
    assert site["facts"][0].startswith("1 row; 2 columns: id, note")


def test_an_output_path_that_cannot_be_written_is_refused_before_the_comparison(pg_server, fresh_db, tmp_path):
    """fresh5 F11: `plan --output /nonexistdir/plan.sql` compared the whole database first, then failed with
    "[Errno 2] No such file or directory: '/nonexistdir/.plan.sql.bcblgp0b.tmp'" (a temporary name and a raw
    errno). The path is checked first: one sentence, exit 64, nothing compared."""
    env = pg_server.env(fresh_db.dbname)
    (tmp_path / "a_folder").mkdir()
    for out, why in ((tmp_path / "no_such_dir" / "plan.sql", f"the folder {tmp_path / 'no_such_dir'} does not exist"),
                     (tmp_path / "a_folder", "it is a folder")):
        r = cli("plan", "--output", str(out), env=env, timeout=120)
        assert (r.returncode, r.stderr.strip()) == (64, f"aami-tui: cannot write the plan to {out}: {why}."), \
            r.stdout + r.stderr
    assert not (tmp_path / "no_such_dir").exists()


def test_missing_check_the_data_violates_needs_a_person(fresh_db):
    apply_migration(fresh_db)
    run_sql(fresh_db, "ALTER TABLE exporters DROP CONSTRAINT exporters_port_check;"
                      "INSERT INTO targets (id, hostname, ip_address) VALUES (gen_random_uuid(), 'h', '10.0.0.1');"
                      "INSERT INTO exporters (target_id, type, port) SELECT id, 'custom', 70000 FROM targets")
    import asyncio

    p = asyncio.run(plan.make_plan(fresh_db, MIGRATION))
    part = next(i for i in p.items if i.what == "exporters constraint exporters_port_check")
    assert part.kind == "person" and part.facts == ("1 of 1 row violates it.",)
    assert plan.PERSON_MARKER + " exporters constraint exporters_port_check" in p.render()


async def test_reference_on_the_embedded_server_when_the_role_may_not_create_databases(pg_server, fresh_db, tmp_path):
    build_upstream(fresh_db, tmp_path)
    role = f"plain_{os.getpid()}"
    run_sql(fresh_db, f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw' NOCREATEDB;"
                      f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        limited = fresh_db.__class__({**fresh_db.params, "user": role, "password": "pw"}, "--dsn")
        said = []
        p = await plan.make_plan(limited, MIGRATION, say=said.append)
        assert "the embedded PostgreSQL 18" in p.reference and "may not create databases" in p.reference
        assert [i.what for i in p.items] == ["target_groups.is_default_own"]
        assert any("using the embedded PostgreSQL instead" in m for m in said)
    finally:
        run_sql(fresh_db, f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_scratch_database_dropped_when_the_migration_fails(pg_server, fresh_db, tmp_path):
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE IF NOT EXISTS namespaces (id int PRIMARY KEY);\nINSERT INTO nowhere VALUES (1);\n")
    r = cli("plan", "--migration-file", str(bad), env=pg_server.env(fresh_db.dbname), timeout=180)
    assert r.returncode == 4, r.stderr
    assert "bad.sql failed in the reference database at statement 2 (line 2" in r.stderr
    assert not rows(fresh_db, "SELECT datname FROM pg_database WHERE datname LIKE 'aami_ref_%'")



def test_missing_tables_are_created_in_the_files_order(pg_server, fresh_db, tmp_path):
    apply_migration(fresh_db)
    run_sql(fresh_db, "DROP TABLE check_instances; DROP TABLE check_templates")  # instances reference templates
    env = pg_server.env(fresh_db.dbname)
    out = tmp_path / "plan.sql"
    assert cli("plan", "--output", str(out), env=env, timeout=120).returncode == 3
    text = out.read_text()
    assert text.index("CREATE TABLE IF NOT EXISTS check_templates") < text.index(
        "CREATE TABLE IF NOT EXISTS check_instances")
    r = cli("apply", "--migration-file", str(out), "--yes", "--no-backup", "--reports-dir", str(tmp_path / "r"),
            env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cli("check", "--strict", env=env).returncode == 0
    assert cli("plan", env=env, timeout=120).returncode == 0


def test_objects_in_the_way_come_first_and_need_a_person(pg_server, fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE VIEW groups AS SELECT 1 AS id")
    out = tmp_path / "plan.sql"
    r = cli("plan", "--output", str(out), env=pg_server.env(fresh_db.dbname), timeout=120)
    assert r.returncode == 3, r.stderr
    text = out.read_text()
    first = text.index(plan.PERSON_MARKER + " in the way: groups")
    assert first < text.index("CREATE TABLE IF NOT EXISTS namespaces")
    assert "public.groups is a view, not a table" in text


async def test_plan_file_review_names_the_parts_for_a_person_and_lints_with_live_facts(fresh_db, tmp_path):
    """What the Drift view shows beside the plan and what its r key obeys: the file as it is on disk now."""
    apply_migration(fresh_db)
    run_sql(fresh_db, "DROP INDEX idx_targets_status; CREATE TABLE site_notes (id int PRIMARY KEY, note text)")
    p = await plan.make_plan(fresh_db, MIGRATION)
    f = tmp_path / "plan.sql"
    f.write_text(p.render(f.name))
    text = f.read_text()
    line = text[:text.index("\n" + plan.PERSON_MARKER)].count("\n") + 2
    r = await plan.review_file(fresh_db, f)
    assert [(n, part) for n, part, _ in r.unedited] == [(line, "table site_notes")]
    assert r.unedited[0][2].startswith("table site_notes is not created by 001_initial_schema.sql")
    assert not r.runnable
    assert r.refusal.startswith('plan.sql is a drift plan whose part "table site_notes" at line')  # apply's rule
    assert r.refusal_sentence() == (f'plan.sql cannot run yet: 1 part still needs a person: "table site_notes" '
                                    f'(line {line}); edit the file, delete each "{plan.PERSON_MARKER}" line, then '
                                    "re-read it.")
    assert r.header["database"].startswith(f"{fresh_db.dbname} on ")
    assert r.lint.connected and r.lint.squawk and r.problem is None
    index = next(x for x in r.lint.findings if x.rule == "require-concurrent-index-creation")
    assert index.severity == "warning" and "existing table targets" in index.message and " Live: ~" in index.message
    # the person decides (the table stays) and deletes the marker: the same file now runs
    f.write_text(text.replace(f"{plan.PERSON_MARKER} table site_notes\n", ""))
    again = await plan.review_file(fresh_db, f)
    assert again.runnable and again.unedited == () and again.refusal_sentence() is None
    assert again.sha256 != r.sha256
    assert "refused-by-runbook" not in {x.rule for x in again.lint.findings}
    # a server that cannot be reached: the lint still runs, offline, and says so
    gone = fresh_db.__class__({**fresh_db.params, "host": "127.0.0.1", "port": "1"}, "--dsn")
    offline = await plan.review_file(gone, f)
    assert offline.runnable and not offline.lint.connected
    assert offline.problem.startswith("no live facts (")


async def test_verify_after_a_plan_that_leaves_drift_says_so_before_commit(fresh_db, tmp_path):
    """A person may keep a column: verify reports the drift a plan leaves (check --strict would fail), without
    blocking COMMIT; the report records the file as a drift plan."""
    from faults import runbook

    build_upstream(fresh_db, tmp_path)
    p = await plan.make_plan(fresh_db, MIGRATION)
    f = tmp_path / "plan.sql"
    # the person writes something else than the safe part (here: only an index), so the column stays missing
    f.write_text(p.render(f.name).split("\n\n", 1)[0] + "\n\nCREATE INDEX IF NOT EXISTS idx_tg ON target_groups "
                 "(group_id);\n")
    rb = runbook(fresh_db, tmp_path, f, skip_backup=True)
    await rb.preflight()
    await rb.backup_step()  # skipped (--no-backup)
    await rb.begin()
    # What the open transaction sees is still drifted (the checklists' UNCOMMITTED view lost the mark: it took
    # the plan file's tables as the expected ones)
    assert (await rb.preview()).drifted == ("target_groups",)
    await rb.apply()
    checks = {c.name: c for c in await rb.verify()}
    left = checks["No drift left"]
    assert not left.ok and not left.blocking
    assert left.detail.startswith("target_groups still differ from 001_initial_schema.sql (the plan left them): "
                                  "check --strict would exit 3 after COMMIT")
    await rb.rollback("test")
    await rb.close("test")
    data = json.loads(rb.report_paths[1].read_text())
    assert data["migration"]["kind"] == "drift plan" and data["migration"]["sha256"] == hashlib.sha256(
        f.read_bytes()).hexdigest()
    assert any(v["name"] == "No drift left" and not v["ok"] for v in data["verify"])


def test_a_dumped_and_restored_database_has_no_differences(pg_server, db_factory):
    """pg_dump | psql re-parses each CHECK from its deparsed text, and the server deparses the new tree another
    way (`ARRAY[('a'::varchar)::text, …]` instead of `(ARRAY['a'::varchar, …])::text[]`): the same constraint,
    so the plan finds nothing to do; a CHECK with another list of values is still a difference."""
    import asyncio
    import subprocess

    from aami_tui.core import pgtools

    src, copy = db_factory("aami_dumped"), db_factory("aami_restored")
    apply_migration(src)
    major = int(rows(src, "SHOW server_version_num")[0][0]) // 10000
    dump = pgtools.find_tool("pg_dump", major)
    psql = pgtools.companion(dump, "psql")
    env = pgtools.tool_env(src, major)
    dumped = subprocess.run([dump.path, "-d", src.dbname], env=env, capture_output=True, check=True).stdout
    subprocess.run([psql.path, "-q", "-v", "ON_ERROR_STOP=1", "-d", copy.dbname], input=dumped,
                   env=pgtools.tool_env(copy, major), capture_output=True, check=True)
    p = asyncio.run(plan.make_plan(copy, MIGRATION))
    assert not p.differences, [i.title for i in p.items]
    # real differences of each kind sent through the scratch server are still found
    run_sql(copy, "ALTER TABLE targets DROP CONSTRAINT targets_status_check;"
                  "ALTER TABLE targets ADD CONSTRAINT targets_status_check CHECK (status IN ('active', 'down'));"
                  "ALTER TABLE targets ALTER COLUMN status SET DEFAULT 'down';"
                  "DROP INDEX idx_targets_status; CREATE INDEX idx_targets_status ON targets (status)")
    p = asyncio.run(plan.make_plan(copy, MIGRATION))
    assert sorted((i.kind, i.what) for i in p.items) == [
        ("safe", "index idx_targets_status"), ("safe", "targets constraint targets_status_check"),
        ("safe", "targets.status default")]


async def test_a_part_that_needs_a_column_left_to_a_person_is_not_called_safe(fresh_db, tmp_path):
    """fresh5 F9: on the archive chain the Drift view listed 'ALTER TABLE alert_rules ADD CONSTRAINT
    alert_rules_template_id_fkey …' as safe; a DBA who chose "nothing" for every person's part (the plan allows it)
    saw apply stop there: column "template_id" does not exist. Such a part is a person's too (its SQL commented
    out, naming the part it depends on), so the plan with every part left undone runs."""
    build_archive_chain(fresh_db)
    p = await plan.make_plan(fresh_db, MIGRATION)
    fk = next(i for i in p.items if i.what == "alert_rules constraint alert_rules_template_id_fkey")
    assert fk.kind == "person", fk
    assert "template_id" in fk.title and "alert_rules.created_from_template_id → template_id" in fk.title, fk.title
    assert not [i.what for i in p.of("safe") if "leaves to a person" in i.title]
    nothing = "\n".join(ln for ln in p.render().splitlines() if not ln.startswith(plan.PERSON_MARKER))
    f = tmp_path / "plan.sql"
    f.write_text(nothing + "\n")
    stmts = migration.load(f).statements
    with psycopg.connect(fresh_db.conninfo()) as c:  # one transaction, rolled back at the end
        for s in stmts:
            c.execute(s.sql)  # it failed at the foreign key on template_id
        c.rollback()
