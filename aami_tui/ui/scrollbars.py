"""Scrollbars drawn again only when what they show has changed."""

from __future__ import annotations

from textual.geometry import Region
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.widgets import RichLog


class KeptScrollBar(ScrollBar):
    """Textual draws a scrollbar whole each time its region is exposed. The SQL view's two bars were a quarter
    of the CPU of `s`'s frame (3-4 ms of ~15, the 10,000-statement file): the same lines each time the pane is
    shown again. Here the lines are kept, keyed by all that they are drawn from: size, position, the parent's
    scrollbar colours and background, hover and grab, the theme."""

    _kept: tuple | None = None

    def _look(self, crop: Region) -> tuple:
        p = self.parent
        st = p.styles if p is not None else None
        colours = st and (st.scrollbar_background, st.scrollbar_color, st.scrollbar_background_hover,
                          st.scrollbar_color_hover, st.scrollbar_background_active, st.scrollbar_color_active,
                          st.background, p.rich_style)
        return (crop, self.size, self.window_virtual_size, self.window_size, self.position, self.thickness,
                self.vertical, self.grabbed, self.mouse_over, self.app.current_theme.name,
                self.screen.styles.scrollbar_color, colours)

    def render_lines(self, crop: Region) -> list[Strip]:
        look = self._look(crop)
        if self._kept is None or self._kept[0] != look:
            self._kept = (look, super().render_lines(crop))
        return self._kept[1]


class KeptScrollBars:
    """A scrolling widget's two scrollbars as ``KeptScrollBar`` (Textual's Widget makes them on first use)."""

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        if self._vertical_scrollbar is None:
            self._vertical_scrollbar = bar = KeptScrollBar(vertical=True, name="vertical",
                                                            thickness=self.scrollbar_size_vertical)
            bar.display = False
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar

    @property
    def horizontal_scrollbar(self) -> ScrollBar:
        if self._horizontal_scrollbar is None:
            self._horizontal_scrollbar = bar = KeptScrollBar(vertical=False, name="horizontal",
                                                              thickness=self.scrollbar_size_horizontal)
            bar.display = False
            self.app._start_widget(self, bar)
        return self._horizontal_scrollbar


class KeptLog(KeptScrollBars, RichLog):
    """The runbook's log: a RichLog whose scrollbar is drawn again only when it has changed (it was drawn again
    in the frame of every `s`, though the log had not moved)."""
