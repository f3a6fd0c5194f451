"""The restore screen as a DBA picks a backup: what it holds against the live database before confirming,
the columns that matter at 80×24, a live age, and only this server's and database's backups."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

from conftest import apply_migration, run_sql
from faults import runbook
from screen_text import region_text, svg_text
from test_console import make_app, text_of
from textual.widgets import DataTable

from aami_tui.ui import fmt, scenes
from aami_tui.ui.restore_screen import RestoreScreen


async def take_backup(settings, tmp_path):
    rb = runbook(settings, tmp_path)
    await rb.preflight()
    await rb.backup_step()
    await rb.close()
    return rb.backup.dump_path


def foreign_copy(dump, stamp: str, **source) -> None:
    """A backup of the same database name taken from another server (its metadata says so)."""
    other = dump.with_name(f"backup_{source.get('dbname')}_{stamp}.dump")
    shutil.copy(dump, other)
    meta = json.loads(dump.with_name(dump.name + ".json").read_text())
    meta.update(source)
    other.with_name(other.name + ".json").write_text(json.dumps(meta))


async def open_restore(pilot):
    """From the dashboard, `b`: the restore screen once it lists the backups."""
    app = pilot.app
    await scenes.dashboard_ready(pilot)
    await pilot.press("b")
    await scenes.wait_for(pilot, lambda: app.screen.id == "restore" and app.screen.entries)
    return app.screen


def row_texts(table: DataTable) -> list[list[str]]:
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_restore_lists_this_servers_backups_and_says_what_the_backup_holds(fresh_db, tmp_path, monkeypatch):
    dump = await take_backup(fresh_db, tmp_path)  # of the empty database: 0 tables
    foreign_copy(dump, "20200101_000000", dbname=fresh_db.dbname, host="db.elsewhere", port="5432")
    # taken two hours ago (the metadata says so), copied back since: the file's mtime is now and must not count
    meta_file = dump.with_name(dump.name + ".json")
    taken = datetime.now().astimezone().replace(microsecond=0) - timedelta(hours=2)
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "taken_at": taken.isoformat()}))
    apply_migration(fresh_db)  # ten tables now
    monkeypatch.setattr(RestoreScreen, "AGE_REFRESH", 0.2)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("c")  # a toast about the dashboard ("works in the runbook")...
        await pilot.pause()
        assert app._notifications
        await pilot.press("b")
        await scenes.wait_for(pilot, lambda: app.screen.id == "restore" and app.screen.entries)
        assert not [str(n.message) for n in app._notifications]  # ...does not follow to the restore screen
        await scenes.wait_for(pilot, lambda: list(app.screen.checks.values()) == [True], what="sha256 check")
        t = app.screen.query_one(DataTable)
        rows = row_texts(t)
        assert len(rows) == 1, rows  # the other server's backup is not listed
        assert "1 backup of another server or database is not listed" in text_of(app, "#restore-status")
        labels = [str(c.label) for c in t.ordered_columns]
        assert labels[:3] == ["age", "size", "sha256"]
        age, size, sha = rows[0][:3]
        assert age == "2 hours ago" and size.endswith(("KiB", " bytes")) and sha == "✓ matches"
        # age, size and sha256 fit on an 80-column screen, whole
        widths = [c.get_render_width(t) for c in t.ordered_columns[:3]]
        assert sum(widths) <= t.scrollable_content_region.width
        # ...and so does the file's name with its time to the second (what tells two backups apart)
        stamp = dump.name.removeprefix(f"backup_{fresh_db.dbname}_")
        shown = [ln for ln in region_text(app, "#restore-table").splitlines() if "2 hours ago" in ln]
        assert shown and shown[0].rstrip().endswith(stamp), (stamp, shown)
        assert f"{fresh_db.dbname} on {fresh_db.host}:{fresh_db.port}" in text_of(app, "#restore-head")
        # the age is live (an hour passes)
        real_ago = fmt.ago
        monkeypatch.setattr(fmt, "ago", lambda ts: real_ago(ts and ts - 3600))
        await scenes.wait_for(pilot, lambda: row_texts(t)[0][0] == "3 hours ago", 5, what="the age to move on")
        footer = svg_text(app.export_screenshot()).splitlines()[-1]
        assert all(k in footer for k in ("r Restore", "esc Back", "d Dashboard", "q Quit")), footer
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal", what="modal")
        body = text_of(app, "#confirm-body")
        said = " ".join(body.split())
        # the time the backup was taken, not when its file was last written
        assert f"the backup taken 3 hours ago ({taken:%Y-%m-%d %H:%M:%S}) (" in said, body
        # each dropped table with the rows that go with it, counted on the live database (the six templates)
        assert "This backup has 0 tables in public. Created after it, dropped in the same transaction: 10 tables " \
               "(alert_rules: 0 rows, alert_templates: 6 rows, " in said, body
        # fresh6 F4: what the transaction drops is on screen above the field, at 80x24, without scrolling (the
        # paragraph that lists it was below the fold: the name was typed without seeing it)
        shown = svg_text(app.export_screenshot())
        above = shown.split("to confirm:")[0]
        assert "Drops 10 tables (6 rows) and extension uuid-ossp" in above and "alert_rules, alert_templates" in above, shown
        # the warning the DBA must read is on screen without scrolling (at 80x24 the list is below the fold)
        scroll = app.screen.query_one("#confirm-scroll")
        lines = region_text(app, "#confirm-body").splitlines()
        last = next(i for i, ln in enumerate(lines) if "are lost" in ln or "then are" in ln)
        assert scroll.scroll_y == 0 and last < scroll.scrollable_content_region.height, (lines, scroll.size)
        # Tab and shift+tab go from the field to the buttons, never to the scrolling body (no visible focus there)
        from textual.containers import VerticalScroll

        for key in ("tab", "tab", "tab", "shift+tab", "shift+tab", "shift+tab"):
            await pilot.press(key)
            assert not isinstance(app.focused, VerticalScroll), (key, app.focused)
        assert scroll.max_scroll_y > 0
        await pilot.press("down")  # the body still scrolls from the keyboard
        await pilot.pause()
        assert scroll.scroll_y > 0
        assert "estimate" not in said, body  # all counted: none is marked as an estimate
        assert "extension uuid-ossp." in said and "Read with pg_restore " in said, body
        footer = svg_text(app.export_screenshot()).splitlines()[-1]
        assert "esc Cancel" in footer and "r Restore" not in footer, footer  # the dialog's keys, not the list's
        # At 80x24 the summary scrolls inside the dialog: the prompt, the field and both buttons stay on screen,
        # whole, inside the dialog's border (seen in tmux: a button's lower edge cut by the box).
        inside = app.screen.query_one("#confirm-box").content_region
        for sel in ("#confirm-prompt", "#confirm-input", "#cancel", "#confirm"):
            assert app.screen.region.contains_region(inside) and inside.contains_region(
                app.screen.query_one(sel).region), (sel, inside, app.screen.query_one(sel).region)
        await scenes.paste(pilot, fresh_db.dbname)
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: app.screen.id == "restore" and app.screen.result is not None,
                              what="the restore")
        await pilot.pause()
        # the long result scrolls in its own box: the list keeps its row, the head stays at the top
        shown = svg_text(app.export_screenshot()).splitlines()
        assert any("Restore from a backup" in ln for ln in shown[:5]), shown
        assert any(ln.rstrip().endswith(stamp) for ln in shown), shown
        assert "✓ Restored" in text_of(app, "#restore-status")
        # fresh5 F14: with no backup listed the footer offered 'r Restore' (r and enter said "No backup selected.")
        app.options.backup_dir = tmp_path / "no-backups-here"
        await pilot.press("f5")
        await pilot.pause()
        assert not app.screen.entries and "No backups of" in text_of(app, "#restore-status")
        footer = svg_text(app.export_screenshot()).splitlines()[-1]
        assert "Restore" not in footer and "esc Back" in footer, footer
        await pilot.press("d")  # d, shown in the footer, goes to the dashboard
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard, what="the dashboard")


async def test_the_footer_offers_no_restore_keys_while_a_restore_runs_and_escape_cancels_it(fresh_db, tmp_path,
                                                                                            monkeypatch):
    """While a restore runs the footer offers none of the keys it would refuse, and (new: a running restore could
    not be cancelled) escape, 'Cancel restore', which asks first, saying what the database is left as, then stops
    it and says what the restore left (core: test_restore.py's cancel test, against the server)."""
    import asyncio

    from aami_tui.core import restore as core_restore

    await take_backup(fresh_db, tmp_path)

    from aami_tui.core.progress import Progress

    async def held(*a, result=None, **kw):  # a restore that runs until it is cancelled (core.restore's words)
        # a quarter restored, then its session waits for another session's lock (core.progress's words; the real
        # server's are tested in test_backup_progress.py)
        kw["on_progress"](Progress("restore", 100 * 1024, 400 * 1024, 50 * 1024, 6.0, "public.events"))
        kw["on_progress"](Progress("restore", 100 * 1024, 400 * 1024, None, None, "public.events", waiting=(
            "waiting 3s for a lock on public.events held by pid 4242 (user dba); lock_timeout (30s) ends the restore")))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            result.outcome, result.stage, result.rollback_seen = "cancelled", "restoring", True
            result.error = core_restore.cancelled_words(result, fresh_db.dbname)
            raise

    monkeypatch.setattr(core_restore, "restore", held)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_restore(pilot)
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal", what="modal")
        await scenes.paste(pilot, fresh_db.dbname)
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: app.screen is screen and any(
            w.group == "restore" and w.is_running for w in screen.workers), what="the restore to run")
        await pilot.pause()
        # The wait is said in the line and in the bar: no percentage as if it moved (the bar kept '25%' before)
        assert "waiting 3s for a lock on public.events held by pid 4242" in text_of(app, "#restore-status")
        bar = screen.query_one("#restore-progress")
        assert bar.has_class("waiting") and not bar.query_one("#percentage").display
        screen_text = svg_text(app.export_screenshot())
        assert "25%" not in screen_text, screen_text
        footer = screen_text.splitlines()[-1]
        assert "Restore" not in footer.replace("Cancel restore", "") and "Back" not in footer \
            and "Reload" not in footer, footer  # all refused
        assert "esc Cancel restore" in footer, footer
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-cancel-modal", what="ask")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "left exactly as it was before the restore, never half-restored" in body, body
        await pilot.press("q")  # fresh9 F4: q did nothing here; now what ctrl+c does (asks to quit; Stay stays)
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "quit-modal", what="q's prompt")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-cancel-modal", what="back")
        await pilot.press("escape")  # "Keep restoring": the restore goes on
        await scenes.wait_for(pilot, lambda: app.screen is screen, what="back to the restore")
        assert any(w.group == "restore" and w.is_running for w in screen.workers)
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-cancel-modal", what="ask")
        await pilot.click("#confirm")
        await scenes.wait_for(pilot, lambda: "✗ Restore cancelled: pg_restore and psql were stopped" in text_of(
            app, "#restore-status"), what="the cancel's words")
        assert f"{fresh_db.dbname} is as it was before the restore" in text_of(app, "#restore-status")
        await pilot.pause()
        footer = svg_text(app.export_screenshot()).splitlines()[-1]
        assert "r Restore" in footer and "esc Back" in footer, footer
        # q while a restore runs asks too (it used to end the console at once, the restore cut without a report's
        # 'cancelled'), then cancels it before the console ends; the shell hears what it left
        first = app.restore_result
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal", what="modal")
        await scenes.paste(pilot, fresh_db.dbname)
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: app.screen is screen and any(
            w.group == "restore" and w.is_running for w in screen.workers), what="the second restore to run")
        await pilot.press("q")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "quit-modal", what="the quit prompt")
        assert "Quitting cancels the restore." in str(app.screen.query_one("#confirm-body").render())
        await pilot.click("#confirm")
        await scenes.wait_for(pilot, lambda: app.return_code is not None, what="the console to end")
    from aami_tui.ui.app import closing_lines

    assert app.restore_result is not first and app.restore_result.error.startswith("cancelled: pg_restore and psql")
    assert any(line.startswith("aami-tui: restore cancelled: pg_restore and psql") for line in closing_lines(app))


