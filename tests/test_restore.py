"""Restore: the guide's rollback, on the embedded 18 and (AAMI_TEST_SERVER=pg15) Debian's PostgreSQL 15."""

from __future__ import annotations

import psycopg
from conftest import SERVER_BIN


def test_the_server_is_the_one_the_lane_names(pg_server, fresh_db):
    """The PostgreSQL 15 lane really runs on 15 with the real (C) uuid-ossp; the default lane on 18."""
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        major = c.info.server_version // 10000
        c.execute('CREATE EXTENSION "uuid-ossp"')
        v1 = c.execute("SELECT count(*) FROM pg_proc WHERE proname = 'uuid_generate_v1mc'").fetchone()[0]
    if pg_server.embedded is None:
        return  # AAMI_TEST_DSN: whatever that server is
    if SERVER_BIN is None:
        assert major == 18 and v1 == 0  # the wheel's stand-in only has v4
    else:
        assert str(SERVER_BIN) == f"/usr/lib/postgresql/{major}/bin" and v1 == 1


import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from datetime import datetime  # noqa: E402

import pytest  # noqa: E402
from conftest import MIGRATION, catalog_fingerprint, cli, run_sql  # noqa: E402
from faults import backup_tools, take_verified_backup, tool_waits_for_a_lock  # noqa: E402

from aami_tui.core import locks, pgtools  # noqa: E402
from aami_tui.core import restore as core_restore  # noqa: E402
from aami_tui.core.migration import parse_text  # noqa: E402

SEVEN = ["alert_rules", "alert_templates", "bootstrap_tokens", "check_instances", "check_templates", "exporters",
         "target_groups"]


def _first_three_tables(settings) -> None:
    """namespaces, groups and targets exactly as 001 defines them (no extension), with rows."""
    stmts = [s.sql for s in parse_text(MIGRATION.read_text(), MIGRATION)]
    cut = next(i for i, s in enumerate(stmts) if "target_groups" in s)
    run_sql(settings, ";\n".join(s for s in stmts[:cut] if "EXTENSION" not in s.upper()))
    run_sql(settings, """
        INSERT INTO namespaces (name, policy_priority) SELECT 'ns' || i, i FROM generate_series(1, 3) i;
        INSERT INTO groups (name, namespace_id) SELECT 'g' || i, (SELECT id FROM namespaces WHERE name = 'ns1')
          FROM generate_series(1, 5) i;
        INSERT INTO targets (hostname, ip_address) SELECT 'host' || i, '10.0.0.' || i FROM generate_series(1, 40) i;
    """)


def _catalog(settings) -> list[tuple]:
    """catalog_fingerprint, with CHECK constraints compared by meaning: pg_dump deparses `x IN ('a', 'b')` as
    `x::text = ANY (ARRAY['a'::varchar::text, ...])`, which parses back to a different (equivalent) tree, so any
    dump and restore changes pg_get_constraintdef's text. Casts and parentheses are dropped for the comparison."""
    out = []
    for kind, a, b, c in catalog_fingerprint(settings):
        if kind == "con" and c.startswith("CHECK"):
            c = re.sub(r"[()]", "", re.sub(r"::(?:text|character varying)(?:\[\])?", "", c))
        out.append((kind, a, b, c))
    return out


def _rows(settings) -> dict[str, list]:
    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        return {t: c.execute(f"SELECT to_jsonb(x)::text FROM {t} x ORDER BY 1").fetchall()
                for t in ("namespaces", "groups", "targets")}


def _extensions(settings) -> list[tuple]:
    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        return c.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1").fetchall()


def _apply(pg_server, settings, tmp_path) -> pgtools.BackupEntry:
    r = cli("apply", "--yes", "--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports"),
            env=pg_server.env(settings.dbname), timeout=120)
    assert r.returncode == 0, r.stderr
    return pgtools.list_backups(tmp_path / "backups", settings.dbname)[0]


async def test_restore_undoes_an_apply_onto_a_partly_populated_schema(pg_server, fresh_db, tmp_path):
    """Issue 9 item 6: the seven new tables' FKs point at the old three; uuid-ossp is the migration's."""
    _first_three_tables(fresh_db)
    before, rows, exts = _catalog(fresh_db), _rows(fresh_db), _extensions(fresh_db)
    entry = _apply(pg_server, fresh_db, tmp_path)
    assert catalog_fingerprint(fresh_db) != before and ("uuid-ossp",) in [e[:1] for e in _extensions(fresh_db)]
    run_sql(fresh_db, "INSERT INTO target_groups SELECT t.id, g.id FROM targets t, groups g LIMIT 7;"
                      "DELETE FROM targets WHERE hostname LIKE 'host1%'")  # the damage after the migration

    plan = await core_restore.plan(fresh_db, entry)
    assert plan.drop_labels() == [f"table public.{t}" for t in SEVEN] + ["extension uuid-ossp"]
    r = await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", expected=plan)

    assert _catalog(fresh_db) == before
    assert _rows(fresh_db) == rows and _extensions(fresh_db) == exts
    # fresh5 F13: the required tables the backup lacks (it was [] in every report: computed after the restore,
    # which had dropped them)
    assert r.outcome == "restored" and sorted(r.not_in_backup) == SEVEN and r.dropped == plan.drop_labels()
    assert any(ln.startswith("ERROR: Missing required database tables: [target_groups") for ln in r.lines)
    data = json.loads(r.report.with_suffix(".json").read_text())
    assert data["outcome"] == "restored" and data["error"] is None
    assert re.match(r"pg_restore \d+\.\d+ \(", data["pg_restore"]) and data["psql"].startswith("psql ")
    assert data["drop_not_in_backup"] == {"state": "done", "objects": plan.drop_labels()}
    assert sorted(data["required_tables_not_in_backup"]) == SEVEN
    assert data["backup_taken"] == entry.source["taken_at"], data  # when it was taken, as recorded beside it
    for key in ("started", "ended"):
        assert datetime.fromisoformat(data[key]).tzinfo is not None, data[key]
    assert data["archive"]["dumped_by_pg_dump"] and data["toc_entries"] == plan.toc_entries
    md = r.report.read_text()
    assert "restored" in md and "table public.target_groups" in md and "pg_restore" in md


