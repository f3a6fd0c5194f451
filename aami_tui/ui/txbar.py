"""The runbook's transaction bar: the transaction's state, what to press next, and the database it is on.

One line when all three fit; on a narrow terminal (80 columns) two lines, so that neither the hint nor the
database name is cut: the state and the database first, then what to press next."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.widget import Widget

from aami_tui.core.runbook.model import Tx
from aami_tui.ui import fmt
from aami_tui.ui.line import needs_layout


class TxBar(Widget):
    DEFAULT_CSS = "TxBar { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Tx, str, str, str | None, str | None] | None = None

    def show(self, tx: Tx, hint: str, dbname: str, *, short: str | None = None, badge: str | None = None) -> None:
        """``short``: the hint in fewer words when the long one does not fit its own line (80 columns);
        ``badge``: the state's words when the server knows more than Tx says (committed locally, waiting)."""
        shown = (tx, hint, dbname, short, badge)
        if shown != self._shown:  # unchanged: no repaint (the runbook calls this after every event)
            self._shown = shown
            self.refresh(layout=needs_layout(self))  # one line or two: the screen's layout only if that changed

    def _lines(self, width: int) -> list[Text]:
        if self._shown is None:
            return [Text("")]
        tx, hint, dbname, short, words = self._shown
        badge = fmt.tx_badge(tx) if words is None else Text(f" {words} ", style=fmt.tx_style(Tx.COMMITTED))
        nxt = Text.assemble(("Next: ", "bold"), (hint, "bold cyan"))
        one = Text.assemble(badge, "  ", nxt, "   on ", (dbname, "bold"))
        if one.cell_len <= width:
            return [one]
        if short is not None and Text.assemble(" ", nxt).cell_len > width:
            nxt = Text.assemble(("Next: ", "bold"), (short, "bold cyan"))
        return [Text.assemble(badge, "  on ", (dbname, "bold")), Text.assemble(" ", nxt)]

    def on_resize(self) -> None:
        # Two lines: the screen's log gives up a row (app.tcss), so that the step pane keeps its height.
        self.screen.set_class(self.size.height > 1, "-txbar-2")

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Content:
        # As Content, like a Static's: the badge's style reads the same as the inspection pane's and Drift view's
        return Content.from_rich_text(Text("\n").join(self._lines(self.content_size.width or 10_000)))
