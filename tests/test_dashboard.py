"""The dashboard as a new developer meets it: a missing database, keys that belong elsewhere, toasts."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from conftest import apply_migration
from psycopg import sql
from test_console import make_app, text_of

from aami_tui.ui import scenes
from aami_tui.ui.confirm import ConfirmModal

SIZE = (120, 36)


@pytest.fixture
def missing(pg_server):
    name = f"aami_missing_{uuid.uuid4().hex[:8]}"
    yield pg_server.settings(name)
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def toasts(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_create_database_offer_stays_reachable_while_the_database_is_missing(missing, tmp_path):
    app = make_app(missing, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the first offer")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard, what="the dashboard")
        await scenes.settle(pilot, 1.2)  # a few polls later
        hint = text_of(app, "#dash-hint")
        assert "Cannot reach" not in hint
        assert f"Database {missing.dbname} does not exist" in hint and "i" in hint and "aami-tui init" in hint
        assert isinstance(app.screen, type(app.dashboard))  # polls do not push the offer again by themselves
        # the key brings the offer back
        await pilot.press("i")
        await scenes.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the offer (key)")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard, what="the dashboard")
        # and so does the command palette
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Create the database" in titles
        # the footer shows it while the database is missing
        assert app.dashboard.check_action("create_database", ()) is True
        await pilot.press("i")
        await scenes.wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the offer (key)")
        await pilot.click("#confirm")
        await scenes.wait_for(pilot, lambda: app.dashboard.last_result is not None, what="refresh")
        assert "0 / 10 present" in text_of(app, "#checklist-header")
        assert not any("Reconnected" in t for t in toasts(app))  # it never lost the server
        assert "Create the database" not in [c.title for c in app.get_system_commands(app.screen)]
        assert not app.dashboard.check_action("create_database", ())
        assert "10 required tables missing" in text_of(app, "#dash-hint")


@pytest.mark.parametrize("key, words", [("n", "n runs the next runbook step"), ("c", "c (COMMIT) works in the runbook"),
                                        ("x", "x (ROLLBACK) works in the runbook")])
async def test_runbook_keys_on_the_dashboard_say_where_they_work(fresh_db, tmp_path, key, words):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press(key)
        await pilot.pause()
        assert any(words in t and "press r" in t for t in toasts(app)), toasts(app)
        assert app.runbook is None  # nothing was started


async def test_typed_confirmation_shows_the_name_above_an_empty_field(fresh_db, tmp_path):
    from textual.widgets import Input

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("x")  # a toast ("works in the runbook")...
        await pilot.pause()
        assert toasts(app)
        app.push_screen(ConfirmModal("t", "b", require_text=fresh_db.dbname, cancel="Stay"))
        await pilot.pause()
        assert not toasts(app)  # ...does not lie over the dialog's body (80x24: it hid half of it)
        from screen_text import svg_text

        footer = svg_text(app.export_screenshot()).splitlines()[-1]  # escape is named as its button is
        assert "esc Stay" in footer and "Cancel" not in footer, footer
        field = app.screen.query_one("#confirm-input", Input)
        assert field.value == "" and fresh_db.dbname not in field.placeholder
        assert fresh_db.dbname in text_of(app, "#confirm-prompt")


@pytest.mark.parametrize("size", [(60, 15), (80, 24)])
async def test_footer_has_no_stray_characters_after_the_palette_key(fresh_db, tmp_path, size):
    """At 60 columns the keys overflow and Textual drew a key's letter after the docked palette key
    ("palettei", seen in tmux; a headless screenshot does not show it): there the palette key is not shown."""
    from screen_text import svg_text

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=size) as pilot:
        await scenes.dashboard_ready(pilot)
        footer = svg_text(app.export_screenshot()).splitlines()[-1].rstrip()
        if size[0] < 70:
            assert "palette" not in footer, footer
        else:
            assert footer.endswith("^p palette"), footer
            assert "q Quit" in footer
            # The checklist keeps what is wrong in view at 80 columns (the note column scrolled out of sight).
            screen = svg_text(app.export_screenshot())
            rows = [ln for ln in screen.splitlines() if "namespaces" in ln]
            assert rows and "missing" in rows[0], screen


async def test_a_tall_terminal_gives_the_log_the_room(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await pilot.pause()
        log = app.screen.query_one("#log")
        assert log.region.height >= 14, log.region
        assert app.screen.query_one("#rb-main").region.height >= 24
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:  # the usual size keeps its 9-row log
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        assert app.screen.query_one("#log").region.height == 9


async def test_help_says_how_to_close_it_and_closes(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        from screen_text import svg_text

        from aami_tui.ui.help_screen import HelpText

        md = app.screen.query_one(HelpText)
        assert "Press escape, q or ? to close this help" in svg_text(app.export_screenshot())
        footer = svg_text(app.export_screenshot()).splitlines()[-1]  # its own keys, not the screen's under it
        assert "Close" in footer and "Runbook" not in footer and "Quit" not in footer, footer
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.dashboard
        # built once: opening it again only shows it (its Markdown took 0.3-0.6 s to build on every ?)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query_one(HelpText) is md
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen is app.dashboard
        # Shown again without re-styling its ~90 widgets (most of a key press), but a theme chosen while it was
        # closed still reaches it.
        from textual.color import Color

        dark = app.screen.styles.background
        app.theme = "textual-light"
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        surface = Color.parse(app.get_css_variables()["surface"])
        assert app.screen.query_one("#help-box").styles.background == surface != dark
        primary = Color.parse(app.get_css_variables()["primary"]).rich_color  # the text's colours too
        title = next(seg for seg in md.render_line(0) if seg.text.strip())
        assert "how the migration works" in title.text and title.style.color == primary, title
        await pilot.press("question_mark")
        await pilot.pause()
        # fresh5 F14: the palette's Screenshot (Textual's) said "Failed to save screenshot" (no ~/Downloads), or wrote
        # an SVG with the umask's mode there. It goes to the reports folder, owner-only, and says where.
        [shot] = [c for c in app.get_system_commands(app.screen) if c.title == "Screenshot"]
        shot.callback()
        await pilot.pause(0.3)
        import stat

        [svg] = list((tmp_path / "reports").glob("screenshot_*.svg"))
        assert stat.S_IMODE(svg.stat().st_mode) == 0o600 and "<svg" in svg.read_text()
        assert any(f"Screenshot saved: {svg}" in str(n.message) for n in app._notifications)


async def test_the_help_is_drawn_while_the_console_is_idle_and_the_first_question_mark_only_shows_it(fresh_db,
                                                                                                   tmp_path):
    """Issue 8: the first `?` took 0.45-0.55 s of CPU (Textual's Markdown built ~90 widgets, every later `?` laid
    them out again, ~30 ms). The help's lines are drawn by Rich in a thread once the dashboard is idle; `?` draws
    no line itself, and the help is whole: its last key row is there, at this width and at 80x24."""
    from screen_text import svg_text

    from aami_tui.ui import help_screen

    for size in (SIZE, (80, 24)):
        help_screen._render.cache_clear()
        app = make_app(fresh_db, tmp_path)
        async with app.run_test(size=size) as pilot:
            await scenes.dashboard_ready(pilot)
            await scenes.wait_for(pilot, lambda: help_screen._render.cache_info().currsize == 2,
                                  what="the help drawn in its thread")
            drawn = help_screen._render.cache_info().misses
            await pilot.press("question_mark")
            await scenes.settle(pilot, 0.2)
            assert help_screen._render.cache_info().misses == drawn, "the first ? drew the help itself"
            shown = svg_text(app.export_screenshot())
            assert "how the migration works" in shown and "Press escape, q or ? to close this help" in shown
            await pilot.press("end")
            await scenes.settle(pilot, 0.2)
            shown = svg_text(app.export_screenshot())
            assert "command palette" in shown and "quit (asks first" in shown, shown
            assert help_screen._render.cache_info().misses == drawn


async def test_question_mark_opens_the_help_on_every_screen_and_at_its_top(fresh_db, tmp_path):
    """fresh11: `?` did nothing on the Restore and Drift screens (the README says "anywhere"; on Restore, the
    escape that followed left for the dashboard), and the help opened again where it was last scrolled to, its
    title and "how to close" off screen."""
    from aami_tui.ui.help_screen import HelpScreen

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("question_mark")
        await scenes.wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        await pilot.press("end")
        await scenes.wait_for(pilot, lambda: app.screen.query_one("#help-box").scroll_y > 0, what="scrolled")
        await pilot.press("escape")
        for key, screen_id in (("b", "restore"), ("p", "drift")):
            await scenes.wait_for(pilot, lambda: app.screen is app.dashboard, what="the dashboard")
            await pilot.press(key)
            await scenes.wait_for(pilot, lambda screen_id=screen_id: app.screen.id == screen_id, what=screen_id)
            await scenes.settle(pilot, 0.3)
            assert "? Help" in " ".join(text_of(app, "KeyFooter").split()), text_of(app, "KeyFooter")
            await pilot.press("question_mark")
            await scenes.wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what=f"the help on {screen_id}")
            await scenes.settle(pilot, 0.2)
            assert app.screen.query_one("#help-box").scroll_y == 0  # at its top, whatever was read last time
            await pilot.press("end")
            await pilot.press("escape")
            await scenes.wait_for(pilot, lambda screen_id=screen_id: app.screen.id == screen_id, what=f"back on {screen_id}")
            await pilot.press("d" if screen_id == "restore" else "escape")


async def test_a_resize_under_the_help_leaves_the_checklist_whole(fresh_db, tmp_path):
    """fresh11: resized to 80x24 while the help was open, the dashboard's checklist came back with its names cut to
    five letters ("targe", "targe": targets or target_groups?) and no ✓ column, until the next resize. Its rows had
    been drawn before the table measured them (DataTable keeps rows drawn at the old widths)."""
    from screen_text import svg_text

    from aami_tui.ui.help_screen import HelpScreen

    apply_migration(fresh_db)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("question_mark")
        await scenes.wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        await pilot.resize_terminal(80, 24)
        await scenes.settle(pilot, 0.2)
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard, what="the dashboard")
        await scenes.settle(pilot, 0.5)
        shown = svg_text(app.export_screenshot())
        for name in ("namespaces", "target_groups", "bootstrap_tokens"):
            assert re.search(rf"✓ +{name} ", shown), shown


async def test_a_refused_password_is_said_and_not_retried_until_f5(fresh_db, tmp_path):
    """It said "Cannot reach the database" and retried every 1-30 s and on every return to the dashboard: 7
    failed logins in 20 s in the server's log."""
    import dataclasses

    if not fresh_db.password:
        pytest.skip("server without password authentication")
    wrong = dataclasses.replace(fresh_db, params={**fresh_db.params, "password": "definitely-wrong"})
    app = make_app(wrong, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        dash = app.dashboard
        tries = []
        connect = dash._connect
        dash._connect = lambda: (tries.append(1), connect())[1]
        await scenes.wait_for(pilot, lambda: any(w in text_of(app, "#dash-hint") for w in (
            "Password authentication failed", "Cannot reach")), what="the refused login")
        hint = text_of(app, "#dash-hint")
        assert f'Password authentication failed for user "{wrong.user}"' in hint
        # the password is in the settings, which win over ~/.pgpass: F5 cannot help, say what does (it said F5)
        assert "quit and start again with the right one" in hint and "F5" not in hint
        assert "Not retrying by itself" in dash.query_one("#connection").error and "F5" not in dash.query_one(
            "#connection").error
        assert "Cannot reach" not in hint and "definitely-wrong" not in hint
        seen = len(tries)
        dash.poll()  # the refresh interval
        await pilot.press("question_mark")  # the help, then back: the dashboard resumes (it forced a refresh)
        await pilot.press("escape")
        await scenes.settle(pilot)
        assert len(tries) == seen and "Password authentication failed" in text_of(app, "#dash-hint")
        await pilot.press("f5")  # the operator asks: one more try
        await scenes.wait_for(pilot, lambda: len(tries) == seen + 1 and dash.auth_refused is not None,
                              what="the try F5 asked for")
        await scenes.settle(pilot)
        assert len(tries) == seen + 1


async def test_a_password_refused_from_pgpassword_is_not_offered_f5(fresh_db, tmp_path, monkeypatch):
    """PGPASSWORD wins over ~/.pgpass and is fixed for the console's life, so F5 cannot help; but "pgpassword"
    contains "pgpass", and the dashboard told the operator to correct it "there" and press F5."""
    import dataclasses

    if not fresh_db.password:
        pytest.skip("server without password authentication")
    monkeypatch.setenv("PGPASSWORD", "definitely-wrong")
    app = make_app(dataclasses.replace(fresh_db, params={k: v for k, v in fresh_db.params.items()
                                                         if k != "password"}), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.wait_for(pilot, lambda: "Password authentication failed" in text_of(app, "#dash-hint"),
                              what="the refused login")
        hint = text_of(app, "#dash-hint")
        assert "PGPASSWORD" in hint and "quit and start again with the right one" in hint and "F5" not in hint
        assert "F5" not in app.dashboard.query_one("#connection").error


class _Early:
    """What the dashboard reads of the console's early child (core/early.py), with the messages it sent."""

    def __init__(self, *msgs: tuple) -> None:
        self.msgs, self.closed = list(msgs), False

    def take(self, *kinds: str):
        got = next((m for m in self.msgs if m[0] in kinds), None)
        if got is not None:
            self.msgs.remove(got)
        return got

    async def wait_async(self, *kinds: str, timeout: float):
        return self.take(*kinds)  # nothing more will come: as a child that has ended

    async def finish(self, timeout: float = 2.0) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True


async def test_the_first_refresh_comes_from_the_early_child_else_as_before(fresh_db, tmp_path):
    """The child's checklist and server status are on screen before the dashboard has connected at all; the next
    refresh is the dashboard's own. A child that said nothing (it failed) changes nothing; a login it saw refused
    is said in the dashboard's own words, and it stops trying (auth_refused) as after its own refused login."""
    import dataclasses

    from aami_tui.core import db, migration, schema, status
    from aami_tui.core.runbook import Options
    from aami_tui.ui.app import create_app

    conn = await db.connect(fresh_db)
    try:
        result = await schema.validate(conn)
        server = await status.server_status(conn)
    finally:
        await conn.close()
    path = migration.resolve_migration_path()

    async def first_refresh(early: _Early, connects_first: bool) -> None:
        opts = Options(backup_dir=tmp_path / "backups", reports_dir=tmp_path / "reports")
        app = create_app(fresh_db, options=opts, refresh_interval=3600, early=early)  # no refresh but the first
        async with app.run_test(size=SIZE) as pilot:
            dash = app.dashboard
            await scenes.wait_for(pilot, lambda: dash.last_result is not None and dash.server is not None,
                                  what="the first refresh")
            assert "0 / 10 present" in text_of(app, "#checklist-header") and early.closed
            assert app.screen.query_one("#connection").status.server_version == server.server_version
            assert (dash.conn is not None) is connects_first  # from the child, the dashboard has not connected
            # the first frame carries the checklist; the rest of the dashboard follows it, complete (as it looked)
            await scenes.wait_for(pilot, lambda: not dash.has_class("-first-frame")
                                  and not dash.query("#header-slot, #footer-slot"), what="the rest of the dashboard")
            assert dash.query_one("#connection").display and dash.query_one("#dash-hint-box").display
            assert dash.query_one("Header") and "r Runbook" in str(dash.query_one("KeyFooter").render())
            await pilot.press("f5")
            await scenes.wait_for(pilot, lambda: dash.conn is not None, what="its own refresh")

    await first_refresh(_Early(("result", path, result), ("status", server)), connects_first=False)
    await first_refresh(_Early(), connects_first=True)  # the child failed: as before

    if fresh_db.password:
        wrong = dataclasses.replace(fresh_db, params={**fresh_db.params, "password": "definitely-wrong"})
        try:
            await db.connect(wrong)
        except db.ConnectError as exc:
            refused = ("connect_error", str(exc), exc.kind)
        app = make_app(fresh_db, tmp_path, early=_Early(refused))
        async with app.run_test(size=SIZE) as pilot:
            await scenes.wait_for(pilot, lambda: app.dashboard.auth_refused is not None, what="the refused login")
            hint = text_of(app, "#dash-hint")
            assert f'Password authentication failed for user "{fresh_db.user}"' in hint
            assert "quit and start again with the right one" in hint  # the password is in the settings: not F5
            assert app.screen.query_one("#connection").error.startswith(refused[1])  # the child's sentence


async def test_the_next_panel_at_80x24_brings_every_line_into_view(fresh_db, tmp_path):
    """At 80x24 the Next panel has six rows: after COMMIT the Config Server's environment is longer. It scrolls
    (its last line, DB_NAME, was below the panel's edge and could not be reached)."""
    from conftest import apply_migration
    from screen_text import svg_text

    apply_migration(fresh_db)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.wait_for(pilot, lambda: f"DB_NAME={fresh_db.dbname}" in text_of(app, "#dash-hint"),
                              what="the Config Server's environment")
        assert f"DB_NAME={fresh_db.dbname}" not in svg_text(app.export_screenshot())  # six rows: not all in view
        app.screen.query_one("#dash-hint").parent.scroll_end(animate=False)
        await pilot.pause()
        assert f"DB_NAME={fresh_db.dbname}" in svg_text(app.export_screenshot())


async def test_f5_and_the_refresh_reread_an_edited_migration_file(fresh_db, tmp_path):
    import hashlib
    import os
    import shutil

    from conftest import MIGRATION

    from aami_tui.ui.connection_panel import ConnectionPanel

    path = tmp_path / "001_initial_schema.sql"
    shutil.copy(MIGRATION, path)
    app = make_app(fresh_db, tmp_path, migration_path=path)

    def shown() -> str:
        m = app.dashboard.query_one(ConnectionPanel).migration
        return getattr(m, "sha256", "")

    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.wait_for(pilot, lambda: shown() == hashlib.sha256(path.read_bytes()).hexdigest(), what="sha")
        with path.open("a") as f:  # the periodic refresh notices (size and mtime changed)
            f.write("-- x\n")
        await scenes.wait_for(pilot, lambda: shown() == hashlib.sha256(path.read_bytes()).hexdigest(),
                              what="the edited file's sha256 (refresh)")
        st = path.stat()  # the same size and mtime: only F5 reads it again
        path.write_text(path.read_text()[:-5] + "-- y\n")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        await pilot.press("f5")
        await scenes.wait_for(pilot, lambda: shown() == hashlib.sha256(path.read_bytes()).hexdigest(),
                              what="the edited file's sha256 (F5)")


@pytest.mark.parametrize("size", [(120, 36), (50, 24)])
async def test_the_checklists_cells_are_drawn_exactly_as_textuals_data_table_draws_them(size):
    """ChecklistTable builds its cells' segments itself (the console's first frame): for every cell the dashboard
    shows (present, missing, drifted, locked, extra, '… and N more', the header; five columns and the narrow three)
    they are Textual's own, text, colours and meta alike."""
    from textual.app import App
    from textual.widgets import DataTable

    from aami_tui.core.schema import LockHolder, TableState, ValidationResult
    from aami_tui.ui.table_checklist import ChecklistTable, TableChecklist

    holder = LockHolder(pid=4242, user="dba", application="psql", state="active", query_start=None, query=None)
    tables = (TableState("namespaces", True, True, 12, 16384),
              TableState("groups", True, False),
              TableState("targets", True, True, 1_200_000, 96 * 2**20, ("id",), ("name", "labels", "group_id", "x")),
              TableState("target_groups", True, True, 0, 8192, (), (), ("legacy_id",)),
              TableState("exporters", True, True, None, None, locked_by=(holder,)),
              TableState("site_1", False, True, 3, 8192))
    result = ValidationResult(tables, ("site_1",), 25)

    class Probe(App):
        CSS_PATH = "../aami_tui/ui/app.tcss"

        def compose(self):
            yield TableChecklist(id="checklist")

    app = Probe()
    async with app.run_test(size=size) as pilot:
        checklist = app.query_one(TableChecklist)
        checklist.show(result)
        await pilot.pause()
        table = app.query_one(ChecklistTable)
        assert checklist.narrow == (size[0] == 50)
        base, header = table.rich_style, table.get_component_styles("datatable--header").rich_style
        checked = 0
        for row in range(-1, table.row_count):
            for column, col in enumerate(table.ordered_columns):
                width = col.get_render_width(table)
                style = header if row == -1 else base
                table._cell_render_cache.clear()
                ours = table._fast_cell(row, column, style, width, False, False)  # None: Textual's way
                table._cell_render_cache.clear()
                textuals = DataTable._render_cell(table, row, column, style, width)
                assert ours == textuals, (row, column)
                checked += 1
        assert checked == (table.row_count + 1) * len(table.ordered_columns) >= 24


async def test_the_checklists_table_draws_every_line_as_textuals_data_table():
    """The same rows in a ChecklistTable and in Textual's own DataTable, side by side: every line of both renders
    is the same (text, colours and meta), header, rows and the blank lines below them."""
    from rich.text import Text
    from textual.app import App
    from textual.geometry import Region
    from textual.widgets import DataTable

    from aami_tui.core.schema import TableState, ValidationResult
    from aami_tui.ui.table_checklist import ChecklistTable, TableChecklist

    result = ValidationResult((TableState("namespaces", True, True, 12, 16384), TableState("groups", True, False),
                               TableState("targets", True, True, 5, 8192, (), ("name",))), (), 0)

    class Probe(App):
        CSS = "DataTable { height: 12; width: 70; }"
        AUTO_FOCUS = None  # neither is focused (a focused table is tinted)

        def compose(self):
            for cls in (ChecklistTable, DataTable):
                yield cls(cursor_type="row", zebra_stripes=False, show_cursor=False)

    app = Probe()
    async with app.run_test(size=(80, 30)) as pilot:
        ours, textuals = app.query(DataTable)
        rows = TableChecklist()._rows(result)
        for t in (ours, textuals):
            t.add_columns(*(Text(n) for n in ("", "table", "est. rows", "size", "note")))
            for row in rows:
                t.add_row(*(Text(text, style=style) for text, style in row))
        await pilot.pause()
        assert type(ours) is ChecklistTable and type(textuals) is DataTable
        region = Region(0, 0, 70, 12)
        assert [list(s) for s in ours.render_lines(region)] == [list(s) for s in textuals.render_lines(region)]


@pytest.mark.parametrize("size", [(120, 36), (80, 24)])
async def test_the_first_frame_is_the_same_without_textuals_restyle_as_the_screen_first_resumes(size, tmp_path,
                                                                                              monkeypatch):
    """DashboardScreen skips Textual's restyle of the whole screen on its first resume (its widgets were styled as
    they mounted, just before): the first frame, with the early child's checklist in it, is the same drawn both
    ways, at full size and in the narrow layout."""
    from aami_tui.core.paths import resolve_migration_path
    from aami_tui.core.runbook import Options
    from aami_tui.core.schema import TableState, ValidationResult
    from aami_tui.core.settings import resolve
    from aami_tui.ui import dashboard
    from aami_tui.ui.app import create_app

    result = ValidationResult((TableState("namespaces", True, True, 12, 16384), TableState("groups", True, False)),
                              (), 0)
    settings = resolve("host=127.0.0.1 port=1 user=u dbname=aami_config", env={})  # never reached: no refresh but
    frames: dict[bool, str] = {}                                                       # the child's

    async def first_frame(self) -> None:  # instead of completing it: the first frame as it was drawn
        frames[self.RESTYLE_ON_FIRST_RESUME] = self.app.export_screenshot()

    monkeypatch.setattr(dashboard.DashboardScreen, "complete_first_frame", first_frame)
    for restyle in (True, False):
        monkeypatch.setattr(dashboard.DashboardScreen, "RESTYLE_ON_FIRST_RESUME", restyle)
        app = create_app(settings, options=Options(backup_dir=tmp_path, reports_dir=tmp_path), refresh_interval=3600,
                         early=_Early(("result", resolve_migration_path(), result)))
        async with app.run_test(size=size) as pilot:
            await scenes.wait_for(pilot, lambda r=restyle: r in frames, what="the first frame")
    assert "0 / 10 present" not in frames[True] and "1 / 10 present" in frames[True].replace("&#160;", " ")
    assert frames[False] == frames[True]


async def test_a_locked_tables_note_shows_the_pid_at_120_columns(fresh_db, tmp_path):
    """fresh5 F13: at 120 columns the dashboard cut the locked table's note to "locked by pi": the one fact a DBA
    needs (whose lock) was lost. The pid comes first."""
    from conftest import apply_migration
    from screen_text import region_text

    apply_migration(fresh_db)
    with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
        holder.execute("LOCK TABLE groups IN ACCESS EXCLUSIVE MODE")
        pid = holder.info.backend_pid
        app = make_app(fresh_db, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await scenes.dashboard_ready(pilot)
            await scenes.wait_for(pilot, lambda: "groups" in region_text(app, "#checklist DataTable"), what="the checklist")
            await scenes.settle(pilot)
            line = next(ln for ln in region_text(app, "#checklist DataTable").splitlines() if " groups " in ln)
            assert f"pid {pid}" in line, line


async def test_a_refresh_that_changes_a_cell_keeps_where_the_checklist_was_scrolled_to(fresh_db, tmp_path):
    """A refresh rebuilt the whole table (cleared, rows added again) whenever one cell changed: the list jumped back
    to its top under a DBA reading its end, and the table's size went to nothing and back (a layout of the screen
    and the scrollbars each time, a key pressed then waiting). A refresh of the same rows changes the cells in place."""
    from conftest import apply_migration, run_sql
    from textual.widgets import DataTable

    apply_migration(fresh_db)
    run_sql(fresh_db, "".join(f"CREATE TABLE extra_{i} (id int);" for i in range(25)))
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.settle(pilot)
        table = app.dashboard.query_one("#checklist DataTable", DataTable)
        assert table.max_scroll_y > 0  # more rows than it shows
        table.scroll_end(animate=False)
        await scenes.settle(pilot)
        bottom = table.scroll_y
        assert bottom > 0
        run_sql(fresh_db, "INSERT INTO groups (name) SELECT 'g' || i FROM generate_series(1, 500) i; ANALYZE groups")
        await pilot.press("f5")
        await scenes.wait_for(pilot, lambda: "500" in cells(table), what="the refreshed checklist")
        await scenes.settle(pilot)
        assert table.scroll_y == bottom
        assert "… and" in region_text_of(app)  # still its end


def cells(table) -> str:
    return " ".join(str(c) for i in range(table.row_count) for c in table.get_row_at(i))


def region_text_of(app) -> str:
    from screen_text import region_text

    return region_text(app, "#checklist DataTable")


async def test_the_dashboard_names_a_migration_in_progress_elsewhere(fresh_db, tmp_path):
    """fresh7 N2: with another session's migration open (its tables invisible until it commits) the dashboard said
    only '10 required tables missing … Press r to open the runbook', where check prints a NOTE naming it."""
    from faults import run_to_begin, runbook

    other = runbook(fresh_db, tmp_path / "other", skip_backup=True)
    await run_to_begin(other)
    try:
        app = make_app(fresh_db, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await scenes.dashboard_ready(pilot)
            await scenes.wait_for(pilot, lambda: "in progress" in text_of(app, "#dash-hint"), what="the note")
            hint = text_of(app, "#dash-hint")
    finally:
        await other.close()
    assert hint.startswith(f"A migration is in progress on {fresh_db.dbname} (pid {other.backend_pid}, "), hint
    assert "application 'aami-tui'" in hint and "transaction open since" in hint, hint
    assert "10 required tables missing until it commits; do not start another" in hint, hint