async def test_restore_removes_seed_rows_from_a_table_that_pre_existed(pg_server, fresh_db, tmp_path):
    """alert_templates existed with one row of the site's own; the apply added the six default templates."""
    stmts = [s.sql for s in parse_text(MIGRATION.read_text(), MIGRATION)]
    run_sql(fresh_db, next(s for s in stmts if "CREATE TABLE IF NOT EXISTS alert_templates" in s))
    run_sql(fresh_db, "INSERT INTO alert_templates (id, name, severity, query_template) "
                      "VALUES ('site_own', 'Ours', 'warning', 'up == 0')")
    before = _catalog(fresh_db)
    entry = _apply(pg_server, fresh_db, tmp_path)
    assert ("rows", "alert_templates", "7", "") in catalog_fingerprint(fresh_db)
    await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
    assert _catalog(fresh_db) == before  # one row again, nine tables and the extension gone


async def test_a_failed_restore_commits_nothing_and_still_writes_a_report(pg_server, fresh_db, tmp_path):
    """A backup cut short after its TOC: pg_restore fails mid-data. The drops and the tables restored so far
    must not be committed (psql gets no COMMIT), and the report says "failed"."""
    _first_three_tables(fresh_db)
    run_sql(fresh_db, "INSERT INTO targets (hostname, ip_address, metadata) SELECT 'bulk' || i, '10.1.0.1', "
                      "jsonb_build_object('pad', repeat(md5(i::text), 20)) FROM generate_series(1, 20000) i")
    entry = _apply(pg_server, fresh_db, tmp_path)
    after_apply = catalog_fingerprint(fresh_db)
    rows = _rows(fresh_db)
    size = entry.path.stat().st_size
    with open(entry.path, "r+b") as f:
        f.truncate(int(size * 0.6))
    entry.path.with_name(entry.path.name + ".sha256").unlink()  # no checksum to refuse it by
    entry = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]
    with pytest.raises(core_restore.RestoreError) as e:
        await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
    assert "rolled back" in str(e.value)
    assert catalog_fingerprint(fresh_db) == after_apply and _rows(fresh_db) == rows
    data = json.loads(e.value.result.report.with_suffix(".json").read_text())
    assert data["outcome"] == "failed" and "rolled back" in data["error"]
    assert data["drop_not_in_backup"]["state"] == "rolled back"


async def test_a_refused_restore_writes_a_report_and_two_in_one_second_get_two(pg_server, fresh_db, tmp_path,
                                                                             monkeypatch):
    import stat
    import threading

    from faults import off_the_loop

    entry = _apply(pg_server, fresh_db, tmp_path)
    wrote = off_the_loop(monkeypatch, core_restore, "write_report")  # the console's keys never wait for it
    with open(entry.path, "ab") as f:
        f.write(b"tampered")
    reports = []
    for _ in range(3):  # well within one second: the sha256 refusal happens before anything runs
        with pytest.raises(core_restore.RestoreError) as e:
            await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
        assert "sha256 no longer matches" in str(e.value)
        reports.append(e.value.result.report)
    assert len(set(reports)) == 3 and all(p.exists() and p.with_suffix(".json").exists() for p in reports)
    data = json.loads(reports[0].with_suffix(".json").read_text())
    assert data["outcome"] == "refused" and data["drop_not_in_backup"]["state"] == "not run"
    assert len(wrote) == 3 and threading.get_ident() not in wrote
    assert {stat.S_IMODE(q.stat().st_mode) for p in reports for q in (p, p.with_suffix(".json"))} == {0o600}


async def test_a_backup_no_pg_restore_here_can_read_is_refused_naming_the_one_it_needs(pg_server, fresh_db,
                                                                                       tmp_path):
    entry = _apply(pg_server, fresh_db, tmp_path)
    data = bytearray(entry.path.read_bytes())
    data[6] = 99  # archive format 1.99: no pg_restore reads it
    info = core_restore.read_archive_header(entry.path)
    old = f"\x00{len(info.dumped_by).to_bytes(4, 'little').decode('latin1')}{info.dumped_by}".encode("latin1")
    at = data.rfind(old, 0, 512)  # the last of the header's strings (the server's version may read the same)
    assert at > 0
    data[at + 5:at + 7] = b"99"  # "18.6" -> "99.6": written by a future pg_dump
    entry.path.write_bytes(bytes(data))
    entry.path.with_name(entry.path.name + ".sha256").unlink()
    entry = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]
    before = catalog_fingerprint(fresh_db)
    with pytest.raises(core_restore.RestoreError) as e:
        await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
    newest = pgtools.all_tools("pg_restore")[0]
    assert str(e.value).startswith(f"{entry.path.name} was written by pg_dump 99")
    assert f"(archive format 1.99); the newest pg_restore here, {newest.describe()}, cannot read it" in str(e.value)
    assert "Install pg_restore 99 or newer" in str(e.value) and "Nothing was restored." in str(e.value)
    assert catalog_fingerprint(fresh_db) == before
    assert e.value.result.report.exists()


async def test_a_newer_pg_dumps_backup_restores_with_the_newest_pg_restore(pg_server, fresh_db, tmp_path,
                                                                          monkeypatch):
    """A backup written by the wheel's pg_dump 18 (archive 1.16). On PostgreSQL 15, pg_restore 15 cannot read
    it ("unsupported version (1.16)"): with only the server's own tools the restore is refused, naming the
    pg_restore it needs; with the wheel's pg_restore 18 it restores (its script's SET transaction_timeout,
    which 15 rejects, is left out)."""
    from aami_tui.core.embedded import bin_dir

    _first_three_tables(fresh_db)
    before, rows = _catalog(fresh_db), _rows(fresh_db)
    with psycopg.connect(fresh_db.conninfo()) as c:
        major = c.info.server_version // 10000
    version = pgtools.tool_version(str(bin_dir() / "pg_dump"))
    dump18 = pgtools.Tool("pg_dump", str(bin_dir() / "pg_dump"), version[0], version[1], "embedded wheel")
    bdir = pgtools.ensure_private_dir(tmp_path / "backups")
    dump, _ = pgtools.unique_backup_paths(bdir, fresh_db.dbname)
    await pgtools.run_dump(dump18, fresh_db, dump, server_major=major)
    pgtools.write_checksum(dump, pgtools.sha256_file(dump), {"dbname": fresh_db.dbname})
    r = cli("apply", "--yes", "--no-backup", "--reports-dir", str(tmp_path / "reports"),
            env=pg_server.env(fresh_db.dbname), timeout=120)
    assert r.returncode == 0, r.stderr
    entry = pgtools.list_backups(bdir, fresh_db.dbname)[0]
    assert core_restore.read_archive_header(entry.path).dumped_by == version[0]

    if major < version[1]:
        own = f"/usr/lib/postgresql/{major}/bin"
        with monkeypatch.context() as m:
            m.setattr(pgtools, "_candidates", lambda name: [(f"{own}/{name}", own)])
            with pytest.raises(core_restore.RestoreError) as e:
                await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
        msg = str(e.value)
        assert msg.startswith(f"{entry.path.name} was written by pg_dump {version[0]} (archive format 1.16); the "
                              f"newest pg_restore here, pg_restore {major}.")
        assert f"Install pg_restore {version[1]} or newer" in msg and "Nothing was restored." in msg
        assert _rows(fresh_db) == rows and ("ext", "uuid-ossp", "", "") in catalog_fingerprint(fresh_db)

    res = await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
    assert res.tool.startswith(f"pg_restore {version[0]} ")
    assert _catalog(fresh_db) == before and _rows(fresh_db) == rows


