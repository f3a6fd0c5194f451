"""The inspection pane: queries inside the open migration transaction (the guide's \\dt before COMMIT).

Each line runs under a SAVEPOINT through the engine (core/inspect.py): an error rolls back to the savepoint and
never aborts the migration. Read-only by default; ``\\write`` asks for the typed unlock, ``\\read`` locks again.
Every query and its row count go into the run report.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from aami_tui.core import inspect as core_inspect
from aami_tui.core.runbook import Runbook, RunbookError, Tx
from aami_tui.core.words import plural
from aami_tui.ui import fmt
from aami_tui.ui.confirm import ConfirmModal
from aami_tui.ui.footer import KeyFooter

HELP = ("SQL, or \\dt  \\d TABLE  \\di  \\dx · enter runs it · \\write unlocks writes, \\read locks them · "
        "escape closes")


class InspectPane(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, rb: Runbook) -> None:
        super().__init__(id="inspect")
        self.rb = rb
        self.allow_write = False
        self.last: core_inspect.InspectResult | None = None
        self._tx = rb.tx  # the state the head shows

    def compose(self) -> ComposeResult:
        with Vertical(id="inspect-box", classes="modal-box"):
            yield Static("", id="inspect-head")
            field = Input(placeholder="\\dt", id="inspect-input")
            field.cursor_blink = not fmt.STABLE
            yield field
            yield Static("", id="inspect-status")
            yield DataTable(id="inspect-table", zebra_stripes=True)
        yield KeyFooter()  # this pane's keys (esc Close), not the runbook's under it, which do nothing here

    def on_mount(self) -> None:
        self._head()
        self.query_one("#inspect-status", Static).update(Text(HELP, style="dim"))
        self.query_one(Input).focus()

    def _head(self) -> None:
        """The transaction's state first, as the runbook's bar shows it (fmt.tx_badge), then the mode."""
        self._tx = self.rb.tx
        mode = (Text("WRITES UNLOCKED: a successful statement is kept in the migration transaction", style="bold red")
                if self.allow_write else Text("read-only (each query is rolled back to its savepoint)", style="green"))
        self.query_one("#inspect-head", Static).update(Text.assemble(
            fmt.tx_badge(self.rb.tx), "  ", ("Inspect inside the transaction", "bold"),
            f" on {self.rb.settings.dbname} · ", mode))

    def show_tx(self) -> None:
        """The transaction changed while the pane is open (the runbook screen calls this; each query too): the
        badge follows, and once it is no longer open the pane says that nothing more runs here."""
        if self.rb.tx == self._tx:
            return
        self._head()
        if self.rb.tx != Tx.OPEN:
            self.query_one("#inspect-status", Static).update(Text(
                f"The migration transaction is no longer open ({self.rb.tx.value}): nothing more runs here. "
                "escape goes back to the runbook, which says what to do next.", style="bold red"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if text == "\\write":
            event.input.value = ""
            self._unlock()
            return
        if text == "\\read":
            event.input.value = ""
            self.allow_write = False
            self._head()
            return
        self.run_query(text)

    def _unlock(self) -> None:
        def done(ok: bool | None) -> None:
            if ok:
                self.allow_write = True
                self._head()
            self.query_one(Input).focus()

        self.app.push_screen(ConfirmModal(
            "Unlock writes in the inspection pane?",
            "Statements that change data or schema will run inside the migration transaction, and a successful "
            "one is kept: COMMIT commits it with the migration. An error still rolls back to the savepoint. Not "
            "possible after verify has passed.",
            confirm="Unlock writes", require_text=core_inspect.UNLOCK_PHRASE, id="unlock-modal"), done)

    @work(exclusive=True, group="inspect", exit_on_error=False)
    async def run_query(self, text: str) -> None:
        try:
            await self._run_query(text)
        finally:
            if self.is_attached:  # a query that lost the connection or aborted the transaction: said at once
                self.show_tx()

    async def _run_query(self, text: str) -> None:
        status = self.query_one("#inspect-status", Static)
        status.update(Text(f"Running: {text}", style="dim"))
        try:
            r = await asyncio.wait_for(self.rb.inspect(text, allow_write=self.allow_write),
                                       self.rb.opt.statement_timeout + self.rb.opt.grace + 5)
        except (core_inspect.InspectError, RunbookError) as exc:
            self._not_run(text)
            status.update(Text(str(exc), style="yellow"))
            return
        except Exception as exc:  # never a traceback on screen
            self._not_run(text)
            status.update(Text(f"The query did not finish: {exc or type(exc).__name__}", style="bold red"))
            return
        self.last = r
        table = self.query_one(DataTable)
        table.clear(columns=True)
        # the run's lock or timeouts were touched by the query: said where the operator looks
        guard = Text("\n⚠ " + r.guard, style="bold red") if r.guard else ""
        if r.error:
            self._not_run(text)
            status.update(Text.assemble(Text(f"✗ {r.error}", style="bold red"), guard))
            return
        if r.columns:
            table.add_columns(*r.columns)
            for row in r.rows:
                table.add_row(*("NULL" if v is None else fmt.redact(str(v)) for v in row))
        more = f", first {len(r.rows)} shown" if r.truncated else ""
        kept = " · kept in the transaction" if r.kept else ""
        status.update(Text.assemble(Text(fmt.redact(f"✓ {r.status or r.kind} · {plural(r.row_count, 'row')}{more} · "
                                                    f"{r.seconds * 1000:.1f} ms{kept}"), style="green"), guard))
        field = self.query_one(Input)
        if field.value.strip() == text:  # what was typed while the query ran (ctrl+u, a new query) is kept
            field.value = ""

    def _not_run(self, text: str) -> None:
        """A refused or failed query: the previous result goes (it would read as this one's), and the line is
        selected, so typing replaces it (it was appended to) while the arrows still edit it."""
        self.query_one(DataTable).clear(columns=True)
        field = self.query_one(Input)
        if field.value.strip() == text:  # what was typed while the query ran is left alone
            field.select_all()

    def action_close(self) -> None:
        self.dismiss(None)
