"""A pane that gains or loses the focus (each `s` moves it into the SQL view and back out to the step pane) styles
again only what its focus can change (ui/focus.py)."""

from __future__ import annotations

from textual.app import App
from textual.color import Color
from textual.widgets import Button, Static

from aami_tui.ui.panes import ScrollPane


class _Pane(App):
    def __init__(self, css: str = "") -> None:
        self.CSS = css
        super().__init__()

    def compose(self):
        yield Button("elsewhere")
        with ScrollPane(id="p"):
            for i in range(8):
                yield Static(f"line {i}", classes="child")


def _styled(app: App) -> list:
    """The nodes the stylesheet styles from now on."""
    seen: list = []
    apply = app.stylesheet.apply

    def spy(node, *args, **kwargs):
        seen.append(node)
        return apply(node, *args, **kwargs)

    app.stylesheet.apply = spy
    return seen


async def test_a_pane_s_focus_styles_the_pane_alone_when_no_rule_depends_on_it():
    """Issue 8's key row: Textual styles a widget and everything in it again when it gains or loses the focus,
    in case a rule like `Pane:focus Child` exists. The step pane's contents took 4-6 ms at each `s` (0.3 ms for
    the pane alone)."""
    app = _Pane()
    async with app.run_test(size=(40, 12)) as pilot:
        pane = app.query_one(ScrollPane)
        seen = _styled(app)
        pane.focus()
        await pilot.pause()
        app.query_one(Button).focus()
        await pilot.pause()
        assert pane in seen and not [n for n in seen if isinstance(n, Static)], seen


async def test_a_rule_that_a_pane_s_focus_changes_still_reaches_what_is_in_it():
    for css in ("#p:focus .child { color: red; }", "ScrollPane:blur > Static { color: red; }"):
        app = _Pane("Static { color: white; }\n" + css)
        async with app.run_test(size=(40, 12)) as pilot:
            pane, child = app.query_one(ScrollPane), app.query_one(".child", Static)
            red, white = Color.parse("red"), Color.parse("white")
            focused_colour = red if ":focus" in css else white
            pane.focus()
            await pilot.pause()
            assert child.styles.color == focused_colour, css
            app.query_one(Button).focus()
            await pilot.pause()
            assert child.styles.color == (white if focused_colour == red else red), css
