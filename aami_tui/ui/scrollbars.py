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

    def _size_updated(self, size, virtual_size, container_size, layout: bool = True) -> bool:
        """Its new size, without asking for another layout of the screen: Textual's Widget does when its virtual
        size changes, which a scrollbar has only for itself (it draws from its window sizes and position). A
        scrollbar that appeared cost one more layout of the whole screen, and that one a third (issue 8)."""
        return super()._size_updated(size, virtual_size, container_size, layout=False)

    def render_lines(self, crop: Region) -> list[Strip]:
        look = self._look(crop)
        if self._kept is None or self._kept[0] != look:
            self._kept = (look, super().render_lines(crop))
        return self._kept[1]


class KeptScrollBars:
    """A scrolling widget's two scrollbars as ``KeptScrollBar`` (Textual's Widget makes them on first use)."""

    def _kept_bar(self, vertical: bool) -> ScrollBar:
        attr = "_vertical_scrollbar" if vertical else "_horizontal_scrollbar"
        if getattr(self, attr) is None:
            bar = KeptScrollBar(vertical=vertical, name="vertical" if vertical else "horizontal",
                                thickness=self.scrollbar_size_vertical if vertical else self.scrollbar_size_horizontal)
            setattr(self, attr, bar)
            bar.display = False
            self.app._start_widget(self, bar)
        return getattr(self, attr)

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        return self._kept_bar(True)

    @property
    def horizontal_scrollbar(self) -> ScrollBar:
        return self._kept_bar(False)

class KeptLog(KeptScrollBars, RichLog):
    """The runbook's log: a RichLog whose scrollbar is drawn again only when it has changed (it was drawn again
    in the frame of every `s`, though the log had not moved).

    A write does not lay the screen out again. RichLog's write changes the log's virtual size, which Textual
    follows with a layout of the whole screen (15-35 ms of the event loop on a slow machine, five times a second
    while an apply streams; a key waited behind it: README, Performance). The log's own size is the CSS's; its
    virtual size moves only its scrollbars and its scroll range, which are updated here. A layout is still asked
    for when a scrollbar appears or goes (the log's content region changes)."""

    _quiet: bool | str = False  # inside write: a layout asked for is the virtual size's ("asked" once it was)

    def write(self, *args, **kwargs):
        bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        self._quiet = self.is_mounted and bool(self.container_size)  # laid out already (else Textual's way)
        try:
            return super().write(*args, **kwargs)
        finally:
            quiet, self._quiet = self._quiet, False
            if quiet == "asked":
                self._refresh_scrollbars()
                if (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) != bars:
                    super().refresh(layout=True)
                else:
                    self._scroll_update(self.virtual_size)

    def refresh(self, *regions, repaint: bool = True, layout: bool = False, recompose: bool = False):
        if layout and self._quiet and not recompose:
            self._quiet, layout = "asked", False
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
