"""The footer: Textual's own, rebuilt only when what it shows has changed."""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """Textual's Footer recomposes (a new widget for every key) each time the screen's bindings are updated, which
    is on every focus change: `s` moves the focus into the SQL view and back, and each time the footer was rebuilt
    with the same keys (20-40 ms of the event loop, up to 250 ms of CPU on a loaded machine, in the frames right
    after a key). Here it is rebuilt only when the keys it shows, their descriptions, or whether they are enabled
    differ from what it shows now."""

    _shown: tuple | None = None

    def _showing(self) -> tuple:
        active = self.screen.active_bindings
        keys = tuple((b.key, b.action, b.description, b.tooltip, repr(b.group), enabled, tooltip)
                     for (_, b, enabled, tooltip) in active.values() if b.show)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        return keys, self.show_command_palette, None if palette is None else (palette[1].key, palette[2])

    def bindings_changed(self, screen) -> None:
        if (self._bindings_ready and self._shown is not None and self.is_attached and screen is self.screen
                and self._showing() == self._shown):
            return
        super().bindings_changed(screen)

    def compose(self):
        self._shown = self._showing() if self._bindings_ready else None
        yield from super().compose()