def test_a_restore_stopped_by_a_signal_says_what_it_left_in_the_shell(tmp_path):
    """SIGTERM/SIGINT/SIGHUP while a restore runs: the console cancels it (pg_restore and psql stopped, psql's
    session ended, report 'cancelled') and exits 128 + the signal; the shell now hears what the restore left."""
    from types import SimpleNamespace

    from aami_tui.core import restore as core_restore
    from aami_tui.ui.app import closing_lines

    r = core_restore.RestoreResult(tmp_path / "backup_x.dump", outcome="cancelled", stage="restoring",
                                   rollback_seen=True, report=tmp_path / "restore_x.md", signals=[15])
    r.error = core_restore.cancelled_words(r, "aami_config")
    app = SimpleNamespace(runbook=None, ending_signal=15, quit_rolled_back=False, restore_result=r,
                          options=SimpleNamespace(dev=False))
    lines = closing_lines(app)
    # the restore's sentence names the signal and what it left: no "nothing was left open" above it (fresh9 F5)
    assert lines[0].startswith("aami-tui: restore cancelled (terminated (SIGTERM)): pg_restore and psql were stopped "
                               "and the server rolled "
                               "the restore's transaction back"), lines
    assert lines[1:] == [f"Restore report: {tmp_path / 'restore_x.md'}"], lines


