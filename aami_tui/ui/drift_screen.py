"""Drift view: what differs from the migration file, classified, and the plan that repairs it (core/plan.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from aami_tui.core import plan as core_plan
from aami_tui.ui import fmt

PLAN_TIMEOUT = 180.0  # the reference may need the embedded server to start
KIND_LABEL = {"safe": Text("safe", style="green"), "person": Text("needs a person", style="bold yellow"),
              "note": Text("note", style="dim")}


class DriftScreen(Screen):
    BINDINGS = [
        Binding("p,f5", "make_plan", "Compare again"),
        Binding("w", "write_plan", "Write plan file"),
        Binding("escape,d", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__(id="drift")
        self.plan: core_plan.Plan | None = None
        self.written: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="drift-head", classes="panel")
        yield DataTable(id="drift-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="drift-detail", classes="panel")
        yield Static("", id="drift-status", classes="panel")
        yield Static("", id="small-warning")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "aami-tui · drift"
        self.call_after_refresh(self.app.size_check)
        s = self.app.settings
        self.sub_title = fmt.redact(s.display())
        self.query_one("#drift-head", Static).update(Text.assemble(
            ("Drift", "bold"), fmt.redact(f": database {s.dbname} on {s.host}:{s.port} against "
                                          f"{self.app.migration_path.name}\n"),
            ("The migration runs in a scratch database (dropped afterwards) and the two catalogs are compared. ",
             "dim"), ("Safe", "green"), (" parts become SQL; parts that ", "dim"), ("need a person", "yellow"),
            (" become a commented skeleton that apply refuses until edited.", "dim")))
        t = self.query_one(DataTable)
        t.add_columns("class", "part", "what")
        self.action_make_plan()

    def action_make_plan(self) -> None:
        if any(w.group == "plan" and w.is_running for w in self.workers):
            self.notify("Already comparing.", severity="information")
            return
        self.query_one(DataTable).clear()
        self.query_one("#drift-detail", Static).update("")
        self.query_one("#drift-status", Static).update("Building the reference and comparing…")
        self.run_plan()

    @work(exclusive=True, group="plan", exit_on_error=False)
    async def run_plan(self) -> None:
        status = self.query_one("#drift-status", Static)

        def say(msg: str) -> None:
            status.update(msg)

        try:
            p = await asyncio.wait_for(core_plan.make_plan(self.app.settings, self.app.migration_path, say=say),
                                       PLAN_TIMEOUT)
        except TimeoutError:
            status.update(Text(f"No result within {PLAN_TIMEOUT:.0f} s; nothing was changed. Press p to try again.",
                               style="bold red"))
            return
        except Exception as exc:  # PlanError, ConnectError, anything: one line, never a traceback
            status.update(Text(f"Cannot make the plan: {exc}", style="bold red"))
            return
        self.plan = p
        self.written = None
        t = self.query_one(DataTable)
        t.clear()
        for n, item in enumerate(p.items):
            t.add_row(KIND_LABEL[item.kind], item.what, item.title, key=str(n))
        status.update(self._status_text())
        if p.items:
            t.focus()
            self._show(0)

    def _status_text(self) -> Text:
        text = self._status_text_raw()
        return Text(fmt.redact(text.plain), style="bold") if fmt.STABLE else text

    def _status_text_raw(self) -> Text:
        p = self.plan
        assert p is not None
        if not p.differences:
            text = Text("✓ ", style="bold green")
            text.append(p.summary(), style="bold green")
            text.append("\nNothing to repair: the normal runbook (r on the dashboard) is all it takes.")
            return text
        text = Text(p.summary(), style="bold")
        text.append(f"\nReference: {p.reference}.")
        if self.written:
            text.append(f"\nPlan written to {self.written}. Next: aami-tui lint {self.written}, then the runbook "
                        f"with --migration-file {self.written}.", style="bold")
        else:
            text.append("\nPress w to write the plan file (0600) for review.")
        return text

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self._show(int(event.row_key.value))

    def _show(self, n: int) -> None:
        if not self.plan or n >= len(self.plan.items):
            return
        item = self.plan.items[n]
        text = Text(item.title + "\n", style="bold")
        for f in item.facts:
            text.append(f"Facts: {f}\n")
        if item.kind == "safe":
            for s in item.sql:
                text.append(s + "\n", style="green")
        elif item.kind == "person":
            text.append("Suggestions (commented out in the plan; a person decides):\n", style="yellow")
            for s in item.sql:
                text.append(f"  {s}\n")
        self.query_one("#drift-detail", Static).update(text)

    def action_write_plan(self) -> None:
        p = self.plan
        if p is None:
            self.notify("No plan yet: the comparison is still running, or it failed.", severity="warning")
            return
        if not p.differences:
            self.notify("No differences: there is no plan to write.", severity="information")
            return
        from aami_tui.core.files import FileError, private_dir, safe_name, write_private

        try:
            d = private_dir(self.app.options.reports_dir)
            path = d / f"plan_{safe_name(self.app.settings.dbname)}_{datetime.now():%Y%m%d_%H%M%S}.sql"
            write_private(path, p.render(path.name))
        except (FileError, OSError) as exc:
            self.notify(f"Cannot write the plan: {exc}", severity="error", timeout=10)
            return
        self.written = str(path)
        self.query_one("#drift-status", Static).update(self._status_text())
        self.notify(f"Plan written to {path}.", title="Drift plan", timeout=8)

    def action_back(self) -> None:
        self.app.pop_screen()
