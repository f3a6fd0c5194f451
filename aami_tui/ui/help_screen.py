"""Help: the procedure this console walks you through, and the keys."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

HELP = """\
# aami-tui — how the migration works

*Press **escape**, **q** or **?** to close this help.*

The AAMI Config Server never migrates its own database: at start-up it only checks that ten
tables exist and refuses to start if one is missing. The migration is applied by a person,
following the production procedure. This console walks you through it:

1. **Pre-flight** — the guide's checklist (tick each item with *space*), plus automatic checks:
   connection, CREATE privileges, not a standby, a pg_dump new enough for the server, disk
   space for the backup, nobody else running the migration, the migration file parses.
2. **Backup** — `pg_dump -Fc` plus a schema-only `.sql`, files mode 0600, then verified with
   `pg_restore --list`; size and sha256 recorded.
3. **BEGIN** — opens the migration transaction, with `lock_timeout` and `statement_timeout`.
4. **Apply** — `001_initial_schema.sql`, statement by statement, inside the transaction.
5. **Verify** — 10 / 10 required tables, the six alert templates, nothing else created by the file (tables that were there before BEGIN are a warning; `--exact` makes "exactly ten tables in public" a gate).
6. **COMMIT** (type the database name) or **ROLLBACK**. Until COMMIT nothing is visible to
   anyone else, and ROLLBACK puts everything back.

Every run writes a report (Markdown and JSON) in the reports directory.
If it went wrong after COMMIT: **Restore** (key *b* on the dashboard) puts a backup back.

## Keys
| key | where | what |
|---|---|---|
| r | dashboard | open the runbook |
| b | dashboard | restore from a backup |
| p | dashboard | drift: compare with what the migration builds, write a repair plan |
| w / e / l / r | drift | write the plan file (linted beside the list) / edit it in $EDITOR / re-read it after editing elsewhere / run it through the runbook |
| f5 | anywhere | refresh the checklist now |
| n | runbook | run the next step (the bar at the top always says what comes next) |
| s | runbook | the migration SQL, read-only and highlighted (s again goes back) |
| i | dashboard | create the database while it does not exist |
| space / tab | runbook | tick the focused checklist item / move to the next |
| r | runbook | after the backup: rehearse on a scratch copy first (optional; n skips it) |
| c / x | runbook | COMMIT / ROLLBACK (each asks first) |
| o | runbook | after a COMMIT whose outcome is unknown: ask the server again (pg_xact_status, fresh connection) |
| i | runbook | inspect inside the open transaction: \\dt, \\d TABLE, \\di, \\dx or SQL, under a savepoint |
| escape | runbook | cancel the running step; closes this help |
| d | runbook, restore | back to the dashboard (the runbook keeps its state) |
| ctrl+r | dashboard (demo) | reset the demo database to empty |
| ctrl+p | anywhere | command palette |
| q | anywhere | quit (asks first, and rolls back, if a transaction is open) |
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    _styled_for: tuple | None = None

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        """Shown again (it is built once): Textual re-applies the stylesheet to all of its ~90 widgets each time
        it is pushed (~15 ms of a key press). Only when the styles could have changed since it was last shown (a
        theme, the app's classes) does it need that; this handler runs before Textual's own."""
        stamp = (self.app._css_update_count, frozenset(self.app.classes), self.app.size)
        if stamp == self._styled_for:
            event.refresh_styles = False
        self._styled_for = stamp

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):
            yield Markdown(HELP)
        # Its own keys in the footer's row, over the footer of the screen under it (whose keys do nothing here):
        # one line of text, not a Footer (~20-40 ms more on each ?).
        yield Static("[b]esc[/b] Close  [b]q[/b] Close  [b]?[/b] Close  [b]↑↓ pgup pgdn[/b] Scroll",
                     id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
