"""The runbook screen as people use it: state never ambiguous, what comes next always said, the SQL reviewable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import psycopg
from conftest import run_sql
from faults import migration_with, query, terminate
from screen_text import region_text, svg_text
from test_console import make_app, text_of
from textual.widgets import Checkbox, ContentSwitcher, TextArea

from aami_tui.core.runbook import PREFLIGHT_ITEMS, State, Step, Tx
from aami_tui.ui import scenes
from aami_tui.ui.runbook_screen import LOG_FAST_LINES


def screen_text(app) -> str:
    return svg_text(app.export_screenshot())


def toasts(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def engine_to_begin(app):
    """The engine's own steps up to BEGIN, behind the open runbook screen (the walk through their modals costs
    seconds)."""
    rb = app.runbook
    for key, _ in rb.items:
        rb.tick(key)
    await rb.preflight()
    await rb.backup_step()
    await rb.begin(confirmed=True)
    return rb


async def apply_until_it_runs(pilot, fresh_db, statement: str) -> None:
    """From the dashboard: the runbook to BEGIN, then Apply confirmed, until ``statement`` runs on the server."""
    app = pilot.app
    await scenes.dashboard_ready(pilot)
    await scenes.open_runbook(pilot)
    await engine_to_begin(app)
    await pilot.press("n")
    await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="Run Apply?")
    await pilot.press("enter")
    await scenes.wait_for(pilot, lambda: query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE query LIKE "
                                                     "%s AND application_name = 'aami-tui'", (statement + "%",)),
                          what="the statement to run")


def items_file(tmp_path, n: int):
    """big.sql: a table, then ``n`` one-row INSERTs into it (n + 1 statements)."""
    path = tmp_path / "big.sql"
    path.write_text("\n".join(["CREATE TABLE items (id int PRIMARY KEY);"]
                              + [f"INSERT INTO items VALUES ({i});" for i in range(n)]) + "\n")
    return path

def assert_bar(app, hint: str, dbname: str) -> None:
    """The transaction bar as drawn: the whole hint and the database's name, neither cut (80x24 too)."""
    bar = region_text(app, "#txbar")
    assert f"Next: {hint}" in bar and f"on {dbname}" in bar and "…" not in bar, (hint, bar)


def assert_footer(app, shown: list[str], hidden: list[str]) -> None:
    footer = screen_text(app).splitlines()[-1]
    assert all(k in footer for k in shown) and not any(k in footer for k in hidden), (shown, hidden, footer)


async def test_ticks_look_different_and_are_counted(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        n = len(PREFLIGHT_ITEMS)
        assert f"0 / {n} ticked" in text_of(app, "#preflight-title")
        assert_footer(app, ["space Tick", "tab Next item", "n Next step", "q Quit"], [])  # the keys that work here
        first = app.screen.query_one(f"#tick-{PREFLIGHT_ITEMS[0][0]}", Checkbox)
        unticked = first.render().plain if hasattr(first.render(), "plain") else str(first.render())
        await pilot.press("space")
        await pilot.pause()
        ticked = str(first.render())
        assert unticked.split()[0] != ticked.split()[0], (unticked, ticked)  # not just a colour
        assert f"1 / {n} ticked" in text_of(app, "#preflight-title")
        # Enter on an item does not toggle it (it un-ticked an item when pressed to confirm: fresh5 F14)
        await pilot.press("enter")
        await pilot.pause()
        assert first.value and app.runbook.answers[PREFLIGHT_ITEMS[0][0]]
        # space then n typed quickly: n comes before the tick's Changed message has reached the screen. It must see
        # the box as ticked (it said "Tick every checklist item first" while the box showed ✓).
        screen = app.screen
        for key, _ in PREFLIGHT_ITEMS[1:]:
            screen.query_one(f"#tick-{key}", Checkbox).value = True  # as space does: Changed is only posted
        assert app.runbook.missing_items  # the engine has not heard of them yet
        screen.action_next_step()
        assert not any("Tick every checklist item first" in t for t in toasts(app)), toasts(app)
        assert not app.runbook.missing_items and app.screen is not screen  # the pre-flight's confirmation
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmModal"
        await pilot.press("escape")
        await pilot.pause()


async def test_next_hint_after_every_step_and_the_80x24_bar_is_whole(fresh_db, tmp_path, monkeypatch):
    import threading

    from aami_tui.core import report

    app = make_app(fresh_db, tmp_path)
    real_write, gate, writing = report.write, threading.Event(), threading.Event()

    def held_write(*args, **kw):  # the ROLLBACK's report stays in its thread until the retry has begun
        writing.set()
        gate.wait(30)
        return real_write(*args, **kw)

    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        assert_bar(app, "tick the checklist, then n → Pre-flight", fresh_db.dbname)
        await scenes.tick_all(pilot)
        assert_footer(app, ["n Next step", "s SQL", "q Quit"], ["c COMMIT", "x ROLLBACK", "i Inspect"])
        footer = app.screen.query_one("KeyFooter")
        await pilot.press("c")  # not offered, but never silent: the engine's reason
        await pilot.pause()
        assert any("COMMIT is not possible now: no open transaction" in t for t in toasts(app)), toasts(app)
        # The footer offers what the engine's state allows, and Quit always fits in 80 columns.
        for _step, nxt, shown, hidden in (
                (Step.PREFLIGHT, "n → Backup", ["n Next step"], ["c COMMIT", "x ROLLBACK", "i Inspect"]),
                (Step.BACKUP, "n → BEGIN", ["n Next step"], ["c COMMIT", "x ROLLBACK", "i Inspect"]),
                (Step.BEGIN, "n → Apply", ["n Next step", "x ROLLBACK", "i Inspect"], ["c COMMIT"]),
                (Step.APPLY, "n → Verify", ["n Next step", "x ROLLBACK", "i Inspect"], ["c COMMIT"]),
                (Step.VERIFY, "c → COMMIT or x → ROLLBACK", ["c COMMIT", "x ROLLBACK", "i Inspect"],
                 ["n Next step", "esc Cancel"])):
            await scenes.next_step(pilot)
            assert_bar(app, nxt, fresh_db.dbname)
            assert_footer(app, shown + ["q Quit", "d Dashboard"], hidden)
            # Each step's start hid the gated keys and its end showed them again, some for the first time (esc,
            # x, i, c): one line drawn again, no widget per key restyled, laid out or rebuilt (Textual's Footer
            # rebuilt them all: 50-150 ms of the loop at each step's start and end; kept in place, 8-29 ms)
            assert app.screen.query_one("KeyFooter") is footer and not footer.children, _step.name
        row = [ln for ln in screen_text(app).splitlines() if "TRANSACTION OPEN" in ln][0]
        assert "Next: c → COMMIT or x → ROLLBACK" in row  # the whole hint fits in 80 columns
        # A line written, then the bar grows to two lines (a longer hint): the log gives up a row (-txbar-2) and
        # keeps its newest line in view (it kept its scroll offset: that line went below its bottom edge, hidden).
        screen, bar = app.runbook_screen, app.screen.query_one("#txbar")
        screen.say("the newest line, the one the DBA needs")
        await pilot.pause()
        assert bar.size.height == 1 and "the newest line" in region_text(app, "#log")
        bar.show(app.runbook.tx, "a hint long enough for two lines: c → COMMIT or x → ROLLBACK", fresh_db.dbname)
        await scenes.settle(pilot)
        assert bar.size.height == 2 and screen.has_class("-txbar-2")
        assert "the newest line" in region_text(app, "#log"), region_text(app, "#log")
        screen._txbar()
        await scenes.settle(pilot)
        assert bar.size.height == 1 and "the newest line" in region_text(app, "#log")
        await pilot.press("x")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "rollback-modal")
        await app.runbook.flush_reports()  # the journal's writes of the steps so far are on disk
        monkeypatch.setattr(report, "write", held_write)
        await pilot.click("#confirm")
        await scenes.wait_for(pilot, writing.is_set, what="the ROLLBACK's report being written")
        # Its report is still being written: the ROLLBACK has ended all the same, and n is not refused.
        assert app.runbook.tx == Tx.ROLLED_BACK and not app.runbook_screen._busy()
        await scenes.settle(pilot)
        assert_bar(app, "n → BEGIN (retry) or d → dashboard", fresh_db.dbname)
        assert_footer(app, ["n Next step", "q Quit"], ["c COMMIT", "x ROLLBACK", "i Inspect"])
        steps = region_text(app, "#steps")
        for title in ("BEGIN", "Apply", "Verify"):
            line = next(ln for ln in steps.splitlines() if title in ln)
            assert "↺" in line and "✓" not in line, steps  # rolled back, not done
        assert "↺ ran, then undone" in steps and steps.count("rolled back") == 1, steps  # said once
        # the ROLLBACK itself ran and was not undone: not ↺ (fresh5 F13: "↺ 6 ROLLBACK" under "↺ ran, then undone")
        rollback = next(ln for ln in steps.splitlines() if "ROLLBACK" in ln)
        assert "✓" in rollback and "↺" not in rollback, steps
        total = len(app.runbook.migration.statements)
        assert f"Applied statement {total} / {total}" not in text_of(app, "#sql-head")  # undone: not "applied"
        # Retried from BEGIN: the SQL pane speaks of the new transaction, where nothing is applied yet (it said
        # "Applied statement 43 / 43", the last attempt's words).
        await scenes.next_step(pilot)
        assert app.runbook.tx == Tx.OPEN and app.runbook.attempt == 2
        on_disk = json.loads(app.runbook.report_paths[1].read_text())  # the journal's, from before the ROLLBACK
        assert on_disk["attempts"] == 1 and on_disk["transaction"] != "rolled back"
        assert not any("still running" in t for t in toasts(app)), toasts(app)
        gate.set()  # the report now goes to disk; quitting waits for it
        head = text_of(app, "#sql-head")
        assert "Applied" not in head and f"{total} statements" in head, head
        await pilot.press("s")
        await pilot.pause()
        area = app.screen.query_one("#sql-text", TextArea)
        assert area.selected_text == "" and area.scroll_y == 0  # no statement marked as reached: the file's top


