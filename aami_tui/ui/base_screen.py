"""The console's full screens: a screen under another one stays quiet."""

from __future__ import annotations

from textual.screen import Screen


class BaseScreen(Screen):
    def _compositor_refresh(self) -> None:
        super()._compositor_refresh()
        if self.is_attached and self is not self.app.screen:
            # Textual 8.2 passes a covered screen's changes up to the screen on top, and then leaves the covered
            # screen marked for a repaint of all of it: every later message it handled (a timer tick, a worker)
            # re-rendered the whole top screen. Under a dialog that is the help, or a step's prompt, over the
            # runbook: 4-5 full repaints a second while nothing changed, each holding the event loop 30-50 ms
            # (a key waited behind them). What changed has been passed up; the rest needs no repaint, and a
            # screen shown again repaints all of itself anyway.
            self._repaint_required = False
