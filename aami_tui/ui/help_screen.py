"""Help: the procedure this console walks you through, and the keys.

The text is Markdown, drawn by Rich into one widget: Textual's Markdown widget built ~90 widgets for it, and the
first `?` took 0.45-0.55 s of CPU (every later one ~30 ms, to lay them out again). Rich's rendering is done once per
width and theme, in a thread the app starts while it is idle (``prepare``), so that `?` only shows lines.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

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
| i | dashboard | create the database while it does not exist |
| w / e / l / r | drift | write the plan file (linted beside the list) / edit it in $EDITOR / re-read it after editing elsewhere / run it through the runbook |
| f5 | anywhere | refresh the checklist now |
| n | runbook | run the next step (the bar at the top always says what comes next) |
| s | runbook | the migration SQL, read-only and highlighted (s again goes back) |
| space / tab | runbook | tick the focused checklist item / move to the next |
| r | runbook | after the backup: rehearse on a scratch copy first (optional; n skips it) |
| c / x | runbook | COMMIT / ROLLBACK (each asks first) |
| o | runbook | after a COMMIT whose outcome is unknown: ask the server again (pg_xact_status, fresh connection) |
| i | runbook | inspect inside the open transaction: \\dt, \\d TABLE, \\di, \\dx or SQL, under a savepoint |
| escape | runbook | cancel the running step |
| d | runbook, restore | back to the dashboard (the runbook keeps its state) |
| ctrl+r | dashboard (demo) | reset the demo database to empty |
| ? | anywhere | this help (escape, q or ? closes it) |
| ctrl+p | anywhere | command palette |
| q | anywhere | quit (asks first, and rolls back, if a transaction is open) |
"""


BOX_WIDTH = 90  # screens.tcss: #help-box's width (max-width 95 %)
TEXT_MARGIN = 8  # the box's border (2), padding (4) and scrollbar (2)

_render_lock = threading.Lock()


def colours(app) -> tuple[str, str, str]:
    """The theme's colours the help is drawn in: headings and numbers, inline code, table borders."""
    v = app.get_css_variables()
    return v.get("primary", "blue"), v.get("warning", "yellow"), v.get("panel-lighten-2", v.get("panel", "grey50"))


def text_width(app) -> int:
    """The width the help's text gets on a screen of this size (it wraps to the box, and the box to the screen)."""
    return max(min(BOX_WIDTH, app.size.width * 95 // 100) - TEXT_MARGIN, 20)


@lru_cache(maxsize=8)
def _render(width: int, theme: tuple[str, str, str]) -> tuple[Strip, ...]:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.theme import Theme

    primary, code, border = theme
    console = Console(width=width, color_system="truecolor", force_terminal=True, theme=Theme({
        "markdown.h1": f"bold {primary}", "markdown.h2": f"bold {primary}", "markdown.code": f"bold {code}",
        "markdown.item.number": primary, "markdown.table.header": f"bold {primary}",
        "markdown.table.border": border}))
    lines = console.render_lines(Markdown(HELP), console.options.update_width(width), pad=False)
    return tuple(Strip([seg for seg in line if not seg.control]).extend_cell_length(width) for line in lines)


def help_lines(width: int, theme: tuple[str, str, str]) -> tuple[Strip, ...]:
    """The help drawn at ``width`` cells in the theme's colours, a strip per line (cached: Rich's rendering costs
    ~0.1 s, and Textual's own of 70 lines of text ~0.1 s more on every layout)."""
    with _render_lock:  # the idle thread's rendering and the screen's never run side by side
        return _render(width, theme)


def prepare(app) -> None:
    """Render the help for this screen in a thread (the app calls this once it is idle): the first `?` then
    shows lines already drawn."""
    width, theme = text_width(app), colours(app)

    def render() -> None:
        for w in (width + 2, width):  # Textual lays it out without the scrollbar first, then with it
            help_lines(w, theme)

    threading.Thread(target=render, name="help", daemon=True).start()


class HelpText(Widget):
    """The help's text: the lines ``help_lines`` drew for this width and theme, drawn a line at a time (only
    those on screen)."""

    DEFAULT_CSS = "HelpText { height: auto; }"

    _theme_for: str | None = None
    _theme: tuple[str, str, str] = ("blue", "yellow", "grey50")

    def _colours(self) -> tuple[str, str, str]:
        if self._theme_for != self.app.theme:
            self._theme_for, self._theme = self.app.theme, colours(self.app)
        return self._theme

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(help_lines(width, self._colours()))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        lines = help_lines(width, self._colours())
        if y >= len(lines):
            return Strip.blank(width, self.rich_style)
        return lines[y].apply_style(self.rich_style)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    _styled_for: tuple | None = None

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        """Shown again (it is built once): Textual re-applies the stylesheet to all of its widgets each time it is
        pushed (~15 ms of a key press when the help was ~90 widgets). Only when the styles could have changed since
        it was last shown (a theme, the app's classes) does it need that; this handler runs before Textual's own."""
        self.query_one("#help-box").scroll_home(animate=False)  # from its top, whatever was read last time
        stamp = (self.app._css_update_count, frozenset(self.app.classes), self.app.size)
        if stamp == self._styled_for:
            event.refresh_styles = False
        elif self._styled_for is not None:
            self.query_one(HelpText).refresh(layout=True)  # a theme: its colours are in the lines
        self._styled_for = stamp

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):
            yield HelpText(id="help-text")
        # Its own keys in the footer's row, over the footer of the screen under it (whose keys do nothing here):
        # one line of text, not a Footer (~20-40 ms more on each ?).
        yield Static("[b]esc[/b] Close  [b]q[/b] Close  [b]?[/b] Close  [b]↑↓ pgup pgdn[/b] Scroll",
                     id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