async def test_an_aborted_transaction_keeps_icons_timings_and_the_whole_status(fresh_db, tmp_path):
    path, _ = migration_with(tmp_path, "SELECT 1/0;", after=3)
    app = make_app(fresh_db, tmp_path, migration_path=path)
    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.BEGIN)
        await scenes.next_step(pilot)  # apply fails at statement 4
        assert app.runbook.tx == Tx.ABORTED
        assert_bar(app, "x → ROLLBACK (the only way on)", fresh_db.dbname)
        steps = region_text(app, "#steps")
        for icon, title in (("✓", "Pre-flight"), ("✓", "BEGIN"), ("✗", "Apply")):
            line = next(ln for ln in steps.splitlines() if title in ln)
            assert line.strip("│ ").startswith(icon), steps
        inner = " ".join(" ".join(ln.strip("│╭╮╰╯─ ").split()) for ln in steps.splitlines())
        assert "transaction aborted (ROLLBACK only)" in inner, steps
        assert "6 COMMIT/ROLLBACK" in inner, steps
        # The Step pane says where the apply stopped, not a stale percentage or "statement 1 / n" beside it.
        line = text_of(app, "#apply-line")
        total = len(app.runbook.migration.statements)
        assert line.startswith(f"✗ Stopped at statement 4 / {total} · 3 statements ran before it"), line
        assert not app.screen.query_one("#apply-progress").display
        assert_footer(app, ["x ROLLBACK", "q Quit"], ["c COMMIT", "n Next step", "i Inspect"])  # nothing runs now
        await scenes.settle(pilot)
        # The Tables panel showed the transaction's view ("UNCOMMITTED") a moment ago; now it shows the committed
        # database, and says so (fresh5 F13: "0 / 10 present · refreshed just now", no word).
        await app.runbook_screen.refresh_tables()
        head = " ".join(text_of(app, "#rb-checklist #checklist-header").split())
        assert "UNCOMMITTED" not in head and "the committed database" in head, head
        assert "Transaction age —" not in text_of(app, "#lockwatch")
        # the failing statement, with its line and column, in the SQL view
        await pilot.press("s")
        await pilot.pause()
        sql = app.screen.query_one("#sql-text", TextArea)
        assert sql.display and sql.read_only and sql.language == "sql"
        assert "statement 4" in text_of(app, "#sql-head") and "line" in text_of(app, "#sql-head")
        assert "1/0" in sql.selected_text
        await pilot.press("s")
        await pilot.pause()
        assert app.screen.query_one("#panes").current != "pane-sql"


async def test_sql_review_pane_scrolls_both_ways_and_follows_the_apply(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        assert "SQL" in screen_text(app).splitlines()[-1]  # on a key shown in the footer
        await pilot.press("s")
        await pilot.pause()
        sql = app.screen.query_one("#sql-text", TextArea)
        assert sql.has_focus and not sql.soft_wrap

        def bars() -> list:  # what the two scrollbars draw (kept between frames: ui/scrollbars.py)
            return [[list(line) for line in bar.render_lines(bar.size.region)]
                    for bar in (sql.vertical_scrollbar, sql.horizontal_scrollbar)]

        at_top = bars()
        await pilot.press("end")
        await pilot.pause()
        await pilot.press("ctrl+end" if False else "pagedown")
        await pilot.pause()
        assert sql.max_scroll_x > 0 or sql.virtual_size.width <= sql.size.width
        assert sql.scroll_offset.y > 0  # it scrolls down
        moved = bars()
        assert moved[0] != at_top[0] and moved[1] != at_top[1], "the scrollbars' thumbs move as the view scrolls"
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        assert bars() != moved, "a new theme's colours reach the scrollbars"
        await pilot.press("s")
        await scenes.tick_all(pilot)
        for _ in range(3):
            await scenes.next_step(pilot)
        await scenes.next_step(pilot)  # apply
        assert "statement 43 / 43" in text_of(app, "#sql-head")
        assert "INSERT INTO alert_templates" in app.screen.query_one("#sql-text", TextArea).selected_text
        await scenes.settle(pilot)
        await pilot.press("s")  # opened after the apply: on the statement's first line, from column 1
        await pilot.pause()
        await pilot.pause()
        assert sql.has_focus
        st = app.runbook.migration.statements[-1]
        top = sql.scroll_offset.y
        assert top <= st.line - 1 < top + sql.size.height, (top, st.line, sql.size.height)
        assert sql.scroll_offset.x == 0


async def test_stale_toasts_go_when_the_state_changes(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await pilot.press("n")  # nothing ticked yet
        await pilot.pause()
        assert any("Tick every checklist item first" in t for t in toasts(app))
        await scenes.tick_all(pilot)
        await pilot.pause()
        # fresh5 F14: it stayed after the last tick, until a step ran
        assert not any("Tick every checklist item first" in t for t in toasts(app)), toasts(app)
        await scenes.next_step(pilot)
        assert not any("Tick every checklist item first" in t for t in toasts(app)), toasts(app)


def test_long_paths_are_shortened_from_the_left_at_a_slash():
    from aami_tui.ui import fmt

    assert fmt.short_path("/work/wt-console/migrations/001_initial_schema.sql") == \
        "…/migrations/001_initial_schema.sql"
    text = fmt.short_paths("Migration file: /a/very/long/checkout/path/migrations/001_initial_schema.sql · 43")
    assert text == "Migration file: …/path/migrations/001_initial_schema.sql · 43"


async def test_development_mode_short_checklist_no_backup_of_an_empty_database(fresh_db, tmp_path):
    import json

    from aami_tui.ui.app import env_lines_at_exit

    app = make_app(fresh_db, tmp_path, options={"dev": True})
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        assert "0 / 1 ticked" in text_of(app, "#preflight-title")
        await scenes.tick_all(pilot)
        await scenes.next_step(pilot)  # pre-flight
        rb = app.runbook
        # fresh5 F8: pre-flight logged "backup skipped" while the bar said "n → Backup" and n asked "Run Backup?
        # pg_dump -Fc of the whole database…": the skip is the engine's, settled by pre-flight; n goes to BEGIN.
        assert rb.steps[Step.BACKUP].state.value == "skipped"
        hint = app.runbook_screen.next_hint()
        assert hint.startswith("n → BEGIN") and "Backup" not in hint, hint
        await pilot.pause()
        assert text_of(app, "#backup-info").startswith("– Backup skipped: development mode: the database is empty; recorded")
        assert not app.screen.query_one("#backup-progress").display  # no 0 % bar for a backup not taken
        await pilot.press("n")
        await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="a confirmation")
        asked = text_of(app, "#confirm-title") + text_of(app, "#confirm-body")
        assert "BEGIN" in asked and "pg_dump" not in asked, asked
        await pilot.press("escape")
        for _ in (Step.BEGIN, Step.APPLY, Step.VERIFY):
            await scenes.next_step(pilot)
        assert rb.steps[Step.VERIFY].state.value == "done"
        # applied, not committed: the dashboard shows what the transaction sees (10 / 10), but a quit now rolls
        # back, so no "ready" settings are printed for a database with no tables
        await scenes.wait_for(pilot, lambda: app.dashboard.last_result.ok, what="the uncommitted 10 / 10")
        assert env_lines_at_exit(app) == []
        assert "development mode: the database is empty" in rb.steps[Step.BACKUP].detail
        await scenes.commit(pilot, fresh_db.dbname)
        lines = env_lines_at_exit(app)
    assert f"DB_NAME={fresh_db.dbname}" in lines and not any("PASSWORD=" in ln for ln in lines)
    app.embedded = object()  # the demo: its server is removed as the console closes; no lines pointing at it
    assert env_lines_at_exit(app) == [
        "The Config Server's settings are not printed: this demo's embedded server was stopped and removed as the "
        "console closed (run `aami-tui init` against a server that stays)."]
    # fresh7 N6: the demo's COMMITTED pane and bar said "(the Config Server can start)", "export DB_PORT=…" and "the
    # password is yours to set", while its server and password go at quit: they say so, as the quit line does
    from aami_tui.ui.runbook_screen import RunbookScreen

    pane, hint = RunbookScreen(rb, demo=True)._done_text_raw().plain, RunbookScreen(rb, demo=True).next_hint()
    assert ("Environment for the Config Server while this demo runs (its embedded server, port and password are "
            "removed when the console closes; for a server that stays: aami-tui init):") in pane, pane
    assert "yours to set" not in pane and f"export DB_NAME={fresh_db.dbname}" in pane, pane
    assert hint == "d → dashboard or q → quit (quitting removes the demo's server)", hint
    pane, hint = RunbookScreen(rb)._done_text_raw().plain, RunbookScreen(rb).next_hint()
    assert "(the password is yours to set)" in pane and "(the Config Server can start)" in hint
    report = json.loads(rb.report_paths[1].read_text())
    assert report["mode"] == "development" and report["backup"] == "skipped"
    assert list(report["preflight"]["checklist"]) == ["Reviewed the migration SQL"]
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").glob("*.dump"))


async def test_development_mode_backs_up_a_database_that_is_not_empty(fresh_db, tmp_path):
    from conftest import run_sql

    run_sql(fresh_db, "CREATE TABLE mine (id int)")
    app = make_app(fresh_db, tmp_path, options={"dev": True})
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.BACKUP)
        assert app.runbook.steps[Step.BACKUP].state.value == "done"


