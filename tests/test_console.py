"""The console, driven with Pilot against a real PostgreSQL, as a person would use it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from conftest import MIGRATION, catalog_fingerprint, run_sql
from psycopg import sql

from aami_tui.core import pgtools
from aami_tui.core.runbook import Options, State, Step, Tx
from aami_tui.ui import scenes
from aami_tui.ui.app import create_app

SIZE = (120, 36)


def make_app(settings, tmp_path: Path, **kw):
    opts = Options(backup_dir=tmp_path / "backups", reports_dir=tmp_path / "reports", **kw.pop("options", {}))
    return create_app(settings, options=opts, refresh_interval=0.5, **kw)


def our_sessions(settings) -> list[tuple]:
    with psycopg.connect(settings.conninfo(application_name="probe"), autocommit=True) as c:
        return c.execute("SELECT pid, state FROM pg_stat_activity WHERE application_name = 'aami-tui' "
                         "AND datname = current_database()").fetchall()


def text_of(app, selector: str) -> str:
    """The widget's text; "" while it is not there (the dashboard's left column comes right after its first frame)."""
    found = app.screen.query(selector)
    if not found:
        return ""
    r = found.first().render()
    return getattr(r, "plain", str(r))


async def test_whole_runbook_to_commit(fresh_db, db_factory, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        assert "0 / 10 present" in text_of(app, "#checklist-header")
        await scenes.walk_to(pilot, Step.VERIFY)
        rb = app.runbook
        assert rb.tx == Tx.OPEN
        # Until COMMIT another session sees nothing.
        assert not any(r[0] == "rel" for r in catalog_fingerprint(fresh_db))
        assert "10 / 10 present" in text_of(app, "#rb-checklist #checklist-header")
        assert "UNCOMMITTED" in text_of(app, "#rb-checklist #checklist-header")
        preview = await rb.preview()  # the transaction's own rows count, before any ANALYZE
        assert {t.name: t.est_rows for t in preview.tables}["alert_templates"] == 6
        await scenes.open_commit_modal(pilot)
        await pilot.press("enter")  # an empty confirmation never commits
        await pilot.pause()
        assert rb.tx == Tx.OPEN
        await pilot.press(*"wrong", "enter")  # refused inside the dialog (a toast would sit behind it)
        await pilot.pause()
        assert rb.tx == Tx.OPEN and getattr(app.screen, "id", None) == "commit-modal"
        assert f"'wrong' is not '{fresh_db.dbname}'" in text_of(app, "#confirm-error")
        await pilot.press(*["backspace"] * 5)
        await pilot.pause()
        assert text_of(app, "#confirm-error") == ""
        await scenes.commit(pilot, fresh_db.dbname, typed=True)  # key by key here; other tests paste it
        assert rb.steps[Step.COMMIT].state == State.DONE
        done = text_of(app, "#done-text")
        assert "✓ Database schema validation successful - all required tables exist" in done
        assert f"DB_NAME={fresh_db.dbname}" in done and "DB_HOST=" in done
        assert fresh_db.password not in done if fresh_db.password else True
    tables = [r for r in catalog_fingerprint(fresh_db) if r[0] == "rel" and r[2] == "r"]
    assert len(tables) == 10
    assert our_sessions(fresh_db) == []
    # The backup restores, the report exists.
    assert rb.backup and rb.backup.verified
    meta = json.loads(rb.backup.dump_path.with_name(rb.backup.dump_path.name + ".json").read_text())
    assert meta["dbname"] == fresh_db.dbname and meta["sha256"] == rb.backup.sha256
    entry = pgtools.list_backups(tmp_path / "backups", fresh_db.dbname)[0]
    assert entry.source_label() == f"{fresh_db.dbname} on {fresh_db.host}:{fresh_db.port}" and entry.matches()
    other = db_factory("restored")
    await pgtools.run_restore(rb.restore_tool, other, rb.backup.dump_path)  # raises if it does not restore
    md, js = rb.report_paths
    data = json.loads(js.read_text())
    assert data["final_state"] == "committed" and data["backup"]["toc_entries"] == rb.backup.toc_entries
    assert [s["tag"] for s in data["statements"]][-1] == "INSERT 0 6"
    assert oct(md.stat().st_mode & 0o777) == "0o600"


async def test_runbook_to_rollback_leaves_database_unchanged(fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.keepme (id int); INSERT INTO app_data.keepme VALUES (1)")
    before = catalog_fingerprint(fresh_db)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.VERIFY)
        await pilot.press("x")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "rollback-modal")
        await pilot.press("enter")  # focus is on Cancel: enter keeps the transaction
        await pilot.pause()
        assert app.runbook.tx == Tx.OPEN
        await pilot.press("x")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "rollback-modal")
        await pilot.press("tab", "enter")
        await scenes.wait_for(pilot, lambda: app.runbook.tx == Tx.ROLLED_BACK, what="rollback")
        await pilot.pause()
        # at once, not at the lock watch's next tick: an ended transaction holds no locks
        assert text_of(app, "#lockwatch").startswith("No migration transaction open"), text_of(app, "#lockwatch")
        await scenes.wait_for(pilot, lambda: "1 / 10" not in text_of(app, "#rb-checklist #checklist-header")
                              and "UNCOMMITTED" not in text_of(app, "#rb-checklist #checklist-header"))
    assert catalog_fingerprint(fresh_db) == before
    assert our_sessions(fresh_db) == []


async def test_error_at_statement_n_changes_nothing_and_is_shown(fresh_db, tmp_path):
    text = MIGRATION.read_text()
    bad = text.replace("CREATE TABLE IF NOT EXISTS exporters (",
                       "SELECT no_such_column FROM namespaces;\n\nCREATE TABLE IF NOT EXISTS exporters (", 1)
    path = tmp_path / "broken.sql"
    path.write_text(bad)
    before = catalog_fingerprint(fresh_db)
    app = make_app(fresh_db, tmp_path, migration_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.BEGIN)
        await scenes.next_step(pilot)  # apply: fails
        rb = app.runbook
        assert rb.steps[Step.APPLY].state == State.FAILED and rb.tx == Tx.ABORTED
        err = text_of(app, "#apply-error")
        assert 'column "no_such_column" does not exist' in err
        line = bad[: bad.index("SELECT no_such_column")].count("\n") + 1
        assert f"line {line}" in err
        # The only way on is ROLLBACK: next step and COMMIT refuse.
        assert not rb.can(Step.VERIFY)[0] and not rb.can(Step.COMMIT)[0]
        await pilot.press("x")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "rollback-modal")
        await pilot.press("tab", "enter")
        await scenes.wait_for(pilot, lambda: rb.tx == Tx.ROLLED_BACK)
    assert catalog_fingerprint(fresh_db) == before


async def test_restore_from_backup_through_the_console(fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.precious (id int);"
                      "INSERT INTO app_data.precious SELECT generate_series(1, 50)")
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.VERIFY)
        await scenes.commit(pilot, fresh_db.dbname)
    run_sql(fresh_db, "DELETE FROM app_data.precious WHERE id > 10")  # the damage after the migration
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("b")
        await scenes.wait_for(pilot, lambda: app.screen.id == "restore" and app.screen.entries)
        await scenes.wait_for(pilot, lambda: list(app.screen.checks.values()) == [True], what="sha256 check")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal")
        # The confirmation says what the one transaction drops: what the migration created after the backup.
        body = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "dropped in the same transaction: 10 tables (alert_rules: 0 rows, " in body, body
        assert "alert_templates: 6 rows" in body and "extension uuid-ossp" in body, body
        await scenes.paste(pilot, fresh_db.dbname)
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: app.screen.id == "restore" and app.screen.result is not None,
                              what="restore")
        screen = app.screen
        assert len(screen.result.not_in_backup) == 10 and len(screen.result.dropped) == 11  # ten tables, uuid-ossp
        # A backup from before the migration: said plainly, not the server's "Missing tables … psql" alarm.
        said = " ".join(text_of(app, "#restore-status").split())
        assert "The database is back to its state before the migration: none of the 10 required tables" in said
        assert "psql" not in said and "Missing" not in said, said
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM app_data.precious").fetchone()[0] == 50
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname='public'").fetchone()[0] == 0
    assert list((tmp_path / "reports").glob("restore_*.md"))


async def test_quit_with_open_transaction_asks_then_rolls_back(fresh_db, tmp_path):
    before = catalog_fingerprint(fresh_db)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.APPLY)
        for key in ("q", "ctrl+c"):
            await pilot.press(key)
            await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "quit-modal")
            await pilot.press("enter")  # focus on "Stay"
            await pilot.pause()
            assert app.runbook.tx == Tx.OPEN and app.is_running
        await pilot.press("q")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "quit-modal")
        await pilot.press("tab", "enter")
        await scenes.wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.runbook.outcome.value == "rolled back"
    assert catalog_fingerprint(fresh_db) == before
    assert our_sessions(fresh_db) == []
    from aami_tui.ui.app import closing_lines  # the shell is told, not only the report (it ended quietly)

    assert closing_lines(app)[-1] == "aami-tui: quit: the migration transaction was rolled back; nothing it applied is kept."


async def test_next_step_refuses_until_checklist_ticked(fresh_db, tmp_path):
    # A run killed earlier (kill -9) left its report open: the console says so as it starts (fresh5 F12).
    import socket
    import subprocess

    from aami_tui.core import report

    def toasts(app) -> list[str]:
        return [str(n.message) for n in app._notifications]

    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "reports").mkdir(mode=0o700)
    (tmp_path / "reports" / f"report_x_1{report.MARK_SUFFIX}").write_text(json.dumps({
        "pid": gone.pid, "host": socket.gethostname(), "database": fresh_db.dbname, "report": "/r/report_x_1.md",
        "started": "2026-11-28T04:20:00+00:00", "last_entry": "04:22", "last_step": "Apply: done (43 statements)",
        "transaction": "transaction open", "fate": "a transaction was open: the server rolled it back"}))
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.wait_for(pilot, lambda: any("ended without closing" in t for t in toasts(app)),
                              what="the word about the killed run")
        said = next(t for t in toasts(app) if "ended without closing" in t)
        assert "Apply: done (43 statements)" in said and "/r/report_x_1.md" in said and "rolled it back" in said
        await scenes.open_runbook(pilot)
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is app.runbook_screen  # no confirmation: the checklist is not complete
        assert app.runbook.steps[Step.PREFLIGHT].state == State.PENDING
        assert app.screen.focused is not None and app.screen.focused.id == "tick-review"
        await pilot.press("c")  # COMMIT is refused long before it could matter
        await pilot.pause()
        assert app.screen is app.runbook_screen


async def test_missing_database_is_offered_and_created(pg_server, tmp_path):
    name = "aami_created_by_console"
    settings = pg_server.settings(name)
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    try:
        app = make_app(settings, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal",
                                  what="the offer to create the database")
            assert "does not exist" in text_of(app, "#confirm-body")
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: app.dashboard.last_result is not None, what="refresh")
            assert "0 / 10 present" in text_of(app, "#checklist-header")
    finally:
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_dashboard_refreshes_by_itself_and_survives_a_killed_session(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        run_sql(fresh_db, "CREATE TABLE namespaces (id int)")
        await scenes.wait_for(pilot, lambda: "1 / 10 present" in text_of(app, "#checklist-header"),
                              what="the poll to see the new table")
        pid = app.dashboard.conn.info.backend_pid
        run_sql(fresh_db, f"SELECT pg_terminate_backend({pid})")
        await scenes.wait_for(pilot, lambda: app.dashboard.query_one("#connection").error is not None
                              or app.dashboard.conn is None or app.dashboard.conn.info.backend_pid != pid,
                              what="the loss to be noticed")
        run_sql(fresh_db, "CREATE TABLE groups (id int)")
        await scenes.wait_for(pilot, lambda: "2 / 10 present" in text_of(app, "#checklist-header"), 15,
                              what="reconnect and refresh")


@pytest.mark.parametrize("size", [(80, 24), (40, 12)])
async def test_small_terminals_are_usable_or_say_so(fresh_db, tmp_path, size):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=size) as pilot:
        await scenes.dashboard_ready(pilot)
        warning = text_of(app, "#small-warning")
        if size == (40, 12):
            assert "too small" in warning and "enlarge" in warning
        else:
            assert warning == ""
        await scenes.open_runbook(pilot)
        await scenes.tick_all(pilot)
        await scenes.next_step(pilot)
        assert app.runbook.steps[Step.PREFLIGHT].state == State.DONE
        await pilot.press("q")
        await scenes.wait_for(pilot, lambda: not app.is_running)


async def test_back_to_dashboard_and_return_keeps_the_runbook(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.BEGIN)
        log_lines = len(app.runbook_screen.query_one("#log").lines)
        await pilot.press("d")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard)
        assert "transaction is open" in text_of(app, "#dash-hint")
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: app.screen is app.runbook_screen, what="the same runbook screen")
        assert len(app.screen.query_one("#log").lines) >= log_lines  # its log and state are kept
        await scenes.next_step(pilot)  # apply, from the returned screen
        assert app.runbook.steps[Step.APPLY].state == State.DONE
        assert "43 / 43" in text_of(app, "#apply-line") or app.runbook.statements[-1].tag == "INSERT 0 6"


async def test_idle_in_transaction_clock_is_not_reset_by_the_console(fresh_db, tmp_path):
    """The checklists must not poll the migration connection: the server's idle clock has to run."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.VERIFY)
        pid = app.runbook.backend_pid
        await scenes.settle(pilot, 2.2)  # four refresh intervals (0.5 s) and two lock-watch ticks (1 s)
        with psycopg.connect(fresh_db.conninfo(application_name="probe"), autocommit=True) as c:
            state, idle = c.execute("SELECT state, extract(epoch FROM now() - state_change) FROM pg_stat_activity "
                                    "WHERE pid = %s", (pid,)).fetchone()
        assert state == "idle in transaction" and idle > 2.0
        w = await app.runbook.lock_watch()
        assert w.idle_for is not None and w.idle_for > 2.0


