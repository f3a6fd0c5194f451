"""The question the engine asks when --commit-timeout runs out while COMMIT waits on synchronous replication
(``CommitWaitAsked``): keep waiting (the safe choice, focused) or end the wait."""

from __future__ import annotations

import time

from textual.widgets import Static

from aami_tui.core.runbook.events import CommitWaitAsked
from aami_tui.ui import fmt
from aami_tui.ui.confirm import ConfirmModal


def body(ev: CommitWaitAsked, waited: float | None = None) -> str:
    """``waited``: the wait so far (the dialog counts it while it is open; fresh9 F4); default: when asked."""
    return (f"COMMIT has had no answer for {ev.waited if waited is None else waited:.0f}s (--commit-timeout {ev.timeout:g}s): it is committed "
            f"locally, and the synchronous standby '{ev.standby}' has not confirmed it (wait_event SyncRep). Is the "
            "standby connected, or reconnecting? (pg_stat_replication)\n\n"
            f"Keep waiting: another {ev.timeout:g}s, then this question again; if the standby confirms meanwhile, "
            "COMMIT ends normally.\n"
            "End the wait: the COMMIT's backend is ended; the migration stays committed on the primary only, NOT "
            "confirmed on the standby: a failover now can lose it.")


class CommitWaitModal(ConfirmModal):
    """True: end the wait; False (escape, or the focused button): keep waiting; None: withdrawn (the COMMIT
    answered, or ended, before the operator did)."""

    def __init__(self, ev: CommitWaitAsked) -> None:
        super().__init__("COMMIT is waiting for the synchronous standby", body(ev), confirm="End the wait",
                         cancel="Keep waiting", id="commit-wait-modal", q_quits=True)
        self.event = ev
        self._withdrawn = False
        self._shown_at = time.monotonic()

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(1.0, self._count)  # the screen's timer: it stops with the dialog

    def _count(self) -> None:
        if not self.is_attached or self._withdrawn:
            return
        waited = self.event.waited + time.monotonic() - self._shown_at
        self.query_one("#confirm-body", Static).update(fmt.redact(body(self.event, waited)))

    def withdraw(self) -> None:
        """The question is gone: close now if on top, else as soon as what covers it goes."""
        self._withdrawn = True
        if self.is_current:
            self.dismiss(None)

    def on_screen_resume(self) -> None:
        if self._withdrawn:
            self.dismiss(None)
