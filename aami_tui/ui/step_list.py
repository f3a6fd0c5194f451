"""The runbook's steps, each pending / running / done / failed, with elapsed time."""

from __future__ import annotations

from rich.console import Group
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from aami_tui.core.runbook import STEP_ORDER, Phase, Runbook, State, Step, Tx
from aami_tui.ui import fmt
from aami_tui.ui.line import Line

BEFORE_BEGIN = frozenset({Phase.NEW, Phase.PREFLIGHT, Phase.CHECKED, Phase.BACKUP, Phase.READY, Phase.REHEARSING})
ICON = {State.PENDING: ("○", "dim"), State.RUNNING: ("●", "bold yellow"), State.DONE: ("✓", "bold green"),
        State.FAILED: ("✗", "bold red"), State.SKIPPED: ("–", "dim"), State.NOT_RUN: ("–", "dim"),
        State.UNCONFIRMED: ("?", "bold red")}  # a ROLLBACK nobody saw end


class StepList(Line):
    def __init__(self, rb: Runbook, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel")
        self.rb = rb
        self._shown: tuple | None = None  # what the list shows now: a tick that would show the same repaints nothing

    def on_mount(self) -> None:
        self.border_title = "Steps"
        self.set_interval(0.5, self.redraw)
        self.redraw()

    def redraw(self) -> None:
        rb = self.rb
        nxt = rb.next_step()
        # Steps of a transaction that was rolled back (by ROLLBACK, or by the server when the connection was
        # lost) did run, but nothing of them is left: they are marked so, never as done.
        undone = rb.tx in (Tx.ROLLED_BACK, Tx.LOST)
        marked = False
        rows: list[tuple] = []
        for i, step in enumerate(STEP_ORDER, 1):
            rec = rb.steps[step]
            title = step.title
            if step is Step.COMMIT:
                rrec = rb.steps[Step.ROLLBACK]
                title = "COMMIT/ROLLBACK"
                if rrec.state in (State.DONE, State.RUNNING, State.UNCONFIRMED) and rec.state == State.PENDING:
                    rec = rrec
                    title = {State.DONE: "ROLLBACK", State.UNCONFIRMED: "ROLLBACK?"}.get(rrec.state, "ROLLBACK…")
            icon, style = ICON[State.NOT_RUN if rb.nothing_to_do and rec.state == State.PENDING else rec.state]
            if step is Step.COMMIT and rb.tx is Tx.UNKNOWN and rec.state == State.FAILED:
                icon, style, title = "?", "bold red", "COMMIT?"  # sent, its outcome not known: never ✗ as if failed
            elif rec.state == State.DONE and rec.step is Step.ROLLBACK:  # it ran, and was not undone: ✓, yellow
                icon, style = "✓", "bold yellow"  # (↺ is the legend's "ran, then undone": the steps it undid)
            elif undone and (step in (Step.APPLY, Step.VERIFY) and rec.state in (State.DONE, State.FAILED)
                             or step is Step.BEGIN and rec.state == State.DONE):  # a failed BEGIN opened nothing
                icon, style = "↺", "bold yellow"
                marked = True
            rows.append((icon, style, f"{i} {title}", "bold reverse" if step is nxt and rec.state == State.PENDING
                         else "", _short(rec.elapsed)))
            # The optional rehearsal: a row until BEGIN (after it, the room goes to the transaction's state).
            if step is Step.BACKUP and "staging" in rb.answers and rb.phase in BEFORE_BEGIN:
                r = rb.steps[Step.REHEARSE]
                icon, style = ICON[r.state]
                rows.append((icon, style, "  rehearse (opt.)", "dim" if r.state == State.PENDING else "",
                             _short(r.elapsed)))
        # Redrawn every half second (a running step's clock), but repainted only when what it shows changed: an
        # idle runbook, or a dialog over it (which re-renders what is behind it), then costs nothing.
        shown = (tuple(rows), rb.tx, marked, rb.unconfirmed)
        if shown == self._shown:
            return
        self._shown = shown
        below = [Text(f" {rb.tx.value} ", style=fmt.tx_style(rb.tx, "dim"))]  # wraps on its own lines, whole
        if marked:  # the icon's meaning; the status line above already says "rolled back"
            below.append(Text("↺ ran, not committed (undo not confirmed)" if rb.unconfirmed else "↺ ran, then undone",
                              style="yellow"))
        if rb.steps[Step.ROLLBACK].state == State.UNCONFIRMED:
            below.append(Text("? nobody saw the ROLLBACK end", style="red"))
        self.update(Group(_Rows(rows), *below))


class _Rows:
    """The steps' rows: the icon and the timing in fixed columns, the label gets what is left and is cut (…), never
    them. Drawn as rich's ``Table.grid(padding=(0, 1), expand=True)`` with those three columns draws them, cell
    for cell, without the table's measuring: that cost 3-6 ms of the event loop at each repaint (a running step's
    clock repaints it every half second; every step's start and end), and a key pressed then waited behind it."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def table(self) -> Table:
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(width=1, no_wrap=True)
        t.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        t.add_column(width=5, justify="right", no_wrap=True)
        for icon, style, label, label_style, elapsed in self.rows:
            t.add_row(Text(icon, style=style), Text(label, style=label_style), Text(elapsed, style="dim"))
        return t

    def __rich_console__(self, console, options):
        width = options.max_width
        room = width - 8  # icon, space, label, space, timing (5)
        if room < 2:  # narrower than the console ever draws it: the table's own way
            yield self.table()
            return
        space, dim = Segment(" ", Style.null()), console.get_style("dim")
        for icon, style, label, label_style, elapsed in self.rows:  # the table's segments, one per cell and gap
            cell = Text(label)  # cut and padded to its column as the table cuts it (its style goes on the segment)
            cell.truncate(room, overflow="ellipsis", pad=True)
            yield Segment(icon, console.get_style(style))
            yield space
            yield Segment(cell.plain, console.get_style(label_style) if label_style else None)
            yield space
            yield Segment(f"{elapsed:>5}", dim)
            yield Segment.line()


def _short(seconds: float | None) -> str:
    """At most five characters: 0.4s, 12.3s, 2m05s, 1h02m."""
    if seconds is None:
        return ""
    if fmt.STABLE:
        return "·"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s" if m < 10 else f"{m}m"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