async def test_resizing_updates_the_small_terminal_warning(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(40, 12)) as pilot:
        await scenes.dashboard_ready(pilot)
        assert "40×12 is too small" in text_of(app, "#small-warning")
        await pilot.resize_terminal(120, 36)
        await scenes.wait_for(pilot, lambda: text_of(app, "#small-warning") == "", what="warning gone")
        await pilot.resize_terminal(50, 14)
        await scenes.wait_for(pilot, lambda: "50×14 is too small" in text_of(app, "#small-warning"))


async def start_the_backup(pilot) -> None:
    """From the dashboard: the runbook, its ticks, pre-flight, then the backup confirmed (and left running)."""
    app = pilot.app
    await scenes.dashboard_ready(pilot)
    await scenes.open_runbook(pilot)
    await scenes.tick_all(pilot)
    await scenes.next_step(pilot)  # pre-flight
    await pilot.press("n")
    await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal")
    await pilot.press("enter")


async def test_ctrl_c_during_a_running_backup_cancels_it_and_quits(fresh_db, tmp_path):
    """Ctrl+C while pg_dump is busy (waiting on a lock another session holds): the console quits at once,
    pg_dump is stopped, its partial files are removed, and no session of ours is left."""
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int)")
    holder = psycopg.connect(fresh_db.conninfo(application_name="holder"))
    try:
        holder.execute("LOCK TABLE app_data.notes IN ACCESS EXCLUSIVE MODE")  # pg_dump waits on it
        app = make_app(fresh_db, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await start_the_backup(pilot)
            await scenes.wait_for(pilot, lambda: app.runbook.steps[Step.BACKUP].state == State.RUNNING
                                  and list((tmp_path / "backups").glob("backup_*.dump")), what="pg_dump running")
            await pilot.press("ctrl+c")
            await scenes.wait_for(pilot, lambda: not app.is_running, what="exit")
        assert list((tmp_path / "backups").glob("*.dump")) == []
        assert list((tmp_path / "backups").glob("*.sql")) == []
        assert app.runbook.backup is None
    finally:
        holder.close()
    await scenes_wait_gone(fresh_db)


async def test_a_cancelled_backup_says_cancelled_not_its_last_progress(fresh_db, tmp_path):
    """Seen by the fresh-eyes tester: after escape the step pane still showed the backup's last progress line
    (MiB, %, ETA) as if it ran on. Now it says cancelled, and what became of the partial files."""
    run_sql(fresh_db, "CREATE SCHEMA app_data; CREATE TABLE app_data.notes (id int, t text); "
                      "INSERT INTO app_data.notes SELECT g, md5(g::text) FROM generate_series(1, 20000) g; ANALYZE")
    holder = psycopg.connect(fresh_db.conninfo(application_name="holder"))
    try:
        holder.execute("LOCK TABLE app_data.notes IN ACCESS EXCLUSIVE MODE")  # pg_dump waits, at 0 %
        app = make_app(fresh_db, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await start_the_backup(pilot)
            await scenes.wait_for(pilot, lambda: "ETA" in text_of(app, "#backup-line"), what="a progress line")
            await pilot.press("escape")
            await scenes.wait_for(pilot, lambda: scenes._idle(app), what="the cancel")
            assert app.runbook.steps[Step.BACKUP].state == State.PENDING
            line = text_of(app, "#backup-line")
            assert "ETA" not in line and "%" not in line and "MiB" not in line, line
            assert line.startswith("✗ Backup cancelled") and "partial" in line and "removed" in line, line
            assert app.screen.query_one("#backup-progress").percentage == 0
            said = [str(t) for t in app.screen._said]
            assert sum(t.startswith("Backup cancelled") for t in said) == 1, said[-4:]  # said once, with what became of the file
        assert list((tmp_path / "backups").glob("backup_*")) == []
    finally:
        holder.close()


async def scenes_wait_gone(settings, timeout: float = 10.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while our_sessions(settings) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert our_sessions(settings) == []


async def test_a_new_runbook_after_a_committed_one(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.VERIFY)
        await scenes.commit(pilot, fresh_db.dbname)
        first = app.runbook
        backups = sorted((tmp_path / "backups").iterdir())
        await pilot.press("d")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard)
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: app.runbook is not first and app.screen is app.runbook_screen
                              and app.runbook.checks, what="a fresh runbook")
        assert app.runbook.steps[Step.PREFLIGHT].state == State.PENDING
        # The database is migrated now: pre-flight ends the run as "nothing to do", as headless apply does (n went
        # on to a backup, BEGIN and 43 statements). Its checklist is not asked for: no SQL will run.
        assert "already migrated: n → Pre-flight" in app.runbook_screen.next_hint()
        await scenes.next_step(pilot)
        rb = app.runbook
        assert rb.nothing_to_do and rb.steps[Step.BACKUP].state == State.PENDING and rb.tx is Tx.NONE
        assert app.screen.query_one("ContentSwitcher").current == "pane-done"
        assert "NOTHING TO DO" in text_of(app, "#done-text") and "no backup was taken" in text_of(app, "#done-text")
        assert "stopped after pre-flight" in str(app.runbook_screen._said[-1])  # the log's last word
        hint = app.runbook_screen.next_hint()
        assert "nothing to do, already migrated" in hint and "n →" not in hint
        await pilot.press("n")  # no step is offered: the run has ended
        await pilot.pause()
        assert rb.steps[Step.BACKUP].state == State.PENDING and sorted((tmp_path / "backups").iterdir()) == backups
        assert not app.runbook_screen.check_action("next_step", ())  # n is not in the footer
        await pilot.press("d")
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: app.screen is app.runbook_screen)
    assert app.return_code in (0, None)


async def test_console_from_db_variables_and_a_server_restart(pg_server, fresh_db, tmp_path, monkeypatch):
    """The console resolves DB_* like the Config Server, and its dashboard survives a server restart."""
    from aami_tui.core.settings import resolve

    for k, v in pg_server.env(fresh_db.dbname).items():
        if k.startswith("DB_"):
            monkeypatch.setenv(k, v)
    settings = resolve(None)
    assert settings.source == "DB_* variables" and settings.dbname == fresh_db.dbname
    app = make_app(settings, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        assert "0 / 10 present" in text_of(app, "#checklist-header")
        if pg_server.embedded is None:
            return
        pg_server.embedded.restart()
        run_sql(fresh_db, "CREATE TABLE namespaces (id int)")
        await scenes.wait_for(pilot, lambda: "1 / 10 present" in text_of(app, "#checklist-header"), 20,
                              what="the dashboard to reconnect after the restart")
