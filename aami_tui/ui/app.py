"""The Textual app. ``create_app`` is the one factory used by the CLI, the tests and the screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from aami_tui.core import db
from aami_tui.core.paths import resolve_migration_path
from aami_tui.core.runbook import Options  # its own module; the model (State, Tx…) and the machine where used
from aami_tui.core.settings import ConnSettings
from aami_tui.core.words import signal_words
from aami_tui.ui import fmt
from aami_tui.ui.dashboard import MIN_H, MIN_W, DashboardScreen  # the smallest usable terminal
from aami_tui.ui.driver import ConsoleDriver
from aami_tui.ui.line import draw_soon

# The runbook engine and the other screens are imported when first opened, not at start-up: the dashboard's
# first live data comes sooner (README, Performance).
if TYPE_CHECKING:
    from aami_tui.core.runbook import Runbook
    from aami_tui.ui.runbook_screen import RunbookScreen


# Endings that do not come through a key: each writes the report (rolling back an open transaction) and then
# leaves the terminal as it found it. Exit code 128 + the signal number, as a shell reports it.
SIGNAL_REASONS = {sig: signal_words(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
EXIT_WATCHDOG = 15.0  # after a signal's rollback and report, Textual's shutdown gets this long
SIGNAL_CLOSE_TIMEOUT = 20.0  # the rollback and the report get this long; the server rolls back anyway
SWITCH_INTERVAL = 0.0005  # seconds: how soon another thread (the terminal writer) gets the interpreter (on_mount)


class AamiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "aami-tui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("f5", "refresh", "Refresh", show=False),
    ]

    def __init__(self, settings: ConnSettings, options: Options, migration_path: Path, *,
                 refresh_interval: float = 2.0, embedded=None, early=None) -> None:
        super().__init__(driver_class=ConsoleDriver if sys.platform != "win32" else None)
        self.settings = settings
        self.options = options
        self.migration_path = migration_path
        self.refresh_interval = refresh_interval
        self.embedded = embedded
        self.runbook: Runbook | None = None
        self.runbook_screen: RunbookScreen | None = None
        self.expected_columns: dict | None = None
        self.last_result = None
        self.dashboard = DashboardScreen()
        self.ending_signal: int | None = None
        self.restore_result = None  # core.restore.RestoreResult of the last restore started here (the shell hears a
        # cancelled one's words when the console closes)
        self.quit_rolled_back = False  # the operator chose 'ROLLBACK and quit'
        self.exit_watchdog = None  # a timer that ends the process if Textual's shutdown hangs after a signal
        self._signal_task: asyncio.Task | None = None
        self.early_connection: asyncio.Task | None = None
        self.early = early  # core/early.py: the child that fetches the first refresh's data, or None
        self.plan_file: Path | None = None  # the drift plan the Drift view wrote last (it shows it again)
        self._gc_paused_at_start = not gc.isenabled()  # start.console: until the first frame (settle_heap)
        self._screen_styles_loaded = False  # screens.tcss (load_screen_styles)

    def on_load(self) -> None:
        """Connect while Textual builds and paints the first frame; the dashboard's first refresh takes this
        connection (its errors too), so the first live data comes sooner. With the early child (core/early.py)
        that child connects instead: psycopg is not even imported before the first frame."""
        if self.early is not None:
            return
        self.early_connection = asyncio.ensure_future(db.connect(self.settings))
        self.early_connection.add_done_callback(lambda t: t.cancelled() or t.exception())

    def load_screen_styles(self) -> None:
        """The other screens' rules (screens.tcss): not parsed for the dashboard's first frame (app.tcss holds what
        it needs), but after it (complete_first_frame) or before any other screen or dialog opens (push_screen),
        whichever comes first. Added as Textual adds CSS_PATH's files; none of them matches a dashboard widget."""
        if self._screen_styles_loaded:
            return
        self._screen_styles_loaded = True
        self.stylesheet.read(Path(__file__).with_name("screens.tcss"))
        self.stylesheet.parse()  # now (only the new file: the others' rules are cached), and the rules' map with it

    def push_screen(self, screen, callback=None, wait_for_dismiss=False, *, mode=None):
        self.load_screen_styles()
        return super().push_screen(screen, callback, wait_for_dismiss, mode=mode)

    def get_default_screen(self) -> Screen:
        """The dashboard is the bottom screen: composed with the app, its first frame is the app's first (pushed
        from on_mount it was rendered once inside Textual's start-up batch, for nothing, and then again)."""
        return self.dashboard

    def on_mount(self) -> None:
        if self.embedded is not None:
            self.sub_title = "demo: embedded PostgreSQL 18 (throwaway)"
        if self.options.dev:
            self.sub_title = (self.sub_title + " · " if self.sub_title else "") + "development mode"
        self.size_check()
        if not self.is_headless:  # a real terminal (Pilot tests keep pytest's own handlers)
            loop = asyncio.get_running_loop()
            for sig in SIGNAL_REASONS:
                loop.add_signal_handler(sig, self._on_signal, sig)
            # The writer thread puts each frame on the terminal, and needs the interpreter twice for it (the write,
            # the flush): while the event loop computes, each time waited up to Python's 5 ms switch interval. A
            # key's frame reached the terminal 8-14 ms after it was ready (README, Performance).
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.call_after_refresh(self.settle_heap)
        self.call_after_refresh(lambda: self.run_worker(self.note_unclosed(), group="unclosed"))
        if getattr(self, "stray", None) is not None and self.stray.active:  # run_console: fd 2 is captured
            self._stray_seen: set[str] = set()
            self.set_interval(1.0, self.show_stray)

    async def note_unclosed(self) -> None:
        """A previous run on this database that ended without closing (killed, power cut): said at the start, with
        where its report is, what it recorded last and what to check (core/report.py: unclosed)."""
        from aami_tui.core import report

        found = await asyncio.to_thread(report.unclosed, self.options.reports_dir, self.settings.dbname)
        if not self.is_running:
            return
        for u in found:
            self.notify(report.unclosed_words(u), title="The last run did not close", severity="warning",
                        timeout=60, markup=False)

    def show_stray(self) -> None:
        """What libpq (or any library) wrote to fd 2 since the last look, as a notification instead of bytes in the
        middle of the frame (core/stray.py); each distinct line once."""
        from aami_tui.core.stray import summary

        new = [ln for ln in summary(self.stray.new_text()) if ln not in self._stray_seen]
        if not new or not self.is_attached:
            return
        self._stray_seen.update(new)
        self.notify("\n".join(new[:6]) + (f"\n… and {len(new) - 6} more lines" if len(new) > 6 else ""),
                    title=f"Written to stderr (kept in {self.stray.path})", severity="warning", timeout=15,
                    markup=False)

    @property
    def _background_screens(self) -> list[Screen]:
        """The screens that show through the top one. Textual's list always holds the screen just under the top,
        which it needs only when the top is translucent (a dialog's dimmed background): under the opaque runbook
        the dashboard then counted as shown, and laid itself out and repainted the runbook's cells over what had
        changed in it at every refresh (3-15 ms of the event loop, several times at each step's end; issue 8).
        A screen shown again does what it has left to do then."""
        stack = self._screen_stack
        if stack and stack[-1].styles.background.a == 1:
            return []
        return super()._background_screens

    def _prune(self, *nodes, parent=None):
        """A screen removed (a dialog closed, the help dismissed): Textual then lays out the screen now shown, as
        the parent of what it removed. That screen has been repainted whole as it came back (ScreenResume), and its
        widgets kept their sizes under the dialog: the layout was a second full frame at every step's start, 25-50
        ms of a loaded machine with a key waiting behind it (issue 8). A layout that something under the dialog
        asked for is still done: the screen keeps that request until it is shown again."""
        if parent is self and nodes and all(isinstance(n, Screen) for n in nodes):
            parent = None
        return super()._prune(*nodes, parent=parent)

    def settle_heap(self) -> None:
        """Objects that live as long as the console (Textual and our modules, a loaded migration file, a step's
        records) are set aside from Python's cyclic garbage collector. Its full collections walk every object: as
        the console's heap grew to 250,000-800,000 objects they held the event loop 0.1-1 s each, every second or
        two while steps ran, and a key pressed then waited (the largest part of the key presses' p95). Only in a
        real terminal: tests run many apps in one process, whose garbage would then stay. The console starts with
        the collector off (start.console: no full collection before the first frame); the first call turns it back
        on (later ones leave it to whoever holds it: ui/driver.py's hold for a key press)."""
        if not self.is_headless:
            gc.freeze()
        if self._gc_paused_at_start:
            self._gc_paused_at_start = False
            gc.enable()

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """A key's action (every binding runs through here) has run: the frame that shows it is drawn at the event
        loop's next turn (``line.draw_soon``; not when the action opened another screen, which draws its first
        frame itself), and the garbage collector's hold for the key (ui/driver.py) ends once that frame is
        written."""
        screen = self.screen
        try:
            return await super().run_action(action, default_namespace, namespaces)
        finally:
            if self.screen is screen and not self._exit:
                draw_soon(screen)
            hold = getattr(self._driver, "gc_hold", None)
            if hold is not None and (hold.held or hold.key_at is not None):
                hold.key_handled()
                asyncio.get_running_loop().call_later(hold.MAX_HOLD, hold.expire)

    def key_pending(self) -> bool:
        """A key has been read whose frame has not been drawn yet (ui/driver.py, ``KeyGcHold.pending``; in a real
        terminal only)."""
        hold = getattr(self._driver, "gc_hold", None)
        return hold is not None and hold.pending

    def _on_signal(self, sig: int) -> None:
        """SIGHUP (window or SSH session closed), SIGTERM, SIGINT: end like a quit that rolls back. A second
        signal while ending (two Ctrl+C 10 ms apart) changes nothing: the report is already being written."""
        if self.ending_signal is not None:
            return
        self.ending_signal = sig
        self._signal_task = asyncio.get_running_loop().create_task(self._end_on_signal(sig))

    async def _end_on_signal(self, sig: int) -> None:
        reason = SIGNAL_REASONS.get(sig, f"signal {sig}")
        r = self.restore_result
        if r is not None and r.ended_at is None:  # a restore running: its words and report say why it was cancelled
            r.signals.append(sig)
        if self.runbook is not None:  # its log, and the failure of a step this cancel loses, say why it ended
            with contextlib.suppress(Exception):
                self.runbook.ending(reason)
        with contextlib.suppress(Exception):
            # the running step first (a backup removes its partial files, an apply cancels its statement)
            self.workers.cancel_all()
            await asyncio.wait_for(self.workers.wait_for_complete(), 5)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._close_runbook(reason), SIGNAL_CLOSE_TIMEOUT)
        code = signal_exit_code(self, sig)
        self.exit(return_code=code)
        if not self.is_headless:
            self.exit_watchdog = _exit_watchdog(self._driver, code)


    async def on_unmount(self) -> None:
        """However the app ends, the runbook's sessions end with it (an open transaction rolls back)."""
        await self._close_runbook()
        if not self.is_headless:
            sys.setswitchinterval(getattr(self, "_switch_interval", sys.getswitchinterval()))
            loop = asyncio.get_running_loop()
            for sig in SIGNAL_REASONS:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)

    async def _close_runbook(self, reason: str = "console closed") -> None:
        rb = self.runbook
        if rb is None:
            return
        from aami_tui.core.runbook import State

        if any(r.state != State.PENDING for r in rb.steps.values()) or rb.tx_open:
            await rb.close(reason)  # writes the report
        else:
            await rb.close_connections()  # nothing was run: no report, the lock goes with the session

    def gone(self, screen: Screen) -> bool:
        """True when the console is closing (a timer can tick after the last screen has gone) or `screen` is no
        longer mounted: a timer of it should do nothing."""
        return not self._screen_stack or not screen.is_attached

    def covered(self, screen: Screen) -> bool:
        """True when a timer of `screen` should do nothing now: it is gone, or a dialog is over it."""
        if self.gone(screen):
            return True
        top = self._screen_stack[-1]
        return top is not screen and isinstance(top, ModalScreen)

    def on_resize(self, event) -> None:
        self.size_check(event.size)

    def size_check(self, size=None) -> None:
        size = size or self.size
        small = size.width < MIN_W or size.height < MIN_H
        narrow = size.width < 100
        tiny = size.width < 70
        tall = size.height >= 45 and not small
        message = (f"Terminal {size.width}×{size.height} is too small: enlarge it to at least "
                   f"{MIN_W}×{MIN_H}. Keys still work (q quits)." if small else "")
        for screen in self.screen_stack:
            screen.set_class(small, "-small")
            screen.set_class(narrow, "-narrow")
            screen.set_class(tiny, "-tiny")
            screen.set_class(tall, "-tall")
            for w in screen.query("#small-warning"):
                w.update(message)
            for footer in screen.query("KeyFooter"):  # by name: the dashboard's comes after the first frame
                footer.compact = narrow
                footer.show_command_palette = not tiny  # below 70 columns the keys fill the row (ctrl+p still works)
            for log in screen.query("RichLog"):  # keep the newest lines in view after a resize (by name: the
                # dashboard has none, and the widget's module is not loaded for the first frame)
                log.call_after_refresh(log.scroll_end, animate=False)

    # ---- commands (footer + command palette) -------------------------------------------------------------------
    def get_system_commands(self, screen):
        for cmd in super().get_system_commands(screen):
            if cmd.title == "Screenshot":  # Textual's writes to ~/Downloads (often missing) with the umask's mode
                cmd = SystemCommand("Screenshot", f"Save an SVG of this screen in {self.options.reports_dir} "
                                    "(owner-only)", self.action_save_screenshot)
            yield cmd
        yield SystemCommand("Runbook", "Open the migration runbook (pre-flight → COMMIT)", self.action_runbook)
        yield SystemCommand("Restore from a backup", "Pick a backup and restore it (guide's rollback procedure)",
                            self.action_restore)
        yield SystemCommand("Drift plan", "Compare the database with what the migration builds; write a repair plan",
                            self.action_drift)
        state = "on" if self.options.exact else "off"
        yield SystemCommand(f"Exactly ten tables gate: {state}",
                            "Toggle --exact: tables in public beyond the ten block COMMIT (for CI) instead of being "
                            "reported", self.action_toggle_exact)
        yield SystemCommand("Refresh", "Refresh the table checklist now", self.action_refresh)
        yield from getattr(screen, "palette_commands", lambda: ())()
        if self.dashboard.missing_db:
            yield SystemCommand("Create the database", f"CREATE DATABASE {self.settings.dbname} (it does not exist "
                                "yet; the guide's new-developer step 1)", self.offer_create_database)
        yield SystemCommand("Help", "How the migration works, and the keys", self.action_help)
        if self.embedded is not None:
            yield SystemCommand("Reset demo database", "Drop and recreate the empty demo database (walk it again)",
                                self.action_reset_demo)

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "reset_demo":
            return self.embedded is not None  # only offered (and shown) in demo mode
        return True

    def prepare_help(self) -> None:
        """The help's text drawn in a thread while the console is idle: the first `?` only shows it."""
        if not self._exit:
            from aami_tui.ui import help_screen

            help_screen.prepare(self)

    def action_help(self) -> None:
        from aami_tui.ui.help_screen import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        if not self.is_screen_installed("help"):  # built once, then only shown
            self.install_screen(HelpScreen(), "help")
        self.push_screen("help")

    def action_refresh(self) -> None:
        if self.screen is self.dashboard:
            self.dashboard.action_refresh_now()
        elif self.runbook_screen is not None and self.screen is self.runbook_screen:
            self.runbook_screen.action_refresh_tables()

    async def action_runbook(self) -> None:
        why = await self.open_runbook()
        if why:
            self.notify(why, severity="warning", timeout=8)

    async def open_runbook(self, path: Path | None = None) -> str | None:
        """Open the runbook, or go back to the run in progress. ``path``: run this file (a drift plan from the
        Drift view) instead of the console's migration file. Returns one sentence when it cannot, else None."""
        from aami_tui.core.runbook import Phase

        old = self.runbook
        ongoing = old is not None and not (old.finished and old.phase is not Phase.ROLLED_BACK)
        if ongoing and path is not None and old.migration_path.resolve() != Path(path).resolve():
            if old.tx_open or old.running:
                return (f"The runbook on {old.migration_path.name} has "
                        + ("its transaction open" if old.tx_open else "a step running")
                        + f": COMMIT or ROLLBACK it (r on the dashboard goes back to it) before running {Path(path).name}.")
            ongoing = False  # nothing of it is open: it is closed (its report says so) and replaced
            if self.runbook_screen is not None and self.runbook_screen in self.screen_stack:
                return (f"The runbook on {old.migration_path.name} is open under this view: go back to it (escape) "
                        f"and leave it (d) before running {Path(path).name}.")
            await self._close_runbook(f"replaced by a runbook on {Path(path).name}")
            old = None
        under = (f"The runbook on {old.migration_path.name} is open under this view: escape goes back to it."
                 if old is not None else "")
        if not ongoing:
            if self.runbook_screen is not None:
                if self.runbook_screen in self.screen_stack:
                    return under if self.screen is not self.runbook_screen else None
                self.uninstall_screen("runbook")
            if old is not None:  # a finished run is closed before it is replaced: its session and lock go
                await self._close_runbook()
            from aami_tui.core.runbook import Runbook
            from aami_tui.ui.runbook_screen import RunbookScreen

            self.runbook = Runbook(self.settings, Path(path) if path is not None else self.migration_path,
                                   self.options)
            self.runbook_screen = RunbookScreen(self.runbook, demo=self.embedded is not None)
            # Installed, so that going back to the dashboard keeps the screen (and its log) alive.
            self.install_screen(self.runbook_screen, name="runbook")
        if self.screen is not self.runbook_screen:
            if self.runbook_screen in self.screen_stack:  # e.g. the Drift view opened over it (command palette)
                return under
            self.push_screen("runbook")
            self.size_check()
        return None

    async def action_restore(self) -> None:
        rb = self.runbook
        if rb is not None and (rb.tx_open or rb.running):
            self.notify("A migration transaction is open: COMMIT or ROLLBACK it before restoring." if rb.tx_open
                        else "A runbook step is running: let it finish (or cancel it) before restoring.",
                        severity="warning")
            return
        if rb is not None:  # the console's own runbook must not refuse the console's restore
            await rb.release_lock()
        from aami_tui.ui.restore_screen import RestoreScreen

        self.clear_notifications()  # what a toast said about the screen left behind does not hold here
        self.push_screen(RestoreScreen())
        self.size_check()

    def action_save_screenshot(self) -> None:
        """The palette's Screenshot: an SVG of this screen in the reports folder (0600, like every file it writes)."""
        from datetime import datetime

        from aami_tui.core import files

        try:
            d = files.private_dir(self.options.reports_dir)
            path = files.claim_unique(d, f"screenshot_{datetime.now():%Y%m%d_%H%M%S}", ".svg")
            files.write_private(path, self.export_screenshot())
        except (files.FileError, OSError) as exc:
            words = str(exc) if isinstance(exc, files.FileError) else files.write_error_words(exc)
            self.notify(f"The screenshot was not saved: {words}", severity="error", timeout=10)
            return
        self.notify(f"Screenshot saved: {path}", title="Screenshot", timeout=8)

    def action_toggle_exact(self) -> None:
        """The console's --exact setting. It applies to a runbook whose pre-flight has not passed yet (after a
        ROLLBACK BEGIN may retry under the same pre-flight: still fixed; a run committed or closed is over)."""
        from aami_tui.core.runbook import Phase

        rb = self.runbook
        if rb is not None and rb.phase not in (Phase.NEW, Phase.COMMITTED, Phase.NOTHING_TO_DO, Phase.CLOSED):
            self.notify("The runbook's pre-flight has passed: the gate is fixed for this run "
                        f"({'on' if rb.opt.exact else 'off'}).", severity="warning")
            return
        self.options.exact = not self.options.exact
        if rb is not None and rb.phase is Phase.NEW:
            rb.opt.exact = self.options.exact
        self.notify("Exactly ten tables in public is now a gate (pre-flight and verify block on any other table)."
                    if self.options.exact else "Other tables in public are now reported, not blocking (the "
                    "migration's own extra tables still block).", title="--exact " + ("on" if self.options.exact
                                                                                       else "off"))

    def action_drift(self) -> None:
        from aami_tui.ui.drift_screen import DriftScreen

        if isinstance(self.screen, DriftScreen):
            return
        self.clear_notifications()
        self.push_screen(DriftScreen())
        self.size_check()

    def offer_create_database(self) -> None:
        from aami_tui.ui.confirm import ConfirmModal  # not before the first frame (README, Performance)

        s = self.settings
        if isinstance(self.screen, ConfirmModal) and self.screen.id == "create-modal":
            return

        def go(ok: bool | None) -> None:
            if ok:
                self.run_worker(self._create_db(), exit_on_error=False)

        self.push_screen(ConfirmModal(
            f"Database {s.dbname} does not exist",
            f"The database {s.dbname!r} does not exist on {s.host}:{s.port}. Create it now (CREATE DATABASE, "
            "the guide's new-developer step 1)? It will be empty; then run the runbook.",
            confirm="Create database", danger=False, id="create-modal"), go)

    async def _create_db(self) -> None:
        try:
            await db.create_database(self.settings)
            self.notify(f"Created database {self.settings.dbname}.")
        except Exception as exc:
            self.notify(f"Could not create the database: {exc}", severity="error", timeout=12)
        self.dashboard.action_refresh_now()

    def action_reset_demo(self) -> None:
        if self.embedded is None:
            self.notify("Reset is only available in demo mode.", severity="warning")
            return
        if self.runbook is not None and self.runbook.tx_open:
            self.notify("Close the open transaction first.", severity="warning")
            return

        def go(ok: bool | None) -> None:
            if ok:
                self.run_worker(self._reset(), exit_on_error=False)

        from aami_tui.ui.confirm import ConfirmModal

        self.push_screen(ConfirmModal(
            "Reset the demo database?", f"Drop {self.settings.dbname}, recreate it empty (the guide's "
            "'reset the database for testing'), and start a new runbook.", confirm="Reset", id="reset-modal"), go)

    async def _reset(self) -> None:
        if self.runbook is not None:
            await self.runbook.close("demo reset")
        if self.dashboard.conn is not None:
            await self.dashboard.conn.close()
            self.dashboard.conn = None
        try:
            await db.drop_and_recreate(self.settings)
        except Exception as exc:
            self.notify(f"Reset failed: {exc}", severity="error")
            return
        self.runbook = None
        if self.runbook_screen is not None:
            while self.screen is not self.dashboard:
                self.pop_screen()
            self.uninstall_screen("runbook")
        self.runbook_screen = None
        self.notify(f"{self.settings.dbname} is empty again. Press r to walk the runbook again.")
        self.dashboard.action_refresh_now()

    # ---- quitting: never with an open transaction unless the operator says so ------------------------------------
    async def action_quit(self) -> None:
        from aami_tui.core.runbook import Phase

        rb = self.runbook
        if rb is not None and rb.phase is Phase.COMMITTING:
            self.notify("COMMIT is waiting for the synchronous standby: wait, or end the wait when asked, then quit."
                        if rb.commit_syncrep is not None else
                        "COMMIT is in flight: wait for its outcome (it is bounded), then quit.", severity="warning")
            return
        if rb is not None and rb.tx_open:
            from aami_tui.ui.confirm import ConfirmModal

            if isinstance(self.screen, ConfirmModal) and self.screen.id == "quit-modal":
                return

            def go(ok: bool | None) -> None:
                if ok:
                    self.run_worker(self._rollback_and_exit(), exit_on_error=False)

            self.push_screen(ConfirmModal(
                "Quit with the transaction open?",
                f"The migration transaction on {self.settings.dbname} is open. Quitting rolls it back: nothing "
                "applied so far is kept.", confirm="ROLLBACK and quit", cancel="Stay", id="quit-modal"), go)
            return
        restoring = [w for w in self.workers if w.group == "restore" and w.is_running]
        if restoring:  # a quit cancels the restore: ask first, as escape on the restore screen does
            from aami_tui.core.restore import cancel_prompt
            from aami_tui.ui.confirm import ConfirmModal

            if isinstance(self.screen, ConfirmModal) and self.screen.id == "quit-modal":
                return

            def stop(ok: bool | None) -> None:
                if ok:
                    self.run_worker(self._cancel_restore_and_exit(restoring), exit_on_error=False)

            self.push_screen(ConfirmModal("Quit while a restore runs?", "Quitting cancels the restore. "
                                          + cancel_prompt(self.settings.dbname, self.restore_result),
                                          confirm="Cancel the restore and quit",
                                          cancel="Stay", id="quit-modal"), stop)
            return
        if rb is not None and any(r.state.value == "running" for r in rb.steps.values()):
            for w in self.workers:
                w.cancel()
        await self._close_and_exit()

    async def _cancel_restore_and_exit(self, workers) -> None:
        """The restore stops (pg_restore and psql, psql's session, its report 'cancelled') before the console
        ends; the shell then hears what it left (closing_lines), in words for after the console (r.closing)."""
        if self.restore_result is not None:
            self.restore_result.closing = True
        for w in workers:
            w.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.workers.wait_for_complete(workers), 20)
        await self._close_and_exit()

    async def _rollback_and_exit(self) -> None:
        await self.runbook.close("operator quit: rolled back")
        self.quit_rolled_back = True
        self.exit(0)

    async def _close_and_exit(self) -> None:
        await self._close_runbook()
        self.exit(0)


