"""The runbook screen: displays and drives the core runbook engine, one worker per step."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual._context import active_app  # (the one way to ask whether a console runs)
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Checkbox, ContentSwitcher, Header, ProgressBar, RichLog, Static, TextArea
from textual.widgets.text_area import Selection

from aami_tui.core import db
from aami_tui.core.runbook import (
    Action,
    Check,
    CommitWait,
    Outcome,
    Phase,
    Runbook,
    RunbookError,
    State,
    Step,
    Tx,
    Verdict,
)
from aami_tui.core.runbook.events import Log, Progress, Silence
from aami_tui.core.runbook.machine import RUNNING, allowed, decide
from aami_tui.core.status import config_server_env
from aami_tui.ui import fmt, sql_view
from aami_tui.ui.confirm import ConfirmModal
from aami_tui.ui.footer import KeyFooter
from aami_tui.ui.line import Line, layout_now, shown
from aami_tui.ui.lock_watch import LockWatchPanel
from aami_tui.ui.messages import (
    STREAM,
    ChecksDoneMsg,
    CommitWaitAskedMsg,
    CommitWaitClosedMsg,
    EngineStreamMsg,
    OutcomeRecheckedMsg,
    ReportWrittenMsg,
    RunbookMessage,
    SilenceMsg,
    StepChangedMsg,
    TxChangedMsg,
    message_for,
)
from aami_tui.ui.panes import Pane, Panes, ScrollPane
from aami_tui.ui.scrollbars import KeptLog
from aami_tui.ui.sql_view import SqlView
from aami_tui.ui.step_list import StepList
from aami_tui.ui.table_checklist import TableChecklist
from aami_tui.ui.tick import Tick
from aami_tui.ui.tool_progress import ToolProgress
from aami_tui.ui.txbar import TxBar

LEVEL_STYLE = {"ok": "green", "error": "bold red", "warn": "yellow", "info": ""}
# Statement lines written to the log at once, at most: a bigger run (the console behind a big file's apply) shows
# its last LOG_FAST_LINES and one line saying how many are only in the run report. A write of 64 lines held the
# event loop 6-14 ms (each line wrapped and rendered), four or five times an apply of 10,000 statements, while
# those lines scroll past faster than anyone reads them (issue 8's key row); the 43-statement file shows them all.
LOG_RUN_LINES = 64
LOG_FAST_LINES = 16
# The engine's stream (log lines, statements, progress) reaches the screen at most this often (seconds): what the eye
# needs, and the event loop stays free for keys (README, Performance). The first after a pause goes at once.
STREAM_INTERVAL = 0.2
# A key read and not yet drawn comes first: the stream waits for the key's frame, STREAM_KEY_WAIT at most, looked at
# every STREAM_KEY_POLL (seconds).
STREAM_KEY_WAIT = 0.15
STREAM_KEY_POLL = 0.005
SQL_VIEW_LAZY = 500  # statements: a bigger file is loaded into the SQL view when the view opens

# What each step does, shown in its confirmation prompt (the console teaches the procedure).
EXPLAIN = {
    Step.PREFLIGHT: "Run the automatic checks and confirm the checklist. Nothing is changed.",
    Step.BACKUP: "pg_dump -Fc of the whole database plus a schema-only .sql into the backup directory "
                 "(files 0600), then verify it with pg_restore --list and record its size and sha256. "
                 "Read-only for the database. Escape cancels and removes partial files.",
    Step.REHEARSE: "Optional. Restore the backup just taken into a scratch copy (a new database on the same server "
                   "when the role may create one, else the embedded PostgreSQL, the version difference stated) and "
                   "run the same engine there: apply, verify, COMMIT on the copy, then check --strict. Shows the "
                   "duration, the locks on existing tables with their sizes, and what failed. The copy is always "
                   "dropped (escape cancels); the real database is only read. The result answers 'Tested on "
                   "staging' and goes into the report.",
    Step.BEGIN: "Open the migration transaction on its own connection, with lock_timeout and "
                "statement_timeout set. Nothing is visible to anyone else until COMMIT.",
    Step.APPLY: "Run the migration file statement by statement inside the open transaction. On an error "
                "it stops; the only way on is ROLLBACK.",
    Step.VERIFY: "Inside the transaction: 10 / 10 required tables, the six default alert templates, no table "
                 "beyond the ten created by the migration (tables that were there before are reported; with "
                 "--exact they block). Anything short blocks COMMIT.",
}
# n (or r, x) pressed after escape, before the step has stopped (the engine bounds a cancel: a second or two).
CANCEL_IN_PROGRESS = "A cancel is in progress: wait for the step to stop (the log says how it ended)."
TIMEOUTS = {Step.PREFLIGHT: 60.0, Step.BEGIN: 30.0, Step.VERIFY: 60.0}


def check_lines(checks: list[Check]) -> Text:
    out = Text()
    for c in checks:
        out.append("✓ " if c.ok else ("✗ " if c.blocking else "! "), style="bold green" if c.ok else "bold red")
        out.append(f"{c.name}: ", style="bold")
        out.append(fmt.short_paths(fmt.redact(c.detail)) + "\n", style="" if c.ok else "red")
    return out


class RunbookScreen(Screen):
    VERIFY_TITLE = "[b]Verify[/b] (inside the transaction)"  # the pane's title: COMMIT's while COMMIT is out
    SAY_SILENT_AFTER = 2.0  # a short round trip (BEGIN, verify, COMMIT, ROLLBACK) unanswered this long: said so
    # The footer shows what the engine's state allows now (check_action asks the pure transition table):
    # never COMMIT after COMMITTED, Inspect while the transaction is open. A key pressed when its action is
    # not possible falls through to its hidden twin below, which says why (a key never does nothing).
    BINDINGS = [
        Binding("n", "next_step", "Next step"),
        Binding("c", "commit", "COMMIT"),
        Binding("x", "rollback", "ROLLBACK"),
        Binding("o", "recheck", "Re-check outcome"),
        Binding("escape", "cancel_step", "Cancel"),
        # priority: run as it is read, before the next key is routed to the widget with the focus (the `s` that
        # closes the SQL view moves the focus to the checklist at once: `s` then space ticks, as it shows)
        Binding("s", "toggle_sql", "SQL", priority=True),
        Binding("i", "inspect", "Inspect"),
        Binding("r", "rehearse", "Rehearse"),
        Binding("d", "dashboard", "Dashboard"),
        Binding("f5", "refresh_tables", "Refresh", show=False),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
        Binding("n", "refused('next_step')", show=False),
        Binding("c", "refused('commit')", show=False),
        Binding("x", "refused('rollback')", show=False),
        Binding("i", "refused('inspect')", show=False),
        Binding("r", "refused('rehearse')", show=False),
        Binding("o", "refused('recheck')", show=False),
    ]
    GATED = frozenset({"next_step", "commit", "rollback", "recheck", "cancel_step", "inspect", "rehearse"})

    # Textual's Screen repaints all of itself when its focus moves (`focused` is a repainting reactive), after the
    # frame that showed the move: `s` moves the focus into the SQL view and back, and each time the whole screen
    # was rendered and written again (~18 KB) with nothing changed. A widget whose look depends on its focus
    # restyles and repaints itself.
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    runs = 0
    REFRESH_SAY = 5.0  # seconds without an answer before the checklist says it could not refresh

    def __init__(self, rb: Runbook, demo: bool = False) -> None:
        """``demo``: the demo's embedded server, removed (with its password) when the console closes."""
        RunbookScreen.runs += 1
        super().__init__(id=f"runbook-{RunbookScreen.runs}", classes="runbook")
        self.rb = rb
        self.demo = demo
        self._syncrep_shown = False  # the step pane says "committed locally" (COMMIT seen waiting on SyncRep)
        self._rehearse_said = ""  # the rehearsal's latest line, shown in its pane while it runs
        self._said: list[Text] = []  # every log line, to re-wrap them after a resize
        self._log_width = 0
        self._stream: EngineStreamMsg | None = None  # the message collecting the engine's stream now
        self._stream_posted = 0.0  # time.monotonic() of the last one posted
        self._sql_prepared = None  # the migration file whose SQL view is being (or was) built ahead (_prepare_sql)
        self._sql_preparing = None  # the one being built now
        self._sql_waiting = ""  # what the SQL pane's head says while the view waits for the file
        self._held: tuple[EngineStreamMsg, float] | None = None  # a stream message waiting for a key's frame, since
        self._apply_msg, self._apply_waiting = "", False  # the apply's statement line; whether a lock wait replaced it
        self._begin_waiting = False  # BEGIN's own queries wait for another session's lock (#begin-line names it)
        self._silence: Silence | None = None  # the engine's last Silence while the round trip it names goes unanswered
        rb.listener = self._on_engine_event

    # ---- layout ------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield TxBar(id="txbar")
        with Horizontal(id="rb-main"):
            yield StepList(self.rb, id="steps")
            with Panes(initial="pane-preflight", id="panes"):
                with ScrollPane(id="pane-preflight", classes="pane"):
                    yield Line("", id="preflight-title", classes="pane-title")
                    for key, label in self.rb.items:
                        yield Tick(label, id=f"tick-{key}")
                    if "staging" in self.rb.answers:
                        yield Static("Not tested yet? Leave it unticked: after the backup, [b]r[/b] "
                                     "rehearses on a scratch copy and answers it.", id="staging-hint",
                                     classes="hint")
                    yield Static("[b]Automatic checks[/b]", classes="pane-title")
                    yield Line("running…", id="auto-checks")
                    yield Static("[b]Migration SQL[/b]: press [b]s[/b] to review it (scrolls both ways; s again "
                                 "comes back)", classes="pane-title")
                with ScrollPane(id="pane-backup", classes="pane"):
                    yield Static("[b]Backup[/b]", classes="pane-title")
                    yield Line("", id="backup-info")
                    yield ToolProgress(total=1, id="backup-progress", show_eta=False)
                    yield Line("", id="backup-line")
                    begin_line = Line("", id="begin-line")  # only while BEGIN waits for a lock (_begin_line)
                    begin_line.display = False
                    yield begin_line
                    yield Line("", id="rehearse-info")
                    yield ToolProgress(total=1, id="rehearse-progress", show_eta=False)
                    yield Line("", id="rehearse-line")
                with Pane(id="pane-apply", classes="pane"):
                    yield Static("[b]Apply[/b]", classes="pane-title")
                    yield ProgressBar(total=1, id="apply-progress", show_eta=False)
                    yield Line("", id="apply-line")
                    yield Line("", id="apply-error")
                with ScrollPane(id="pane-verify", classes="pane"):
                    yield Line(self.VERIFY_TITLE, classes="pane-title", id="verify-title")
                    yield Line("", id="verify-next")
                    yield Line("", id="verify-checks")
                with ScrollPane(id="pane-done", classes="pane"):
                    yield Line("", id="done-text")
                with Pane(id="pane-sql"):
                    yield Line("", id="sql-head")
                    yield SqlView("", language="sql", read_only=True, soft_wrap=False, show_line_numbers=True,
                                  id="sql-text")
            yield TableChecklist(compact=True, id="rb-checklist")
        yield LockWatchPanel(self.rb.opt.idle_warn_seconds, id="lockwatch")
        yield Static("", id="small-warning")
        yield KeptLog(id="log", wrap=True, markup=False, highlight=False, max_lines=2000)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "aami-tui · runbook"
        self.call_after_refresh(self.app.size_check)
        self.sub_title = fmt.redact(self.rb.settings.display()) + (" · development mode" if self.rb.opt.dev else "")
        if self.rb.migration_path.resolve() != self.app.migration_path.resolve():  # a drift plan from the Drift view
            self.sub_title += f" · {self.rb.migration_path.name}"
        log = self.query_one("#log", RichLog)
        log.border_title = "Log"
        # Anchored to its end: when it loses a row (a two-line transaction bar, -txbar-2), its newest line stays in
        # view (it kept its scroll offset and hid that line); scrolling up releases it, back at the end re-anchors.
        log.anchor()
        self.query_one("#panes").border_title = "Step"
        self.sql_open = False
        self._sql_total = 0
        self._ticked_title()
        self._txbar()
        self.set_interval(1.0, self._watch_locks)
        self.set_interval(1.0, self._tick_answer_clock)  # its own timer: a slow lock-watch sample never stops it
        self.set_interval(self.app.refresh_interval, self.refresh_tables)
        self.say(f"Runbook for {self.rb.settings.display()}. Migration file: {self.rb.migration_path}")
        self.say("Tick the checklist, then press n to run each step (each asks first).")
        self.run_worker(self._initial(), group="step", exclusive=True, exit_on_error=False)
        if self.rb.steps[Step.PREFLIGHT].state != State.DONE:
            self.query_one(f"#tick-{self.rb.items[0][0]}", Checkbox).focus()

    async def _initial(self) -> None:
        try:
            checks = await asyncio.wait_for(self.rb.automatic_checks(), TIMEOUTS[Step.PREFLIGHT])
            bad = [c for c in checks if c.blocking and not c.ok]
            if bad:
                self.say(f"Pre-flight blocked: {bad[0].name}: {bad[0].detail}", "error")
            elif self.rb.already_migrated:
                self.say("Already migrated: nothing to do. n runs pre-flight, which confirms it, records it in the "
                         "report and ends the run (no checklist needed: no backup, no transaction); d goes back.", "ok")
                self._ticked_title()
        except (RunbookError, TimeoutError) as exc:
            self.say(str(exc) or "the automatic checks timed out", "error")
        self._load_sql()
        self.app.settle_heap()  # the parsed migration file stays
        self._catch_up()

    # ---- the migration SQL, read-only, highlighted; follows the apply ----------------------------------------
    def _big_sql(self) -> bool:
        """A file this big is loaded into the highlighted view only when the pane opens (loading 10,000
        statements held the console for 0.6-2 s, and following the apply moved a view nobody was looking at)."""
        return self.rb.migration is not None and len(self.rb.migration.statements) > SQL_VIEW_LAZY

    def _load_sql(self, opening: bool = False) -> None:
        """The file into the SQL view: at once when it is small; a big one is built in a thread (``_prepare_sql``)
        and goes into the view when the view is open and the build is done. Meanwhile an open pane says so."""
        area = self.query_one("#sql-text", SqlView)
        mf = self.rb.migration
        showing = opening or self.sql_open
        if area.text:
            return
        if mf is None:
            if showing:
                self._sql_wait_head("reading the migration file (automatic checks)…")
            return
        if self._big_sql():
            self._prepare_sql(area)
            if self._sql_preparing is mf:  # shown once built (_prepare), never built twice
                if showing:
                    self._sql_wait_head(f"{mf.path.name} · loading {len(mf.statements):,} statements…")
                return
            if not showing:
                return
        area.load_text(mf.text)  # (a big file: what the thread built, or, if it could not, built here)
        head = self.query_one("#sql-head", Static)
        if str(head.content) and str(head.content) != self._sql_waiting:  # the apply already says where it is
            return
        head.update(Text.assemble((mf.path.name, "bold"), f" · {fmt.plural(len(mf.statements), 'statement')} · "
                                  "read-only · ", ("s", "bold"), " back to the step"))

    def _sql_wait_head(self, words: str) -> None:
        head = self.query_one("#sql-head", Static)
        if not str(head.content) or str(head.content) == self._sql_waiting:
            self._sql_waiting = words
            head.update(Text(words, style="italic"))

    def _prepare_sql(self, area: SqlView) -> None:
        """A big file's view is built in a thread, once, ahead of the `s` that shows it (``sql_view.prepare``)."""
        mf = self.rb.migration
        if mf is not None and self._sql_prepared is not mf:
            self._sql_prepared = self._sql_preparing = mf
            self.run_worker(self._prepare(area, mf), group="sql-view", exclusive=True, exit_on_error=False)

    async def _prepare(self, area: SqlView, mf) -> None:
        try:
            prepared = await asyncio.to_thread(sql_view.prepare, mf.text, area.language or "", area.indent_width)
        except Exception as exc:  # never without the SQL: the view then loads it itself (Textual's way)
            self.log.error(f"the SQL view could not be built ahead: {exc!r}")
            prepared = None
        finally:
            if self._sql_preparing is mf:
                self._sql_preparing = None
        if self.rb.migration is not mf or area.text:  # a newer file, or the view loaded it itself meanwhile
            return
        area.prepared = prepared
        if self.sql_open:  # `s` came while it was being built: the view shows it now, at the apply's statement
            self._load_sql(opening=True)
            if getattr(self, "_sql_index", None):
                self._select_statement(self._sql_index)
            self._scroll_sql()

    def _sql_head_file(self, note: str = "") -> None:
        """The SQL pane names the file and no statement as reached: nothing of it is applied in the transaction
        now (a retry from BEGIN, or the last attempt rolled back)."""
        self._sql_index, self._sql_line = None, 1  # the view goes back to the file's top
        self._sql_progress = False
        area = self.query_one("#sql-text", TextArea)
        area.selection = Selection.cursor((0, 0))
        self._scroll_sql()
        mf = self.rb.migration
        if mf is None:
            return
        self.query_one("#sql-head", Static).update(Text.assemble(
            (mf.path.name, "bold"), f" · {fmt.plural(len(mf.statements), 'statement')} · read-only · ", note,
            ("s", "bold"), " back to the step"))

    def _select_statement(self, index: int) -> None:
        mf = self.rb.migration
        if mf is None or not 1 <= index <= len(mf.statements):
            return
        self._sql_index = index
        self._load_sql()
        if not self.query_one("#sql-text", TextArea).text:  # a big file, pane closed: selected when it opens
            return
        st = mf.statements[index - 1]
        lines = st.sql.split("\n")
        end_col = len(lines[-1]) + (st.column - 1 if len(lines) == 1 else 0)
        area = self.query_one("#sql-text", TextArea)
        # The cursor (a selection's end) at the statement's start: the view follows the cursor, so it shows the
        # statement's first line from column 1, not its last line scrolled sideways.
        area.selection = Selection((st.line - 1 + len(lines) - 1, end_col), (st.line - 1, st.column - 1))
        self._sql_line = st.line
        self._scroll_sql()

    def _scroll_sql(self) -> None:
        line = getattr(self, "_sql_line", None)
        if line is not None:
            self.query_one("#sql-text", TextArea).scroll_to(x=0, y=max(0, line - 2), animate=False)

    def _failed_statement(self, detail: str) -> None:
        bad = [r for r in self.rb.statements if not r.ok]
        if not bad:
            return
        r = bad[-1]
        m = re.search(r"line (\d+)(?:, column (\d+))?", detail)
        where = f"line {m.group(1)}" + (f", column {m.group(2)}" if m.group(2) else "") if m else f"line {r.line}"
        total = len(self.rb.migration.statements) if self.rb.migration else "?"
        self._select_statement(r.index)
        self._sql_progress = False  # where it failed stays said after the ROLLBACK, until a retry
        self.query_one("#sql-head", Static).update(Text.assemble(
            (f"✗ Failed: statement {r.index} / {total}, {where}", "bold red"), "\n",
            (fmt.redact(detail), "red")))

    def _apply_stopped(self) -> Text:
        rb = self.rb
        mine = [r for r in rb.statements if r.attempt == rb.attempt]
        ran = sum(1 for r in mine if r.ok)
        bad = next((r for r in mine if not r.ok), None)
        total = len(rb.migration.statements) if rb.migration else 0
        where = f"Stopped at statement {bad.index} / {total}" if bad else "Stopped"
        return Text.assemble((f"✗ {where}", "bold red"),
                             f" · {fmt.plural(ran, 'statement')} ran before it, inside the transaction: nothing "
                             "is committed. ROLLBACK undoes them.")

    def action_toggle_sql(self) -> None:
        self.sql_open = not self.sql_open
        area = self.query_one("#sql-text", TextArea)
        if self.sql_open and not area.text:
            self._load_sql(opening=True)
            if getattr(self, "_sql_index", None):
                self._select_statement(self._sql_index)
        self._load_sql()
        if self.sql_open:  # the step pane's contents are kept up to date by the step's events: only switch
            self._switch_pane("pane-sql")
            self.query_one("#panes").border_title = "Migration SQL"
        else:
            self._show_pane()
        if self.sql_open:
            # The focus follows after the frame that shows the SQL: moving it restyles and changes the footer's
            # keys, which in the same frame made `s` repaint most of the screen rather than one pane (README,
            # Performance).
            self.call_after_refresh(self._focus_sql)
        else:  # at once: a space typed right behind the `s` that closes the view ticks the item it shows focused
            self._focus_first_unticked()

    def _focus_sql(self) -> None:
        """The SQL view gets the focus, at its statement (a hidden pane could not scroll: done once it is shown)."""
        if self.sql_open:
            self.set_focus(self.query_one("#sql-text", TextArea))
            self._scroll_sql()

    def _focus_first_unticked(self) -> None:
        if self.rb.steps[Step.PREFLIGHT].state != State.DONE:
            key = next((k for k, _ in self.rb.items if not self.rb.answers[k]), self.rb.items[0][0])
            self.set_focus(self.query_one(f"#tick-{key}", Checkbox))

    def _ticked_title(self) -> None:
        n, total = sum(self.rb.answers.values()), len(self.rb.items)
        todo = (" — not needed: the database is already migrated (n ends the run)" if self.rb.already_migrated
                else " — tick each item (space) once it is true:")
        self.query_one("#preflight-title", Static).update(Text.assemble(
            ("Pre-flight checklist", "bold"), (" (development mode)" if self.rb.opt.dev else ""), f" · {n} / {total} ticked",
            (todo if n < total else " ✓", "" if n < total else "bold green")))

    # ---- engine events (the listener runs on the app's loop; post a typed message) -----------------------------
    def _on_engine_event(self, ev) -> None:
        if isinstance(ev, STREAM):  # consecutive log lines, statements and progress travel in one message (in order)
            batch = self._stream
            if batch is None or batch.taken:
                batch = self._stream = EngineStreamMsg()
                wait = self._stream_posted + STREAM_INTERVAL - time.monotonic()
                if wait <= 0 or active_app.get(None) is None:  # (no console: a screen made to read its words)
                    self._post_stream(batch)  # no timer: with no app to run it, it failed at the process's end
                else:
                    self.set_timer(wait, lambda: self._post_stream(batch))
            batch.events.append(ev)
            return
        self._post_stream_now()  # what came before this event reaches the screen before it
        self.post_message(message_for(ev))

    def _post_stream(self, batch: EngineStreamMsg) -> None:
        if not batch.posted:
            batch.posted = True
            self._stream_posted = time.monotonic()
            self.post_message(batch)

    def _post_stream_now(self) -> None:
        """The stream so far goes to the screen now, and what the engine says next goes in a new message."""
        if self._stream is not None:
            self._post_stream(self._stream)
        self._stream = None

    def say(self, message: str, level: str = "info") -> None:
        self._release_stream()  # what the engine said before this goes before it
        self._write([Text(fmt.redact(message), style=LEVEL_STYLE.get(level, ""))])

    def _write(self, lines: list[Text]) -> None:
        """Lines to the log in one write (one render, one repaint)."""
        self._said.extend(lines)
        del self._said[:-2000]  # as many as the log keeps
        self.query_one("#log", RichLog).write(lines[0] if len(lines) == 1 else Text("\n").join(lines),
                                             width=self._log_width or None)

    def on_resize(self, event) -> None:
        """A RichLog wraps a line once, when written: after a resize, write them all again at the new width."""
        self.call_after_refresh(self._rewrap)  # once the log has its new size

    def _rewrap(self) -> None:
        log = self.query_one("#log", RichLog)
        width = log.scrollable_content_region.width
        if not width or width == self._log_width:
            return
        self._log_width = width
        log.clear()
        for line in self._said:  # at the log's width (the console's own may lag behind a resize)
            log.write(line, width=width, scroll_end=False)
        log.scroll_end(animate=False)

    @on(EngineStreamMsg)
    def _stream_events(self, message: EngineStreamMsg) -> None:
        """A key read and not yet drawn comes first: the stream waits for the frame after its action (``_hold``)."""
        if self._held is None and self.app.key_pending():
            self._held = (message, time.monotonic())
            self.set_timer(STREAM_KEY_POLL, self._hold)
            return
        self._show_stream(message)

    def _hold(self) -> None:
        """The stream held for a key (traced under load, a key's slowest presses waited for the stream that came
        just before them: its log write and progress, 12-20 ms, then the frame that drew them, 13-29 ms, and only
        then the key's own action and frame). It goes to the screen once the key's frame has gone to the terminal,
        or after STREAM_KEY_WAIT whatever the keys do. What the engine says meanwhile joins it; any other engine
        message, and any line the console writes itself, shows it first (the log stays in order)."""
        held = self._held
        if held is None or self.app.gone(self):
            return
        if self.app.key_pending() and time.monotonic() - held[1] < STREAM_KEY_WAIT:
            self.set_timer(STREAM_KEY_POLL, self._hold)
            return
        self._release_stream()

    def _release_stream(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._show_stream(held[0])

    async def _on_message(self, message) -> None:
        if self._held is not None and isinstance(message, RunbookMessage):  # the engine's order
            self._release_stream()
        await super()._on_message(message)

    def _show_stream(self, message: EngineStreamMsg) -> None:
        """The stream's lines in one log write, in order; of the statements, all when they are at most LOG_RUN_LINES,
        else the last LOG_FAST_LINES, and the others folded (``_fold``); each bar and line at its newest."""
        items: list = []  # a log line (Text), a run of statements (a list of StatementDone), or a batch's Log
        newest: dict = {}  # step -> its last Progress
        bar = None  # the apply's bar: (total, done) from the last statement or apply progress
        rehearsal_said = False
        for ev in message.take():
            if isinstance(ev, Log):
                if ev.batch is not None:  # its round trip: folded with its statements if they are not shown
                    items.append(ev)
                    continue
                items.append(Text(fmt.redact(ev.message), style=LEVEL_STYLE.get(ev.level, "")))
                if ev.step is Step.REHEARSE and self.rb.steps[Step.REHEARSE].state == State.RUNNING:
                    self._rehearse_said, rehearsal_said = ev.message, True
            elif isinstance(ev, Progress):
                newest[ev.step] = ev
                if ev.step is Step.APPLY:
                    bar = (ev.total, ev.done)
            else:  # StatementDone
                if items and isinstance(items[-1], list):
                    items[-1].append(ev)
                else:
                    items.append([ev])
                bar = (ev.total, ev.done)
        lines = self._fold(items)
        if lines:
            self._write(lines)
        if rehearsal_said:
            self.query_one("#rehearse-info", Static).update(self._rehearse_text())
        for ev in newest.values():
            self._progress(ev)
        if bar is not None:
            self.query_one("#apply-progress", ProgressBar).update(total=bar[0], progress=bar[1])

    @staticmethod
    def _fold(items: list) -> list[Text]:
        """The log's lines for a stream's items. When its statements are more than LOG_RUN_LINES (a big file's
        apply, thousands a second), the last LOG_FAST_LINES are shown and the ones before them, with the lines that
        say which went to the server in one round trip, are folded into one line per stretch between other log
        lines: "… statements 8449–9984 done too (1,536 lines not shown here, sent in 6 round trips: …)". Unfolded,
        a 10,000-statement apply wrote a "done too" line and a two-row round-trip line for each batch of 256
        statements, ~30 rows five times a second: read by nobody, and most of the write's cost (issue 8's key row).
        The round trip of the statements shown keeps its own line (what their ≈ means)."""
        done = sum(len(item) for item in items if isinstance(item, list))
        room = LOG_RUN_LINES if done <= LOG_RUN_LINES else LOG_FAST_LINES
        shown: dict[int, int] = {}
        for i in range(len(items) - 1, -1, -1):  # the newest statements are the ones shown
            if isinstance(items[i], list):
                shown[i] = min(room, len(items[i]))
                room -= shown[i]
        lines: list[Text] = []
        fold: list = []  # the stretch folded so far: [first, last, statements, round trips]

        def flush() -> None:
            if fold:
                first, last, n, trips = fold
                lines.append(Text(f"… statements {first}–{last} done too ({n:,} lines not shown here, sent in "
                                  f"{fmt.plural(trips, 'round trip')}: every statement is in the run report)",
                                  style="dim"))
                fold.clear()

        for i, item in enumerate(items):
            if isinstance(item, Log):  # a batch's round trip
                if fold and fold[1] >= item.batch[1]:  # its statements were all folded: so is its line
                    continue
                flush()
                lines.append(Text(fmt.redact(item.message), style=LEVEL_STYLE.get(item.level, "")))
            elif isinstance(item, list):
                hidden = len(item) - shown[i]
                if hidden:  # a round trip starts at a statement sent alone and at a batch's first
                    trips = sum(e.record.batch == 1 or j == 0 or item[j - 1].record.batch == 1
                                for j, e in enumerate(item[:hidden]))
                    if fold:
                        fold[1], fold[2], fold[3] = item[hidden - 1].done, fold[2] + hidden, fold[3] + trips
                    else:
                        fold[:] = [item[0].done, item[hidden - 1].done, hidden, trips]
                if shown[i]:
                    flush()
                    lines.extend(Text(fmt.redact(e.message)) for e in item[hidden:])
            else:
                flush()
                lines.append(item)
        flush()
        return lines

    def _progress(self, ev: Progress) -> None:
        if ev.step is Step.BACKUP:  # table data copied, from the server's counters (core/progress.py)
            if self.rb.steps[Step.BACKUP].state in (State.PENDING, State.FAILED):  # a late one: it runs no more
                return
            self.query_one("#backup-progress", ToolProgress).show(ev.done, ev.total, ev.waiting)
            self.query_one("#backup-line", Static).update(fmt.redact(ev.message.removeprefix("backup: ")))
        elif ev.step is Step.REHEARSE:  # the copy's restore, from its server's counters (the same as the backup's)
            if self.rb.steps[Step.REHEARSE].state is State.PENDING:  # a late one, after a cancel: it ran no more
                return
            self.query_one("#rehearse-progress", ToolProgress).show(ev.done, ev.total, ev.waiting)
            self.query_one("#rehearse-line", Static).update(fmt.redact(ev.message))
        elif ev.step is Step.BEGIN:  # BEGIN's own queries wait for another session's lock: on whom (or no more)
            self._begin_line(self.begin_wait(ev) if self.rb.steps[Step.BEGIN].state is State.RUNNING else Text(""))
        elif ev.step is Step.APPLY:
            self.query_one("#apply-progress", ProgressBar).update(total=ev.total, progress=ev.done)
            self._apply_msg, self._apply_waiting = ev.message, False  # a new statement: not waiting (yet)
            self.query_one("#apply-line", Static).update(fmt.redact(ev.message))
            index = min(ev.done + 1, ev.total)
            mf = self.rb.migration
            if mf is not None and index:
                st = mf.statements[index - 1]
                verb = "Applied" if ev.done >= ev.total else "Applying"
                self._sql_progress = True
                self._select_statement(index)
                self.query_one("#sql-head", Static).update(Text.assemble(
                    (f"{verb} statement {index} / {ev.total}", "bold"), f" (line {st.line}): {st.summary} · ",
                    ("s", "bold"), " back to the step"))

    @on(SilenceMsg)
    def _silence_changed(self, message: SilenceMsg) -> None:
        """The engine's Silence (fresh8 R2): a round trip of the running step unanswered for SILENT_AFTER seconds.
        Its words on the apply's line (headless prints the same), the seconds in the bar, and the tables panel says
        it cannot show what the open transaction sees; all of it goes when the answer comes (``over``)."""
        ev = message.event
        was, self._silence = self._silence, None if ev.over else ev
        if self.app.gone(self):
            return
        if not self._apply_waiting and (self._silence is not None and self.rb.phase is Phase.APPLYING or (
                was is not None and self._silence is None and self.rb.phase is Phase.APPLYING)):
            self.query_one("#apply-line", Static).update(self._apply_line())
        checklist = self.query_one("#rb-checklist", TableChecklist)
        if self._silence is not None and self.rb.tx == Tx.OPEN:
            checklist.show_error(self._not_answering())
        elif was is not None and self._silence is None:
            checklist.clear_error()
            self.action_refresh_tables()
        self._txbar()

    def _apply_line(self) -> Text | str:
        """The apply's line: the engine's words while its statement has no answer, else the statement's own."""
        if self._silence is not None:
            return Text(fmt.redact(f"⏳ {self._silence.message}"), style="bold yellow")
        return fmt.redact(self._apply_msg)

    def _not_answering(self) -> str:
        waited = self._silence.waited if self._silence is not None else 0.0
        return (f"Could not refresh: the migration session has not answered for {waited:.0f}s: what the open "
                "transaction sees now is not known.")

    @on(ChecksDoneMsg)
    def _checks(self, message: ChecksDoneMsg) -> None:
        ev = message.event
        target = "#auto-checks" if ev.step is Step.PREFLIGHT else "#verify-checks"
        self.query_one(target, Static).update(check_lines(list(ev.checks)))
        for key, value in self.rb.answers.items():  # e.g. "Tested on staging", answered by a rehearsal
            box = self.query_one(f"#tick-{key}", Checkbox)
            if box.value != value:
                with box.prevent(Checkbox.Changed):
                    box.value = value
        self._ticked_title()
        self._txbar()

    @on(StepChangedMsg)
    def _step_changed(self, message: StepChangedMsg) -> None:
        rec = message.event.record
        if rec.state in (State.RUNNING, State.DONE, State.SKIPPED):
            self.app.clear_notifications()  # what an earlier toast said ("tick first", "lost") no longer holds
        self.query_one(StepList).redraw()
        if rec.step is Step.APPLY and rec.state == State.PENDING:  # a retry: clear the last attempt
            self.query_one("#apply-progress", ProgressBar).update(total=1, progress=0)
            self.query_one("#apply-progress", ProgressBar).display = True
            self.query_one("#apply-line", Static).update("")
            self.query_one("#apply-error", Static).update("")
            self._sql_head_file()  # the new transaction has applied nothing yet
        if rec.step is Step.VERIFY and rec.state == State.PENDING:
            self.query_one("#verify-checks", Static).update("")
            self.query_one("#verify-next", Static).update("")
        if rec.step is Step.BACKUP and rec.state == State.PENDING and rec.detail.startswith("cancelled"):
            # not the last progress line (MiB, %, ETA) as if it still ran: cancelled, and what became of the files
            self.query_one("#backup-progress", ToolProgress).show(0, 1)
            self.query_one("#backup-line", Static).update(Text.assemble(
                ("✗ Backup cancelled", "bold yellow"), f": {fmt.short_paths(rec.detail.removeprefix('cancelled; '))}"
                ". n runs it again."))
        if rec.step is Step.BACKUP and rec.state == State.RUNNING:
            self.query_one("#backup-line", Static).update("")
        if rec.step is Step.BACKUP and rec.state == State.FAILED:  # not its last progress line ("waiting … for a lock")
            self.query_one("#backup-progress", ToolProgress).show(0, 1)
            self.query_one("#backup-line", Static).update(Text.assemble(
                ("✗ Backup failed", "bold red"), f": {fmt.short_paths(fmt.redact(rec.detail))} n runs it again."))
        if rec.step is Step.BEGIN and rec.state != State.RUNNING:  # its wait, if any, ended with it
            self._begin_line(Text(""))
        if rec.step is Step.REHEARSE and rec.state == State.RUNNING:  # a new rehearsal: its own bar from zero
            self.query_one("#rehearse-progress", ToolProgress).show(0, 1)
            self.query_one("#rehearse-line", Static).update("")
        if rec.step is Step.BACKUP and rec.state == State.DONE:
            bar = self.query_one("#backup-progress", ToolProgress)
            bar.show(max(bar.total or 1, 1), max(bar.total or 1, 1))
        self._show_pane()
        if rec.step is Step.REHEARSE and rec.state in (State.DONE, State.FAILED):  # its result and what comes next
            self.set_timer(0.2, lambda: self.query_one("#pane-backup").scroll_end(animate=False))
        if rec.step is Step.APPLY and rec.state == State.FAILED:
            # No percentage or "statement k / n" of a run that has stopped: where it stopped, and what that means.
            self.query_one("#apply-progress", ProgressBar).display = False
            self.query_one("#apply-line", Static).update(self._apply_stopped())
            self.query_one("#apply-error", Static).update(Text(fmt.redact(rec.detail), style="bold red"))
            self._failed_statement(rec.detail)
        self._txbar()

    @on(TxChangedMsg)
    def _tx_changed(self, message: TxChangedMsg) -> None:
        self._txbar()
        from aami_tui.ui.inspect_pane import InspectPane

        for screen in self.app.screen_stack:  # the inspection pane over the runbook shows the same state
            if isinstance(screen, InspectPane) and screen.rb is self.rb and screen.is_attached:
                screen.show_tx()
        if not self.rb.tx_open:  # at once, not at the next tick: an ended transaction holds no locks
            self._show_lock_watch(None)
        if self.rb.tx in (Tx.ROLLED_BACK, Tx.LOST) and getattr(self, "_sql_progress", False):
            self._sql_head_file("rolled back: nothing of it is applied · ")  # not "Applied 43 / 43"
        self.query_one(StepList).redraw()
        self.app.refresh_bindings()

    @on(ReportWrittenMsg)
    def _report(self, message: ReportWrittenMsg) -> None:
        self.query_one("#done-text", Static).update(self._done_text())

    def _show_pane(self) -> None:
        rb = self.rb
        if rb.finished or rb.phase is Phase.RECHECKING:
            pane = "pane-done"
            self.query_one("#done-text", Static).update(self._done_text())
        else:
            running = next((r.step for r in rb.steps.values() if r.state == State.RUNNING), None)
            step = running or rb.next_step() or Step.COMMIT
            if rb.steps[Step.APPLY].state == State.FAILED:
                step = Step.APPLY
            pane = {Step.PREFLIGHT: "pane-preflight", Step.BACKUP: "pane-backup", Step.BEGIN: "pane-backup",
                    Step.REHEARSE: "pane-backup",
                    Step.APPLY: "pane-apply", Step.VERIFY: "pane-verify", Step.COMMIT: "pane-verify",
                    Step.ROLLBACK: "pane-verify"}[step]
            if step is Step.BEGIN and rb.backup is None and rb.steps[Step.BACKUP].state != State.SKIPPED:
                pane = "pane-preflight"
            # Once a rehearsal runs, the backup shrinks to one line and its progress goes: its result needs the room.
            compact = step is Step.REHEARSE or (step is Step.BEGIN and bool(rb.rehearsals))
            skipped = rb.steps[Step.BACKUP].state == State.SKIPPED  # no bar for a backup that is not taken
            for widget in ("#backup-progress", "#backup-line"):
                self.query_one(widget).display = not compact and not skipped
            rehearsing = rb.steps[Step.REHEARSE].state == State.RUNNING  # its bar only while the copy is made
            for widget in ("#rehearse-progress", "#rehearse-line"):
                self.query_one(widget).display = rehearsing
            if step in (Step.BEGIN, Step.REHEARSE):
                info = self.query_one("#backup-info", Static)
                b = rb.backup
                if b and compact:
                    info.update(Text.assemble(("✓ Verified backup ", "bold green"), b.dump_path.name,
                                              f" ({fmt.size(b.size)}, {b.toc_entries} TOC entries)"))
                elif skipped:
                    info.update(Text.assemble(("– Backup skipped", "bold yellow"),
                                              f": {rb.steps[Step.BACKUP].detail.removeprefix('skipped (').removesuffix(')')}; "
                                              "recorded in the report."))
                elif b:
                    info.update(Text.assemble(("✓ Verified backup\n", "bold green"),
                                              f"{b.dump_path}\n{fmt.size(b.size)} · {b.toc_entries} TOC entries · "
                                              f"sha256 {b.sha256[:24]}…\nschema: {b.schema_path}"))
                self.query_one("#rehearse-info", Static).update(self._begin_failed_text() + self._rehearse_text())
            self.query_one("#verify-title", Static).update(
                "[b]COMMIT[/b] (sent; its answer ends the transaction)" if rb.phase is Phase.COMMITTING
                else "[b]ROLLBACK[/b] (sent)" if rb.phase is Phase.ROLLING_BACK else self.VERIFY_TITLE)
            if rb.phase in (Phase.COMMITTING, Phase.ROLLING_BACK):  # sent: never Verify's c/x prompt meanwhile
                self.query_one("#verify-next", Static).update(self._in_flight_text())
            elif step in (Step.COMMIT,) and rb.steps[Step.VERIFY].state == State.DONE:
                self.query_one("#verify-next", Static).update(Text.assemble(
                    "Verify passed. The transaction is still open and holds its locks:\n",
                    ("c", "bold"), " COMMIT (type the database name)   ", ("x", "bold"), " ROLLBACK   ", ("i", "bold"),
                    " inspect inside it (\\dt, SQL)\n"))
            elif rb.steps[Step.VERIFY].state == State.FAILED:
                self.query_one("#verify-next", Static).update(Text(
                    "Verify failed: COMMIT is blocked. Press x to ROLLBACK, or fix it inside the transaction (i, "
                    "\\write) and press n to verify again.\n", style="bold red"))
            if step is Step.BACKUP:
                self.query_one("#backup-info", Static).update(
                    f"Backup directory: {rb.opt.backup_dir.resolve() if not fmt.STABLE else rb.opt.backup_dir}\n"
                    f"Tool: {rb.dump_tool.describe() if rb.dump_tool else 'pg_dump'}")
        self._switch_pane("pane-sql" if self.sql_open else pane)
        self.query_one("#panes").border_title = "Migration SQL" if self.sql_open else "Step"
        self._keep_focus_shown()

    def _switch_pane(self, pane: str) -> None:
        """Show ``pane`` in the step pane, in the screen's very next frame (``layout_now``)."""
        switcher = self.query_one(ContentSwitcher)
        if switcher.current == pane:
            return
        switcher.current = pane
        for child in switcher.children:
            layout_now(child)

    def _keep_focus_shown(self) -> None:
        """The focus never stays on a widget the step pane no longer shows (pre-flight's last box once it has run,
        the SQL view once `s` has closed it; fresh10 F4: PgUp/PgDn then scrolled nothing until tab). The pane shown
        takes it, or else its first focusable widget, or else the log."""
        f = self.focused
        if f is None or shown(f):
            return
        pane = self.query_one(f"#{self.query_one(ContentSwitcher).current}")
        target = pane if pane.focusable else next((w for w in pane.query("*") if w.focusable), None)
        self.set_focus(target or self.query_one("#log"))

    def _in_flight_text(self) -> Text:
        """The step pane while COMMIT or ROLLBACK is out: sent, never cancelled; the bar says what it waits for."""
        rb = self.rb
        if rb.phase is Phase.ROLLING_BACK:
            return Text.assemble((f"ROLLBACK in flight (transaction {rb.xid or '?'})", "bold yellow"),
                                 ": sent to the server; its answer ends the run here.\n")
        if rb.commit_syncrep is not None and rb.resolving is None:  # the server: committed locally (fresh9 F3)
            return Text.assemble(
                (f"COMMIT committed locally (transaction {rb.xid or '?'})", "bold yellow"),
                f": the server has committed it and waits for the synchronous standby '{rb.commit_syncrep}' to "
                "confirm it (wait_event SyncRep); nothing can roll it back now: only the wait for the standby can "
                f"be ended. The bar above counts the wait. Past --commit-timeout ({rb.opt.commit_timeout:g}s) you "
                "are asked: keep waiting, or end the wait (committed on the primary only). Its outcome appears "
                "here.\n")
        return Text.assemble(
            (f"COMMIT in flight (transaction {rb.xid or '?'})", "bold yellow"),
            ": sent to the server; it is never cancelled. The bar above counts the wait and says what it waits "
            f"for. Past --commit-timeout ({rb.opt.commit_timeout:g}s), a COMMIT waiting for its synchronous standby "
            "asks you; one with no answer at all is looked up on a new connection. Its outcome appears here.\n")

    def _begin_line(self, text: Text) -> None:
        line = self.query_one("#begin-line", Static)
        line.update(text)
        line.display = self._begin_waiting = bool(text.plain)
        self._txbar()

    @staticmethod
    def begin_wait(ev: Progress) -> Text:
        """The BEGIN step's line while its own queries wait for another session's lock (whose, how long, what ends
        it), in the warning colour as the apply's wait; empty once the wait is over."""
        return Text(fmt.redact(f"⏳ {ev.message}"), style="bold yellow") if ev.waiting and ev.message else Text("")

    def _done_text(self) -> Text:
        text = self._done_text_raw()
        return Text(fmt.redact(text.plain), style="") if fmt.STABLE else text

    def _done_text_raw(self) -> Text:
        rb = self.rb
        t = Text()
        if rb.outcome is Outcome.COMMITTED and rb.unreplicated:  # the standby never confirmed it (the engine's words)
            t.append("⚠ COMMITTED ON THE PRIMARY ONLY\n\n", style="bold yellow")
            t.append(f"Transaction {rb.xid}: {rb.unreplicated}.\n\n", style="yellow")
        elif rb.outcome is Outcome.COMMITTED:
            t.append("✓ COMMITTED\n\n", style="bold green")
        if rb.outcome is Outcome.COMMITTED:
            t.append("The server's start-up validation, on a fresh connection:\n", style="bold")
            for line in rb.post_commit_lines:
                t.append(f"  {line}\n", style="green" if line.startswith("✓") else "")
            if rb.server and self.demo:  # the settings hold only while the console runs (as its quit line says)
                t.append("\nEnvironment for the Config Server while this demo runs (its embedded server, port and "
                         "password are removed when the console closes; for a server that stays: aami-tui init):\n",
                         style="bold")
            elif rb.server:
                t.append("\nEnvironment for the Config Server (the password is yours to set):\n", style="bold")
            if rb.server:
                for line in config_server_env(rb.server):
                    t.append(f"  export {line}\n")
        elif rb.nothing_to_do:
            t.append("✓ NOTHING TO DO: already migrated\n\n", style="bold green")
            t.append("Pre-flight found the ten required tables as the file creates them and the 6 default alert "
                     "templates: the migration would change nothing. The run ended there: "
                     + ("no backup was taken, " if rb.backup is None else "")
                     + "no transaction was opened, nothing changed. The report records the pre-flight.\n")
        else:
            # a lost session: the server rolls back, perhaps not yet (NOT_CONFIRMED: nobody saw it end)
            said = rb.tx.value if rb.lost and rb.outcome is Outcome.ROLLED_BACK else rb.outcome.value
            t.append(f"Run ended: {said}\n", style="bold yellow")
            # the verdict's words (its exit code is the headless commands' business); not exit 2's generic
            # "cannot connect, or the connection was lost" when the line above already says it was lost
            # (nor when the server confirmed the rollback, at once or on a re-check: the sentence below says so)
            settled = rb.phase is Phase.ROLLED_BACK and rb.verdict is Verdict.CONNECTION and not rb.lost
            if rb.verdict is not None and not (rb.verdict is Verdict.CONNECTION and (rb.lost or settled)):
                t.append(f"{rb.verdict.words}\n", style="yellow")
            t.append("\n")
            if rb.failure:
                t.append(rb.failure + "\n\n", style="yellow" if settled else "red")
            if rb.last_recheck and rb.phase in (Phase.UNKNOWN, Phase.RECHECKING):
                t.append(rb.last_recheck + "\n\n", style="red")
            if rb.phase is Phase.ROLLED_BACK:
                if rb.outcome is Outcome.NOT_CONFIRMED:
                    t.append("Nothing was committed; nobody saw the transaction end: the server rolls it back when "
                             "it notices the session is gone (until then it may hold its locks). ")
                else:
                    t.append("Nothing was committed. " if rb.lost else "The database is as it was before BEGIN. ")
                t.append("Press n to run pre-flight again: the file changed since, and it loads the edit; then "
                         "BEGIN.\n" if self._next_step() is Step.PREFLIGHT else
                         "Press n to retry the transaction from BEGIN.\n")
            if rb.phase in (Phase.UNKNOWN, Phase.RECHECKING):
                t.append("Press o to ask the server again (pg_xact_status on a fresh connection, after ending our "
                         "old session): it says committed or rolled back once it can be reached.\n", style="bold")
        # File names whole on their own, the folder on its own line: a narrow pane never breaks a name.
        if rb.backup:
            t.append("\nBackup: ", style="bold")
            t.append(f"{rb.backup.dump_path.name} ({fmt.size(rb.backup.size)}, verified)\n  in "
                     f"{rb.backup.dump_path.parent}/\n")
        if rb.report_paths:
            t.append("Report: ", style="bold")
            t.append(f"{rb.report_paths[0].name} (and .json)\n  in {rb.report_paths[0].parent}/\n")
        return t

    def next_hint(self) -> str:
        """What to press next, in a few words (shown in the transaction bar after every step)."""
        rb = self.rb
        running = next((r.step for r in rb.steps.values() if r.state == State.RUNNING), None)
        if running is not None and self._cancelling():
            return f"{running.title}: cancelling…"
        if running is Step.COMMIT and rb.resolving is not None:  # the deadline passed: the resolver asks the server
            why, since = rb.resolving
            return (f"COMMIT: {why}: asking the server what became of transaction {rb.xid or '?'} on a new "
                    f"connection ({time.monotonic() - since:.0f}s)…")
        if running is Step.BEGIN and self._begin_waiting:  # answering: it waits for a lock, not for the network
            return "BEGIN: waiting for another session's lock (the step names it; escape cancels)…"
        if running is Step.COMMIT and (syncrep := rb.commit_waiting_words()):  # seen waiting on SyncRep
            return f"{syncrep}…"
        if running is Step.APPLY and self._silence is not None:  # the engine's Silence: the step pane has its words
            return f"Apply: waiting for the server's answer ({self._silence.waited:.0f}s)… (escape cancels)"
        if running is not None and (silent := rb.waiting_for_answer(self.SAY_SILENT_AFTER)) is not None:
            return f"{running.title}: waiting for the server's answer ({silent:.0f}s)…"  # it may have stopped answering
        if running is not None:
            return f"{running.title} running… (escape cancels)" if running not in (Step.COMMIT, Step.ROLLBACK) \
                else f"{running.title} in flight…"
        if rb.phase is Phase.RECHECKING:
            return "re-checking the COMMIT's outcome…"
        if rb.phase is Phase.UNKNOWN:
            return "o → re-check the COMMIT's outcome (do not retry)"
        if rb.phase is Phase.ROLLED_BACK:
            return ("n → Pre-flight (the file changed)" if self._next_step() is Step.PREFLIGHT
                    else "n → BEGIN (retry) or d → dashboard")
        if rb.outcome is Outcome.COMMITTED and rb.unreplicated:
            return "committed on the primary only, NOT confirmed on the synchronous standby: d → dashboard or q → quit"
        if rb.outcome is Outcome.COMMITTED:
            return ("d → dashboard or q → quit (quitting removes the demo's server)" if self.demo
                    else "d → dashboard (the Config Server can start) or q → quit")
        if rb.nothing_to_do:
            # (one line on a 120-column bar: a second line takes a row from the log)
            return "nothing to do, already migrated: d → dashboard or q → quit"
        if rb.finished:
            return "d → dashboard or q → quit"
        if rb.tx == Tx.ABORTED:
            return "x → ROLLBACK (the only way on)"
        step = rb.next_step()
        if step is None:
            return "d → dashboard or q → quit"
        if step is Step.PREFLIGHT and rb.already_migrated:  # the automatic checks say so; pre-flight ends the run
            return "already migrated: n → Pre-flight (records it, ends the run) or d → dashboard"
        if step is Step.PREFLIGHT and rb.missing_items:
            return "tick the checklist, then n → Pre-flight"
        if step is Step.BEGIN and rb.phase is Phase.READY:
            if rb.begin_caution() and rb.rehearsals:
                return "r → rehearse again, or n → BEGIN anyway (typed)"
            if not rb.rehearsals:
                return "n → BEGIN, or r → rehearse on a copy first"
        if step is Step.COMMIT:
            return "c → COMMIT or x → ROLLBACK"
        if rb.tx_open and allowed(rb.phase, Action.ROLLBACK):  # what the table allows, ROLLBACK first after a failure
            if not rb.can(step)[0]:
                return "x → ROLLBACK (the only way on)"  # e.g. an apply cancelled between statements
            if rb.steps[step].state is State.FAILED:
                return f"x → ROLLBACK, or n → {step.title} again"  # e.g. a failed verify (a fix made with i first)
        return f"n → {step.title}"

    def _txbar(self) -> None:
        # One line when it fits, else two (ui/txbar.py): the hint and the database name are never cut.
        rb = self.rb
        syncrep = rb.phase is Phase.COMMITTING and rb.commit_syncrep is not None and not self._cancelling() \
            and rb.resolving is None  # the server said: committed locally, waiting for the standby (fresh9 F3)
        if syncrep != self._syncrep_shown:  # the step pane's words change with it (only the wait can be ended)
            self._syncrep_shown = syncrep
            self._show_pane()
        self.query_one("#txbar", TxBar).show(
            rb.tx, self.next_hint(), rb.settings.dbname,
            short=rb.commit_waiting_words(short=True) if syncrep else None,
            badge="COMMITTED LOCALLY · WAITING FOR STANDBY" if syncrep else None)

    # ---- checklist and lock watch ------------------------------------------------------------------------
    async def _answer(self, coro, checklist: TableChecklist):
        """Await a refresh; when the server has not answered within REFRESH_SAY seconds the checklist says so at
        once (what it shows is the last good refresh), and the refresh goes on within its own bounds."""
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.REFRESH_SAY)
            if not done:
                checklist.show_error(f"Could not refresh: no answer from the server within {self.REFRESH_SAY:g}s "
                                     "(still trying).")
            return await task
        except asyncio.CancelledError:  # the worker is cancelled (the console closes): the refresh ends with it
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise

    async def refresh_tables(self) -> None:
        if self.app.covered(self):
            return
        checklist = self.query_one("#rb-checklist", TableChecklist)
        try:
            if self.rb.tx == Tx.OPEN and self._silence is not None:  # never "what the transaction sees": unknown
                checklist.show_error(self._not_answering())
                return
            if self.rb.tx == Tx.OPEN:
                res = await self._answer(asyncio.wait_for(self.rb.preview(), 10), checklist)
                if res is not None:
                    checklist.show(res, uncommitted=True)
                else:
                    checklist.set_note("paused while a step uses the transaction", stale=True)
                return
            res, error = await self._answer(self.app.dashboard.refresh_now(), checklist)
            if error:
                checklist.show_error(error)
            elif res is not None:
                checklist.show(res)
                if self.rb.tx == Tx.ABORTED:  # a moment ago it showed the transaction's view: say what this is
                    checklist.set_note("the committed database: the aborted transaction's work goes at ROLLBACK")
        except (db.ConnectError, TimeoutError, Exception) as exc:  # never a traceback on screen
            checklist.show_error(f"Could not refresh: {exc}" if str(exc) else "Could not refresh: no answer from "
                                 "the server in time.")

    def action_refresh_tables(self) -> None:
        self.run_worker(self.refresh_tables(), group="refresh", exclusive=True, exit_on_error=False)

    def answer_clock_runs(self) -> bool:
        """The bar shows a clock: a short round trip waiting for the server's answer, or a COMMIT being resolved."""
        return (self.rb.waiting_for_answer(self.SAY_SILENT_AFTER) is not None or self.rb.resolving is not None
                or bool(self.rb.commit_waiting_words()))

    def _tick_answer_clock(self) -> None:
        if not self.app.gone(self) and self.answer_clock_runs():
            self._txbar()

    async def _watch_locks(self) -> None:
        if self.app.gone(self):  # a late tick while the console closes
            return
        panel = self.query_one(LockWatchPanel)
        w = await self.rb.lock_watch() if self.rb.tx_open else None
        if self.rb.tx_open and w is None or (w is not None and w.xact_age is None):
            # Our session may have been terminated: find out, and say so plainly.
            if not self.rb.running:
                try:
                    await self.rb.ping()
                except RunbookError as exc:
                    self.notify(str(exc), title="Connection lost", severity="error", timeout=15)
                    self.action_refresh_tables()
        if w is not None and w.xact_age is None and self.rb.xact_started:  # the server did not say: our own clock
            w = dataclasses.replace(w, xact_age=time.time() - self.rb.xact_started)
        if not self.rb.tx_open:  # COMMIT or ROLLBACK finished while the query was out: nothing is held now
            w = None
        self._show_lock_watch(w, panel)

    def _show_lock_watch(self, w, panel: LockWatchPanel | None = None) -> None:
        (panel or self.query_one(LockWatchPanel)).show(
            w, lock_timeout=self.rb.opt.lock_timeout, statement_timeout=self.rb.opt.statement_timeout,
            idle_timeout=self.rb.opt.idle_timeout, tx_open=self.rb.tx_open)
        # The step pane: an apply queued behind another session's lock says so, not "statement N / 43" as if it ran.
        wait = self.apply_wait(w)
        if wait is not None:
            self.query_one("#apply-line", Static).update(wait)
            self._apply_waiting = True
        elif self._apply_waiting:  # the wait is over: the statement's own line again
            self._apply_waiting = False
            if self.rb.phase is Phase.APPLYING:
                self.query_one("#apply-line", Static).update(self._apply_line())

    def apply_wait(self, w) -> Text | None:
        """The step pane's line while the apply waits for a lock (LockWatch.waiting), or None."""
        if w is None or not w.waiting or self.rb.phase is not Phase.APPLYING:
            return None
        return Text(fmt.redact(f"⏳ {w.waiting}"), style="bold yellow")

    # ---- actions -------------------------------------------------------------------------------------------------
    @on(Checkbox.Changed)
    def ticked(self, event: Checkbox.Changed) -> None:
        self._take_tick(event.checkbox)

    def _take_ticks(self) -> None:
        """Every box's value, now: a key typed right after space (n) comes before the box's Changed message has
        reached this screen, and must see the item ticked as the box shows it."""
        for key, _label in self.rb.items:
            self._take_tick(self.query_one(f"#tick-{key}", Checkbox))

    def _take_tick(self, box: Checkbox) -> None:
        key, value = (box.id or "").removeprefix("tick-"), box.value
        if key in self.rb.answers and self.rb.answers[key] != value:  # once per change (taken early, or now)
            self.rb.tick(key, value)
            self.say(f"{'Ticked' if value else 'Unticked'}: {dict(self.rb.items)[key]}")
            if value and not self.rb.missing_items:  # "Tick every checklist item first" no longer holds
                self.app.clear_notifications()
            self._ticked_title()
            self._txbar()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Which of the gated keys the engine's state allows now (the footer shows only those)."""
        if action == "refused":
            return not self.check_action(str(parameters[0]), ())
        if action not in self.GATED:
            return True
        rb = self.rb
        if action == "cancel_step":  # COMMIT and ROLLBACK are never cancelled (they resolve, with a timeout)
            return rb.running and rb.phase not in (Phase.COMMITTING, Phase.ROLLING_BACK)
        if rb.running:
            return False
        if action == "next_step":  # at the COMMIT prompt, c and x are the keys (n would open COMMIT)
            step = self._next_step()
            return step is not None and step is not Step.COMMIT and rb.can(step)[0]
        if action == "commit":
            return allowed(rb.phase, Action.COMMIT)
        if action == "rollback":
            return allowed(rb.phase, Action.ROLLBACK)
        if action == "recheck":
            return allowed(rb.phase, Action.RECHECK)
        if action == "inspect":  # an aborted transaction runs nothing (not even a savepoint): not offered
            return rb.tx_open and rb.phase is not Phase.ABORTED
        if action == "rehearse":  # not while pre-flight must run again (the file changed since: r is refused)
            return allowed(rb.phase, Action.REHEARSE) and rb.steps[Step.PREFLIGHT].state == State.DONE
        return True

    def action_refused(self, action: str) -> None:
        """A gated key pressed when its action is not possible: the action itself says why."""
        getattr(self, f"action_{action}")()

    def _busy(self) -> bool:
        return any(w.group == "step" and w.is_running for w in self.workers)

    def _cancelling(self) -> bool:
        """escape was pressed and the step has not stopped yet (the engine bounds it: a second or two)."""
        return any(w.group == "step" and w.is_running and w.is_cancelled for w in self.workers)

    def _still_running(self) -> str:
        """Why a key that starts something does nothing while a step's worker runs."""
        if self._cancelling():
            return CANCEL_IN_PROGRESS
        return "A step is still running (escape cancels it)."

    def _next_step(self) -> Step | None:
        """What n runs: the engine's next step; after a ROLLBACK, BEGIN again (or pre-flight, to load an edit)."""
        rb = self.rb
        if rb.phase is Phase.ROLLED_BACK:
            return Step.PREFLIGHT if rb.steps[Step.PREFLIGHT].state is State.PENDING else Step.BEGIN
        return rb.next_step()

    def action_next_step(self) -> None:
        if self._busy():
            self.notify(self._still_running(), severity="warning")
            return
        rb = self.rb
        step = self._next_step()
        if step is None:
            self.notify("This run has ended. Press d for the dashboard.", severity="information")
            return
        if step is Step.COMMIT:
            self.action_commit()
            return
        ok, why = rb.can(step)
        if step is Step.PREFLIGHT and ok:
            self._take_ticks()
        if step is Step.PREFLIGHT and ok and rb.missing_items and not rb.already_migrated:  # nothing will run
            missing = rb.missing_items
            self.notify("Tick every checklist item first: " + "; ".join(missing), title="Pre-flight",
                        severity="warning", timeout=8)
            key = next(k for k, label in rb.items if label == missing[0])
            self.query_one(f"#tick-{key}", Checkbox).focus()
            return
        if not ok:
            self.notify(f"{step.title} is not possible now: {why}.", severity="warning")
            return
        stale = rb.stale_file(Action.BEGIN) if step is Step.BEGIN else None
        if stale:  # edited since pre-flight: BEGIN would apply the copy pre-flight checked, not the edit
            self.notify(stale, title="BEGIN", severity="error", timeout=20)
            self._txbar()
            self.refresh_bindings()  # pre-flight must run again: r (rehearse) is no longer offered
            return
        caution = rb.begin_caution() if step is Step.BEGIN and rb.phase is Phase.READY else None
        if caution:
            self._begin_anyway(caution)
            return
        retry = step is Step.BEGIN and rb.attempt > 0
        title = "Retry the transaction from BEGIN?" if retry else f"Run {step.title}?"
        explain = self.explain(step)
        if step is Step.PREFLIGHT and rb.already_migrated:
            explain += ("\n\nThe automatic checks found the database already migrated: if pre-flight confirms it, the "
                        "run ends there as \"nothing to do\" (recorded in the report): no backup, no transaction.")

        def go(confirmed: bool | None) -> None:
            if confirmed:
                self.run_step(step)

        self.app.push_screen(ConfirmModal(title, explain, confirm="Retry BEGIN" if retry else f"Run {step.title}",
                                          danger=False), go)

    def _begin_anyway(self, caution: str) -> None:
        """BEGIN on the real database although the rehearsal did not pass (or nothing was tested): typed."""
        db_name = self.rb.settings.dbname

        def go(confirmed: bool | None) -> None:
            if confirmed:
                self.run_step(Step.BEGIN, confirmed=True)

        self.app.push_screen(ConfirmModal(
            "BEGIN on the real database anyway?",
            f"Careful: {caution}{'' if caution.endswith(')') else '.'}\n\nescape, then r, rehearses (again) on a scratch copy. To BEGIN on {db_name} "
            "anyway, type its name: the report records that you did, and why it needed asking.",
            confirm="BEGIN anyway", require_text=db_name, id="begin-anyway-modal"), go)

    def action_rehearse(self) -> None:
        """The optional rehearsal, after the backup and before BEGIN: the engine's own step (core/rehearse.py)."""
        if self._busy():
            self.notify(self._still_running(), severity="warning")
            return
        ok, why = self.rb.can(Step.REHEARSE)
        if not ok:
            self.notify(f"The rehearsal is not possible now: {why}.", severity="warning")
            return

        self.run_worker(self._ask_rehearsal(), group="ask", exclusive=True, exit_on_error=False)

    async def _ask_rehearsal(self) -> None:
        """The confirmation says what the copy costs on disk against what is free there (the engine asks the
        server); when it plainly cannot fit, the rehearsal is refused with that sentence instead."""
        try:
            cost = await self.rb.rehearsal_cost()
            words, fits = cost.sentence(), cost.fits
        except Exception as exc:  # noqa: BLE001 - the step itself would say more; never a traceback
            words, fits = (f"What the copy needs on disk could not be measured ({type(exc).__name__}: {exc}): make "
                           "sure the server has room for a whole extra copy of the database before you confirm."), None
        if self.app.covered(self) or self._busy():  # closed, or something else started meanwhile
            return
        if fits is False:
            self.say(words, "error")
            self.notify(words, title="Rehearsal refused", severity="error", timeout=15)
            return

        def go(confirmed: bool | None) -> None:
            if confirmed:
                self.run_step(Step.REHEARSE)

        self.app.push_screen(ConfirmModal("Rehearse on a scratch copy first?", f"{EXPLAIN[Step.REHEARSE]}\n\n{words}",
                                          confirm="Rehearse", danger=False, id="rehearse-modal"), go)

    def explain(self, step: Step) -> str:
        """What ``step`` does, for its confirmation prompt: pre-flight "Run"s the checks the first time, "Re-run"s
        them once it has run (a retry after ROLLBACK, a file edited since)."""
        if step is Step.PREFLIGHT and self.rb.steps[Step.PREFLIGHT].state is not State.PENDING:
            return "Re-run" + EXPLAIN[step].removeprefix("Run")
        return EXPLAIN[step]

    def _begin_failed_text(self) -> Text:
        """After a BEGIN that failed (nothing open, n tries again): the run's typed verdict in the words headless
        `apply` ends with, and the sentence saying why (the server's refusal, the lost connection, the lock...)."""
        rb = self.rb
        rec = rb.steps[Step.BEGIN]
        t = Text()
        if rec.state is not State.FAILED or rb.finished or not rec.detail:
            return t
        words = rb.verdict.words if rb.verdict is not None else ""
        t.append(f"\n✗ {words}" if words.startswith("BEGIN failed") else "\n✗ BEGIN failed", style="bold red")
        if words and not words.startswith("BEGIN failed"):
            t.append(f": {words}", style="red")
        t.append(f"\n{fmt.short_paths(fmt.redact(rec.detail))}\n", style="red")
        return t

    def _rehearse_text(self) -> Text:
        """The rehearsal's part of the backup pane: running, its result, and what to press next."""
        rb = self.rb
        t = Text()
        if rb.steps[Step.REHEARSE].state == State.RUNNING:
            t.append("\nRehearsal on a scratch copy", style="bold")
            t.append(" running… (escape cancels; the copy is dropped)\n")
            t.append(fmt.short_paths(fmt.redact(self._rehearse_said)), style="dim")
            return t
        done = [r for r in rb.rehearsals if r.outcome != "cancelled"]
        last = done[-1] if done else None
        if last is not None:
            ok = last.passed
            t.append("\n✓ Rehearsed on a copy: " if ok else "\n✗ Rehearsal on a copy: ",
                     style="bold green" if ok else "bold red")
            t.append(fmt.redact(last.verdict) + "\n", style="green" if ok else "red")
            if last.copy:
                t.append(f"Copy: {last.copy}; {'dropped' if last.copy_dropped else 'NOT dropped'}\n")
            if last.outcome in ("passed", "failed") and last.copy and last.failed is None:
                strict = {True: "passes", False: "fails"}.get(last.strict_ok, "not reached")
                t.append(f"Apply {last.apply_seconds:.2f} s ({fmt.plural(last.statements, 'statement')}), total "
                         f"{last.seconds:.1f} s · check --strict: {strict}\n")
                for lk in last.locks:
                    t.append(f"Lock until COMMIT: {lk['mode']} on {lk['table']} (~{fmt.plural(lk['est_rows'], 'row')}, "
                             f"{fmt.size(lk['size_bytes'] or 0)})\n", style="yellow")
                if not last.locks and last.outcome == "passed":
                    t.append("Locks: none on tables that already existed\n")
            elif last.copy:
                t.append(f"Total {last.seconds:.1f} s on the copy (restore included)\n")
            if last.report:
                t.append(f"Report: {Path(last.report).name}\n", style="dim")
        t.append("\nNext: ", style="bold")
        if last is None:
            t.append_text(Text.assemble(("n", "bold"), " → BEGIN   ", ("r", "bold"),
                                        " → rehearse on a copy first (optional)"))
        elif last.passed:
            t.append_text(Text.assemble(("n", "bold"), " → BEGIN"))
        else:
            t.append_text(Text.assemble(("r", "bold"), " → rehearse again, or ", ("n", "bold"),
                                        " → BEGIN anyway (you type the database name)"))
        return t

    def run_step(self, step: Step, **kw) -> None:
        coro = {Step.PREFLIGHT: self.rb.preflight, Step.BACKUP: self.rb.backup_step, Step.BEGIN: self.rb.begin,
                Step.REHEARSE: self.rb.rehearse, Step.APPLY: self.rb.apply, Step.VERIFY: self.rb.verify}[step](**kw)
        self.run_worker(self._guard(step, coro), group="step", exclusive=True, exit_on_error=False)

    async def _guard(self, step: Step, coro) -> None:
        """Run one engine step with a timeout; errors become log lines and a notification, never a traceback."""
        try:
            timeout = TIMEOUTS.get(step)
            await (asyncio.wait_for(coro, timeout) if timeout else coro)
        except RunbookError as exc:
            self.notify(str(exc), title=f"{step.title} failed", severity="error", timeout=12)
        except TimeoutError:
            self.say(f"{step.title} did not finish within {TIMEOUTS.get(step):g}s and was cancelled.", "error")
            self.notify(f"{step.title} timed out.", severity="error")
        except asyncio.CancelledError:
            if step not in (Step.BACKUP, Step.REHEARSE):  # those say it themselves, with what became of their files
                # after what the engine said of it (its lines are messages still queued: how the step ended)
                self.call_later(self.say, f"{step.title} cancelled.", "warn")
            raise
        except Exception as exc:  # an unexpected failure is still one clear line, never a traceback
            self.say(f"{step.title} failed unexpectedly: {type(exc).__name__}: {exc}", "error")
            self.notify(f"{step.title} failed: {exc}", severity="error")
        finally:
            self._settled()
        self._catch_up()

    def _settled(self) -> None:
        """After a step or a re-check, whatever its end: the pane, the bar, the step list and the footer agree."""
        self._post_stream_now()  # the step's last lines now, not a few tenths of a second later
        self._show_pane()
        self._txbar()
        self.query_one(StepList).redraw()
        self.app.refresh_bindings()
        self.app.settle_heap()  # what the step made (a backup's, an apply's records) lives on: out of the GC's walk

    def _catch_up(self) -> None:
        """After a step: the checklist (and the dashboard) refresh in a worker of their own. A finished step is
        finished at once: a slow or frozen network holds neither the step's worker nor the keys."""
        self._refresh_again = True
        if not any(w.group == "catch-up" and w.is_running for w in self.workers):
            self.run_worker(self._catching_up(), group="catch-up", exit_on_error=False)

    async def _catching_up(self) -> None:
        while self._refresh_again:  # a step that ends while a refresh is out gets a refresh of its own after it
            self._refresh_again = False
            await self.refresh_tables()
        self.app.dashboard.poll(force=True)  # the dashboard is current when you go back to it

    def action_cancel_step(self) -> None:
        running = [w for w in self.workers if w.group == "step" and w.is_running]
        if not running:
            self.notify("Nothing is running.", severity="information")
            return
        step = next((r.step for r in self.rb.steps.values() if r.state == State.RUNNING), None)
        if step in (Step.COMMIT, Step.ROLLBACK):
            self.notify(f"{step.title} is in flight and cannot be cancelled safely; it has a "
                        f"{self.rb.opt.commit_timeout:g}s timeout.", severity="warning")
            return
        if all(w.is_cancelled for w in running):
            self.notify(CANCEL_IN_PROGRESS, severity="information")
            return
        for w in running:
            w.cancel()
        self.say("Cancelling…", "warn")
        self._txbar()

    def action_commit(self) -> None:
        ok, why = self.rb.can(Step.COMMIT)
        if not ok:
            self.notify(f"COMMIT is not possible now: {why}.", severity="warning")
            return
        self.run_worker(self._commit_prompt(), group="commit-prompt", exclusive=True, exit_on_error=False)

    async def _commit_prompt(self) -> None:
        """The COMMIT prompt, once the server has been asked again about synchronous standbys (``standby_risk``: at
        most 3 s, on a connection of its own): one that has gone since pre-flight is said before the name is typed."""
        db_name = self.rb.settings.dbname
        risk = await self.rb.standby_risk()
        if not self.is_attached or self.app.screen is not self or not self.rb.can(Step.COMMIT)[0]:
            return  # the screen moved on meanwhile (another key, a dialog): no prompt over it

        def go(confirmed: bool | None) -> None:
            if confirmed:
                self.run_worker(self._guard(Step.COMMIT, self.rb.commit(db_name)), group="step", exclusive=True,
                                exit_on_error=False)

        # first in the body: what the operator must read before typing the name is where the body starts (at 80x24
        # the body shows three lines and scrolls)
        warning = f"⚠ {risk.name}, asked again now: {fmt.redact(risk.detail)}.\n\n" if risk is not None and \
            not risk.ok else ""
        self.app.push_screen(ConfirmModal(
            "COMMIT the migration?",
            f"{warning}This makes the migration permanent on database {db_name} "
            f"({self.rb.settings.host}:{self.rb.settings.port}). Verify passed. After COMMIT, the way back is a "
            "restore from the backup.", confirm="COMMIT", require_text=db_name, id="commit-modal"), go)

    def action_rollback(self) -> None:
        ok, why = self.rb.can(Step.ROLLBACK)
        if not ok:
            self.notify(f"ROLLBACK is not possible now: {why}.", severity="warning")
            return
        if self._busy():
            self.notify(CANCEL_IN_PROGRESS if self._cancelling() else
                        "A step is running: press escape to cancel it first.", severity="warning")
            return

        def go(confirmed: bool | None) -> None:
            if confirmed:
                self.run_worker(self._guard(Step.ROLLBACK, self.rb.rollback("operator")), group="step",
                                exclusive=True, exit_on_error=False)

        self.app.push_screen(ConfirmModal(
            "ROLLBACK the transaction?", "Everything applied in this transaction is discarded; the database goes "
            "back to exactly how it was before BEGIN. You can retry from BEGIN afterwards.",
            confirm="ROLLBACK", id="rollback-modal"), go)

    def action_recheck(self) -> None:
        """An "outcome unknown" COMMIT: ask the server again (the engine's one resolver, on a fresh connection)."""
        nxt = decide(self.rb.phase, Action.RECHECK)
        if not isinstance(nxt, Phase):
            self.notify(f"Re-check is not possible now: {nxt}.", severity="information")
            return
        self.run_worker(self._recheck(), group="step", exclusive=True, exit_on_error=False)

    async def _recheck(self) -> None:
        limit = 4 * self.rb.opt.query_timeout + 10.0  # the resolver's own round trips are bounded; this is a cap
        try:
            await asyncio.wait_for(self.rb.recheck(), limit)
        except TimeoutError:
            self.say(f"The re-check did not finish within {limit:g}s: the outcome is still unknown.", "error")
        except Exception as exc:  # never a traceback on screen
            self.say(f"The re-check failed: {type(exc).__name__}: {exc}", "error")
        finally:
            self._settled()
        self._catch_up()

    @on(OutcomeRecheckedMsg)
    def _rechecked(self, message: OutcomeRecheckedMsg) -> None:
        ev = message.event
        self.app.clear_notifications()
        severity = {Phase.COMMITTED: "information", Phase.ROLLED_BACK: "warning"}.get(ev.phase, "error")
        self.notify(fmt.redact(ev.message), title="COMMIT outcome", severity=severity, timeout=15)
        self._show_pane()
        self._txbar()

    @on(CommitWaitAskedMsg)
    def _commit_wait_asked(self, message: CommitWaitAskedMsg) -> None:
        """--commit-timeout ran out while COMMIT waits for its synchronous standby: the operator decides."""
        from aami_tui.ui.commit_wait import CommitWaitModal

        ev = message.event
        # (asked wherever the operator is: the dashboard too; not when withdrawn before it got here, nor at the end)
        if self.rb.commit_question is not ev or not self.app.screen_stack:
            return

        def answer(end: bool | None) -> None:
            if end is not None:
                self.rb.answer_commit_wait(CommitWait.END if end else CommitWait.KEEP, ev.number)
                self._txbar()

        self.app.push_screen(CommitWaitModal(ev), answer)
        self._txbar()

    @on(CommitWaitClosedMsg)
    def _commit_wait_closed(self, message: CommitWaitClosedMsg) -> None:
        from aami_tui.ui.commit_wait import CommitWaitModal

        for screen in self.app.screen_stack:  # withdrawn (the COMMIT answered first): the question goes away
            if isinstance(screen, CommitWaitModal) and screen.event.number == message.event.number:
                screen.withdraw()
        self._txbar()

    def action_dashboard(self) -> None:
        self.app.pop_screen()

    def action_inspect(self) -> None:
        """The inspection pane: \\dt and SQL inside the open transaction, under savepoints."""
        if self.rb.running:
            self.notify(f"{RUNNING[self.rb.phase]} is still running: inspect once it has finished.",
                        severity="information")
            return
        if self.rb.phase is Phase.ABORTED:
            self.notify("The transaction is aborted: it runs nothing more, not even an inspection. ROLLBACK (x).",
                        severity="information")
            return
        if not self.rb.tx_open:
            self.notify("Inspect works while the migration transaction is open (after BEGIN, before COMMIT or "
                        "ROLLBACK).", severity="information")
            return
        from aami_tui.ui.inspect_pane import InspectPane

        self.app.push_screen(InspectPane(self.rb))

