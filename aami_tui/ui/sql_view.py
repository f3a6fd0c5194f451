"""The migration SQL, read-only and highlighted (the runbook's `s` view)."""

from __future__ import annotations

from textual import events
from textual.document._wrapped_document import WrappedDocument
from textual.widgets import TextArea


class _WrappedDocument(WrappedDocument):
    """Its height (a sum over every line) computed once per wrap: Textual's TextArea asks for it on every line it
    renders, 10,000 lines summed for each of the ~20 lines on screen, each frame."""

    _height: tuple | None = None

    @property
    def height(self) -> int:
        offsets = self._wrap_offsets
        if self._height is None or self._height[0] is not offsets:  # wrap() makes a new list
            self._height = (offsets, sum(len(line) + 1 for line in offsets))
        return self._height[1]

    def wrap_range(self, *args, **kwargs):  # an edit changes the list in place
        self._height = None
        return super().wrap_range(*args, **kwargs)


class SqlView(TextArea):
    """A TextArea that does not re-wrap an unchanged document when it is shown again, nor sum its height for
    every line it renders.

    Textual's TextArea re-wraps its whole document on every resize, and a view that is hidden and shown (the
    step pane's `s`) is resized each time: for a 10,000-statement file that was 0.1-0.6 s of the event loop on
    every `s`, to compute the same wrap again (this view never soft-wraps: the width it wraps at is always 0)."""

    _wrapped_as: tuple | None = None
    _wrapped_doc: object = None

    def _set_document(self, text: str, language: str | None) -> None:
        super()._set_document(text, language)
        self.wrapped_document.__class__ = _WrappedDocument

    def _on_resize(self, event: events.Resize) -> None:
        shape = (self.wrap_width, self.indent_width, self.gutter_width)
        if self.wrapped_document is self._wrapped_doc and shape == self._wrapped_as and not self.soft_wrap:
            event.prevent_default()  # Textual's handler would re-wrap: the wrap and the virtual size still hold
            self._line_cache.clear()
            self._refresh_scrollbars()
            return
        self._wrapped_doc, self._wrapped_as = self.wrapped_document, shape  # Textual's handler re-wraps after this