def create_app(settings: ConnSettings, *, migration_path: Path | None = None, migrations_dir: Path | None = None,
               options: Options | None = None, refresh_interval: float = 2.0, embedded=None,
               stable: bool = False, early=None) -> AamiApp:
    """The one factory: CLI, tests and screenshots all build the app here."""
    fmt.STABLE = stable
    path = resolve_migration_path(migrations_dir, migration_path)
    return AamiApp(settings, options or Options(), path, refresh_interval=refresh_interval, embedded=embedded,
                   early=early)


def run_console(settings: ConnSettings, args, embedded=None, early=None) -> int:
    if args.refresh <= 0:
        print("aami-tui: --refresh must be a positive number of seconds")
        return 2
    opts = Options(backup_dir=args.backup_dir, reports_dir=args.reports_dir, lock_timeout=args.lock_timeout,
                   statement_timeout=args.statement_timeout, pace=args.pace, exact=getattr(args, "exact", False),
                   rehearsal_report=getattr(args, "rehearsal_report", None),
                   compress=getattr(args, "compress", "0"), jobs=getattr(args, "jobs", 1),
                   commit_timeout=getattr(args, "commit_timeout", 60.0), idle_timeout=getattr(args, "idle_timeout", 900.0),
                   rehearse_timeout=getattr(args, "rehearse_timeout", 3600.0), dev=getattr(args, "dev", False))
    app = create_app(settings, migration_path=args.migration_file, migrations_dir=args.migrations_dir,
                     options=opts, refresh_interval=args.refresh, embedded=embedded, early=early)
    from aami_tui.core.stray import StrayOutput, summary

    # libpq's warnings (a passfile others may read) and any library's writes to fd 2 go to a 0600 file, not into
    # the frame; the terminal keeps its own fd (sys.__stderr__: Textual's output and the exit watchdog)
    app.stray = StrayOutput(opts.reports_dir)
    app.stray.start()
    try:
        app.run()
    finally:
        if app.exit_watchdog is not None:  # Textual's shutdown ended: what follows is ours
            app.exit_watchdog.cancel()
        captured = app.stray.stop()  # fd 2 is the terminal again (a traceback that follows reaches it)
    for line in closing_lines(app):
        say(line)
    if captured:
        lines = summary(captured)
        with contextlib.suppress(OSError, ValueError):  # a terminal that went away (SIGHUP)
            print(f"aami-tui: while the console ran, this was written to stderr (kept in {app.stray.path}):",
                  *(f"  {ln}" for ln in lines[:20]), *([f"  … and {len(lines) - 20} more lines"] if len(lines) > 20 else []),
                  sep="\n", file=sys.stderr, flush=True)
    return app.return_code or 0


