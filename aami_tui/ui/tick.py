"""A pre-flight checklist box whose ticked and unticked states differ in shape, not only in colour."""

from __future__ import annotations

from textual.widgets import Checkbox


class Tick(Checkbox):
    BUTTON_INNER = " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = "✓" if self.value else " "
        super().watch_value()
        self.refresh()
