"""The runbook's steps, each pending / running / done / failed, with elapsed time."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from aami_tui.core.runbook import STEP_ORDER, Runbook, State, Step, Tx
from aami_tui.ui import fmt

ICON = {State.PENDING: ("○", "dim"), State.RUNNING: ("●", "bold yellow"), State.DONE: ("✓", "bold green"),
        State.FAILED: ("✗", "bold red"), State.SKIPPED: ("–", "dim"), State.NOT_RUN: ("–", "dim")}


class StepList(Static):
    def __init__(self, rb: Runbook, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel")
        self.rb = rb

    def on_mount(self) -> None:
        self.border_title = "Steps"
        self.set_interval(0.5, self.redraw)
        self.redraw()

    def redraw(self) -> None:
        rb = self.rb
        nxt = rb.next_step()
        roomy = not self.size.width or self.size.width >= 30  # in a narrow terminal, drop the timings
        t = Table.grid(padding=(0, 1))
        t.add_column(width=1)
        t.add_column(no_wrap=True)
        if roomy:
            t.add_column(justify="right", no_wrap=True)
        for i, step in enumerate(STEP_ORDER, 1):
            rec = rb.steps[step]
            title = step.title
            if step is Step.COMMIT:
                rrec = rb.steps[Step.ROLLBACK]
                title = "COMMIT / ROLLBACK"
                if rrec.state in (State.DONE, State.RUNNING) and rec.state == State.PENDING:
                    rec = rrec
                    title = "ROLLBACK" if rrec.state == State.DONE else "ROLLBACK…"
            icon, style = ICON[rec.state]
            if rec.state == State.DONE and rec.step is Step.ROLLBACK:
                icon, style = "↺", "bold yellow"
            label = Text(f"{i} {title}", style="bold reverse" if step is nxt and rec.state == State.PENDING else "")
            cells = [Text(icon, style=style), label]
            if roomy:
                cells.append(Text(fmt.elapsed(rec.elapsed), style="dim"))
            t.add_row(*cells)
        t.add_row("", "")
        tx_style = {Tx.OPEN: "bold black on yellow", Tx.ABORTED: "bold white on red",
                    Tx.COMMITTED: "bold black on green", Tx.ROLLED_BACK: "bold black on cyan",
                    Tx.LOST: "bold white on red", Tx.UNKNOWN: "bold white on red"}.get(rb.tx, "dim")
        t.add_row("", Text(f" {rb.tx.value} ", style=tx_style))
        self.update(t)