async def test_log_lines_are_rewrapped_after_a_resize(fresh_db, tmp_path):
    from textual.widgets import RichLog

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        app.screen.say("a long line " * 30)
        await scenes.settle(pilot)
        log = app.screen.query_one("#log", RichLog)
        bar = log.vertical_scrollbar  # kept between frames (ui/scrollbars.py): it still follows the log
        before = [list(line) for line in bar.render_lines(bar.size.region)]
        for i in range(30):
            app.screen.say(f"line {i}")
        await scenes.settle(pilot)
        assert [list(line) for line in bar.render_lines(bar.size.region)] != before
        narrow = len(log.lines)
        await pilot.resize_terminal(200, 50)
        await scenes.settle(pilot, 0.5)
        assert len(log.lines) < narrow, (narrow, len(log.lines))
        assert "a long line a long line" in log.lines[-1].text or any("a long line" in s.text for s in log.lines)


async def test_a_big_apply_reaches_the_screen_in_a_few_messages_and_the_log_says_what_it_leaves_out(fresh_db,
                                                                                                    tmp_path):
    """10,000 statements sent 10,000 messages, each a log write and a progress-bar update: the console fell
    seconds behind the apply (13 s against 1 s headless) and keys waited behind them. Consecutive statements
    now reach the screen as one message; a long run shows its last lines and says the rest are in the report.
    And `s` while the apply runs (here waiting on another session's lock at statement 302 of a file big enough
    to be loaded into the SQL view only when the view opens) shows that statement, selected and in view, and the
    pane's border says so; s again comes back to the step pane, and the view keeps following the apply."""
    run_sql(fresh_db, "CREATE TABLE held (id int)")
    lines = (["CREATE TABLE items (id int PRIMARY KEY);"] + [f"INSERT INTO items VALUES ({i});" for i in range(300)]
             + ["SELECT count(*) FROM held;"] + [f"INSERT INTO items VALUES ({i});" for i in range(300, 600)])
    path = tmp_path / "big.sql"
    path.write_text("\n".join(lines) + "\n")
    app = make_app(fresh_db, tmp_path, migration_path=path, options={"skip_backup": True, "lock_timeout": 60})
    holder = psycopg.connect(fresh_db.conninfo(application_name="holder"))
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await scenes.dashboard_ready(pilot)
            await scenes.walk_to(pilot, Step.BEGIN)
            screen = app.screen
            posted: list = []
            post = screen.post_message
            screen.post_message = lambda m: (posted.append(type(m).__name__), post(m))[1]
            writes: list = []  # the log's writes, each a list of lines
            write = screen._write
            screen._write = lambda lines: (writes.append(list(lines)), write(lines))[1]
            holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
            await pilot.press("n")
            await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="confirm")
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: "Applying statement 302 / 602" in text_of(app, "#sql-head"),
                                  what="the apply waiting at statement 302")
            sql = screen.query_one("#sql-text", TextArea)
            assert sql.text == ""  # a file this big goes into the highlighted view when the view opens
            # ... from what was built for it in a thread since pre-flight (sql_view.prepare), not on the event loop
            await scenes.wait_for(pilot, lambda: sql.prepared is not None, what="the SQL view built ahead")
            prepared = sql.prepared
            for _ in range(2):  # the first s loads the file into the view; the second finds it there
                await pilot.press("s")
                await pilot.pause()
                await pilot.pause()
                assert screen.query_one("#panes").current == "pane-sql" and sql.has_focus
                assert "Migration SQL" in region_text(app, "#panes").splitlines()[0]
                assert sql.selected_text == "SELECT count(*) FROM held"
                assert sql.scroll_offset.y <= 301 < sql.scroll_offset.y + sql.size.height  # its line 302, in view
                assert "SELECT count(*) FROM held" in region_text(app, "#sql-text")
                assert sql.document is prepared.document
                await pilot.press("s")
                await pilot.pause()
                assert screen.query_one("#panes").current == "pane-apply"
                assert "Step" in region_text(app, "#panes").splitlines()[0]
            holder.rollback()
            await scenes.wait_for(pilot, lambda: scenes._idle(app), what="the apply to finish")
            await scenes.settle(pilot)
            assert len(app.runbook.statements) == 602
            # the engine's stream (statements, their log lines, progress) in a few messages, none of its kinds alone
            assert 0 < posted.count("EngineStreamMsg") < 20, posted[:10]
            assert not {"StatementDoneMsg", "LogMsg", "ProgressMsg"} & set(posted), posted[:10]
            log = "\n".join(str(t) for t in screen._said)
            assert "602/602 INSERT 0 1" in log and "Applied 602 statements" in log
            assert log.index("602/602 INSERT 0 1") < log.index("Applied 602 statements")  # in the engine's order
            assert re.search(r"lines not shown here, sent in \d+ round trips?: every statement is in the run report", log)
            # A burst of more statements than the log shows at once (the 301 before the lock): its last 16 lines in
            # that write, not 64 (a write of 64 lines held the event loop 6-14 ms, issue 8's key row)
            cut = [w for w in writes if any("lines not shown here" in str(t) for t in w)]
            assert cut, log
            for w in cut:
                assert 0 < sum(bool(re.match(r"\s*\d+/602 ", str(t))) for t in w) <= LOG_FAST_LINES, w
            bar = screen.query_one("#apply-progress")
            assert bar.progress == bar.total == 602
            await pilot.press("s")  # the view followed the apply to its end
            await pilot.pause()
            assert sql.selected_text == "INSERT INTO items VALUES (599)"
            assert "Applied statement 602 / 602" in text_of(app, "#sql-head")
            await app.runbook.rollback("test")
    finally:
        holder.close()


async def test_a_fast_apply_s_log_folds_the_round_trips_that_scroll_past_into_one_line(fresh_db, tmp_path,
                                                                                        monkeypatch):
    """A 10,000-statement file wrote, five times a second, a "… done too" line and a two-row "went to the server in
    one round trip … equal share" line for each batch of 256 statements that scrolled past: ~30 log rows a write,
    read by nobody, and most of the write's cost (issue 8's key row). Now the statements a write leaves out and their
    round trips are one line; the round trip of the statements shown keeps its line (what ≈ means); nothing is
    lost: the lines cover every statement, in order, and the engine's log (report, headless) keeps every line."""
    import aami_tui.ui.runbook_screen as rbs

    monkeypatch.setattr(rbs, "STREAM_INTERVAL", 1.0)  # a write holds many batches, however fast the machine
    n = 3000
    path = items_file(tmp_path, n)
    app = make_app(fresh_db, tmp_path, migration_path=path, options={"skip_backup": True})
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        rb = await engine_to_begin(app)
        screen = app.screen
        writes: list = []  # the log's writes, each a list of lines
        write = screen._write
        screen._write = lambda lines: (writes.append([str(t) for t in lines]), write(lines))[1]
        await pilot.press("n")
        await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="Run Apply?")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: scenes._idle(app), what="the apply to finish")
        await scenes.settle(pilot)
        total = n + 1
        groups = rb.batch_plan()  # the round trips the apply made
        trips = [m for _, _, m in rb.log if "went to the server in one round trip" in m]
        assert len(trips) == len(groups) > 2  # the engine's log: every batch's line
        lines = [line for w in writes for line in w]
        covered: list[int] = []
        for line in lines:
            if m := re.match(r"… statements (\d+)–(\d+) done too \((\d[\d,]*) lines not shown here, sent in (\d+) "
                             r"round trips?: every statement is in the run report\)$", line):
                a, b, hidden, sent = int(m[1]), int(m[2]), int(m[3].replace(",", "")), int(m[4])
                assert hidden == b - a + 1, line
                assert sent == sum(g[0].index <= b and g[-1].index >= a for g in groups), line  # the batches it spans
                covered += range(a, b + 1)
            elif m := re.match(rf"\s*(\d+)/{total} ", line):
                covered.append(int(m[1]))
        assert covered == list(range(1, total + 1))  # every statement, in order, once: a line or a fold
        shown_trips = [line for line in lines if "went to the server in one round trip" in line]
        folded = [w for w in writes if any(line.startswith("… statements") for line in w)]
        assert folded, writes
        # at most one round trip's own line per write: that of the statements it shows (what ≈ means)
        for w in writes:
            assert sum("went to the server in one round trip" in line for line in w) <= 1, w
        assert len(shown_trips) < len(trips), (len(shown_trips), len(trips))
        await rb.rollback("test")


