"""The migration SQL, read-only and highlighted (the runbook's `s` view)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from textual import events
from textual._tree_sitter import TREE_SITTER, get_language
from textual.document._document_navigator import DocumentNavigator
from textual.document._syntax_aware_document import SyntaxAwareDocument
from textual.document._wrapped_document import WrappedDocument
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import TextArea

from .focus import FocusKeepsLines
from .scrollbars import KeptScrollBars


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


_TEXT_ONCE: dict[type, type] = {}


def _text_once(cls: type) -> type:
    """``cls`` (a Textual document class) whose whole text is joined once per change, not each time it is asked
    for: Textual's TextArea asks for it on every line it renders (is it empty, to show a placeholder?), which for
    a 10,000-statement file joined ~700 KB for each of the ~20 lines on screen, 2-4 ms a frame. A document
    changes only through ``replace_range``."""
    if cls not in _TEXT_ONCE:
        class TextOnce(cls):
            __slots__ = ()  # the document's own layout, so that a document's class can be swapped for this
            _text_once: str | None = None

            @property
            def text(self) -> str:
                if self._text_once is None:
                    self._text_once = super().text
                return self._text_once

            def replace_range(self, *args, **kwargs):
                self._text_once = None
                try:
                    return super().replace_range(*args, **kwargs)
                finally:
                    self._text_once = None

        TextOnce.__name__ = TextOnce.__qualname__ = f"TextOnce{cls.__name__}"
        _TEXT_ONCE[cls] = TextOnce
    return _TEXT_ONCE[cls]


@dataclass
class Prepared:
    """What ``load_text`` builds for a text, built beforehand (``prepare``): its parsed document, the document
    wrapped (this view never soft-wraps), the highlight query and the highlights of every line."""

    text: str
    language: str
    tab_width: int
    document: object
    wrapped: WrappedDocument
    query: object
    highlights: defaultdict


def prepare(text: str, language: str, tab_width: int) -> Prepared | None:
    """Build what the view shows for ``text``, away from the event loop (a thread: nothing here touches a widget).
    For the 10,000-statement file it was 0.7-1 s of the event loop inside the first `s`: tree-sitter's parse,
    the highlights of every line, the wrap twice. None when there is nothing to highlight with (the view then
    loads the text as Textual does)."""
    lang = get_language(language) if TREE_SITTER else None
    if lang is None:
        return None
    document = SyntaxAwareDocument(text, lang)
    query = document.prepare_query(TextArea._get_builtin_highlight_query(language))
    highlights: defaultdict = defaultdict(list)
    if query is not None:  # as Textual's TextArea._build_highlight_map (textual 8.2.8, pinned) fills them
        for name, nodes in document.query_syntax_tree(query).items():
            for node in nodes:
                (start_row, start_col), (end_row, end_col) = node.start_point, node.end_point
                if start_row == end_row:
                    highlights[start_row].append((start_col, end_col, name))
                else:
                    highlights[start_row].append((start_col, None, name))
                    for row in range(start_row + 1, end_row):
                        highlights[row].append((0, None, name))
                    highlights[end_row].append((0, end_col, name))
    wrapped = WrappedDocument(document, tab_width=tab_width)
    wrapped.__class__ = _WrappedDocument
    document.__class__ = _text_once(type(document))
    return Prepared(text, language, tab_width, document, wrapped, query, highlights)


class SqlView(FocusKeepsLines, KeptScrollBars, TextArea):
    """A TextArea that does not re-wrap an unchanged document when it is shown again, nor sum its height for
    every line it renders, nor join its whole text for every line, nor render its lines again when only its
    focus changed (``FocusKeepsLines``, ``notify_style_update``), nor draw its scrollbars again when they have
    not changed (``KeptScrollBars``).

    Textual's TextArea re-wraps its whole document on every resize, and a view that is hidden and shown (the
    step pane's `s`) is resized each time: for a 10,000-statement file that was 0.1-0.6 s of the event loop on
    every `s`, to compute the same wrap again (this view never soft-wraps: the width it wraps at is always 0)."""

    _wrapped_as: tuple | None = None
    _wrapped_doc: object = None
    _look: tuple | None = None  # the styles its lines are drawn with, when its line cache was last kept
    _look_checked = False  # whether _look holds since the last style update

    prepared: Prepared | None = None  # what load_text will use if it is for the same text (``prepare``)

    def _set_document(self, text: str, language: str | None) -> None:
        p, self.prepared = self.prepared, None
        if p is not None and p.text is text and p.language == language and p.tab_width == self.indent_width:
            # Textual's _set_document (textual 8.2.8, pinned), with what was built beforehand
            self._highlight_query = p.query
            self.document = p.document
            self.wrapped_document = p.wrapped
            self.navigator = DocumentNavigator(p.wrapped)
            self._line_cache.clear()
            self._highlights = p.highlights
            self.move_cursor((0, 0))
            self._rewrap_and_refresh_virtual_size()
            return
        super()._set_document(text, language)
        self.wrapped_document.__class__ = _WrappedDocument
        self.document.__class__ = _text_once(type(self.document))

    def _rewrap_and_refresh_virtual_size(self) -> None:
        """Textual's, without wrapping the document again at the width and tab width it is wrapped at (a wrap
        follows every edit): a document was wrapped twice when it was loaded, 0.1 s for the 10,000 statements."""
        wrapped = self.wrapped_document
        if (wrapped._width, wrapped._tab_width) != (self.wrap_width, self.indent_width):
            wrapped.wrap(self.wrap_width, tab_width=self.indent_width)
        self._line_cache.clear()
        self._refresh_size()

    def _on_resize(self, event: events.Resize) -> None:
        shape = (self.wrap_width, self.indent_width, self.gutter_width)
        if self.wrapped_document is self._wrapped_doc and shape == self._wrapped_as and not self.soft_wrap:
            event.prevent_default()  # Textual's handler would re-wrap: the wrap and the virtual size still hold
            self._refresh_scrollbars()  # the lines cached are keyed by the view's size
            return
        self._wrapped_doc, self._wrapped_as = self.wrapped_document, shape  # Textual's handler re-wraps after this

    def notify_style_update(self) -> None:
        """Textual's TextArea forgets every line it has rendered whenever its styles are updated, which is on
        every focus change (`:focus` changes only the border, which this view does not have): `s` rendered each
        visible line again (9-13 ms of the key's frame for the 10,000-statement file). Here the lines are
        forgotten when the styles they are drawn with have changed (``_check_look``), looked at once the update is
        done (a component's styles are applied after this is called), not in the frame of the key that follows."""
        super(TextArea, self).notify_style_update()  # TextArea's own clears the line cache, then does this
        if self._look_checked:
            self._look_checked = False
            if self.is_attached:
                self.call_later(self._check_look)

    def _check_look(self, rendering: bool = False) -> None:
        """What a line is drawn with, besides what its cache key holds: the view's style, the app's theme, the
        component classes' styles (1 ms: each walks the view's ancestors). When it has changed, the lines are drawn
        again: at once when ``rendering`` (the lines are being asked for), else in the next frame. (A change of the
        view's own rules, its border say, makes Textual draw it whole anyway.)"""
        if self._look_checked:
            return
        self._look_checked = True
        look = (self.rich_style, self.app.current_theme.name,
                *(self.get_component_rich_style(name) for name in sorted(self.COMPONENT_CLASSES)))
        if look != self._look:
            self._look = look
            self._line_cache.clear()
            if rendering:
                self._styles_cache.clear()
            else:
                self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        if not self._look_checked:  # a style update not yet looked at
            self._check_look(rendering=True)
        return super().render_lines(crop)
