"""A pre-flight checklist box whose ticked and unticked states differ in shape, not only in colour."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Checkbox


class Tick(Checkbox):
    BUTTON_INNER = " "
    # The keys that work on a focused item, in the footer (Checkbox's own space and the app's tab are hidden there).
    # Enter does not toggle (Checkbox's default): pressed to confirm after n, it silently un-ticked an item.
    BINDINGS = [Binding("space", "toggle_button", "Tick"), Binding("tab", "next_item", "Next item"),
                Binding("enter", "enter_item", show=False)]

    def check_action(self, action: str, parameters) -> bool | None:
        # Only while the checklist is the step pane shown: after pre-flight its pane is switched away, and focus may
        # stay here. (A too-small terminal hides the whole step area; the keys still work there.)
        if action in ("toggle_button", "next_item", "enter_item"):
            return self.display and (self.parent is None or self.parent.display)
        return True

    def action_enter_item(self) -> None:
        self.notify("space ticks or unticks this item; n runs the next step.", timeout=4)

    def action_next_item(self) -> None:
        self.screen.focus_next()

    def watch_value(self) -> None:
        self.BUTTON_INNER = "✓" if self.value else " "
        super().watch_value()
        self.refresh()
