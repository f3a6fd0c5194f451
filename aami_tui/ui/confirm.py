"""Confirmation modal. Default focus is always the safe choice; optionally the operator must type a word."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from aami_tui.ui import fmt
from aami_tui.ui.footer import KeyFooter


class ConfirmModal(ModalScreen[bool]):
    """Returns True only when the operator explicitly confirms."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=True),
        # The body is not in the tab order (it would take the focus without showing it, and Enter would do nothing
        # there): these keys scroll it from the buttons or the field.
        Binding("up", "scroll_body('up')", "", show=False),
        Binding("down", "scroll_body('down')", "", show=False),
        Binding("pageup", "scroll_body('page_up')", "", show=False),
        Binding("pagedown", "scroll_body('page_down')", "", show=False),
    ]

    def __init__(self, title: str, body: str, *, confirm: str = "Confirm", cancel: str = "Cancel",
                 require_text: str | None = None, danger: bool = True, id: str | None = None,
                 note: str | Text | None = None, q_quits: bool = False) -> None:
        super().__init__(id=id)
        if q_quits and require_text is None:  # q does what ctrl+c does (its toast says why not now: fresh9 F4)
            self._bindings.bind("q", "app.quit", "Quit", show=False)
        self.note = note  # what cannot be undone, kept on screen above the prompt (the body may scroll)
        self.title_text, self.body, self.confirm_label, self.cancel_label = title, body, confirm, cancel
        self.require_text = require_text
        self.danger = danger
        if cancel != "Cancel":  # the footer names escape as the button does ("esc Stay" beside a Stay button)
            self._bindings.key_to_bindings["escape"] = [Binding("escape", "cancel", cancel, show=True)]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box" + (" -danger" if self.danger else "")):
            yield Label(self.title_text, id="confirm-title")
            # The body scrolls when it is taller than the room left: the prompt and the buttons stay on screen.
            with VerticalScroll(id="confirm-scroll") as scroll:
                scroll.can_focus = False  # see BINDINGS
                yield Static(fmt.redact(self.body), id="confirm-body")
            if self.note is not None:  # one line each, never wrapped: cut with … at the box's edge
                yield Static(Text(fmt.redact(self.note)) if isinstance(self.note, str) else self.note,
                             id="confirm-note")
            if self.require_text is not None:
                yield Label(f"Type [b]{self.require_text}[/b] to confirm:", id="confirm-prompt")
                # The name is shown above, never as a placeholder: a placeholder looks as if it were filled in.
                field = Input(placeholder="type it here", id="confirm-input")
                field.cursor_blink = not fmt.STABLE  # a blinking cursor makes snapshots flaky
                yield field
                # A refusal is said here, inside the dialog: a toast would sit behind the modal.
                yield Static("", id="confirm-error")
            with Horizontal(id="confirm-buttons"):
                yield Button(self.cancel_label, id="cancel", variant="primary")
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "success",
                             disabled=self.require_text is not None)
        yield KeyFooter()  # this dialog's keys (esc Cancel), not those of the screen under it, which do nothing here

    def on_mount(self) -> None:
        # Toasts from before lie over the dialog's body (at 80x24 a refusal hid half of "ROLLBACK the transaction?"):
        # what they said is past; the dialog is what the operator answers now.
        self.app.clear_notifications()
        # Irreversible or destructive actions (danger) start with the safe choice focused: Enter on a
        # fresh modal never confirms them. Harmless steps (run backup, BEGIN...) focus the action.
        if self.require_text is not None:
            self.query_one("#confirm-input", Input).focus()
        else:
            self.query_one("#cancel" if self.danger else "#confirm", Button).focus()

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """The body's scroll gets the room the box has left once everything else is placed (at 80x24 a restore's
        summary is taller than the screen): the prompt, the field and the buttons are never pushed off it."""
        if not self.is_attached:
            return
        box = self.query_one("#confirm-box")
        scroll = self.query_one("#confirm-scroll")
        others = sum(w.outer_size.height + w.styles.margin.height for w in box.children if w is not scroll and w.display)
        footer = sum(f.outer_size.height for f in self.query(KeyFooter))  # the box's 90% is of the rows above it
        room = int((self.size.height - footer) * 0.9) - box.styles.gutter.height - others
        if scroll.styles.max_height is None or scroll.styles.max_height.value != max(room, 2):
            scroll.styles.max_height = max(room, 2)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value != self.require_text
        error = self.query_one("#confirm-error", Static)
        error.update("")
        if error.display:
            error.display = False
            self.call_after_refresh(self._fit)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value == self.require_text:
            self.dismiss(True)
            return
        typed = f"{event.value!r} is not" if event.value else "Nothing typed: that is not"
        error = self.query_one("#confirm-error", Static)
        error.update(f"✗ {fmt.redact(typed)} {self.require_text!r}. Type it exactly (escape cancels); nothing "
                     "was done.")
        error.display = True
        self.call_after_refresh(self._fit)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_scroll_body(self, how: str) -> None:
        getattr(self.query_one("#confirm-scroll", VerticalScroll), f"scroll_{how}")(animate=False)

    def action_cancel(self) -> None:
        self.dismiss(False)