async def test_a_restore_waiting_for_another_sessions_lock_says_whose_while_it_waits(fresh_db, tmp_path):
    """fresh8 R3: a console restore queued behind another session's lock said "step 4 of about 11 · dropping table
    …" for the whole lock_timeout (30 s), while headless said "restore: waiting 5s for a lock on public.namespaces
    held by pid … (user …, application 'psql' …)". The console says the same words while it waits, then goes on;
    its confirmation already names the session holding the lock."""
    from faults import observe, take_verified_backup

    await take_verified_backup(fresh_db, tmp_path / "backups")  # no table data: the restore counts its steps
    run_sql(fresh_db, "CREATE TABLE site_notes (id int)")  # created after the backup: the restore drops it first
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:  # fresh9 F2: the ⚠ was below the fold at 80x24
        screen = await open_restore(pilot)
        with observe(fresh_db, app="dba-maintenance", autocommit=False) as holder:
            holder.execute("LOCK TABLE site_notes IN ACCESS SHARE MODE")  # idle in transaction, holding it
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal", what="modal")
            # the confirmation says it first (it said '~7 rows', an estimate because of the lock, and not whose)
            body = str(app.screen.query_one("#confirm-body").render())
            assert (f"⚠ Another session holds locks in this database now: pid {holder.info.backend_pid}, user "
                    in body), body
            assert "application 'dba-maintenance'" in body, body
            assert "(locks public.site_notes in ACCESS SHARE mode)" in body, body  # fresh9 F7: the mode too
            # pinned above the typed name, like the Drops line, whatever the body's scroll (fresh9 F2)
            note = app.screen.query_one("#confirm-note")
            assert f"⚠ pid {holder.info.backend_pid} holds locks here: the restore waits up to 30s" in str(
                note.render()), str(note.render())
            assert note.region.height >= 2 and note.region.bottom <= 24, note.region
            assert "will wait for it, up to lock_timeout (30s), then roll back: nothing changed" in body, body
            await scenes.paste(pilot, fresh_db.dbname)
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: "for a lock on public.site_notes held by pid" in text_of(
                app, "#restore-status"), 20, what="the restore to say whose lock it waits for")
            line = text_of(app, "#restore-status")
            assert "waiting" in line and f"held by pid {holder.info.backend_pid}" in line, line
            assert "'dba-maintenance'" in line and "lock_timeout (30s) ends the restore" in line, line
        await scenes.wait_for(pilot, lambda: screen.result is not None, 30, what="the restore to end")
        assert text_of(app, "#restore-status").startswith("✓ Restored"), text_of(app, "#restore-status")