async def test_a_key_read_while_an_apply_streams_is_drawn_before_the_stream(fresh_db, tmp_path, monkeypatch):
    """Traced under load, the slowest presses of a key during an apply waited for the stream that came just before
    them (its log write and progress, then the frame that drew them) before their own action and frame. Now what
    the engine streams waits while a key has been read and its frame has not gone to the terminal; then it shows,
    all of it, in the engine's order. Any other engine message (the step's end) shows it first."""
    import aami_tui.ui.runbook_screen as rbs
    from aami_tui.ui.driver import KeyGcHold

    monkeypatch.setattr(rbs, "STREAM_KEY_WAIT", 60.0)  # here the test says when the key's frame has gone
    run_sql(fresh_db, "CREATE TABLE held (id int); CREATE TABLE held2 (id int)")
    lines = (["CREATE TABLE items (id int PRIMARY KEY);"] + [f"INSERT INTO items VALUES ({i});" for i in range(100)]
             + ["SELECT count(*) FROM held;"] + [f"INSERT INTO items VALUES ({i});" for i in range(100, 147)]
             + ["SELECT count(*) FROM held2;"] + [f"INSERT INTO items VALUES ({i});" for i in range(147, 199)])
    path = tmp_path / "big.sql"
    path.write_text("\n".join(lines) + "\n")
    app = make_app(fresh_db, tmp_path, migration_path=path, options={"skip_backup": True, "lock_timeout": 60})
    holders = [psycopg.connect(fresh_db.conninfo(application_name=f"holder{i}")) for i in (1, 2)]
    hold = KeyGcHold(clock=lambda: 1000.0)  # a key stays pending until its frame goes (no MAX_HOLD here)

    def waits_on(table: str) -> bool:
        return bool(query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE query = %s AND wait_event_type = 'Lock'",
                          (f"SELECT count(*) FROM {table}",)))

    def log() -> str:
        return "\n".join(str(t) for t in app.screen._said)

    try:
        async with app.run_test(size=(120, 36)) as pilot:
            app._driver.gc_hold = hold  # a real terminal's (ui/driver.py): Pilot's keys skip the input thread
            await scenes.dashboard_ready(pilot)
            await scenes.open_runbook(pilot)
            await engine_to_begin(app)
            holders[0].execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
            holders[1].execute("LOCK TABLE held2 IN ACCESS EXCLUSIVE MODE")
            await pilot.press("n")
            await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="Run Apply?")
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: "101/202 " in log(), what="the statements before the first lock")
            assert waits_on("held")
            hold.key_read()  # a key is read (the driver's input thread) ...
            holders[0].rollback()  # ... and the apply goes on meanwhile, to the second lock
            await scenes.wait_for(pilot, lambda: waits_on("held2"), what="the apply at the second lock")
            await pilot.pause(0.5)
            assert "149/202 " not in log() and "Applying statement 150" not in text_of(app, "#sql-head")
            hold.key_handled()  # the key's action ran, and its frame went to the writer: the stream shows
            hold.frame_queued()
            await scenes.wait_for(pilot, lambda: "149/202 " in log(), what="the stream after the key's frame")
            assert "Applying statement 150 / 202" in text_of(app, "#sql-head")
            said = log()
            assert said.index("101/202 ") < said.index("102/202 ") < said.index("149/202 ")

            hold.key_read()  # another key, never drawn: the apply's end (not a stream event) shows the stream first
            holders[1].rollback()
            await scenes.wait_for(pilot, lambda: app.runbook.steps[Step.APPLY].state is State.DONE, what="apply")
            await scenes.wait_for(pilot, lambda: "Applied 202 statements" in log(), what="the stream at the step's end")
            said = log()
            assert said.index("149/202 ") < said.index("202/202 ") < said.index("Applied 202 statements")
            await app.runbook.rollback("test")
    finally:
        hold.release()
        for h in holders:
            h.close()


async def test_s_while_a_big_file_s_view_is_being_built_shows_it_once_built_and_builds_it_once(fresh_db, tmp_path,
                                                                                                 monkeypatch):
    """A big file's SQL view is built in a thread after the automatic checks. An `s` pressed before it is built (a
    DBA opening the runbook to read the SQL first) shows the pane saying so, and the SQL once built: never a
    second build on the event loop beside the thread's (the console froze ~2 s that way)."""
    import threading

    from aami_tui.ui import sql_view

    gate, built = threading.Event(), []
    prepare = sql_view.prepare

    def slow(*args):
        gate.wait(30)
        built.append(prepare(*args))
        return built[-1]

    monkeypatch.setattr(sql_view, "prepare", slow)
    path = items_file(tmp_path, 600)
    app = make_app(fresh_db, tmp_path, migration_path=path, options={"skip_backup": True})
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await scenes.dashboard_ready(pilot)
            await scenes.open_runbook(pilot)
            screen = app.screen
            await scenes.wait_for(pilot, lambda: screen._sql_preparing is not None, what="the view being built")
            await pilot.press("s")
            await pilot.pause()
            sql = screen.query_one("#sql-text", TextArea)
            assert screen.query_one("#panes").current == "pane-sql" and sql.text == ""
            assert "big.sql · loading 601 statements…" in text_of(app, "#sql-head")
            gate.set()
            await scenes.wait_for(pilot, lambda: sql.text != "", what="the view, once built")
            assert len(built) == 1 and sql.document is built[0].document  # the thread's, once
            assert "big.sql · 601 statements · read-only" in text_of(app, "#sql-head")
            assert "CREATE TABLE items" in region_text(app, "#sql-text")
            await pilot.press("s")
            await pilot.pause()
            assert screen.query_one("#panes").current != "pane-sql"
    finally:
        gate.set()


async def test_a_big_file_s_view_that_cannot_be_built_ahead_is_still_shown(fresh_db, tmp_path, monkeypatch):
    """The thread that builds a big file's view failing (a bug, no memory) never leaves the SQL pane empty: `s`
    loads the file itself, as before."""
    from aami_tui.ui import sql_view

    def broken(*args):
        raise MemoryError("no room")

    monkeypatch.setattr(sql_view, "prepare", broken)
    path = items_file(tmp_path, 600)
    app = make_app(fresh_db, tmp_path, migration_path=path, options={"skip_backup": True})
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        screen = app.screen
        await scenes.wait_for(pilot, lambda: screen._sql_prepared is not None and screen._sql_preparing is None,
                              what="the build ahead to fail")
        await pilot.press("s")
        await pilot.pause()
        sql = screen.query_one("#sql-text", TextArea)
        assert "CREATE TABLE items" in sql.text and "big.sql · 601 statements · read-only" in text_of(app, "#sql-head")


