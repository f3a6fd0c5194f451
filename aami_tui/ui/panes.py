"""The runbook's step pane: a ContentSwitcher (pre-flight, backup, apply, verify, done, the SQL of `s`) whose panes
keep the lines they have drawn while they are hidden, and whose title change redraws its title row alone.

A pane's own lines (its background, its padding) do not change when it is shown or hidden, the frame's lines do not
change when it switches panes, and a title is drawn on the frame's top row only. Textual draws a widget whole again
in each case: showing or hiding a pane clears the lines it keeps (``Widget._set_dirty``), a switch repaints the
frame, and a new border title redraws every row of it. The frame `s` is waiting for did all three (the SQL pane, ~22
rows; the step pane's frame, 24 rows): 2-3 ms of the main thread at idle, twice that under a backup (issue 8's key
row). Everything else that changes a pane's lines still clears them as in Textual: its styles (a theme, a
pseudo-class), its size, a refresh of its own."""

from __future__ import annotations

from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region
from textual.reactive import reactive
from textual.widget import _BorderTitle
from textual.widgets import ContentSwitcher

from .focus import FocusKeepsLines
from .line import repaint_now
from .scrollbars import KeptScrollBars


class _TitleRow(_BorderTitle):
    """Textual's border title, whose change redraws the row it is drawn on, not the whole widget."""

    def __set__(self, obj, title) -> None:
        obj._title_row_only = True
        try:
            super().__set__(obj, title)
        finally:
            obj._title_row_only = False


class Panes(ContentSwitcher):
    """The step pane: shows one pane at a time; ``border_title`` says which ("Step", "Migration SQL")."""

    border_title = _TitleRow()
    # Textual's repaints the whole frame at each switch; what a switch changes is the panes (``watch_current``)
    current: reactive[str | None] = reactive[str | None](None, init=False, repaint=False)
    _title_row_only = False
    switching = False  # its panes are being shown and hidden (``watch_current``)

    def refresh(self, *regions: Region, **kwargs):
        if self._title_row_only and not regions and not kwargs and self.size:
            top = Region(0, 0, self.outer_size.width, 1).translate(-self.content_offset)  # content coordinates
            super().refresh(top)
            repaint_now(self)  # in the frame of the key that changed it, with the pane it names
            return self
        return super().refresh(*regions, **kwargs)

    def watch_current(self, old: str | None, new: str | None) -> None:
        self.switching = True
        try:
            super().watch_current(old, new)
        finally:
            self.switching = False


class _KeptWhileHidden:
    """A pane whose lines are not cleared when ``Panes`` shows or hides it: the compositor draws it from them (or
    renders it, the first time). Any other refresh of its own clears them, as in Textual."""

    def _set_dirty(self, *regions: Region) -> None:
        parent = self.parent
        if not regions and isinstance(parent, Panes) and parent.switching:
            return  # shown or hidden: the compositor repaints the region it leaves or takes
        super()._set_dirty(*regions)


class Pane(_KeptWhileHidden, Vertical):
    """A pane that does not scroll (apply, the SQL)."""


class ScrollPane(_KeptWhileHidden, FocusKeepsLines, KeptScrollBars, VerticalScroll):
    """A pane that scrolls when it holds more than the screen does (pre-flight, backup, verify, done). It takes
    the focus when `s` closes the SQL view and no widget in it can (``FocusKeepsLines``)."""
