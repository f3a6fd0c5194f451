"""The Drift view in the console, driven with Pilot against a real PostgreSQL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from conftest import apply_migration, run_sql
from test_console import SIZE, make_app, text_of
from test_dashboard import toasts
from test_plan import build_upstream

from aami_tui.core import plan
from aami_tui.ui import scenes


async def test_drift_view_writes_lints_and_runs_the_plan_through_the_runbook(fresh_db, tmp_path):
    build_upstream(fresh_db, tmp_path)
    app = make_app(fresh_db, tmp_path, options={"skip_backup": True})  # the backup step is tested elsewhere
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        # the dashboard's Next panel points at the way forward: the Drift view (p), aami-tui plan
        hint = text_of(app, "#dash-hint")
        assert "Drift: target_groups" in hint and "Press p" in hint and "aami-tui plan" in hint, hint
        assert "restore or rebuild" not in hint
        await pilot.press("p")
        await scenes.wait_for(pilot, lambda: app.screen.id == "drift" and app.screen.plan is not None,
                              what="drift plan", timeout=60)
        screen = app.screen
        assert [(i.kind, i.what) for i in screen.plan.items] == [("safe", "target_groups.is_default_own")]
        assert "ALTER TABLE target_groups ADD COLUMN IF NOT EXISTS is_default_own" in text_of(app, "#drift-detail")
        assert "1 safe (SQL), 0 need a person" in text_of(app, "#drift-status")
        assert not screen.check_action("run_plan", ())  # r and l join the footer once a file exists
        await pilot.press("w")
        await scenes.wait_for(pilot, lambda: screen.review is not None, what="the plan file's lint", timeout=30)
        written = list((tmp_path / "reports").glob("plan_*.sql"))
        assert len(written) == 1 and stat.S_IMODE(written[0].stat().st_mode) == 0o600
        assert str(written[0]) == screen.written
        assert "is_default_own boolean DEFAULT false NOT NULL" in written[0].read_text()
        # beside the plan: its lint (the same as `aami-tui lint`, connected) and nothing waiting for a person
        assert screen.review.runnable and screen.review.lint.connected
        head = text_of(app, "#plan-file-head")
        assert "No part waits for a person" in head and "Lint: 0 errors, 0 warnings, 1 info (squawk" in head
        panel = app.screen.query_one("#plan-file")
        lock = next(f for f in screen.review.lint.findings if f.rule == "locks-existing-table")
        assert panel.rows == [("info", lock.line, "locks-existing-table", lock.message)]
        assert lock.message.startswith("Statement 1 takes ACCESS EXCLUSIVE on target_groups (~")
        assert screen.check_action("run_plan", ()) and "Drift: run the plan" in [
            c.title for c in app.get_system_commands(screen)]
        # r: the runbook screen on the plan file (its steps are keyed in test_console; here the engine runs them)
        await scenes.open_runbook(pilot)
        rb = app.runbook
        assert rb.migration_path == written[0] and app.screen is app.runbook_screen
        assert written[0].name in app.screen.sub_title
        assert any(c.name == "Drift plan" and c.ok for c in rb.checks)
        assert not any(c.name == "Nothing to do" for c in rb.checks)  # a plan's work is not creating tables
        for key, _ in rb.items:
            rb.tick(key)
        for step in (rb.preflight, rb.backup_step, rb.begin, rb.apply, rb.verify):
            await step()
        # back in the Drift view with the plan's transaction open: it says so, in the runbook bar's words and colours
        await pilot.press("d")
        await scenes.wait_for(pilot, lambda: app.screen is screen, what="the Drift view")
        await scenes.wait_for(pilot, lambda: "TRANSACTION OPEN" in text_of(app, "#drift-title"), 5,
                              what="the transaction's state in the Drift view")

        def badge(widget) -> tuple[str, str]:
            shown = widget.render()
            return shown.plain[shown.spans[0].start:shown.spans[0].end], str(shown.spans[0].style)

        assert badge(screen.query_one("#drift-title")) == badge(app.runbook_screen.query_one("#txbar"))
        assert "COMMIT or ROLLBACK it in the runbook (escape, then r)" in text_of(app, "#drift-title")
        # ...and that what it compares is the committed database: the open transaction's work is not in it
        assert ("This view compares the committed database: what the open transaction has done is invisible to it "
                "until COMMIT") in text_of(app, "#drift-title"), text_of(app, "#drift-title")
        assert await app.open_runbook(written[0]) is None and app.screen is app.runbook_screen  # as r does
        assert [c.detail for c in rb.verify_checks if c.name == "No drift left" and c.ok] == [
            "every required table has the columns 001_initial_schema.sql creates: check --strict would pass after "
            "COMMIT"]
        await pilot.press("d")
        await scenes.wait_for(pilot, lambda: app.screen is screen, what="the Drift view")
        # the COMMIT lands while the Drift view is shown (one that was in flight): it compares again by itself, and
        # no longer says the transaction's work is invisible
        await rb.commit(fresh_db.dbname)
        assert rb.outcome.value == "committed"
        await scenes.wait_for(pilot, lambda: screen.plan is not None and not screen.plan.differences,
                              what="the comparison after COMMIT", timeout=60)
        assert "committed database" not in text_of(app, "#drift-title")
        assert "No differences from 001_initial_schema.sql" in text_of(app, "#drift-status")
        # the plan already ran: r does not offer to run it again, and the panel says why
        assert not screen.check_action("run_plan", ())
        assert "Drift: run the plan" not in [c.title for c in app.get_system_commands(screen)]
        head = text_of(app, "#plan-file-head")
        assert "No part waits for a person" not in head and "nothing left to repair" in head, head
        await pilot.press("w")
        assert len(list((tmp_path / "reports").glob("plan_*.sql"))) == 1
    report = json.loads(rb.report_paths[1].read_text())
    assert report["migration"]["path"] == str(written[0]) and report["migration"]["kind"] == "drift plan"
    assert report["migration"]["sha256"] == screen.review.sha256
    assert report["lint"]["connected"] and report["final_state"] == "committed"


async def test_drift_view_refuses_a_plan_with_parts_for_a_person_until_edited(fresh_db, tmp_path, monkeypatch):
    apply_migration(fresh_db)
    run_sql(fresh_db, "DROP INDEX idx_targets_status; CREATE TABLE site_notes (id int PRIMARY KEY)")
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("p")
        await scenes.wait_for(pilot, lambda: app.screen.id == "drift" and app.screen.plan is not None,
                              what="drift plan", timeout=60)
        screen = app.screen
        await pilot.press("r")  # no file yet: says so
        await scenes.wait_for(pilot, lambda: any("press w" in t for t in toasts(app)), what="the no-file sentence")
        # w writes the file off the event loop (it wrote it on the loop, a slow disk holding every key), and a
        # folder it cannot write into is said in one sentence
        import threading

        from aami_tui.core import files

        threads, write = [], files.write_private
        monkeypatch.setattr(files, "write_private", lambda *a: (threads.append(threading.current_thread()),
                                                                write(*a))[1])
        reports = app.options.reports_dir
        (tmp_path / "not-a-folder").write_text("")
        object.__setattr__(app.options, "reports_dir", tmp_path / "not-a-folder")
        await pilot.press("w")
        await scenes.wait_for(pilot, lambda: any("Cannot write the plan" in t for t in toasts(app)),
                              what="the write's failure")
        assert any(t == f"Cannot write the plan: {tmp_path / 'not-a-folder'} exists and is not a directory."
                   for t in toasts(app)), toasts(app)
        assert screen.written is None
        object.__setattr__(app.options, "reports_dir", reports)
        await pilot.press("w")
        await scenes.wait_for(pilot, lambda: screen.review is not None, what="the plan file's lint", timeout=30)
        path = Path(screen.written)
        assert threads and threading.main_thread() not in threads, threads
        assert "1 part needs a person: r refuses the file" in text_of(app, "#plan-file-head")
        assert screen.query_one("#plan-file").rows[0][:3] == ("person", screen.review.unedited[0][0],
                                                               "table site_notes")
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: any("cannot run yet" in t for t in toasts(app)), what="the refusal")
        assert f'{path.name} cannot run yet: 1 part still needs a person: "table site_notes"' in toasts(app)[-1]
        assert app.runbook is None and app.screen is screen
        # e hands the terminal to $EDITOR; a terminal that cannot (here: Pilot's) gets the way round in one sentence
        monkeypatch.delenv("VISUAL", raising=False)
        monkeypatch.setenv("EDITOR", "true")
        await pilot.press("e")
        await scenes.wait_for(pilot, lambda: "cannot hand over to an editor" in toasts(app)[-1], what="the e fallback")
        assert f"edit {path} in another terminal, then press l." in toasts(app)[-1]
        # an editor that is not installed is said before the terminal is handed over (it used to suspend the
        # console, fail, and never resume it: a blank screen deaf to q, Ctrl+C and SIGTERM)
        monkeypatch.setenv("EDITOR", "nano-not-installed -w")
        await pilot.press("e")
        await scenes.wait_for(pilot, lambda: any("not installed" in t for t in toasts(app)),
                              what="the missing editor")
        assert any(t.startswith("The editor 'nano-not-installed' (from $EDITOR) is not installed or not on PATH: "
                                f"set $EDITOR, or edit {path} in another terminal") for t in toasts(app))
        # one that is installed but cannot start (a script whose interpreter is gone): the console comes back
        handed = []
        driver = app._driver
        monkeypatch.setattr(type(driver), "can_suspend", property(lambda _: True))
        monkeypatch.setattr(driver, "suspend_application_mode", lambda: handed.append("suspend"))
        monkeypatch.setattr(driver, "resume_application_mode", lambda: handed.append("resume"))
        broken = tmp_path / "broken-editor"
        broken.write_text("#!/nonexistent/interpreter\n")
        broken.chmod(0o700)
        monkeypatch.setenv("EDITOR", str(broken))
        await pilot.press("e")
        await scenes.wait_for(pilot, lambda: any("could not be started" in t for t in toasts(app)),
                              what="the failed editor")
        assert handed == ["suspend", "resume"]
        # the person edits the file outside (the table stays), then l re-reads and re-lints it
        path.write_text(path.read_text().replace(f"{plan.PERSON_MARKER} table site_notes\n", ""))
        await pilot.press("l")
        await scenes.wait_for(pilot, lambda: screen.review.runnable, what="the re-read", timeout=30)
        assert "No part waits for a person" in text_of(app, "#plan-file-head")
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: app.runbook is not None and app.screen is app.runbook_screen,
                              what="the runbook on the plan", timeout=30)
        assert app.runbook.migration_path == path
        # fresh5 F14: the refusals of the unedited file stayed over the runbook that had just accepted the edit
        assert not [t for t in toasts(app) if "cannot run yet" in t], toasts(app)
        await scenes.wait_for(pilot, lambda: app.runbook.checks, what="its automatic checks", timeout=30)
    # the console started on the plan (--migration-file plan.sql): the Drift view compares with the shipped
    # migration and shows that plan beside the differences
    app = make_app(fresh_db, tmp_path, migration_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("p")
        await scenes.wait_for(pilot, lambda: app.screen.id == "drift" and app.screen.plan is not None
                              and app.screen.review is not None, what="drift plan and its file", timeout=60)
        assert app.screen.plan.migration.name == "001_initial_schema.sql"
        assert app.screen.written == str(path) and app.screen.review.runnable


async def test_exact_is_a_console_setting(fresh_db, tmp_path):
    run_sql(fresh_db, "CREATE TABLE site_notes (id int)")
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        app.action_toggle_exact()
        assert app.options.exact
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: app.runbook is not None and app.runbook.checks, what="checks",
                              timeout=30)
        gate = [c for c in app.runbook.checks if c.name == "Exactly ten tables in public"]
        assert gate and gate[0].blocking and not gate[0].ok
        await pilot.press("d")
        app.action_toggle_exact()  # pre-flight has not passed: still possible
        assert not app.options.exact and not app.runbook.opt.exact
        # fresh5 F14: after a ROLLBACK (BEGIN may retry, pre-flight's gate still holds) the toggle said "--exact on"
        # while the run kept its own setting: it is refused, as once pre-flight has passed.
        rb = app.runbook
        rb.opt.skip_backup = True
        for key, _ in rb.items:
            rb.tick(key)
        await rb.preflight()
        await rb.begin()
        await rb.rollback()
        app.action_toggle_exact()
        assert not app.options.exact and not rb.opt.exact
        await pilot.pause()
        said = [str(n.message) for n in app._notifications]
        assert any("the gate is fixed for this run" in m for m in said), said
