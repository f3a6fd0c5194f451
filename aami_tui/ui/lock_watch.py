"""Lock watch: our transaction's age, its idle-in-transaction clock, who waits on our locks, and whom we wait for."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from aami_tui.core.runbook import LockWatch
from aami_tui.core.words import plural
from aami_tui.ui import fmt
from aami_tui.ui.line import Line


class LockWatchPanel(Line):
    def __init__(self, idle_warn: float, id: str | None = None) -> None:
        super().__init__("No migration transaction open.", id=id, classes="panel")
        self.idle_warn = idle_warn
        self._shown: tuple | None = None  # what the panel shows now (the watch ticks every second)

    def on_mount(self) -> None:
        self.border_title = "Lock watch"

    def show(self, w: LockWatch | None, *, lock_timeout: float, statement_timeout: float,
             idle_timeout: float = 0.0, tx_open: bool = False) -> None:
        """``w`` None with ``tx_open``: the sample got no answer (a frozen network, a server that stopped) or could not
        connect: said so, never "No migration transaction open" while one is (fresh8 R2)."""
        shown = (w, lock_timeout, statement_timeout, idle_timeout, self.idle_warn, tx_open and w is None)
        if shown == self._shown:  # the same as the last tick (no transaction, say): nothing to repaint
            return
        self._shown = shown
        self.set_class(w is not None or tx_open, "-active")  # (shown: the CSS hides it otherwise)
        limits = f"lock_timeout {lock_timeout:g}s · statement_timeout {statement_timeout:g}s"
        m, sec = divmod(int(idle_timeout), 60)
        limit = f"{m:02d}:{sec:02d}"  # the server's idle_in_transaction_session_timeout (0: none)
        if w is None and tx_open:
            self.set_class(True, "-warn")
            self.update(Text.assemble(("⚠ Could not sample the locks (no answer from the server in time, or no connection for the "
                                       "watch). ", "bold yellow"),
                                      "The migration transaction is open: its age, what it holds and whom it blocks "
                                      f"are not known now.  {limits}"))
            return
        if w is None:
            self.set_class(False, "-warn")
            self.update(Text(f"No migration transaction open.  {limits}"
                             + (f" · idle_in_transaction_session_timeout {limit}" if idle_timeout else ""),
                             style="dim"))
            return
        blockers = getattr(w, "blockers", ())
        warn = bool(w.waiters) or bool(blockers) or (w.idle_for or 0) > self.idle_warn
        self.set_class(warn, "-warn")
        head = Text.assemble(("Transaction age ", "bold"), fmt.clock(w.xact_age), "  ")
        if w.idle_for is not None:
            style = "bold red" if w.idle_for > self.idle_warn else "bold yellow"
            head.append_text(Text.assemble(("idle in transaction ", style), (fmt.clock(w.idle_for), style),
                                           (f" of {limit}" if idle_timeout else ""), " (holding locks)"))
        head.append(f"  {limits}", style="dim")
        warning = getattr(w, "warning", "")
        if warning:
            head.append_text(Text.assemble("\n", ("⚠ " + warning, "bold red")))
        if blockers:  # our own statement is queued behind another session's lock (until lock_timeout)
            head.append_text(Text.assemble("\n", ("Our session is waiting for a lock held by " + "; ".join(
                fmt.redact(b.describe()) for b in blockers), "bold yellow")))
        if not w.waiters:
            self.update(Text.assemble(head, "\n", ("No session is waiting on our locks.", "green")))
            return
        t = Table(show_header=True, header_style="bold red", box=None, padding=(0, 1), expand=True)
        for col in ("pid", "user", "application", "waiting", "query"):
            t.add_column(col, no_wrap=True, overflow="ellipsis")
        for r in w.waiters:
            waited = r.get("waiting_for")
            t.add_row(str(r["pid"]), r.get("user") or "", r.get("application_name") or "",
                      fmt.clock(waited.total_seconds() if waited is not None else None),
                      " ".join((r.get("query") or "").split())[:60])
        msg = Text(f"{plural(len(w.waiters), 'session is', 'sessions are')} waiting on locks this transaction holds: "
                   "COMMIT or ROLLBACK soon.", style="bold red")
        from rich.console import Group

        self.update(Group(head, msg, t))
