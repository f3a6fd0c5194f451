"""The first screen: connection panel and the live table checklist."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from aami_tui.core import db, schema, status
from aami_tui.core.words import plural
from aami_tui.ui import fmt
from aami_tui.ui.connection_panel import ConnectionPanel
from aami_tui.ui.table_checklist import TableChecklist

if TYPE_CHECKING:  # imported on the first connect (the first frame does without it: README, Performance)
    import psycopg

MIN_W, MIN_H = 60, 16  # below this terminal size every screen says it is too small (app.size_check)
MAX_BACKOFF = 30.0
OFFLOAD_BYTES = 256 * 1024  # a migration file larger than this is parsed in a helper process (core/offload.py)
STATUS_EVERY = 30.0  # seconds between reads of the server's status (the checklist refreshes every --refresh)


def _tx_open():
    """Tx.OPEN: the runbook's model is loaded with the runbook, not for the first frame."""
    from aami_tui.core.runbook import Tx

    return Tx.OPEN


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("r", "app.runbook", "Runbook"),
        Binding("b", "app.restore", "Restore"),
        Binding("p", "app.drift", "Drift"),
        Binding("f5", "refresh_now", "Refresh"),
        Binding("question_mark", "app.help", "Help"),
        Binding("i", "create_database", "Create database"),
        Binding("ctrl+r", "app.reset_demo", "Reset demo"),
        Binding("q", "app.quit", "Quit"),
        # The runbook's keys, pressed here, say where they work instead of doing nothing.
        Binding("n", "elsewhere('n runs the next runbook step')", "", show=False),
        Binding("c", "elsewhere('c (COMMIT) works in the runbook')", "", show=False),
        Binding("x", "elsewhere('x (ROLLBACK) works in the runbook')", "", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard", classes="-first-frame")  # until complete_first_frame (below)
        self.conn: psycopg.AsyncConnection | None = None
        self.backoff = 0.0
        self.next_try = 0.0
        # the server refused the login (wrong or missing password): no automatic retries, each would be one
        # more failed login in the server's log (7 in 20 s); F5 tries again (~/.pgpass is read at each try)
        self.auth_refused: str | None = None
        self.asked_create = False
        self.missing_db = False  # connected to the server, but the database does not exist
        self.last_result: schema.ValidationResult | None = None
        # another session's migration holding the one-operator lock (locks.migration_in_progress), when the required
        # tables are missing: its tables appear when it commits (fresh7 N2: our own exit-9 run, still in COMMIT)
        self.in_progress: dict | None = None
        self.server: status.ServerStatus | None = None
        self._poll_lock = asyncio.Lock()
        self._status_due = 0.0  # loop time when the server status (sizes, privileges) is next read
        self._hint_shown: Text | None = None
        self._static_started = False
        self._static_stamp: tuple | None = None  # the migration file's (mtime, size, inode) when last read
        self._resumed = False
        self._early: tuple | None = None  # the early child's first result, when it came before the first frame
        # The left column's panels: kept up to date from the start, mounted right after the first frame
        # (complete_first_frame); the connection panel renders its table only then (held).
        self.panel = ConnectionPanel(id="connection")
        self.panel.held = True
        self.hint = Static("", id="dash-hint")
        # Nothing is focused in the first frame (the panels are not there yet, and a focused checklist would be
        # drawn tinted); complete_first_frame focuses what auto-focus always chose, the Next panel.
        self.AUTO_FOCUS = ""  # "" (not None: None means the app's)

    def compose(self) -> ComposeResult:
        # The first frame carries the checklist and its live data; the header, the footer and the left column's
        # panels come right after it (complete_first_frame), in the places kept for them, so nothing moves. Each of
        # them cost the first frame time (Textual mounts, styles and renders every widget before it paints).
        yield Static(id="header-slot")  # the Header's row
        with Horizontal(id="dash-main"):
            yield Vertical(id="dash-left")  # the panels' column, empty in the first frame
            yield TableChecklist(id="checklist")
        if self.app.size.width < MIN_W or self.app.size.height < MIN_H:  # else it comes with the panels (hidden)
            yield Static("", id="small-warning")
        yield Static(id="footer-slot")  # the Footer's row

    async def complete_first_frame(self) -> None:
        """Right after the first frame: the Header and the Footer in their rows, and the left column's panels
        (mounted and kept up to date from the start, only not painted in the first frame)."""
        if self.app.gone(self):
            return
        from textual.widgets import Header

        from aami_tui.ui.footer import KeyFooter

        header, footer = self.mount(Header(show_clock=False), before=0), self.mount(KeyFooter())
        hint_box = VerticalScroll(self.hint, id="dash-hint-box", classes="panel")  # scrolls when taller (80x24)
        panels = self.query_one("#dash-left").mount(self.panel, hint_box)
        if not self.query("#small-warning"):  # shown below MIN_W x MIN_H (app.size_check); hidden until then
            self.mount(Static("", id="small-warning"), after="#dash-main")
        self.panel.held = False
        self.panel.render_panel()
        self.remove_class("-first-frame")
        await header
        await footer
        await panels
        if self.app.gone(self):
            return
        hint_box.border_title = "Next"
        if self.focused is None:
            hint_box.focus()
        self.AUTO_FOCUS = type(self).AUTO_FOCUS
        self.refresh_bindings()  # the Footer shows its keys once the screen says what they are
        await self.query("#header-slot, #footer-slot").remove()
        self.app.size_check()  # the footer's compact mode below 100 columns
        self.app.load_screen_styles()  # the other screens' rules, while nothing else happens
        self.app.set_timer(1.0, self.app.prepare_help)  # the help's lines, drawn in a thread a second from now

    def on_mount(self) -> None:
        self.title = "aami-tui"
        self.call_after_refresh(self.app.size_check)
        self.sub_title = fmt.redact(self.app.settings.display()) + (" · development mode" if self.app.options.dev else "")
        panel = self.panel
        panel.target = self.app.settings.display()
        panel.render_panel()
        self._hint()
        self._static_started = False
        shown = False
        if self.app.early is not None:  # the early child's checklist, if it has come already, is in the first frame
            self._early = self.app.early.take("result", "connect_error")
            if self._early is not None and self._early[0] == "result" and self._early[1] == self.app.migration_path:
                self._show(self._early[2])
                shown = True
        if shown:  # the rest of the child's refresh (the server's status, its end): after the first frame
            self.call_after_refresh(self.poll)
        else:
            self.poll()
        self.set_interval(self.app.refresh_interval, self.poll)
        self.call_after_refresh(self.complete_first_frame)

    # Textual restyles a whole screen each time it resumes. The first resume comes as the screen opens, right after
    # its widgets were mounted and styled and before the first frame: nothing they match has changed since (class
    # and focus changes restyle what they touch themselves), so that restyle is skipped (~4 ms of the first frame;
    # a test compares the first frame drawn both ways).
    RESTYLE_ON_FIRST_RESUME = False

    def on_screen_resume(self, event) -> None:
        """Back from the runbook or restore: say what is going on now, and refresh at once. (The first resume
        comes as the screen opens, right after on_mount's own refresh: nothing to add then.) Called before Textual's
        own handler (Screen._on_screen_resume), which restyles the screen when ``event.refresh_styles``."""
        if not self._resumed:
            self._resumed = True
            event.refresh_styles = self.RESTYLE_ON_FIRST_RESUME
            return
        self._hint()
        self._status_due = 0.0
        self.poll(force=True)

    def _columns(self) -> dict | None:
        """What the checklist compares each table's columns with. First live data first: the shipped file's columns
        come pre-parsed (drift shows in the first refresh), read at this screen's own first refresh (the early
        child's needs none of it); the full file check (pglast) starts after the first refresh, not beside it (one
        interpreter lock), and its columns replace these."""
        if self.app.expected_columns is None:
            from aami_tui.core import expected

            self.app.expected_columns = expected.expected_columns(self.app.migration_path, parse=False)
        return self.app.expected_columns

    # ---- static information (tools, migration file): off the event loop ------------------------------------
    def _file_stamp(self) -> tuple | None:
        try:
            st = self.app.migration_path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _recheck_file(self) -> None:
        """Each refresh: the migration file is read again (its sha256, statements) when its size or mtime changed
        (one stat(); F5 reads it again whatever they say)."""
        if self._static_started and self._file_stamp() != self._static_stamp:
            self.load_static()

    @work(group="static", exclusive=True, exit_on_error=False)
    async def load_static(self) -> None:
        from aami_tui.core import migration

        path = self.app.migration_path
        self._static_stamp = self._file_stamp()
        big = self._static_stamp is not None and self._static_stamp[1] > OFFLOAD_BYTES
        try:
            if big:  # pglast holds the interpreter for seconds on a big file: parse it in another process
                from aami_tui.core import offload

                try:
                    mf = await offload.call(migration.load, path, timeout=300)
                except (OSError, offload.OffloadError):
                    mf = await asyncio.to_thread(migration.load, path)
            else:
                mf = await asyncio.to_thread(migration.load, path)
        except migration.MigrationError as exc:
            mf = str(exc)
        self._set_static("migration", mf)

    def _set_static(self, key: str, value) -> None:
        from aami_tui.core.migration import MigrationFile  # loaded with the file (load_static)

        panel = self.panel
        if key == "migration":
            panel.migration = value
            if isinstance(value, MigrationFile):
                self.app.expected_columns = value.tables
            self._hint()
        else:
            panel.tools = value
        panel.render_panel()

    @work(thread=True, group="tools", exclusive=True, exit_on_error=False)
    def load_tools(self, server_major: int) -> None:
        from aami_tui.core import pgtools  # not before the first frame

        tools: dict = {}
        for name in ("pg_dump", "pg_restore"):
            try:
                tools[name] = pgtools.find_tool(name, server_major)
            except pgtools.ToolError as exc:
                tools[name] = str(exc)
        self.app.call_from_thread(self._set_static, "tools", tools)

    # ---- polling ----------------------------------------------------------------------------------------
    def action_refresh_now(self) -> None:
        self.next_try = 0
        self._status_due = 0.0
        self.auth_refused = None  # the operator asks: one more try
        if self._static_started:
            self.load_static()  # the migration file too (edited since: its sha256, what pre-flight will check)
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        """Start a refresh unless one is running or another screen is over this one (polls never overlap). After
        a refused login only the operator's F5 tries again. Under the runbook (or restore, or help) the timer asks
        the server nothing: the runbook's tables panel refreshes itself (``refresh_now`` when no transaction is
        open), and this screen refreshes at once when it is shown again (on_screen_resume)."""
        if self.auth_refused is not None:
            return
        if not self.is_attached or (not force and self.app.screen is not self):  # covered, or a dialog over it
            return
        if any(w.group == "poll" and not w.is_finished for w in self.workers):  # running, or about to
            return
        loop = asyncio.get_running_loop()
        if not force and loop.time() < self.next_try:
            return
        self.run_worker(self._poll(), group="poll", exit_on_error=False)

    async def refresh_now(self) -> tuple[schema.ValidationResult | None, str | None]:
        """Refresh at once on the dashboard's own connection (the runbook screen uses this too, rather than
        opening connections of its own). Returns the latest result and the connection error, if any."""
        self._status_due = 0.0
        await self._poll()
        return self.last_result, self.panel.error

    async def _poll(self) -> None:
        async with self._poll_lock:  # the interval poll and refresh_now never overlap
            try:
                await self._poll_once()
            finally:
                if not self._static_started:  # after the first data is on screen (a thread would slow its paint)
                    self._static_started = True
                    self.call_after_refresh(self.load_static)
                else:
                    self._recheck_file()

    async def _poll_once(self) -> None:
        checklist = self.query_one(TableChecklist)
        rb = self.app.runbook
        try:
            if rb is not None and rb.tx == _tx_open():
                preview = await asyncio.wait_for(rb.preview(), 10)
                if preview is not None:
                    checklist.show(preview, uncommitted=True)
                    self.last_result = preview
                    return
            loop = asyncio.get_running_loop()
            if self.app.early is not None and await self._first_from_early():
                return
            fresh = False
            result = None
            if self.conn is None or self.conn.closed:
                self.conn = await self._connect()
                fresh = True
            if fresh:
                # First live data first: the checklist, then the server's status for the connection panel.
                try:
                    result = await asyncio.wait_for(schema.validate(self.conn, self._columns()), 15)
                    checklist.show(result)
                except schema.ValidationTimeout:
                    pass  # said below, by the refresh proper
                first = self.server is None
                self.server = await asyncio.wait_for(status.server_status(self.conn), 10)
                self._status_due = loop.time() + STATUS_EVERY
                if first or self.backoff:
                    self.load_tools(self.server.server_major)
                    if self.backoff and not self.missing_db:  # back after a lost connection, not a created DB
                        self.notify("Reconnected to the server.", title="Connection")
            elif loop.time() >= self._status_due:
                # The server's facts (version, privileges, database size) change rarely, and the size costs the
                # server a stat() of every file of the database: read them every STATUS_EVERY seconds, on F5
                # and after each runbook step; the checklist itself is read every refresh.
                self.server = await asyncio.wait_for(status.server_status(self.conn), 10)
                self._status_due = loop.time() + STATUS_EVERY
            try:
                if result is None:
                    result = await asyncio.wait_for(schema.validate(self.conn, self._columns()), 15)
            except schema.ValidationTimeout as exc:  # the server answers, but a lock is in the way: say so
                checklist.show_error(str(exc))
                return
            self.in_progress = await self._migration_elsewhere() if result.missing else None
            self._show(result)
        except db.ConnectError as exc:
            self._set_missing(exc.kind == "no_database")
            if exc.kind == "auth":
                self.auth_refused = str(exc)
            self._failed(str(exc))
            if exc.kind == "no_database" and not self.asked_create:
                self.asked_create = True
                self.app.offer_create_database()
        except Exception as exc:
            import psycopg

            if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | TimeoutError):
                raise
            msg = ("The server stopped answering (timeout)." if isinstance(exc, TimeoutError)
                   else "Lost the connection to the server: " + (str(exc).strip().splitlines() or ["?"])[-1])
            self._failed(msg)

    def _show(self, result: schema.ValidationResult) -> None:
        """A refresh's result on screen: the checklist, the connection panel, the hint."""
        self.backoff = 0.0
        self._set_missing(False)
        panel = self.panel
        panel.error = None
        panel.status = self.server
        panel.render_panel()
        self.query_one(TableChecklist).show(result)
        self.last_result = result
        self.app.last_result = result
        self._hint()

    async def _migration_elsewhere(self) -> dict | None:
        """Who else runs the migration on this database now (the one-operator lock's holder, not this console's own
        runbook): what check's NOTE says, said here too. None: nobody, or it could not be asked."""
        from aami_tui.core import locks

        try:
            h = await asyncio.wait_for(locks.migration_in_progress(self.conn), 5)
        except (psycopg.Error, TimeoutError):
            return None
        rb = self.app.runbook
        return None if h is None or (rb is not None and h["pid"] == rb.backend_pid) else h

    async def _first_from_early(self) -> bool:
        """The first refresh from the early child (core/early.py): its checklist (or the connection error it got,
        in the same words) and the server's status. False: the child said nothing usable, refresh as always.
        Later refreshes are this screen's own (it connects on the next one)."""
        early, self.app.early = self.app.early, None
        try:
            got, self._early = self._early, None
            if got is None:
                timeout = self.app.settings.connect_timeout + 2 + 15  # what the refresh itself would wait
                got = await early.wait_async("result", "connect_error", timeout=timeout)
            if got is None or (got[0] == "result" and got[1] != self.app.migration_path):
                return False
            if got[0] == "connect_error":
                raise db.ConnectError(got[1], got[2])
            if self.last_result is not got[2]:
                self._show(got[2])
            facts = early.take("status") or await early.wait_async("status", timeout=10)
            if facts is not None:
                self.server = facts[1]
                self._status_due = asyncio.get_running_loop().time() + STATUS_EVERY
                self.call_after_refresh(self.load_tools, self.server.server_major)
                self._show(got[2])
            await early.finish()
            return True
        finally:
            early.close()

    async def _connect(self):
        """A new connection: the one the app started while the first frame was painted, else a fresh one."""
        early, self.app.early_connection = getattr(self.app, "early_connection", None), None
        if early is not None:
            return await asyncio.wait_for(early, self.app.settings.connect_timeout + 2)
        return await asyncio.wait_for(db.connect(self.app.settings), self.app.settings.connect_timeout + 2)

    def _set_missing(self, missing: bool) -> None:
        if missing != self.missing_db:
            self.missing_db = missing
            self.refresh_bindings()  # the footer shows "i Create database" only while it is missing

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "create_database":
            return self.missing_db
        return True

    def action_create_database(self) -> None:
        if self.missing_db:
            self.app.offer_create_database()

    def action_elsewhere(self, what: str) -> None:
        self.notify(f"{what}: press r to open it." if not (self.app.runbook and self.app.runbook.tx_open)
                    else f"{what}: press r to go back to it (the transaction is open).", title="Runbook keys")

    def _failed(self, message: str) -> None:
        if self.conn is not None:
            self.run_worker(self.conn.close(), exit_on_error=False)
        self.conn = None
        self.backoff = min(MAX_BACKOFF, (self.backoff * 2) or 1.0)
        self.next_try = asyncio.get_running_loop().time() + self.backoff
        # F5 helps only when the password comes from ~/.pgpass (re-read at each try), not from --dsn or a variable
        f5 = ": F5 tries again." if self.app.settings.password_from_file() else "."
        msg = (f"{message} Not retrying by itself (each try is a failed login in the server's log){f5}"
               if self.auth_refused is not None else f"{message} Retrying in {self.backoff:g}s.")
        panel = self.panel
        panel.error = msg
        panel.render_panel()
        self.query_one(TableChecklist).show_error(message)
        self._hint()

    def _hint(self) -> None:
        text = self._hint_body()
        if self.app.embedded is not None:
            text = Text.assemble(text, "\n\n", ("Demo mode: ", "bold cyan"), "a throwaway PostgreSQL 18 that is "
                                 "removed when you quit. ", ("ctrl+r", "bold"), " resets the database to empty so you "
                                 "can walk the runbook again; ", ("?", "bold"), " explains each step.")
        if text != self._hint_shown:  # an unchanged hint is not repainted (idle refreshes cost nothing)
            self._hint_shown = text
            self.hint.update(text)

    def _hint_body(self) -> Text:
        r = self.last_result
        rb = self.app.runbook
        if rb is not None and rb.tx_open:
            return Text.assemble(("A migration transaction is open. ", "bold yellow"),
                                      "Press ", ("r", "bold"), " to return to the runbook: COMMIT or ROLLBACK.")
        elif self.missing_db:
            s = self.app.settings
            return Text.assemble((f"Database {s.dbname} does not exist", "bold yellow"), f" on {s.host}:{s.port} "
                                 "(the server answers). Press ", ("i", "bold"), " to create it (CREATE DATABASE, the "
                                 "guide's new-developer step 1), then ", ("r", "bold"), " for the runbook. Or quit "
                                 "and run ", ("aami-tui init", "bold"), ": it creates, migrates and verifies in one go.")
        elif self.auth_refused is not None:
            s = self.app.settings
            first = (f'Password authentication failed for user "{s.user}" at {s.host}:{s.port}.'
                     if "rejected the password" in self.auth_refused else self.auth_refused)
            stop = " The console stops trying: each try is a failed login in the server's log. "
            words = s.password_origin_words()  # the same words as headless's (core: settings)
            if s.password_from_file():  # libpq re-reads the file on each try: F5 picks up the fix
                none = "wants a password" in self.auth_refused  # none given anywhere (the sentence says why)
                return Text.assemble((first, "bold red"), stop + (f"Add a line to {s.password_file()[1]}" if none
                                                                  else f"{words}: correct it there") + " and press ",
                                     ("F5", "bold"), ", or quit and start again with the right PGPASSWORD, "
                                     "DB_PASSWORD or --dsn.")
            # a password given on the command line or in the environment wins over ~/.pgpass: F5 cannot fix it
            return Text.assemble((first, "bold red"), stop + f"{words}: quit and start again with the right one.")
        elif self.panel.error:
            return Text.assemble("Cannot reach the database. Check the settings (", ("--dsn", "bold"),
                                      ", DB_* or PG* variables); the console retries by itself.")
        elif isinstance(self.panel.migration, str):
            return Text.assemble(("The migration file cannot be used: ", "bold red"),
                                 str(self.panel.migration),
                                 "\nFix it (or point --migration-file / --migrations-dir at the right one) before "
                                 "running the runbook; pre-flight will refuse it.")
        elif r is None:
            return Text("Reading the schema…")
        elif r.ok and not r.drifted:
            lines = ["All ten required tables exist: the Config Server will start.", "",
                     "Environment for the Config Server:"]
            if self.server:
                lines += ["  " + x for x in status.config_server_env(self.server)]
            return Text(fmt.redact("\n".join(lines)))
        elif r.drifted:
            return Text.assemble(("Drift: ", "bold yellow"), ", ".join(r.drifted), " exist but differ from "
                                 "001_initial_schema.sql (built by the archived migrations?), and IF NOT EXISTS "
                                 "never repairs them: the runbook refuses to migrate.\nPress ", ("p", "bold"),
                                 " for the Drift view: it compares the catalogs and writes the repair as a plan file "
                                 "(headless: ", ("aami-tui plan", "bold"), "), which the runbook then runs.")
        elif self.in_progress is not None:
            from aami_tui.core import locks

            words = locks.in_progress_words(self.in_progress, self.app.settings.dbname)
            return Text.assemble((words[:1].upper() + words[1:], "bold yellow"),
                                 f": {plural(len(r.missing), 'required table')} missing until it commits; do not "
                                 "start another (pre-flight refuses while it holds the migration lock).\nPress ",
                                 ("r", "bold"), " to open the runbook: its pre-flight names that session (an earlier "
                                 "run of aami-tui: which, and its report).")
        else:
            return Text.assemble(f"{plural(len(r.missing), 'required table')} missing: the Config Server would refuse "
                                      "to start.\nPress ", ("r", "bold"), " to open the runbook: pre-flight → backup → "
                                      "BEGIN → apply → verify → COMMIT.")

    async def on_unmount(self) -> None:
        if self.conn is not None:
            await self.conn.close()