async def test_a_session_holding_a_lock_ends_the_restore_after_its_lock_timeout(pg_server, fresh_db, tmp_path):
    """The Config Server left a transaction open on targets: the restore must not wait without limit. It stops
    after its lock_timeout, commits nothing, names the session, and works once that session is gone. The backup
    is far larger than a pipe's buffer, so pg_restore is still writing when psql stops."""
    _first_three_tables(fresh_db)
    run_sql(fresh_db, "INSERT INTO targets (hostname, ip_address, metadata) SELECT 'bulk' || i, '10.1.0.1', "
                      "jsonb_build_object('pad', repeat(md5(i::text), 20)) FROM generate_series(1, 20000) i")
    before, rows = _catalog(fresh_db), _rows(fresh_db)
    entry = _apply(pg_server, fresh_db, tmp_path)
    after_apply = catalog_fingerprint(fresh_db)
    holder = psycopg.connect(fresh_db.conninfo(application_name="config-server"))
    holder.execute("SELECT count(*) FROM targets").fetchone()  # idle in transaction, ACCESS SHARE held
    try:
        with pytest.raises(core_restore.RestoreError) as e:
            await asyncio.wait_for(core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports",
                                                        lock_timeout=1), 30)
        msg = str(e.value)
        assert msg.startswith("The restore waited more than 1 s for a lock on public.targets and was rolled back: "
                              "nothing changed. Sessions holding locks here: pid "), msg  # fresh6 F6: which table
        # where it connects from, without psycopg's inet host mask ('from 127.0.0.1/32')
        assert "application 'config-server', host 127.0.0.1, idle in transaction (locks public.targets in ACCESS SHARE mode)" in msg, msg
        assert "/32" not in msg, msg
        assert catalog_fingerprint(fresh_db) == after_apply
        assert json.loads(e.value.result.report.with_suffix(".json").read_text())["outcome"] == "failed"
    finally:
        holder.close()
    await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", lock_timeout=1)
    assert _catalog(fresh_db) == before and _rows(fresh_db) == rows
    # Again, with nothing to drop: now pg_restore's own script meets the lock (its SET lock_timeout = 0 is ours).
    holder = psycopg.connect(fresh_db.conninfo(application_name="config-server"))
    holder.execute("SELECT count(*) FROM targets").fetchone()
    try:
        assert (await core_restore.plan(fresh_db, entry)).drops == []
        with pytest.raises(core_restore.RestoreError) as e:
            await asyncio.wait_for(core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports",
                                                        lock_timeout=1), 30)
        assert "application 'config-server'" in str(e.value)
    finally:
        holder.close()
    assert _rows(fresh_db) == rows


async def _backup_with_the_named_tools(settings, tmp_path) -> tuple[pgtools.BackupResult, pgtools.Tool, int]:
    """A backup as the runbook takes it: pg_dump and pg_restore as pre-flight (and the dashboard) choose them."""
    run_sql(settings, "CREATE TABLE site_notes (id int PRIMARY KEY, note text); INSERT INTO site_notes VALUES (1, 'a')")
    dump_tool, named, major = backup_tools(settings)
    b = await pgtools.take_backup(dump_tool, named, settings, tmp_path / "backups", server_major=major,
                                  source={"dbname": settings.dbname})
    return b, named, major


async def test_the_restore_uses_the_pg_restore_the_dashboard_names(fresh_db, tmp_path):
    """Seen by the fresh-eyes tester on Debian's PostgreSQL 15 (lane 2): the dashboard and pre-flight named
    pg_restore 15 (PATH), and the restore then used the wheel's pg_restore 18 (the newest). One function decides."""
    _b, named, _major = await _backup_with_the_named_tools(fresh_db, tmp_path)
    entry = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]
    plan = await core_restore.plan(fresh_db, entry)
    assert plan.tool == named, (plan.tool.describe(), named.describe())
    assert f"Read with pg_restore {named.version} ({named.origin})" in plan.summary()


async def test_the_restore_counts_the_backup_s_toc_entries_as_the_backup_did(fresh_db, tmp_path):
    """Seen by the fresh-eyes tester: the runbook said the backup had 80 TOC entries, the restore of the same
    backup said 76 (it counted the listed lines, without ENCODING, STDSTRINGS, SEARCHPATH...)."""
    b, _named, _major = await _backup_with_the_named_tools(fresh_db, tmp_path)
    entry = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]
    plan = await core_restore.plan(fresh_db, entry)
    assert plan.toc_entries == b.toc_entries
    r = await core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", expected=plan)
    assert r.outcome == "restored" and r.toc_entries == b.toc_entries
    assert json.loads(r.report.with_suffix(".json").read_text())["toc_entries"] == b.toc_entries


async def test_rows_of_dropped_tables_are_counted_else_estimated_and_never_wait_for_a_lock(fresh_db, monkeypatch):
    """The restore's confirmation says what data goes with each table it drops: a count when the table is small
    and its lock is free, else the statistics' estimate marked ~, never a wait behind another session's lock."""
    from aami_tui.core.db import connect

    run_sql(fresh_db, """CREATE TABLE small (i int); INSERT INTO small SELECT generate_series(1, 7);
                         CREATE TABLE big (i int); INSERT INTO big SELECT generate_series(1, 500); ANALYZE big;
                         CREATE TABLE held (i int); INSERT INTO held SELECT generate_series(1, 3); ANALYZE held;
                         CREATE VIEW v AS SELECT 1 AS x;""")
    monkeypatch.setattr(core_restore, "COUNT_BELOW", 100)  # 'big' is too big to count before confirming
    drops = [core_restore.LiveObject("TABLE", "public", n) for n in ("big", "held", "small")]
    drops.append(core_restore.LiveObject("VIEW", "public", "v"))
    with psycopg.connect(fresh_db.conninfo()) as other:  # a DBA's session holds 'held' for the whole count
        other.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        conn = await connect(fresh_db)
        try:
            rows = await asyncio.wait_for(core_restore.table_rows(conn, drops), 20)  # bounded: no lock wait
        finally:
            await conn.close()
        other.rollback()
    assert rows == {("public", "small"): (7, True), ("public", "big"): (500, False), ("public", "held"): (3, False)}
    from types import SimpleNamespace

    tool = SimpleNamespace(version="18.6", origin="embedded wheel")
    p = core_restore.RestorePlan(dump=None, tool=tool, psql=None, archive=SimpleNamespace(dumped_by="18.6"),
                                 server_version="18",
                                 toc_entries=0, backup_tables=set(), drops=drops, table_rows=rows)
    said = " ".join(p.summary().split("\n")[1:3])
    assert said.startswith("Created after it, dropped in the same transaction: 3 tables (big: ~500 rows, held: ~3 "
                           "rows, small: 7 rows); view v."), said
    assert "~ marks an estimate from the statistics (pg_class.reltuples)" in said