async def test_a_refresh_that_ticks_while_the_console_closes_is_quiet(fresh_db, tmp_path):
    """CI once failed on this: the checklist's timer ticked after the last screen had gone, and
    `app.screen` raised ScreenStackError from the timer, which Textual reports as the app's own crash."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("b")
        await scenes.wait_for(pilot, lambda: app.screen.id == "restore", what="restore screen")
        restore = app.screen
        await pilot.press("escape")
        await scenes.open_runbook(pilot)
        runbook, dashboard = app.screen, app.dashboard
    assert not app._screen_stack  # the console has closed: the ticks below are the late ones
    from textual._context import active_app

    token = active_app.set(app)  # as inside Textual's shutdown, when the late tick came
    try:
        await runbook.refresh_tables()
        await runbook._watch_locks()
        dashboard.poll()
        restore._tick_ages()
    finally:
        active_app.reset(token)



async def test_a_step_is_finished_at_once_when_the_refresh_after_it_hangs(fresh_db, tmp_path, proxy, monkeypatch):
    """Seen by the fresh-eyes tester: through a frozen network the step's worker waited for the dashboard's refresh
    after the step (up to ~15 s), so a finished step still looked busy and n said "a step is still running". Now the
    refresh runs in its own worker, and the checklist says when it could not refresh."""
    from aami_tui.ui.runbook_screen import RunbookScreen

    monkeypatch.setattr(RunbookScreen, "REFRESH_SAY", 0.5, raising=False)
    app = make_app(proxy.settings(fresh_db), tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        proxy.freeze()  # the dashboard's connection hangs (half-open); the runbook's new connections pass
        try:  # (thawed whatever happens: a failed wait says its own words, not a teardown stuck behind the freeze)
            await pilot.press("r")
            await scenes.wait_for(pilot, lambda: app.runbook is not None and app.runbook.checks,
                                  what="automatic checks")
            await scenes.tick_all(pilot)
            await pilot.press("n")  # the runbook opened a moment ago: its first refresh is still hanging
            await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", 5,
                                  what=f"the pre-flight's confirmation (toasts: {toasts(app)})")
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: app.runbook.steps[Step.PREFLIGHT].state == State.DONE, 20,
                                  what="pre-flight")
            await scenes.wait_for(pilot, lambda: not app.runbook_screen._busy(), 3, what="the step's worker to end")
            assert "Next: n → Backup" in text_of(app, "#txbar")
            await scenes.wait_for(pilot, lambda: "could not refresh" in text_of(app, "#checklist-header").lower(),
                                  5, what="the checklist to say it could not refresh")
        finally:
            proxy.thaw()


async def test_while_a_cancel_is_in_flight_the_console_says_cancelling(fresh_db, tmp_path, proxy, monkeypatch):
    """Seen in tmux behind a frozen proxy: after escape the bar still said "Apply running… (escape cancels)" and n
    said "A step is still running (escape cancels it)" although escape had been pressed. Now both say a cancel is in
    progress. (The cancel's wait is stretched here so that the words can be read before it ends; the engine's bound
    on it is tests/test_safety.py's escape-on-a-frozen-network test.)"""
    from aami_tui.core.runbook import session

    monkeypatch.setattr(session, "CANCEL_WAIT", 60.0)
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(60);", after=12)
    app = make_app(proxy.settings(fresh_db), tmp_path, migration_path=path, options={"skip_backup": True})
    async with app.run_test(size=(120, 36)) as pilot:
        await apply_until_it_runs(pilot, fresh_db, "SELECT pg_sleep(60)")
        proxy.freeze(new=True)
        await pilot.press("escape", "n")
        assert "Next: Apply: cancelling…" in text_of(app, "#txbar")
        assert toasts(app)[-1].startswith("A cancel is in progress"), toasts(app)
        proxy.drop()  # the held cancel request is cut; the session is, once the server ends it:
        terminate(fresh_db, app.runbook.backend_pid)  # the step ends at once
        await scenes.wait_for(pilot, lambda: not app.runbook_screen._busy(), 20, what="the cancelled step to end")
        assert app.runbook.phase.name == "ROLLED_BACK" and "cancelling" not in text_of(app, "#txbar")
        await pilot.pause()
        said = [str(t) for t in app.runbook_screen._said]
        lost = next(i for i, t in enumerate(said) if t.startswith("The connection to the server was lost"))
        assert said.index("Apply cancelled.") > lost, said[-4:]  # the log reads in the order things happened
        pane = app.runbook_screen._done_text().plain  # what the step pane says: never a rollback nobody saw
        assert pane.startswith("Run ended: connection lost: not committed") and "Nothing was committed." in pane
        assert "exit code" not in pane  # "(headless exit code 2)" meant nothing on the console
        assert "cannot connect" not in pane, pane  # exit 2's generic words (fresh5 F13): it did connect


async def test_an_apply_with_no_answer_says_so_and_the_tables_do_not_claim_the_transactions_view(
        fresh_db, tmp_path, proxy, monkeypatch):
    """fresh8 R2: through a frozen network the step pane said "statement 13 / 44" for a minute, the bar "Apply
    running…", and the tables "UNCOMMITTED: what the open transaction sees · refreshed 53 seconds ago" although the
    transaction had created tables since. The engine's Silence (headless prints the same words): on the apply's
    line, the seconds in the bar, the tables say they could not be refreshed; all gone when the answer comes."""
    from aami_tui.core.runbook import session

    monkeypatch.setattr(session, "SILENT_AFTER", 0.3)
    path, _ = migration_with(tmp_path, "SELECT pg_sleep(4);", after=12)
    app = make_app(proxy.settings(fresh_db), tmp_path, migration_path=path,
                   options={"skip_backup": True, "query_timeout": 1.0})  # (the lock watch's sample gives up sooner)
    async with app.run_test(size=(120, 36)) as pilot:
        await apply_until_it_runs(pilot, fresh_db, "SELECT pg_sleep(4)")
        proxy.freeze(new=True)  # its answer cannot come back, nor can a new connection pass
        await scenes.wait_for(pilot, lambda: "waiting for the server's answer" in text_of(app, "#apply-line"), 5,
                              what="the apply's line to say it waits")
        line = text_of(app, "#apply-line")
        assert re.search(r"Apply: waiting for the server's answer for \d+s \(statement 13 / 44: SELECT pg_sleep"
                         r"\(4\)\); the client gives up in \d+s", line), line
        assert re.search(r"Next: Apply: waiting for the server's answer \(\d+s\)… \(escape cancels\)",
                         text_of(app, "#txbar")), text_of(app, "#txbar")
        tables = text_of(app, "#checklist-header")
        assert "Could not refresh: the migration session has not answered for" in tables, tables
        assert "what the open transaction sees now is not known" in tables and "UNCOMMITTED" not in tables, tables
        drawn = " ".join(region_text(app, "#checklist-header").split())  # whole, in the narrow panel
        assert "has not answered for" in drawn and "sees now is not known." in drawn, drawn
        # the lock watch's sample gets no answer either: it says so, not "No migration transaction open"
        await scenes.wait_for(pilot, lambda: "Could not sample the locks" in screen_text(app), 5,
                              what="the lock watch to say it could not sample, on the screen")
        assert "The migration transaction is open" in text_of(app, "LockWatchPanel")
        proxy.thaw()
        await scenes.wait_for(pilot, lambda: app.runbook.steps[Step.APPLY].state == State.DONE, 20, what="apply")
        await scenes.wait_for(pilot, lambda: not app.runbook_screen._busy(), 5, what="the step's worker to end")
        await pilot.pause()
        assert "waiting" not in text_of(app, "#apply-line") and "waiting" not in text_of(app, "#txbar")
        assert "not answered" not in text_of(app, "#checklist-header"), text_of(app, "#checklist-header")


def test_the_tables_header_does_not_call_a_paused_view_what_the_transaction_sees():
    """fresh8 R2: while a step runs the tables cannot be refreshed (the session is busy); the header said
    "UNCOMMITTED: what the open transaction sees · refreshed 40 seconds ago" although 17 statements had run since.
    Paused, it says what the transaction saw before this step."""
    import time

    from aami_tui.core.schema import ValidationResult
    from aami_tui.ui.table_checklist import TableChecklist

    c = TableChecklist()
    c.result, c.uncommitted, c.refreshed_at = ValidationResult(tables=()), True, time.time() - 40
    assert "UNCOMMITTED: what the open transaction sees " in c._header_text().plain
    c.note, c.stale = "paused while a step uses the transaction", True  # as set_note(…, stale=True) leaves it
    text = c._header_text().plain
    assert "what the open transaction saw before this step" in text and "sees" not in text, text


async def test_after_a_cancelled_apply_the_bar_says_rollback_is_the_way_on(fresh_db, tmp_path):
    """Seen by the fresh-eyes session: after escape on a running apply the bar said "Next: n → Apply", and n
    answered "Apply is not possible now … ROLLBACK"."""
    app = make_app(fresh_db, tmp_path, options={"skip_backup": True, "pace": 0.5})  # escape between statements
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        rb = await engine_to_begin(app)
        await pilot.press("n")
        await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="Run Apply?")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: rb.steps[Step.APPLY].state == State.RUNNING, what="the apply to run")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: not app.runbook_screen._busy(), 20, what="the cancelled step to end")
        await pilot.pause()
        assert "Next: x → ROLLBACK" in text_of(app, "#txbar"), text_of(app, "#txbar")


async def test_the_dashboard_under_the_runbook_does_not_poll_the_server(fresh_db, tmp_path, monkeypatch):
    """While the runbook screen covers it, the dashboard's timer asks the server nothing: the runbook's own tables
    panel refreshes (on the dashboard's connection when no transaction is open), and the dashboard refreshes at
    once when it is shown again. Its polls doubled the console's queries and, during an apply, refilled a table
    nobody saw (work on the event loop that a key pressed then waited for)."""
    from aami_tui.ui.dashboard import DashboardScreen as Dashboard

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await engine_to_begin(app)  # a transaction open: the runbook's panel shows its view, the dashboard none
        polls: list[str] = []
        real = Dashboard._poll_once
        monkeypatch.setattr(Dashboard, "_poll_once", lambda self: (polls.append(type(app.screen).__name__),
                                                                   real(self))[1])
        await pilot.pause(1.6)  # three of the dashboard's intervals (0.5 s here)
        assert polls == []
        await pilot.press("d")
        await scenes.wait_for(pilot, lambda: polls, what="the dashboard's refresh as it is shown again")
        assert polls[0] == "DashboardScreen"


