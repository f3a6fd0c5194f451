"""Widgets that gain and lose the focus without being drawn whole again."""

from __future__ import annotations

from textual import events


class FocusKeepsLines:
    """Textual's Widget draws a widget whole again when it gains or loses the focus, in case what it renders
    depends on it. A style the focus changes (``:focus``, ``:focus-within``) redraws it anyway, through the styles.
    For the widgets that use this, nothing else does: a scrolling pane's background, the SQL view's text (whose
    cursor line TextArea redraws itself). Each `s` moves the focus into the SQL view and back out to the step pane,
    and each of them was drawn whole again: 1-3 ms of the main thread each time (issue 8's key row)."""

    def _on_focus(self, event: events.Focus) -> None:
        event.prevent_default()  # not Widget._on_focus: this is what it does, without the refresh
        self.has_focus = True
        if self.parent is not None:
            self.parent.post_message(events.DescendantFocus(self))

    def _on_blur(self, event: events.Blur) -> None:
        event.prevent_default()  # not Widget._on_blur: this is what it does, without the refresh
        self.has_focus = False
        if self.parent is not None:
            self.parent.post_message(events.DescendantBlur(self))