def _processes_reading(path) -> list[int]:
    """pids whose command line names ``path`` (a pg_restore reading the backup)."""
    import os

    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if str(path).encode() in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out


async def test_a_cancelled_restore_stops_its_tools_ends_its_session_and_reports_cancelled(fresh_db, tmp_path):
    """A running restore could not be cancelled in the console, and a cancel (a quit) was reported as 'failed':
    'cancelled by the operator: nothing was committed'. Now a cancel stops pg_restore and psql, ends psql's session
    on the server (here it waits for a lock: the server would keep it, and its locks, until psql is noticed gone),
    and the report says 'cancelled' and what the database is left as: exactly as before the restore."""
    from faults import observe, tool_sessions, wait_until

    b, _named, _major = await _backup_with_the_named_tools(fresh_db, tmp_path)
    run_sql(fresh_db, "CREATE TABLE made_later (id int)")  # the restore drops it (not in the backup)
    before = catalog_fingerprint(fresh_db)
    holder = observe(fresh_db, app="config-server", autocommit=False)
    holder.execute("SELECT count(*) FROM site_notes").fetchone()  # pg_restore's DROP TABLE site_notes waits for it
    entry = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]
    r = core_restore.RestoreResult(entry.path)
    task = asyncio.create_task(core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", result=r))
    try:
        await asyncio.to_thread(wait_until, lambda: tool_waits_for_a_lock(fresh_db), 30,
                                what="the restore to wait for the lock")
        assert r.stage == "restoring" and r.backend_pid is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)
        assert tool_sessions(fresh_db) == []  # psql's session is gone (ended), not left waiting with its locks
        assert _processes_reading(entry.path) == []  # pg_restore stopped
    finally:
        holder.rollback()
        holder.close()
    assert catalog_fingerprint(fresh_db) == before  # made_later still there: nothing dropped, nothing restored
    assert r.outcome == "cancelled" and r.rollback_seen is True
    assert r.error.startswith("cancelled: pg_restore and psql were stopped and the server rolled the restore's "
                              "transaction back (its session is gone). Nothing of the backup was restored and "
                              f"nothing was dropped: {fresh_db.dbname} is as it was before the restore."), r.error
    data = json.loads(r.report.with_suffix(".json").read_text())
    assert data["outcome"] == "cancelled" and data["error"] == r.error
    assert data["drop_not_in_backup"]["state"] == "rolled back"
    assert "— cancelled" in r.report.read_text()