async def test_the_frame_that_shows_the_sql_repaints_the_step_pane_alone(fresh_db, tmp_path):
    """`s` is a light key: the frame that shows the SQL writes the step pane's cells and nothing else (the focus and
    the footer's keys follow in a frame of their own), so the SQL shows as soon as one pane can be drawn (issue 8's
    key row). Its title, which names what the pane shows, is in that frame too, both ways."""
    from textual.app import App

    app = make_app(fresh_db, tmp_path)
    frames: list = []
    display = App._display

    def spy(self, screen, update):
        if update is not None and hasattr(update, "spans"):
            frames.append(list(update.spans))
        return display(self, screen, update)

    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot)
        pane = app.screen.query_one("#panes").region
        footer = app.screen.query_one("KeyFooter").region
        App._display = spy
        try:
            for opening in (True, False, True):
                frames.clear()
                await pilot.press("s")
                await scenes.settle(pilot, 0.2)
                assert ("Migration SQL" if opening else "Step") == str(app.screen.query_one("#panes").border_title)
                assert frames, "no frame"
                first = frames[0]
                assert any(y == pane.y for y, _, _ in first), "the pane's title is not in the frame that switches it"
                if not opening:  # closing moves the focus at once (a space right behind it ticks the checklist)
                    continue
                assert all(pane.contains(x, y) and pane.contains(x2 - 1, y) for y, x, x2 in first), (pane, first)
                assert any(footer.y == y for fr in frames[1:] for y, _, _ in fr), "the footer's keys, a frame later"
        finally:
            App._display = display


