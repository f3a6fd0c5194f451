"""The runbook's SQL view (ui/sql_view.py) keeps what it has drawn across `s` presses, never what has changed:
the cursor follows its focus, a new theme redraws it, an edited document shows its new text."""

from __future__ import annotations

from textual.app import App
from textual.geometry import Region
from textual.widgets import Button
from textual.widgets.text_area import Selection

from aami_tui.ui.sql_view import SqlView


class _Viewer(App):
    CSS = "SqlView { border: none; }"  # as in the runbook (screens.tcss)

    def compose(self):
        yield Button("elsewhere")
        yield SqlView("", language="sql", read_only=True, soft_wrap=False, show_line_numbers=True)


def _cell(view: SqlView, y: int, x: int):
    """(character, style) of the view's cell at (x, y), as drawn."""
    strip = view.render_lines(Region(0, y, view.size.width, 1))[0]
    for seg in strip:
        if x < len(seg.text):
            return seg.text[x], seg.style
        x -= len(seg.text)
    raise AssertionError("no such cell")


async def test_the_sql_view_redraws_what_its_focus_its_theme_and_its_text_change():
    app = _Viewer()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(SqlView)
        view.load_text("\n".join(f"SELECT {i};" for i in range(200)))
        view.selection = Selection.cursor((2, 0))
        view.focus()
        await pilot.pause()
        x = 1 + view.gutter_width  # its padding, the line numbers
        focused = _cell(view, 2, x)
        assert focused[0] == "S" and focused != _cell(view, 3, x)  # the cursor, drawn on line 3
        app.query_one(Button).focus()  # read-only: the cursor shows only while the view has the focus
        await pilot.pause()
        assert _cell(view, 2, x) != focused
        view.focus()
        await pilot.pause()
        assert _cell(view, 2, x) == focused

        dark = _cell(view, 5, x + 2)
        app.theme = "textual-light"
        await pilot.pause()
        light = _cell(view, 5, x + 2)
        assert light[0] == dark[0] == "L" and light[1].bgcolor != dark[1].bgcolor

        assert view.text.startswith("SELECT 0;\nSELECT 1;")
        view.replace("VALUES (7);", (1, 0), (1, 9))
        await pilot.pause()
        assert view.text.startswith("SELECT 0;\nVALUES (7);\nSELECT 2;")
        assert "".join(_cell(view, 1, x + i)[0] for i in range(11)) == "VALUES (7);"


class _Two(App):
    CSS = "SqlView { border: none; height: 10; }"

    def compose(self):
        yield Button("has the focus")  # (the cursor is drawn in a focused view only)
        for _ in range(2):
            yield SqlView("", language="sql", read_only=True, soft_wrap=False, show_line_numbers=True)


async def test_a_text_prepared_in_a_thread_draws_what_textual_s_own_loading_draws():
    """A big file's view is built in a thread ahead of the first `s` (the 10,000 statements held the console
    0.7-1 s inside it): the parse, every line's highlights, the wrap. Shown, it draws line for line what the view
    draws when it loads the text itself, multi-line comments and function bodies included."""
    import asyncio
    from pathlib import Path

    from aami_tui.ui.sql_view import prepare

    base = (Path(__file__).parent.parent / "migrations" / "001_initial_schema.sql").read_text()
    text = base + "\n".join(
        ["/* a comment\n   over three\n   lines */", "CREATE FUNCTION f() RETURNS int AS $$\n  SELECT 1;\n$$ LANGUAGE sql;",
         "INSERT INTO t (a, b) VALUES ('x\ny', 2);"] + [f"INSERT INTO t{i % 7} (id) VALUES ({i}); -- row {i}"
                                                       for i in range(600)]) + "\n"
    app = _Two()
    async with app.run_test(size=(100, 24)) as pilot:
        mine, theirs = app.query(SqlView)
        prepared = await asyncio.to_thread(prepare, text, "sql", mine.indent_width)
        mine.prepared = prepared
        mine.load_text(text)
        theirs.load_text(text)
        assert mine.document is prepared.document and mine.prepared is None  # used, once
        assert theirs.document is not prepared.document
        assert mine.text == theirs.text and mine.virtual_size == theirs.virtual_size
        lines = text.count("\n")
        for top in (0, base.count("\n") - 3, lines // 2, lines - 10):
            for view in (mine, theirs):
                view.scroll_to(y=top, animate=False)
            await pilot.pause()
            assert mine.scroll_offset == theirs.scroll_offset
            for y in range(10):
                drawn = [mine.render_lines(Region(0, y, mine.size.width, 1))[0],
                         theirs.render_lines(Region(0, y, theirs.size.width, 1))[0]]
                assert [(s.text, s.style) for s in drawn[0]] == [(s.text, s.style) for s in drawn[1]], (top, y)