def test_headless_restore_asks_for_yes_and_sigterm_cancels_it_exit_130(pg_server, fresh_db, tmp_path):
    """There was no headless restore (a pipeline's rollback job had to script pg_restore itself, without the drop
    step or the one transaction). `aami-tui restore` is the console's restore: without --yes it says what it would
    do (exit 6); SIGTERM mid-restore stops pg_restore and psql, ends psql's session, says what the database is left
    as (the console's words) and exits 130; with --yes and nothing in the way it restores (exit 0)."""
    import signal

    from faults import observe, signal_child, spawn_cli, tool_sessions, wait_until

    run_sql(fresh_db, "CREATE TABLE site_notes (id int PRIMARY KEY, note text); INSERT INTO site_notes VALUES (1, 'a');"
                      "CREATE TABLE site_tags (id int PRIMARY KEY)")  # (more steps than TOC entries: fresh7 N5)
    asyncio.run(take_verified_backup(fresh_db, tmp_path / "backups"))  # its metadata names this server
    run_sql(fresh_db, "CREATE TABLE made_later (id int)")
    before = catalog_fingerprint(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    args = ("restore", "--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports"))
    r = cli(*args, env=env)
    assert r.returncode == 6, r.stdout + r.stderr
    assert "Created after it, dropped in the same transaction: table made_later" in r.stdout, r.stdout
    assert "Dry run: nothing was restored." in r.stdout and catalog_fingerprint(fresh_db) == before
    # fresh6 F9: what is lost, said as the console's confirmation says it
    assert "Changes made since then are lost" in r.stdout, r.stdout

    # fresh6 F9: refused because a migration holds the one-operator lock (exit 7): it never said "Restoring…"
    with psycopg.connect(fresh_db.conninfo(application_name="aami-tui"), autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%(classid)s, %(objid)s)", locks.KEY)
        lock.execute("BEGIN")  # as a console at BEGIN: its migration transaction open
        lock.execute("SELECT 1")
        holder_pid = lock.info.backend_pid
        dry = cli(*args, env=env)
        r = cli(*args, "--yes", env=env)
    assert r.returncode == 7, r.stdout + r.stderr
    assert "Restoring" not in r.stdout, r.stdout
    # the dry run says it too (it said nothing of it: exit 6, as if --yes would restore)
    assert dry.returncode == 6 and "Dry run: nothing was restored." in dry.stdout, dry.stdout + dry.stderr
    assert (f"aami-tui: --yes would be refused now (exit 7): Another operator is running the migration on "
            f"{fresh_db.dbname}: pid {holder_pid}, ") in dry.stderr, dry.stderr
    # pre-flight's words for the holder (one function), and where it looked for an earlier run of ours
    assert (f"aami-tui: Restore refused, nothing changed: Another operator is running the migration on "
            f"{fresh_db.dbname}: pid {holder_pid}, ") in r.stderr, r.stderr
    assert "application 'aami-tui', connected since " in r.stderr and (
        f". No ended run of aami-tui whose report is in {tmp_path / 'reports'} had that session: a console or "
        "apply still running, or a run whose reports are in another directory. ") in r.stderr, r.stderr
    # fresh9 F7: and what the DBA can do about it
    assert ("Its migration transaction is open, not committed: COMMIT or ROLLBACK it in its console, or end that "
            f"session (SELECT pg_terminate_backend({holder_pid});), which rolls it back.\n") in r.stderr, r.stderr

    holder = observe(fresh_db, app="config-server", autocommit=False)
    holder.execute("SELECT count(*) FROM site_notes").fetchone()  # pg_restore's DROP TABLE site_notes waits
    p = spawn_cli(*args, "--yes", env=env)

    def says_it_waits() -> None:
        wait_until(lambda: tool_waits_for_a_lock(fresh_db), 30, what="the restore to wait for the lock")
        # fresh6 F6: it said nothing while it waited; now the console's line, as soon as the watch sees the wait
        # (bounded: lock_timeout ends the restore, and its output, after 30 s at most)
        seen = [p.stdout.readline()]
        while seen[-1] and "waiting" not in seen[-1]:
            seen.append(p.stdout.readline())
        # fresh7 N5: the steps are those the server has reached, never what psql has read ahead of it ("step 17
        # of about 14: creating INDEX" while a DROP waited): the one said last before the wait is the one that waits
        steps = [re.match(r"  restore: step (\d+) of about (\d+): (.*)$", s) for s in seen[:-1]]
        steps = [(int(m[1]), int(m[2]), m[3]) for m in steps if m]
        assert steps and all(k <= about for k, about, _ in steps), seen
        assert steps[-1][2] == "dropping CONSTRAINT site_notes_pkey on public.site_notes", seen  # (ALTER TABLE)
        assert not any(w.startswith(("creating", "processing")) for *_, w in steps), seen
        assert re.match(r"  restore: waiting \d+s for a lock on public\.site_notes held by pid "
                        rf"{holder.info.backend_pid} \(user \w+, application 'config-server', host 127\.0\.0\.1, "
                        r"idle in transaction\); "
                        r"lock_timeout \(30s\) ends the restore, rolled back: nothing changed$", seen[-1]), seen

    try:
        out, err = signal_child(p, signal.SIGTERM, says_it_waits)
    finally:
        holder.rollback()
        holder.close()
    assert p.returncode == 130, out + err
    assert "Traceback" not in err
    assert ("aami-tui: restore cancelled (terminated (SIGTERM)): pg_restore and psql were stopped and the server rolled the restore's "
            f"transaction back (its session is gone). Nothing of the backup was restored and nothing was dropped: "
            f"{fresh_db.dbname} is as it was before the restore.") in err, err
    # fresh6 F9: the headless way to restore again, not the console's keys
    dump = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0].path
    assert f"restore again (aami-tui restore {dump} --yes)" in err and "dashboard" not in out + err, err
    assert "Final state: cancelled (exit 130)" in out, out
    assert catalog_fingerprint(fresh_db) == before and tool_sessions(fresh_db) == []
    reports = [json.loads(x.read_text()) for x in (tmp_path / "reports").glob("restore_*.json")]
    assert sorted(d["outcome"] for d in reports) == ["cancelled", "refused"]  # (the refusal at the lock: exit 7)

    r = cli(*args, "--yes", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✓ Restored backup_" in r.stdout and "dropped (created after the backup): table public.made_later" in \
        r.stdout, r.stdout
    assert "made_later" not in {row[1] for row in catalog_fingerprint(fresh_db)}
    assert ("The Config Server refuses to start until the migration is applied again (aami-tui apply)."
            in r.stdout and "dashboard" not in r.stdout), r.stdout


def test_backups_are_ordered_and_dated_by_when_they_were_taken_not_by_the_file_s_mtime(pg_server, fresh_db,
                                                                                        tmp_path):
    """fresh5 F1: a backup copied back (cp, rsync without -t) has a new mtime; it was listed first and the restore's
    confirmation said it was 'taken 4 seconds ago', understating what the restore loses. The list, its order and
    both faces' words take the time recorded in the metadata (taken_at), else the file name's stamp, else the
    file's mtime, and say which when it is not the recorded one."""
    import os
    import shutil
    from datetime import timedelta

    asyncio.run(take_verified_backup(fresh_db, tmp_path / "src"))
    (dump,) = (tmp_path / "src").glob("backup_*.dump")
    meta = json.loads(dump.with_name(dump.name + ".json").read_text())
    bdir = tmp_path / "backups"
    bdir.mkdir()
    base = datetime.now().astimezone().replace(microsecond=0) - timedelta(days=1)
    made = {}
    for minutes, with_meta in ((0, False), (2, True), (3, True), (4, True)):
        when = base + timedelta(minutes=minutes)
        p = bdir / f"backup_{fresh_db.dbname}_{when:%Y%m%d_%H%M%S}.dump"
        shutil.copy(dump, p)
        shutil.copy(dump.with_name(dump.name + ".sha256"), p.with_name(p.name + ".sha256"))
        if with_meta:
            p.with_name(p.name + ".json").write_text(json.dumps({**meta, "taken_at": when.isoformat()}))
        os.utime(p, (when.timestamp(), when.timestamp()))
        made[minutes] = (p, when)
    copied = made[3][0]
    os.utime(copied)  # copied back from archive storage: its mtime is now
    found = pgtools.list_backups(bdir, fresh_db.dbname)
    assert [e.path for e in found] == [made[m][0] for m in (4, 3, 2, 0)], [e.path.name for e in found]
    assert [(e.taken, e.taken_from) for e in found] == [
        (made[4][1].timestamp(), "recorded"), (made[3][1].timestamp(), "recorded"),
        (made[2][1].timestamp(), "recorded"), (made[0][1].timestamp(), "file name")]

    env = pg_server.env(fresh_db.dbname)
    args = ("restore", "--backup-dir", str(bdir), "--reports-dir", str(tmp_path / "reports"))
    r = cli(*args, env=env)  # the newest taken, not the newest copied
    assert r.returncode == 6, r.stdout + r.stderr
    # fresh6 F9: local time with its zone, and the age
    assert f"Backup: {made[4][0]} (" in r.stdout and f"taken {made[4][1]:%Y-%m-%d %H:%M:%S %Z}, a day ago" in \
        r.stdout, r.stdout
    stray = tmp_path / "mine.dump"  # no metadata, no stamp in its name: only the file's time, and it says so
    shutil.copy(dump, stray)
    r = cli("restore", str(stray), *args[1:], env=env)
    assert r.returncode == 6, r.stdout + r.stderr
    assert "by the file's modification time" in r.stdout and "no metadata beside it" in r.stdout, r.stdout
    assert (f"no metadata beside it: its archive header says it is a dump of database {fresh_db.dbname}, the server "
            "it came from is not recorded") in r.stdout, r.stdout


def test_a_backup_of_another_database_is_refused_before_anything_runs(pg_server, fresh_db, db_factory, tmp_path):
    """fresh6 F1: `restore --dbname arch backup_rt_….dump --yes` restored rt's backup into arch (exit 0), dropping
    arch's tables as "created after the backup". A backup whose metadata, or (without metadata) whose archive
    header, names another database is refused (exit 3) with one sentence naming both; nothing runs. The console's
    path (core restore) refuses it too."""
    import shutil

    other = db_factory("aami_rt")
    run_sql(other, "CREATE TABLE app_keep (id int)")
    run_sql(fresh_db, "CREATE TABLE namespaces_like (id int); INSERT INTO namespaces_like VALUES (1), (2)")

    asyncio.run(take_verified_backup(other, tmp_path / "backups"))
    (dump,) = (tmp_path / "backups").glob("backup_*.dump")
    before = catalog_fingerprint(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    args = ("--reports-dir", str(tmp_path / "reports"))
    for extra in ((), ("--yes",)):
        r = cli("restore", str(dump), *args, *extra, env=env)
        assert r.returncode == 3, r.stdout + r.stderr
        assert (f"aami-tui: {dump.name} is a backup of {other.dbname} on {other.host}:{other.port}, not of "
                f"{fresh_db.dbname}") in r.stderr, r.stderr
        assert "Restoring" not in r.stdout and "Created after it" not in r.stdout, r.stdout
        assert catalog_fingerprint(fresh_db) == before
    entry = pgtools.backup_entry(dump)
    with pytest.raises(core_restore.RestoreError, match=f"is a backup of {other.dbname} "):
        asyncio.run(core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports"))
    assert catalog_fingerprint(fresh_db) == before

    bare = tmp_path / "bare.dump"  # no metadata beside it: its archive header still names the database dumped
    shutil.copy(dump, bare)
    r = cli("restore", str(bare), *args, "--yes", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert (f"aami-tui: bare.dump is a dump of database {other.dbname} (its archive header says so; no metadata "
            f"beside it), not of {fresh_db.dbname}") in r.stderr, r.stderr
    assert catalog_fingerprint(fresh_db) == before


def test_the_restore_s_step_marks_change_nothing_of_the_script_and_never_go_inside_copy_data():
    """fresh7 N5: psql says each step as the server reaches it (a SELECT put before it). Cut anywhere, the script
    with its marks taken out is the script; COPY data that looks like pg_restore's own lines (a TOC entry's block,
    a DROP) is passed untouched, and a statement still open (a function body) gets no mark."""
    block = "\n--\n-- TOC entry 9 (class 1259 OID 9)\n-- Name: t; Type: TABLE; Schema: public; Owner: o\n--\n\n"
    script = ("SET lock_timeout = 0;\n\\restrict k\n\n"
              "DROP INDEX IF EXISTS public.i;\nALTER TABLE IF EXISTS ONLY public.t DROP CONSTRAINT IF EXISTS t_pkey;\n"
              "DROP TABLE IF EXISTS public.t;\n" + block + "CREATE TABLE public.t (x text);\n"
              "CREATE FUNCTION public.f() RETURNS int AS $$\nSELECT 1;\n" + block + "$$ LANGUAGE sql;\n"
              + block.replace("-- Name", "-- Data for Name").replace("TABLE;", "TABLE DATA;")
              + "COPY public.t (x) FROM stdin;\n--\nDROP TABLE x;\n" + block.strip("\n") + "\n\\.\n\n"
              + block.replace("Name: t; Type: TABLE", "Name: t t_pkey; Type: CONSTRAINT")
              + "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (x);\n\\unrestrict k\n")
    for size in (1, 2, 3, 5, 7, 64, 1 << 16):
        steps = core_restore.ScriptSteps(creating=3)
        marked = b"".join(steps.feed(script[i:i + size].encode()) for i in range(0, len(script), size))
        marked += steps.flush()
        assert re.sub(rb"SELECT 'aami-tui-restore-step:\d+';\n", b"", marked) == script.encode(), size
        assert steps.words == ["dropping INDEX public.i", "dropping CONSTRAINT t_pkey on public.t",
                               "dropping TABLE public.t", 'creating TABLE "public.t"',
                               'processing data for table "public.t"', 'creating CONSTRAINT "public.t t_pkey"'], size
        assert steps.total == 6
        assert b"SELECT 'aami-tui-restore-step:5';\n-- Data for Name: t;" in marked


def test_a_truncated_backup_and_a_directory_that_is_no_backup_are_named_as_such(pg_server, fresh_db, tmp_path):
    """fresh8 R4: `head -c 400 backup.dump > trunc.dump` (no .sha256 beside it) was refused as a backup 'the newest
    pg_restore here … cannot read (… end of file). Install pg_restore 15 or newer', and `restore /tmp` said 'Cannot
    read /tmp: No such file or directory'. Both are refused (exit 3, nothing run) with what they are."""
    run_sql(fresh_db, "CREATE TABLE app_keep (id int); INSERT INTO app_keep SELECT generate_series(1, 50)")
    asyncio.run(take_verified_backup(fresh_db, tmp_path / "backups"))
    (dump,) = (tmp_path / "backups").glob("backup_*.dump")
    trunc = tmp_path / "trunc.dump"
    trunc.write_bytes(dump.read_bytes()[:400])
    (tmp_path / "empty").mkdir()
    before = catalog_fingerprint(fresh_db)
    env = pg_server.env(fresh_db.dbname)
    r = cli("restore", str(trunc), "--yes", "--reports-dir", str(tmp_path / "reports"), env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "aami-tui: trunc.dump is truncated or damaged (400 bytes" in r.stderr, r.stderr
    assert "Take another backup" in r.stderr and "Install pg_restore" not in r.stderr, r.stderr
    for d in (tmp_path / "empty", tmp_path / "backups"):
        r = cli("restore", str(d), "--yes", "--reports-dir", str(tmp_path / "reports"), env=env)
        assert r.returncode == 3, r.stdout + r.stderr
        assert (f"aami-tui: {d} is a directory that is not a pg_dump directory-format backup (no toc.dat in it)"
                in r.stderr), r.stderr
        assert "No such file" not in r.stderr, r.stderr
    assert catalog_fingerprint(fresh_db) == before
def _ghost_standby_backup(fresh_db, tmp_path) -> pgtools.BackupEntry:
    """A verified backup of fresh_db, then a table made after it (the restore drops it)."""
    run_sql(fresh_db, "CREATE TABLE site_notes (id int PRIMARY KEY, note text); INSERT INTO site_notes VALUES (1, 'a')")
    asyncio.run(take_verified_backup(fresh_db, tmp_path / "backups"))
    run_sql(fresh_db, "CREATE TABLE made_later (id int)")
    return pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]


def test_headless_restore_whose_commit_waits_for_a_ghost_standby_says_so_and_a_sigterm_leaves_it_primary_only(
        pg_server, fresh_db, tmp_path):
    """fresh8 R1: synchronous_standby_names names a standby that is not connected. The restore's COMMIT commits locally
    and waits on SyncRep for ever: it said nothing before (apply's pre-flight warns), nothing while it waited (the
    last step's line for minutes), and after SIGTERM 'the restore is complete' / 'Final state: restored (exit 0)'
    with no word of the standby. Now apply's words: the warning before restoring, the wait while it lasts, and the
    outcome 'committed on the primary only, NOT confirmed on the synchronous standby' (words, final state, report)."""
    import os
    import signal
    import threading

    from faults import commit_never_answered, spawn_cli, tool_sessions, wait_until

    entry = _ghost_standby_backup(fresh_db, tmp_path)
    env = pg_server.env(fresh_db.dbname)
    args = ("restore", "--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports"), "--yes")
    seen: list[str] = []
    with commit_never_answered(pg_server, fresh_db):
        p = spawn_cli(*args, env=env)
        reader = threading.Thread(target=lambda: seen.extend(p.stdout), daemon=True)  # (a bounded wait below)
        reader.start()

        def waits_on_syncrep() -> None:
            wait_until(lambda: bool(query_syncrep(fresh_db)), 30, what="the restore's COMMIT to wait on SyncRep")
            wait_until(lambda: any("waiting for the synchronous standby" in s for s in seen), 10,
                       what="the restore to say it waits on SyncRep")

        try:
            waits_on_syncrep()
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
            err = p.stderr.read()
            p.wait(30)
            reader.join(10)
    out = "".join(seen)
    assert p.returncode == 0, out + err
    assert "Traceback" not in err
    # before restoring: apply's pre-flight warning, in the restore's words
    assert ("  ! Synchronous standby: COMMIT waits for 1 synchronous standby (synchronous_standby_names = 'never', "
            "synchronous_commit = on), and 0 are connected as synchronous (pg_stat_replication): the restore's COMMIT "
            "will hang waiting for it (wait_event SyncRep)") in out, out
    # while it waits
    assert re.search(r"^  restore: COMMIT: committed locally, waiting for the synchronous standby 'never' \(wait_event "
                     r"SyncRep, \d+s\); ", out, re.M), out
    assert "the restore is complete" not in err, err
    assert ("aami-tui: restore cancelled (terminated (SIGTERM)) while its COMMIT waited for the synchronous standby: "
            "the restore is committed on the primary only, NOT confirmed on the synchronous standby named by "
            "synchronous_standby_names = 'never': the COMMIT waited for it (wait_event SyncRep) and that wait was "
            "ended (") in err, err
    assert "a failover now can lose the restore" in err, err
    assert ("Final state: restored (exit 0: committed on the primary only: NOT confirmed on the synchronous standby "
            "(a failover now can lose it))") in out, out
    assert "made_later" not in {row[1] for row in catalog_fingerprint(fresh_db)}  # committed (locally)
    assert tool_sessions(fresh_db) == []
    (data,) = [json.loads(x.read_text()) for x in (tmp_path / "reports").glob("restore_*.json")]
    assert data["outcome"] == "restored" and data["backup"] == str(entry.path.resolve())
    assert data["not_confirmed_on_standby"].startswith("committed on the primary only, NOT confirmed on the "
                                                       "synchronous standby named by synchronous_standby_names = "
                                                       "'never'"), data
    md = next((tmp_path / "reports").glob("restore_*.md")).read_text().splitlines()
    assert "NOT confirmed on the synchronous standby" in md[0]
    # fresh9 F6: the cancel's sentence is a note of a restore that is restored, not its error
    assert data["error"] is None and data["note"].startswith("cancelled (terminated (SIGTERM)) while its COMMIT"), data
    assert not [x for x in md if x.startswith("- error:")] and [x for x in md if x.startswith("- note: cancelled")], md
    # fresh9 F6: the cancel's words beside the standby's warning no longer promise 'nothing is committed'
    assert (f"Restoring into {fresh_db.dbname} in one transaction (SIGINT, SIGTERM or SIGHUP cancels: nothing is "
            "committed before the COMMIT; once the COMMIT waits for the synchronous standby, a cancel leaves the "
            "restore committed on the primary only, as warned above)…") in out, out


def test_headless_restore_s_commit_timeout_ends_its_wait_for_a_ghost_standby(pg_server, fresh_db, tmp_path):
    """Known-left: apply --yes bounds its COMMIT (--commit-timeout, 60 s by default: past it the wait for a synchronous
    standby is ended, committed on the primary only, and said), but restore --yes waited for the standby for ever:
    a CI job or a script restoring on a server whose standby has gone never ended. It has --commit-timeout too."""
    from faults import commit_never_answered, tool_sessions

    _ghost_standby_backup(fresh_db, tmp_path)
    with commit_never_answered(pg_server, fresh_db):
        r = cli("restore", "--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports"),
                "--yes", "--commit-timeout", "3", env=pg_server.env(fresh_db.dbname), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^  restore: COMMIT: committed locally, waiting for the synchronous standby 'never' \(wait_event "
                     r"SyncRep, \d+s\); the standby, --commit-timeout \(3s\) or a cancel \(SIGINT, SIGTERM, SIGHUP\) ends this "
                     r"wait; either of the last two leaves the restore committed on the primary only", r.stdout,
                     re.M), r.stdout
    assert ("(wait_event SyncRep) until the standby connects, or --commit-timeout (3s) or a cancel ends the wait, "
            "leaving the restore committed on the primary only, NOT on the standby") in r.stdout, r.stdout
    assert ("aami-tui: restore ended by --commit-timeout (3s) while its COMMIT waited for the synchronous standby: the "
            "restore is committed on the primary only, NOT confirmed on the synchronous standby named by "
            "synchronous_standby_names = 'never'") in r.stderr, r.stderr
    assert ("Final state: restored (exit 0: committed on the primary only: NOT confirmed on the synchronous standby "
            "(a failover now can lose it))") in r.stdout, r.stdout
    assert "made_later" not in {row[1] for row in catalog_fingerprint(fresh_db)}  # committed (locally)
    assert tool_sessions(fresh_db) == []
    (data,) = [json.loads(x.read_text()) for x in (tmp_path / "reports").glob("restore_*.json")]
    assert data["outcome"] == "restored" and data["note"].startswith("ended by --commit-timeout (3s) while"), data


def test_headless_restore_says_its_commits_syncrep_wait_in_full_once_then_briefly_every_30s(monkeypatch, capsys):
    """fresh9 F6: the ~280-character SyncRep line came every 4 s (15 lines a minute in a CI log); now it is said
    in full once, then as a short line every 30 s, as apply's silence line; a lock wait keeps its 4 s lines."""
    from aami_tui import headless_restore

    clock = [100.0]
    monkeypatch.setattr(headless_restore.time, "monotonic", lambda: clock[0])
    _, on_wait = headless_restore._printers()
    for t in range(0, 61):
        clock[0] = 100.0 + t
        on_wait(f"COMMIT: committed locally, waiting for the synchronous standby 'never' (wait_event SyncRep, {t}s); "
                "only the standby or a cancel (SIGINT, SIGTERM, SIGHUP) ends this wait; a cancel leaves …")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["  restore: COMMIT: committed locally, waiting for the synchronous standby 'never' (wait_event "
                     "SyncRep, 0s); only the standby or a cancel (SIGINT, SIGTERM, SIGHUP) ends this wait; a cancel "
                     "leaves …",
                     "  restore: COMMIT: committed locally, waiting for the synchronous standby 'never' (wait_event "
                     "SyncRep, 30s)",
                     "  restore: COMMIT: committed locally, waiting for the synchronous standby 'never' (wait_event "
                     "SyncRep, 60s)"], lines


def query_syncrep(settings) -> list:
    from faults import query

    return query(settings, "SELECT pid FROM pg_stat_activity WHERE application_name = 'aami-tui' "
                           "AND wait_event = 'SyncRep'")


@pytest.mark.parametrize("ender", ["escape", "SIGTERM", "quit", "pg_terminate_backend", "pg_cancel_backend"])
async def test_restore_cancelled_while_its_commit_waits_on_syncrep_is_asked_and_said_as_committed_locally(
        pg_server, fresh_db, tmp_path, ender):
    """fresh8 R1, the console's words (core): while the COMMIT waits on SyncRep the restore's wait words say so
    (the console's progress line), and escape's prompt no longer promises 'left exactly as it was … nothing is
    dropped': the restore is already committed locally. Another session ending psql's backend there
    (pg_terminate_backend) made psql fail, and the restore said 'stopped at an error and was rolled back' although
    the server had committed it: now it asks the server, and says restored on the primary only. Another session
    cancelling that wait (pg_cancel_backend) makes COMMIT answer as if all went well, with only a WARNING: it said
    'Restored' with no word of the standby; now the words and the report say primary only."""
    from faults import commit_never_answered, query, terminate, wait_until

    entry = await asyncio.to_thread(_ghost_standby_backup, fresh_db, tmp_path)
    waits: list[str] = []
    with commit_never_answered(pg_server, fresh_db):
        plan = await core_restore.plan(fresh_db, entry)
        assert plan.standby is not None and "the restore's COMMIT will hang waiting for it" in plan.standby.detail
        assert "left exactly as it was" in core_restore.cancel_prompt(fresh_db.dbname)
        r = core_restore.RestoreResult(entry.path)
        task = asyncio.create_task(core_restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports",
                                                        expected=plan, result=r, on_wait=waits.append))
        await asyncio.to_thread(wait_until, lambda: r.syncrep is not None, 30, 0.05, "the watch to see SyncRep")
        assert any(w.startswith("COMMIT: committed locally, waiting for the synchronous standby 'never' (wait_event "
                                "SyncRep, ") for w in waits), waits
        prompt = core_restore.cancel_prompt(fresh_db.dbname, r)
        assert "left exactly as it was" not in prompt and "nothing is dropped" not in prompt, prompt
        assert prompt.startswith("The restore is already committed locally: its COMMIT waits for the synchronous "
                                 "standby 'never' (wait_event SyncRep)"), prompt
        if ender in ("escape", "SIGTERM", "quit"):
            if ender == "SIGTERM":  # the console's ending signal (app._end_on_signal): noted, then the cancel
                r.signals.append(15)
            elif ender == "quit":  # q's "Cancel the restore and quit" (app._cancel_restore_and_exit)
                r.closing = True
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
        elif ender == "pg_terminate_backend":
            await asyncio.to_thread(terminate, fresh_db, r.backend_pid)
            await asyncio.wait_for(task, 20)  # not "stopped at an error and was rolled back"
        else:
            await asyncio.to_thread(query, fresh_db, "SELECT pg_cancel_backend(%s)", (r.backend_pid,))
            await asyncio.wait_for(task, 20)
    assert r.outcome == "restored" and r.primary_only, (r.outcome, r.error)
    assert r.primary_only.startswith("committed on the primary only, NOT confirmed on the synchronous standby named "
                                     "by synchronous_standby_names = 'never'"), r.primary_only
    if ender == "escape":
        assert "press F5 on the dashboard to see" in r.error, r.error
    elif ender == "quit":  # the console is gone once the shell reads this: no dashboard to press F5 on
        assert "press F5" not in r.error and f"run aami-tui check --dbname {fresh_db.dbname} to see" in r.error
    elif ender == "SIGTERM":
        # fresh9 F5: the shell got "terminated (SIGTERM): nothing was left open." above it, the sentence sent the
        # DBA to a dashboard that was gone, and the console exited 143 while the restore's report says exit 0
        from types import SimpleNamespace

        from aami_tui.ui.app import closing_lines, signal_exit_code

        assert "press F5" not in r.error and f"run aami-tui check --dbname {fresh_db.dbname} to see" in r.error
        app = SimpleNamespace(runbook=None, ending_signal=15, quit_rolled_back=False, restore_result=r,
                              embedded=None, options=SimpleNamespace(dev=False))
        lines = closing_lines(app)
        assert not any("nothing was left open" in ln for ln in lines), lines
        assert lines[0].startswith("aami-tui: restore cancelled (terminated (SIGTERM)) while its COMMIT waited for "
                                   "the synchronous standby: the restore is committed on the primary only"), lines
        assert "do not fail over" in lines[0] and signal_exit_code(app, 15) == 0
    else:
        assert r.error is None and r.validation is not None, r.error
        assert ("psql's session was ended by another session" if ender == "pg_terminate_backend" else
                "that wait was ended (the server: canceling ") in r.primary_only, r.primary_only
        assert r.validation is not None and "made_later" not in {row[1] for row in catalog_fingerprint(fresh_db)}
    data = json.loads(r.report.with_suffix(".json").read_text())
    assert data["outcome"] == "restored" and data["not_confirmed_on_standby"] == r.primary_only