def closing_lines(app: AamiApp) -> list[str]:
    """What the shell shows once the console has closed: the run report, the DB_* lines, and how the run ended."""
    lines = []
    rb = app.runbook
    if rb is not None and rb.report_paths:
        lines.append(f"Run report: {rb.report_paths[0]}")
    lines += env_lines_at_exit(app)
    outcome = rb.outcome.value if rb is not None else None
    r = app.restore_result
    cancelled = r is not None and r.error and r.error.startswith("cancelled")  # a restore the close (or escape) stopped
    if app.ending_signal is not None:
        from aami_tui.core.runbook import Verdict

        reason = SIGNAL_REASONS.get(app.ending_signal, "signal")
        left = {"rolled back": "the migration transaction was rolled back.",
                "not committed, rollback unconfirmed": "the migration transaction was not committed; nobody saw it "
                "end (the server rolls it back when it notices).",
                "outcome unknown": f"{Verdict.COMMIT_UNKNOWN.words} (the run report names the transaction).",
                "committed": f"the migration is {rb.committed_verdict.words}; exit 0, as the run report records."
                if rb is not None and rb.unreplicated else "the migration is committed; exit 0, as the run report "
                "records."}.get(outcome)
        if left is None and not cancelled:  # a cancelled restore's own line names the signal and what it left
            left = "nothing was left open."
        if left is not None:
            lines.append(f"aami-tui: {reason}: {left}")
    elif app.quit_rolled_back and outcome == "rolled back":
        lines.append("aami-tui: quit: the migration transaction was rolled back; nothing it applied is kept.")
    if cancelled:
        lines.append(f"aami-tui: restore {r.error}")
        if r.report:
            lines.append(f"Restore report: {r.report}")
    if outcome == "committed" and rb.unreplicated:  # last, as headless apply's line: the failover risk outlives the
        from aami_tui.core.runbook.commit import unreplicated_line  # screen that showed it (fresh9 F1)

        lines.append(unreplicated_line(rb.unreplicated))
    return lines