@contextlib.asynccontextmanager
async def runbook_shown(fresh_db, tmp_path):
    """The console at 120 x 36 on the runbook, its automatic checks done: (app, pilot)."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot)
        yield app, pilot


async def test_showing_the_sql_again_draws_again_none_of_the_lines_it_drew_before(fresh_db, tmp_path):
    """Issue 8's key row: `s` four times. The third shows the same pane as the first, unchanged, and draws none of
    its lines again: not the SQL pane's, not the SQL view's but the cursor's (it shows with the focus), and of the
    step pane's frame only the row its title changes on. The fourth shows pre-flight's pane again, which the focus
    passes through as the SQL closes: none of its lines either. Textual drew each whole again: a pane whenever it
    is shown or hidden, the SQL view and a pane whenever they gain or lose the focus, a frame whenever its title
    changes or it switches panes (1-3 ms of the main thread each, at idle, in the frame `s` is waiting for). What
    is shown is still right: the title, the SQL, the step when it is closed."""
    from textual._styles_cache import StylesCache

    drawn: list = []
    render_line = StylesCache.render_line

    def spy(self, styles, y, *args, **kwargs):
        drawn.append((self, y))
        return render_line(self, styles, y, *args, **kwargs)

    async with runbook_shown(fresh_db, tmp_path) as (app, pilot):
        screen = app.screen
        watched = {name: screen.query_one(name) for name in ("#panes", "#pane-sql", "#sql-text", "#pane-preflight")}
        again: list[dict] = []
        StylesCache.render_line = spy
        try:
            for opening in (True, False, True, False):
                drawn.clear()
                await pilot.press("s")
                await scenes.settle(pilot, 0.3)
                title = region_text(app, "#panes").splitlines()[0]
                assert ("Migration SQL" if opening else "Step") in title, title
                assert_pane_drawn(app, sql=opening, why="after `s`")
                again.append({name: sorted({y for cache, y in drawn if cache is w._styles_cache})
                              for name, w in watched.items()})
        finally:
            StylesCache.render_line = render_line
        view = watched["#sql-text"]
        cursor = [view.cursor_location[0] - view.scroll_offset.y]  # the cursor shows with the focus: TextArea's own
        assert again[2] == {"#panes": [0], "#pane-sql": [], "#sql-text": cursor, "#pane-preflight": []}, again[2]
        assert again[3] == {"#panes": [0], "#pane-sql": [], "#sql-text": [], "#pane-preflight": []}, again[3]


async def test_the_footer_draws_each_set_of_keys_once(fresh_db, tmp_path):
    """Each `s` changes the footer's keys (the SQL view's, the step's), and a step's start and end change them back
    and forth too: the footer draws a set of keys it has shown lately from what it drew then (Textual renders its
    line again, 1-2 ms at idle, in the frame of the `s` that closes the SQL). A new theme draws it again."""
    from aami_tui.ui.footer import KeyFooter

    renders: list = []
    render = KeyFooter.render

    def spy(self):
        renders.append(self)
        return render(self)

    async with runbook_shown(fresh_db, tmp_path) as (app, pilot):
        footers = []
        KeyFooter.render = spy
        try:
            for _ in range(2):
                await pilot.press("s")
                await scenes.settle(pilot, 0.3)
                footers.append(screen_text(app).splitlines()[-1])
            assert footers[0] != footers[1], footers  # the SQL view's keys, then the step's
            renders.clear()
            for i in range(4):
                await pilot.press("s")
                await scenes.settle(pilot, 0.3)
                assert screen_text(app).splitlines()[-1] == footers[i % 2]
            assert renders == [], f"the footer rendered {len(renders)} times a line it had drawn"
            dark = app.screen.query_one(KeyFooter).render_line(0)
            app.theme = "textual-light"
            await scenes.settle(pilot, 0.3)
            assert renders, "a new theme, the same line"
            assert [seg.style for seg in app.screen.query_one(KeyFooter).render_line(0)] != [seg.style for seg in dark]
        finally:
            KeyFooter.render = render


async def test_the_lines_the_panes_keep_are_the_lines_they_would_draw_afresh(fresh_db, tmp_path):
    """What the step pane, its panes and the SQL view keep while hidden (above) is never stale: after a new theme
    or a new terminal size while the SQL is hidden, and after the focus has moved through them, each draws
    exactly what it would draw with nothing kept."""
    from textual.geometry import Region

    def cells(w) -> list:
        return [[(seg.text, seg.style) for seg in strip]
                for strip in w.render_lines(Region(0, 0, w.outer_size.width, w.outer_size.height))]

    def kept_is_afresh(w) -> None:
        kept = cells(w)
        w._styles_cache.clear()
        getattr(w, "_line_cache", {}).clear()  # the SQL view's own (TextArea's)
        assert kept == cells(w), f"#{w.id} draws stale lines"

    async with runbook_shown(fresh_db, tmp_path) as (app, pilot):
        screen = app.screen

        def light() -> None:
            app.theme = "textual-light"

        async def narrower() -> None:
            await pilot.resize_terminal(104, 32)

        for change in (light, narrower):
            for _ in range(2):
                await pilot.press("s")
                await scenes.settle(pilot, 0.2)
            assert not screen.sql_open
            result = change()
            if result is not None:
                await result
            await scenes.settle(pilot, 0.2)
            await pilot.press("s")  # the SQL, after a change made while it was hidden
            await scenes.settle(pilot, 0.3)
            for name in ("#panes", "#pane-sql", "#sql-text"):
                kept_is_afresh(screen.query_one(name))
            await pilot.press("s")  # pre-flight, after the focus has been through it
            await scenes.settle(pilot, 0.3)
            for name in ("#panes", "#pane-preflight"):
                kept_is_afresh(screen.query_one(name))


async def test_a_space_typed_right_behind_the_s_that_closes_the_sql_ticks_the_item_shown_focused(fresh_db, tmp_path):
    """fresh10 F1/F2: `s` then space in one burst (a fast typist, a paste): the space ticks the checklist's first
    unticked item, the one the closed view shows focused; it is not lost in the hidden SQL view, nor does it untick
    the item focused before."""
    from textual import events

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        first, second = app.runbook.items[0][0], app.runbook.items[1][0]
        await pilot.press("space")  # the first item ticked; the focus stays on it
        await pilot.pause()
        assert app.runbook.answers[first] and not app.runbook.answers[second]
        await pilot.press("s")
        await scenes.settle(pilot, 0.2)
        assert app.screen.query_one("#sql-text", TextArea).has_focus
        app.post_message(events.Key("s", "s"))  # as the driver's input thread posts them: both read at once
        app.post_message(events.Key("space", " "))
        await scenes.settle(pilot, 0.2)
        assert app.screen.query_one(f"#tick-{second}", Checkbox).has_focus, app.focused
        assert app.runbook.answers[second], "the space ticked the first unticked item"
        assert app.runbook.answers[first], "and did not untick the one ticked before"
        app.post_message(events.Key("s", "s"))  # s s space: opened, closed, then the space ticks the next one
        app.post_message(events.Key("s", "s"))
        app.post_message(events.Key("space", " "))
        await scenes.settle(pilot, 0.2)
        assert sum(app.runbook.answers.values()) == 3, app.runbook.answers


async def test_a_key_typed_right_behind_the_s_that_opens_the_sql_goes_to_the_view(fresh_db, tmp_path):
    """fresh10 F3: `s` then PgDn in one burst: the PgDn scrolls the SQL view the `s` showed (it went to the hidden
    checklist, which scrolled its title out of view, until `s` ran as it is read: a priority binding)."""
    from textual import events

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        sql = app.screen.query_one("#sql-text", TextArea)
        app.post_message(events.Key("s", "s"))  # as the driver's input thread posts them: both read at once
        app.post_message(events.Key("pagedown", None))
        await scenes.settle(pilot, 0.2)
        assert sql.has_focus and sql.scroll_offset.y > 0, (app.focused, sql.scroll_offset)
        assert app.screen.query_one("#pane-preflight").scroll_offset.y == 0, "the hidden checklist did not scroll"


@contextlib.contextmanager
def laid_out():
    """Every layout of a screen (a scroll's excepted) while inside, as (the screen laid out, the screen on top)."""
    from textual.screen import Screen

    real, seen = Screen._refresh_layout, []

    def spy(self, size=None, scroll=False):
        if not scroll:
            seen.append((self, self.app.screen))
        return real(self, size, scroll)

    Screen._refresh_layout = spy
    try:
        yield seen
    finally:
        Screen._refresh_layout = real


async def _layouts_of(pilot, change) -> int:
    """How many times the screen is laid out again for ``change`` (called on the loop) and the frame after it."""
    from textual.screen import Screen

    app, layouts = pilot.app, []
    orig = Screen._refresh_layout

    def spy(self, *a, **kw):
        if self is app.screen and self._layout_required:
            layouts.append(self)
        return orig(self, *a, **kw)

    await scenes.settle(pilot, 0.2)
    Screen._refresh_layout = spy
    try:
        change()
        await scenes.settle(pilot, 0.2)
    finally:
        Screen._refresh_layout = orig
    return len(layouts)


async def test_log_lines_and_the_hidden_sql_head_update_without_laying_the_screen_out(fresh_db, tmp_path):
    """Issue 8's key row: what an apply streams to the screen five times a second (log lines, the statement in the
    hidden SQL pane's head) repaints those widgets only. A layout of the whole runbook screen costs 15-35 ms of the
    event loop on a slow machine, and a key pressed then waited behind it. The log still shows its newest line and
    its scrollbar still says how long it is; the SQL head still shows the statement when the pane is opened."""
    from rich.text import Text

    from aami_tui.core.runbook.events import Progress

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        screen = app.screen
        log = screen.query_one("#log")
        screen._write([Text(f"early line {i}") for i in range(40)])  # the log overflows: its scrollbar shows
        await scenes.settle(pilot, 0.2)
        assert log.show_vertical_scrollbar
        n = await _layouts_of(pilot, lambda: screen._write([Text(f"streamed line {i}") for i in range(5)]))
        assert n == 0, "a log write that keeps the log's scrollbars laid the screen out"
        assert "streamed line 4" in region_text(app, "#log"), "the log shows its newest line"
        assert log.vertical_scrollbar.window_virtual_size == len(log.lines)
        total = len(app.runbook.migration.statements)
        n = await _layouts_of(pilot, lambda: screen._progress(Progress(Step.APPLY, 7, total, "statement 8")))
        assert n == 0, "the hidden SQL pane's head laid the screen out"
        await pilot.press("s")
        await scenes.settle(pilot, 0.2)
        assert f"Applying statement 8 / {total}" in region_text(app, "#sql-head")


async def test_the_help_covers_the_runbook_so_its_frame_draws_the_help_alone(fresh_db, tmp_path):
    """Issue 8's key row: `?` drew the runbook again under the help, dimmed (Textual renders the screens under a
    modal screen whose background lets them through): a third of the help's frame. The help now stands on a plain
    background; closing it shows the runbook as it was."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot, 0.2)
        assert "Steps" in svg_text(app.export_screenshot())
        await pilot.press("question_mark")
        await scenes.settle(pilot, 0.2)
        shown = svg_text(app.export_screenshot())
        assert "how the migration works" in shown
        assert "Steps" not in shown and "Pre-flight checklist" not in shown, "the runbook is drawn under the help"
        await pilot.press("question_mark")
        await scenes.settle(pilot, 0.2)
        assert "Steps" in svg_text(app.export_screenshot())


async def test_after_pre_flight_and_after_the_sql_view_the_focus_is_on_what_the_step_pane_shows(fresh_db, tmp_path):
    """fresh10 F4: once pre-flight has run, its checklist is hidden but kept the focus, so PgUp/PgDn went to a box
    nobody could see and scrolled nothing until tab; the same after `s` closed the SQL view. The pane shown now
    takes the focus: its keys act on what is on screen."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.tick_all(pilot)
        await scenes.next_step(pilot)
        await scenes.settle(pilot, 0.3)
        screen = app.screen

        def focus_shown() -> bool:
            f = app.focused
            return f is not None and all(n.display for n in f.ancestors_with_self if hasattr(n, "display")
                                         and n is not screen and n is not app)

        assert focus_shown(), f"the focus is on a hidden widget: {app.focused!r}"
        assert app.focused.id == screen.query_one(ContentSwitcher).current
        await pilot.press("s")
        await scenes.settle(pilot, 0.2)
        assert app.focused is screen.query_one("#sql-text", TextArea)
        await pilot.press("s")
        await scenes.settle(pilot, 0.2)
        assert focus_shown(), f"after s closed the SQL view the focus is on a hidden widget: {app.focused!r}"


def assert_pane_drawn(app, sql: bool, why: str) -> None:
    """What the screen shows now (its compositor's last layout): the SQL (its file's words) or pre-flight's step."""
    shown = svg_text(app.export_screenshot())
    if sql:
        assert "Idempotent" in shown and "Pre-flight checklist" not in shown, f"the SQL is not shown: {why}"
        assert "Migration SQL" in shown and "─ Step ─" not in shown, f"the pane's title is not the SQL's: {why}"
    else:
        assert "Pre-flight checklist" in shown and "Idempotent" not in shown, f"the SQL is still shown: {why}"
        assert "─ Step ─" in shown and "Migration SQL" not in shown, f"the pane's title is still the SQL's: {why}"


async def test_the_first_frame_after_s_shows_the_pane_it_switched_to(fresh_db, tmp_path):
    """Issue 8's key row: Textual tells the screen that a pane was shown or hidden only when that pane's own message
    queue next falls idle. On a loaded event loop (an apply streaming, a backup) the screen's update timer drew a
    frame before that, without the switch; the SQL view's focus (which follows the frame) then restyled the screen
    and changed the footer, and the switch was drawn a frame later with all of it: 50-130 ms after `s` on a slow
    machine. Here the frame the timer draws right after `s` (both ways) shows the pane `s` switched to, and the
    focus moves only after it."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot, 0.3)
        screen = app.screen
        sql_view = screen.query_one("#sql-text", TextArea)
        for opening in (True, False):
            focused = screen.focused
            screen.action_toggle_sql()
            screen._on_timer_update()  # the timer's frame, before any pane has had its idle turn
            assert_pane_drawn(app, sql=opening, why="the frame the timer drew right after `s`")
            if opening:
                assert screen.focused is focused, "the focus moved before the frame that shows the SQL"
            await scenes.settle(pilot, 0.2)
            assert (screen.focused is sql_view) == opening


async def test_a_key_s_frame_does_not_wait_for_the_update_timer_s_next_slot(fresh_db, tmp_path):
    """Issue 8's key row: Textual draws a screen on its update timer, and after a frame that timer sleeps to its next
    slot (at 120 frames a second up to 8-17 ms: one slot, or two when the frame ran late) before it looks at what is
    pending again. While a step runs, frames come several times a second, so a key's effect often waited for that
    sleep (the `s` frame was drawn 10-30 ms after its action, bench.py keys). A key's action is drawn at the event
    loop's next turn instead. Here a frame has just been drawn (the timer sleeps), `s` runs through the app's key
    path, and a few turns of the loop later the screen shows the SQL."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot, 0.3)
        screen = app.screen
        timer = screen._update_timer
        tick, drawn = timer._callback, asyncio.Event()

        def ticked():
            tick()
            drawn.set()

        timer._callback = ticked
        for opening in (True, False):
            drawn.clear()
            screen.query_one("#txbar").refresh()  # a frame, as a step's progress makes several a second
            await asyncio.wait_for(drawn.wait(), 5)  # it is drawn: the timer now sleeps to its next slot
            await app.run_action("screen.toggle_sql")
            for _ in range(3):
                await asyncio.sleep(0)
            assert_pane_drawn(app, sql=opening, why="it waits for the update timer's next slot")
            await scenes.settle(pilot, 0.2)


async def test_a_confirmation_s_footer_is_not_rebuilt_as_the_focus_moves(fresh_db, tmp_path):
    """Issue 8: the confirmation dialog's footer (Textual's) was rebuilt on every change of its screen's bindings:
    six times while a dialog opened, once more at each tab between its buttons. It is the runbook's footer now,
    one line drawn by one widget; it still offers the dialog's own keys."""
    from aami_tui.ui.confirm import ConfirmModal

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.tick_all(pilot)
        await pilot.press("n")
        await scenes.settle(pilot, 0.3)
        assert isinstance(app.screen, ConfirmModal)
        widget = app.screen.query_one("KeyFooter")
        footer = screen_text(app).splitlines()[-1]
        assert "esc" in footer, footer
        await pilot.press("tab")
        await scenes.settle(pilot, 0.2)
        assert app.screen.query_one("KeyFooter") is widget and not widget.children, "the dialog's footer was rebuilt"
        assert screen_text(app).splitlines()[-1] == footer
        await pilot.press("escape")
        await scenes.settle(pilot, 0.2)


def test_the_steps_rows_are_drawn_as_the_table_drew_them():
    """Issue 8: the steps list draws its rows without rich's Table (3-6 ms of the event loop at each repaint). What
    reaches the screen is the table's own output, segment for segment, at every width the list can have: the
    icon and the timing whole, the label cut with an ellipsis, its highlight as wide as its column."""
    from rich.console import Console
    from rich.style import Style

    from aami_tui.ui.step_list import _Rows

    rows = _Rows([("✓", "bold green", "1 Pre-flight", "", "0.4s"), ("●", "bold yellow", "2 Backup", "", "12s"),
                  ("○", "dim", "  rehearse (opt.)", "dim", ""), ("○", "dim", "3 BEGIN", "bold reverse", ""),
                  ("↺", "bold yellow", "4 Apply", "", "2m05s"), ("?", "bold red", "6 ROLLBACK?", "", "1h02m")])
    console = Console(width=40, color_system="truecolor")
    for width in range(9, 40):
        options = console.options.update_width(width)
        drawn, table = (console.render_lines(r, options, pad=True) for r in (rows, rows.table()))
        assert [[(s.text, s.style or Style.null()) for s in line] for line in drawn] == \
            [[(s.text, s.style or Style.null()) for s in line] for line in table], width


async def test_the_footer_s_keys_answer_the_mouse(fresh_db, tmp_path):
    """The footer is one line drawn by one widget (issue 8: a widget per key cost 8-29 ms of each step's start and
    end). Its keys still answer the mouse as Textual's did: the key under the pointer is highlighted, a click
    presses it, and the command palette's key at the right edge opens the palette."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot)
        footer = app.screen.query_one("KeyFooter")
        row = "".join(s.text for s in footer.render_line(0))  # as the terminal shows it
        x = row.index(" s SQL ")
        cells = lambda: [s.style.bgcolor for s in footer.render_line(0)]  # noqa: E731
        before = cells()
        await pilot.hover("KeyFooter", offset=(x + 2, 0))
        await pilot.pause()
        lit = cells()
        assert lit != before, "the key under the pointer is highlighted"
        await pilot.click("KeyFooter", offset=(x + 2, 0))
        await scenes.settle(pilot, 0.2)
        assert str(app.screen.query_one("#panes").border_title) == "Migration SQL", "a click on `s SQL` shows the SQL"
        await pilot.click("KeyFooter", offset=(row.index("^p palette") + 1, 0))
        await scenes.settle(pilot, 0.5)
        assert type(app.screen).__name__ == "CommandPalette"
        await pilot.press("escape")
        await scenes.settle(pilot, 0.2)


async def test_a_dialog_closing_repaints_the_runbook_without_laying_it_out(fresh_db, tmp_path):
    """Issue 8: a dialog that closes (every step's confirmation) gave the runbook under it a repaint of the whole
    screen, then, once the dialog's widgets were removed, a layout of the whole screen too (Textual lays out the
    parent of what it removes, here the app's current screen): 25-50 ms more of a loaded machine at every step's
    start, a key waiting behind it. Nothing under the dialog changed size, so the runbook is repainted, not laid
    out; what changed under it while the dialog was up is laid out as it happens (a step's end under a dialog)."""
    from aami_tui.ui.confirm import ConfirmModal

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot)
        runbook = app.screen
        with laid_out() as seen:
            panel = runbook.query_one("#rb-checklist")
            for changed in (False, True):
                app.push_screen(ConfirmModal("Run Pre-flight?", "b"))
                await scenes.settle(pilot, 0.3)
                if changed:  # the tables panel narrows under the dialog
                    width = panel.outer_size.width - 4
                    panel.styles.width = width
                    await scenes.settle(pilot, 0.3)
                    assert "ConfirmModal" in [type(top).__name__ for screen, top in seen if screen is runbook]
                seen.clear()
                await pilot.press("escape")
                await scenes.settle(pilot, 0.3)
                assert app.screen is runbook
                layouts = [type(top).__name__ for screen, top in seen if screen is runbook]
                assert layouts == [], (changed, layouts)
                if changed:
                    assert panel.outer_size.width == width


async def test_a_step_change_that_switches_no_pane_lays_nothing_out(fresh_db, tmp_path):
    """Issue 8: every change of a step's state shows the step's pane again, and set the Verify pane's title
    each time, hidden or not, the same words or not; Textual lays the whole screen out at each update of a Static
    (25-50 ms of a loaded machine, two or three times at each step's start and end). A change that switches no pane
    and changes no size asks for no layout."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.tick_all(pilot)
        for _ in range(3):  # pre-flight, backup, BEGIN
            await scenes.next_step(pilot)
        await scenes.settle(pilot, 0.5)
        screen = app.screen
        for _ in range(3):
            await pilot.pause()
            screen._show_pane()  # what each step event does; nothing else runs until it returns
            asked = [f"{type(w).__name__}#{w.id}" for w in screen.walk_children(with_self=True) if w._layout_required]
            assert asked == [], asked


async def test_the_tables_panel_growing_a_scrollbar_lays_the_screen_out_no_more_than_it_needs(fresh_db, tmp_path):
    """Issue 8: a migration that creates more tables than the runbook's tables panel can show (the benchmark's
    file: 200) gives the panel a scrollbar at its step's end, and takes it away at ROLLBACK. Textual laid the whole
    screen out three times in a row for it (the table's new size, then each scrollbar's own size, then once more):
    a key pressed as the apply ended waited behind them. Now a scrollbar's own new size asks for none: two at
    most (the table's new size and scrollbars, then Textual's second pass over the table's scrollbars)."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot, 0.5)
        table = app.screen.query_one("#rb-checklist #checklist-table")
        assert not table.show_vertical_scrollbar
        with laid_out() as seen:
            for extra in (True, False):
                run_sql(fresh_db, "; ".join(f"CREATE TABLE extra_{i} (id int)" for i in range(30)) if extra
                        else "; ".join(f"DROP TABLE extra_{i}" for i in range(30)))
                seen.clear()
                await app.screen.refresh_tables()
                await scenes.settle(pilot, 0.5)
                assert table.show_vertical_scrollbar is extra
                layouts = [screen for screen, top in seen if screen is top]
                assert len(layouts) <= 2, (extra, len(layouts))


async def test_the_dashboard_hidden_under_the_runbook_does_no_screen_work(fresh_db, tmp_path):
    """Issue 8: the runbook's refreshes keep the dashboard's checklist up to date too. Textual counts the screen
    just under the top one as visible (it would show through a translucent top), so the dashboard, hidden whole
    under the opaque runbook, laid itself out and repainted the runbook's cells over its changed regions at
    every refresh that changed something: 3-15 ms of the event loop several times at each step's end. It does
    that work when it is shown again, with what it holds by then."""
    from textual.screen import Screen

    app = make_app(fresh_db, tmp_path)
    work: list[str] = []
    real_layout, real_refresh = Screen._refresh_layout, Screen._compositor_refresh

    def layout(self, size=None, scroll=False):
        if type(self).__name__ == "DashboardScreen":
            work.append("layout")
        return real_layout(self, size, scroll)

    def refresh(self):
        if type(self).__name__ == "DashboardScreen":
            work.append("repaint")
        return real_refresh(self)

    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.settle(pilot, 0.5)
        dashboard = app.dashboard
        Screen._refresh_layout, Screen._compositor_refresh = layout, refresh
        try:
            run_sql(fresh_db, "CREATE TABLE namespaces (id int)")
            await app.screen.refresh_tables()
            await scenes.settle(pilot, 0.5)
            assert dashboard.query_one("#checklist").result.present, "the dashboard's checklist is kept up to date"
            assert work == [], work
        finally:
            Screen._refresh_layout, Screen._compositor_refresh = real_layout, real_refresh
        await pilot.press("d")
        await scenes.settle(pilot, 0.5)
        assert app.screen is dashboard
        assert "1 / 10 present" in screen_text(app), "shown again, it shows what it holds"
