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