async def test_a_restore_rolled_back_at_its_lock_timeout_leaves_no_part_filled_bar(fresh_db, tmp_path, monkeypatch):
    """fresh9 F7: after the lock_timeout rollback the restore's bar stayed ~36 % filled under "rolled back: nothing
    changed", as if part of the backup were in. Now it is emptied: nothing of it is in the database."""
    import functools

    from faults import observe, take_verified_backup

    from aami_tui.core import restore as core_restore
    from aami_tui.ui.tool_progress import ToolProgress

    monkeypatch.setattr(core_restore, "restore", functools.partial(core_restore.restore, lock_timeout=1))
    await take_verified_backup(fresh_db, tmp_path / "backups")
    run_sql(fresh_db, "CREATE TABLE site_notes (id int)")  # created after the backup: the restore drops it first
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_restore(pilot)
        with observe(fresh_db, app="dba-maintenance", autocommit=False) as holder:
            holder.execute("LOCK TABLE site_notes IN ACCESS SHARE MODE")  # held until the restore gives up
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal", what="modal")
            await scenes.paste(pilot, fresh_db.dbname)
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: "and was rolled back: nothing changed" in text_of(app, "#restore-status"),
                                  30, what="the lock_timeout rollback")
            bar = app.screen.query_one("#restore-progress", ToolProgress)
            assert bar.progress == 0 and not bar.waiting, (bar.progress, bar.total)