def signal_exit_code(app: AamiApp, sig: int) -> int:
    """A signal ends the console with 128 + the signal, unless what the console leaves is committed: the migration
    run (even by the COMMIT the signal came during, even on the primary only) or the restore the signal cancelled
    (its COMMIT had reached the server). Then 0, the code the run's or the restore's report records and headless
    exits with: a committed change is never reported as a failure (fresh9 F1, F5)."""
    rb, r = app.runbook, app.restore_result
    if rb is not None and rb.outcome.value == "committed":
        return rb.committed_verdict.exit_code
    if r is not None and r.signals and r.outcome == "restored":
        return 0
    return 128 + sig


def env_lines_at_exit(app: AamiApp) -> list[str]:
    """After a COMMIT, or in development mode once the ten tables are there: the Config Server's DB_* lines,
    printed to the shell when the console has closed (never the password).

    Only the committed state counts: the dashboard shows what an open transaction sees (its preview), so a run
    applied and then rolled back at quit must not print "ready" settings for a database that has no tables;
    the app's ``last_result`` is only ever read outside any transaction of ours. An outcome that is unknown
    prints nothing. On the demo's throwaway server (removed as the console closes) one sentence says so instead
    of settings that point at nothing."""
    from aami_tui.core.status import config_server_env

    rb = app.runbook
    outcome = rb.outcome.value if rb is not None else None
    committed = outcome == "committed" and rb.server
    ready = app.options.dev and outcome != "outcome unknown" \
        and app.dashboard.server is not None and app.last_result is not None and app.last_result.ok
    if not (committed or ready):
        return []
    if app.embedded is not None:
        return ["The Config Server's settings are not printed: this demo's embedded server was stopped and "
                "removed as the console closed (run `aami-tui init` against a server that stays)."]
    lines = config_server_env(rb.server if committed else app.dashboard.server)
    return ["The Config Server's settings (DB_PASSWORD is never shown: set it yourself):", *lines]


def say(line: str) -> None:
    """Print to the shell after the console closed; a terminal that went away (SIGHUP) is not an error."""
    try:
        print(line, flush=True)
    except (OSError, ValueError):
        with contextlib.suppress(Exception):
            sys.stdout = None  # nothing more can reach it; keep the interpreter from complaining at exit


def _exit_watchdog(driver, code: int, after: float = EXIT_WATCHDOG):
    """A signal always ends the console. The rollback and the report are done by now; if Textual's own shutdown
    has not ended the process `after` seconds later (seen under load: exit requested, the loop idle, the process
    alive), the terminal is given back and the process ends with the signal's code."""
    import os
    import threading

    def fire() -> None:
        with contextlib.suppress(Exception):  # straight to the terminal: Textual's writer thread may be gone
            os.write(sys.__stderr__.fileno(), b"\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?25h\x1b[?1049l")
        with contextlib.suppress(Exception):
            import termios

            termios.tcsetattr(driver.fileno, termios.TCSANOW, driver.attrs_before)
        os._exit(code)

    t = threading.Timer(after, fire)
    t.daemon = True
    t.start()
    return t
