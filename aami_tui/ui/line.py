"""Text that changes often (a step's progress line, the SQL pane's head, the step list) without a layout of the
whole screen each time it changes.

Textual's ``Static.update`` lays the screen out again on every update, in case the widget's size changed. A
layout of the runbook screen costs ~7-12 ms of the event loop; an apply's end made 6-7 of them, and a key
pressed then waited behind them (benchmarks/keytrace). Most updates keep the widget's size: the same number of
lines at the same width. These ask for a layout only when the new content needs another height."""

from __future__ import annotations

import asyncio

from textual.widget import Widget
from textual.widgets import Static


def shown(widget: Widget) -> bool:
    """Whether ``widget`` and every widget around it are displayed (not in a pane the ContentSwitcher hides). Read
    from the styles, so it holds before the next layout (Textual's ``is_on_screen`` waits for it)."""
    return all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))


def needs_layout(widget: Widget) -> bool:
    """Whether ``widget``'s content, as it is now, needs a size other than the one it was laid out with. True
    when that cannot be known here (not laid out yet, a width that follows the content): Textual decides. False
    while it is hidden: the SQL pane's head follows each statement of an apply while the pane is not shown."""
    if not shown(widget):
        return False  # hidden (a pane the ContentSwitcher does not show): showing it lays it out with what it holds
    styles = widget.styles
    if styles.width is not None and styles.width.is_auto:  # its width follows its content
        return True
    height = styles.height
    if height is not None and not height.is_auto:  # its height is the CSS's, whatever it shows
        return False
    size = widget.content_size
    if not size.width:  # not laid out yet (or hidden from the start)
        return True
    return widget.get_content_height(widget.container_size, widget.app.size, size.width) != size.height


def draw_soon(screen) -> None:
    """Draw what is pending on ``screen`` at the event loop's next turn, not at its update timer's next slot (a key's
    effect). After each frame Textual's timer sleeps to its next slot before it looks at what is pending again (at
    120 frames a second 8-17 ms: one slot, or two when the frame ran late), and while a step runs frames come
    several times a second: a key's effect waited for that sleep (issue 8, bench.py keys). The frame is the one the
    timer would draw (``Screen._on_timer_update``, which pauses the timer until something else is pending)."""

    def draw() -> None:
        app = screen.app
        if not screen.is_current or app._batch_count or app._exit:
            return
        if screen._layout_required or screen._scroll_required or screen._repaint_required or screen._dirty_widgets:
            try:
                screen._on_timer_update()
            except Exception as error:  # as the timer would: the app's handler says it
                app._handle_exception(error)

    asyncio.get_running_loop().call_soon(draw)


def layout_now(widget: Widget) -> None:
    """Tell the screen now, not at ``widget``'s next idle, that ``widget`` asked for a layout (a pane shown or
    hidden). Textual posts that request from the widget's own idle handler; on a loaded event loop the screen's
    update timer drew a frame before it arrived, without the change, and the change came a frame later with
    whatever had happened since (the `s` key: 50-130 ms on a slow machine). Done here as Textual's widget and
    screen would do it (``Widget._check_refresh``, ``Screen._on_layout``), so the request is not made twice."""
    if not widget._layout_required or not widget.is_attached:
        return
    widget._layout_required = False
    screen = widget.screen
    for ancestor in widget.ancestors:  # Widget._check_refresh: the arrangements that include it are stale
        if not isinstance(ancestor, Widget):
            break
        ancestor._clear_arrangement_cache()
        ancestor._layout_updates += 1
        if not ancestor.styles.auto_dimensions:
            break
    requested = False
    node: Widget = widget
    for ancestor in widget.ancestors:  # Screen._on_layout
        if not isinstance(ancestor, Widget):
            break
        waiting = screen._layout_widgets.setdefault(ancestor, set())
        if node not in screen._layout_widgets:
            waiting.add(node)
            requested = True
        if not ancestor.styles.auto_dimensions:
            break
        node = ancestor
    if requested and not screen._layout_required:
        screen._layout_required = True
        screen.check_idle()


def repaint_now(widget: Widget) -> None:
    """Tell the screen now, not at ``widget``'s next idle, that ``widget`` has lines to repaint (the step pane's
    title at `s`). Textual posts that from the widget's own idle handler, so the frame drawn right after a key
    went without it and it came a frame later (`bench.py keys`: the `s` frame's title waited 10-40 ms). Done as
    Textual's widget and screen do it (``Widget._check_refresh``, ``Screen._on_update``), so it is not done twice."""
    if not widget._repaint_required or not widget.is_attached or not widget.display:
        return
    screen = widget.screen
    if screen in screen._compositor:
        widget._repaint_required = False
        screen._dirty_widgets.add(widget)
        screen.check_idle()


class Line(Static):
    """A Static whose ``update`` repaints it, and lays the screen out again only when its height changes
    (``layout=True`` still forces one)."""

    def update(self, content="", *, layout: bool | None = None) -> None:
        super().update(content, layout=False)
        if layout or (layout is None and self.is_mounted and needs_layout(self)):
            self.refresh(layout=True)
