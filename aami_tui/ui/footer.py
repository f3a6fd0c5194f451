"""The footer: Textual's own look, drawn as one line by one widget."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget


class KeyFooter(Widget, can_focus=False):
    """The screen's keys on one line, as Textual's Footer shows them (the first binding of each action with
    ``show``, then the command palette's key at the right edge), in its colours, compact below 100 columns.

    One widget, not Textual's Footer: that is a container with a widget per key, recomposed (each key created,
    styled and data-bound again) every time the screen's bindings change, on every step's start and end and on
    each focus change. Showing, hiding and dimming those widgets in place instead (this class's first version)
    still restyled and laid them out again, and each was fetched again in every full repaint: 8-29 ms of the
    frames of a step's start and end on a loaded 2-core machine, with a key press waiting behind them
    (`bench.py keys`). Here a change of bindings is one line of text rendered again, and nothing else moves.

    The mouse works as on Textual's: a key under the pointer is highlighted and shows its tooltip, a click on it
    presses it (a disabled one rings the bell)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"footer-key--key", "footer-key--description", "footer-key--hover", "footer-key--bar"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        width: 1fr;
        color: $footer-foreground;
        background: $footer-background;
        & > .footer-key--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer-key--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .footer-key--hover {
            background: $block-hover-background;
        }
        & > .footer-key--bar {
            color: $foreground 20%;
        }
    }
    """

    compact = reactive(False, toggle_class="-compact")  # set by the app below 100 columns, as Footer's
    show_command_palette = reactive(True)  # the app hides it below 70 columns, where the keys overflow
    KEPT = 8  # the sets of keys whose lines are kept (a step running or not, the SQL view or the step, a dialog)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._keys: list[tuple] = []  # (binding, enabled, tooltip) of each key shown, in order
        self._palette: tuple | None = None  # (binding, enabled, tooltip) of the command palette's key, or None
        self._spans: list[tuple[int, int, object, bool, str]] = []  # drawn: (x0, x1, binding, enabled, tooltip)
        self._hover: int | None = None  # the index in _spans of the key under the mouse
        self._kept: dict[tuple, tuple] = {}  # what it shows -> (its lines, their _spans), oldest first

    def render_lines(self, crop: Region) -> list[Strip]:
        """The line of a set of keys shown lately is the one drawn then: `s` and a step's start and end switch the
        footer back and forth between a few sets, and Textual rendered the line again each time (1-2 ms at idle, in
        the frame of the `s` that closes the SQL). Kept until the styles change (``notify_style_update``)."""
        state = (crop, self.size, tuple(self._keys), self._palette, self._hover, self.compact,
                 self.show_command_palette)
        kept = self._kept.get(state)
        if kept is None:
            kept = self._kept[state] = (super().render_lines(crop), self._spans)
            if len(self._kept) > self.KEPT:
                del self._kept[next(iter(self._kept))]
        self._spans = kept[1]
        return kept[0]

    def notify_style_update(self) -> None:
        self._kept.clear()  # a theme, a pseudo-class: the colours may have changed
        super().notify_style_update()

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _read(self) -> tuple[list[tuple], tuple | None]:
        """What the screen's bindings say to show now: the keys in order, and the palette's key (or None)."""
        active = self.screen.active_bindings
        keys: list[tuple] = []
        actions: set[str] = set()
        for _node, b, enabled, tooltip in active.values():
            if not b.show or b.action in actions:  # Textual's Footer: the first binding of each action
                continue
            actions.add(b.action)
            keys.append((b, enabled, tooltip))
        palette = None
        if self.app.ENABLE_COMMAND_PALETTE:
            entry = active.get(self.app.COMMAND_PALETTE_BINDING)
            if entry is not None:
                palette = (entry[1], entry[2], entry[1].tooltip or entry[1].description)
        return keys, palette

    def bindings_changed(self, screen) -> None:
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        keys, palette = self._read()
        if keys != self._keys or palette != self._palette:
            self._keys, self._palette = keys, palette
            self.refresh()

    def _key_text(self, b, enabled: bool, hover: bool, compact: bool, styles: tuple) -> Text:
        """One key as Textual's FooterKey draws it: the key bold in the accent colour, then its description.
        ``styles``: the footer's, its keys' and descriptions', and the hover background (one render's)."""
        base, key_style, desc_style, hover_bg = styles
        shown = self.app.get_key_display(b)
        if not b.description:
            text = Text(shown, key_style)
        elif compact:
            text = Text.assemble((shown, key_style), (" " + b.description, desc_style))
        else:
            text = Text.assemble((f" {shown} ", key_style), (b.description + " ", desc_style))
        text.stylize_before(base + Style(dim=True) if not enabled else base)
        if hover:  # over the parts' own backgrounds, as the hovered FooterKey's background showed through them
            text.stylize(Style(bgcolor=hover_bg))
        return text

    def render(self) -> Text:
        width = self.size.width
        base = self.rich_style  # (walks the footer's ancestors: once per render)
        styles = (base, self.get_component_rich_style("footer-key--key"),
                  self.get_component_rich_style("footer-key--description"),
                  self.get_component_rich_style("footer-key--hover").bgcolor)
        line = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, object, bool, str]] = []
        for b, enabled, tooltip in self._keys:
            text = self._key_text(b, enabled, self._hover == len(spans), self.compact, styles)
            spans.append((len(line), len(line) + len(text), b, enabled, tooltip))
            line.append_text(text)
            if self.compact:
                line.append(" ")  # a key's right margin
        right = Text(end="")
        if self._palette is not None and self.show_command_palette:
            b, enabled, tooltip = self._palette
            key = self._key_text(b, enabled, self._hover == len(spans), True, styles)  # as Textual's, always compact
            right.append("▏", self.get_component_rich_style("footer-key--bar"))
            right.append_text(key)
            right.append(" ", base)  # its right padding (its right margin when compact)
            x0 = max(0, width - len(right))
            spans = [s for s in spans if s[0] < x0]  # keys that overflow are hidden under the palette's
            spans.append((x0 + 1, x0 + 1 + len(key), b, enabled, tooltip))
            line.truncate(x0, pad=True)
            line.append_text(right)
        self._spans = spans
        return line

    # ---- the mouse -------------------------------------------------------------------------------------------------
    def _at(self, x: int) -> int | None:
        return next((i for i, (x0, x1, *_rest) in enumerate(self._spans) if x0 <= x < x1), None)

    def _set_hover(self, index: int | None) -> None:
        if index != self._hover:
            self._hover = index
            self.tooltip = (self._spans[index][4] or None) if index is not None else None
            self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._set_hover(self._at(event.x))

    def on_leave(self, _event: events.Leave) -> None:
        self._set_hover(None)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        index = self._at(event.x)
        if index is None:
            return
        _x0, _x1, b, enabled, _tooltip = self._spans[index]
        if enabled:
            self.app.simulate_key(b.key)
        else:
            self.app.bell()

    def watch_compact(self) -> None:
        self.refresh()

    def watch_show_command_palette(self) -> None:
        self.refresh()
