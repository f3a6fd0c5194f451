"""Restore from a backup (the guide's rollback procedure): pick, confirm by typing, restore, re-verify."""

from __future__ import annotations

import asyncio
import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from aami_tui.core import pgtools
from aami_tui.core import restore as core_restore
from aami_tui.core.files import safe_name
from aami_tui.core.restore import same_source
from aami_tui.core.words import plural
from aami_tui.ui import fmt
from aami_tui.ui.confirm import ConfirmModal
from aami_tui.ui.footer import KeyFooter
from aami_tui.ui.tool_progress import ToolProgress


class RestoreScreen(Screen):
    BINDINGS = [
        Binding("r", "restore", "Restore"),
        Binding("escape", "back", "Back"),
        Binding("escape", "cancel_restore", "Cancel restore"),  # (only while a restore runs; Back is refused then)
        Binding("d", "dashboard", "Dashboard"),
        Binding("f5", "reload", "Reload"),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    AGE_REFRESH = 5.0  # seconds between updates of the age column

    def __init__(self) -> None:
        super().__init__(id="restore")
        self.entries: list[pgtools.BackupEntry] = []
        self.hidden = 0  # backups of this database name taken from another server or database
        self.checks: dict[str, bool | None] = {}
        self.result: core_restore.RestoreResult | None = None
        self._short_names = False  # the file column shows names without their common head (a narrow terminal)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="restore-head", classes="panel")
        yield DataTable(id="restore-table", cursor_type="row", zebra_stripes=True)
        yield ToolProgress(total=1, id="restore-progress", show_eta=False)
        with VerticalScroll(id="restore-status-box", classes="panel"):  # scrolls when taller (80x24, after a restore)
            yield Static("", id="restore-status")
        yield Static("", id="small-warning")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "aami-tui · restore"
        self.call_after_refresh(self.app.size_check)
        s = self.app.settings
        self.sub_title = fmt.redact(s.display())
        self.query_one("#restore-head", Static).update(Text.assemble(
            ("Restore from a backup", "bold"), f" into {s.dbname} on {s.host}:{s.port}\n",
            (f"Only backups of {s.dbname} taken from this server are listed, newest first. ", "dim"),
            ("enter", "bold"), (" or ", "dim"), ("r", "bold"), (" restores the selected one in one transaction: what was "
                                                           "created after the backup is dropped, then pg_restore "
                                                           "--clean; all or nothing.", "dim")))
        t = self.query_one(DataTable)
        # What a backup is picked by comes first, so that a narrow terminal cuts the file name, not these.
        t.add_column("age", key="age")
        t.add_column("size", key="size")
        t.add_column("sha256", key="sha256")
        t.add_column("from", key="from")
        t.add_column("file", key="file")
        self.action_reload()
        self.set_interval(self.AGE_REFRESH, self._tick_ages)

    def _tick_ages(self) -> None:
        if self.app.gone(self):  # a late tick: the screen was closed, or the console is closing
            return
        t = self.query_one(DataTable)
        for e in self.entries:
            try:
                t.update_cell(str(e.path), "age", self._age_label(e), update_width=True)
            except Exception:  # a row gone meanwhile: the next reload drops it
                pass

    @staticmethod
    def _age_label(e: pgtools.BackupEntry) -> Text | str:
        """How long ago the backup was taken (the metadata's taken_at); '? ' in yellow when that is not recorded
        and the age comes from the file's name or, worse, its mtime (the status line says which)."""
        return fmt.ago(e.taken) if e.taken_from == "recorded" else Text(f"? {fmt.ago(e.taken)}", "yellow")

    def action_reload(self) -> None:
        s = self.app.settings
        found = pgtools.list_backups(self.app.options.backup_dir, s.dbname)
        self.entries = [e for e in found if same_source(e, s.host, s.port, s.dbname) is not False]
        self.hidden = len(found) - len(self.entries)
        self.checks = {}
        self._fill()
        self.refresh_bindings()  # r Restore only while a backup is listed
        status = self.query_one("#restore-status", Static)
        where = fmt.redact(str(self.app.options.backup_dir.resolve()))
        hidden = (f" {self.hidden} backup{'s' if self.hidden != 1 else ''} of another server or database "
                  f"{'is' if self.hidden == 1 else 'are'} not listed." if self.hidden else "")
        if not self.entries:
            status.update(f"No backups of {s.dbname} on {s.host}:{s.port} in {where}.{hidden} The runbook's Backup "
                          "step makes one.")
        else:
            status.update(f"{plural(len(self.entries), 'backup')} in {where}.{hidden}{self._age_note()}")
            self.query_one(DataTable).focus()
        self.verify_checksums()

    def _age_note(self) -> str:
        """Why an age is marked '?': no metadata beside that backup says when it was taken."""
        froms = {e.taken_from for e in self.entries} - {"recorded"}
        if not froms:
            return ""
        return ("\n? age: no metadata beside the backup records when it was taken; the age is "
                + " or ".join(w for f, w in (("file name", "the time in its file name"),
                                             ("file time", "its file's modification time (a copy changes it: the "
                                                           "backup may be older)")) if f in froms) + ".")

    def _fill(self) -> None:
        """The table's rows from self.entries (and the checksums verified so far)."""
        s = self.app.settings
        self._short_names = self.app.size.width < 100
        t = self.query_one(DataTable)
        cursor = t.cursor_row
        t.clear(columns=False)
        for e in self.entries:
            src = "this server" if same_source(e, s.host, s.port, s.dbname) else Text("? not recorded", "yellow")
            ok = self.checks.get(str(e.path), "checking")
            t.add_row(self._age_label(e), fmt.size(e.size), "checking…" if ok == "checking" else self._check_label(ok),
                      src, self._file_label(e), key=str(e.path))
        if self.entries and cursor:
            t.move_cursor(row=min(cursor, len(self.entries) - 1))

    def _file_label(self, e: pgtools.BackupEntry) -> str:
        """The file's name; below 100 columns without the ``backup_<database>`` every listed name starts with (the
        head says which database), so that the part that tells two backups apart, the time to the second, is
        never cut: ``…_20261128_013519.dump``."""
        prefix = f"backup_{safe_name(self.app.settings.dbname)}_"
        name = e.path.name
        return f"…_{name[len(prefix):]}" if self._short_names and name.startswith(prefix) else name

    def on_resize(self) -> None:
        if self.entries and (self.app.size.width < 100) != self._short_names:
            self._fill()

    @work(thread=True, exclusive=True, group="sha", exit_on_error=False)
    def verify_checksums(self) -> None:
        for e in list(self.entries):
            ok = e.matches()
            self.app.call_from_thread(self._set_check, e, ok)

    def _set_check(self, e: pgtools.BackupEntry, ok: bool | None) -> None:
        self.checks[str(e.path)] = ok
        try:
            self.query_one(DataTable).update_cell(str(e.path), "sha256", self._check_label(ok), update_width=True)
        except Exception:
            pass

    @staticmethod
    def _check_label(ok: bool | None) -> Text:
        return {True: Text("✓ matches", style="green"), False: Text("✗ CHANGED", style="bold red"),
                None: Text("? none recorded", style="yellow")}[ok]

    def _selected(self) -> pgtools.BackupEntry | None:
        t = self.query_one(DataTable)
        if not self.entries or t.cursor_row is None or t.cursor_row >= len(self.entries):
            return None
        return self.entries[t.cursor_row]

    def _restoring(self) -> bool:
        return any(w.group == "restore" and w.is_running for w in self.workers)

    def check_action(self, action: str, parameters) -> bool | None:
        """While a restore runs the footer offers none of the keys it would refuse (it finishes or fails as a
        whole): no Restore, Back, Dashboard or Reload."""
        if action in ("restore", "back", "dashboard", "reload") and self._restoring():
            return False
        if action == "restore" and not self.entries:  # nothing listed: nothing to restore (the status says why)
            return False
        if action == "cancel_restore":
            return self._restoring()
        return True

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "restore":
            self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_restore()

    def action_restore(self) -> None:
        if any(w.group == "restore" and w.is_running for w in self.workers):
            self.notify("A restore is running.", severity="warning")
            return
        e = self._selected()
        if e is None:
            self.notify("No backup selected.", severity="warning")
            return
        if self.checks.get(str(e.path)) is False:
            self.notify(f"{e.path.name} changed since it was verified (sha256 mismatch): not restoring it.",
                        severity="error", timeout=10)
            return
        db = self.app.settings.dbname
        s = self.app.settings
        warning = ""
        src = e.source or {}
        if not src:
            warning = "\n\n⚠ Where this backup came from is not recorded (no .json beside it)."
        elif (str(src.get("host")), str(src.get("port")), src.get("dbname")) != (s.host, s.port, db):
            warning = (f"\n\n⚠ This backup was taken from {e.source_label()}, not from {db} on {s.host}:{s.port}. "
                       "Restore it here only if that is what you mean.")

        self.query_one("#restore-status", Static).update(f"Reading what {e.path.name} holds…")
        self.run_worker(self._confirm(e, warning), group="prepare", exclusive=True, exit_on_error=False)

    async def _holds(self, e: pgtools.BackupEntry) -> tuple[str, core_restore.RestorePlan | None]:
        """What the restore would do, said before the operator confirms: the backup's tables against the live
        database's, and what the one transaction drops (computed from the backup's TOC and the catalog)."""
        s = self.app.settings
        try:
            plan = await asyncio.wait_for(core_restore.plan(s, e, reports_dir=self.app.options.reports_dir),
                                          s.connect_timeout + 60)
        except core_restore.RestoreError:
            raise  # the backup cannot be restored here (unreadable archive...): refused before confirming
        except Exception as exc:  # the restore itself re-checks all of this; say what could not be read
            return f"(Could not compare the backup with the live database before confirming: {exc}.)", None
        return plan.summary(), plan

    async def _confirm(self, e: pgtools.BackupEntry, warning: str) -> None:
        db = self.app.settings.dbname
        status = self.query_one("#restore-status", Static)
        try:
            holds, plan = await self._holds(e)
        except core_restore.RestoreError as exc:
            status.update(Text(str(exc), style="bold red"))
            self.notify(str(exc), title="Restore refused", severity="error", timeout=12)
            return
        if plan is not None and plan.refusal:  # a migration holds the lock: said now, not after the name is typed
            status.update(Text(plan.refusal, style="bold red"))
            self.notify(plan.refusal, title="Restore refused", severity="error", timeout=12)
            return
        status.update(f"{plural(len(self.entries), 'backup')}.")

        def go(ok: bool | None) -> None:
            if ok:
                self.run_restore(e, plan)

        self.app.push_screen(ConfirmModal(
            f"Restore {e.path.name}?",
            # the warning first: at 80x24 the list below it scrolls, and the DBA must read this without scrolling
            f"This replaces the objects in database {db} with the ones in the backup taken {self._when(e)} "
            f"({fmt.size(e.size)}). Changes made since then are lost. It runs in one "
            f"transaction: all or nothing.\n\n{self._standby(plan)}{self._lock_holders(plan)}{holds}" + warning,
            confirm="Restore", require_text=db, id="restore-modal", note=self._drops_note(plan)), go)

    @staticmethod
    def _standby(plan: core_restore.RestorePlan | None) -> str:
        """Apply's pre-flight warning: the restore's COMMIT will wait for a synchronous standby not connected."""
        c = plan.standby if plan is not None else None
        return f"⚠ {c.name}: {c.detail}.\n\n" if c is not None and not c.ok else ""

    @staticmethod
    def _lock_holders(plan: core_restore.RestorePlan | None) -> str:
        """Sessions holding locks here now: the restore will wait for them (its progress names them then too)."""
        if plan is None or not plan.lock_holders:
            return ""
        return (f"⚠ Another session holds locks in this database now: {'; '.join(plan.lock_holders)}. The restore "
                f"will wait for it, up to lock_timeout ({core_restore.DEFAULT_LOCK_TIMEOUT:g}s), then roll back: "
                "nothing changed.\n\n")

    @staticmethod
    def _drops_note(plan: core_restore.RestorePlan | None) -> Text | None:
        """What the transaction drops, above the field whatever the terminal's size (fresh6 F4: at 80x24 the
        body's paragraph that lists it was below the fold, and the name was typed without seeing it)."""
        if plan is None:
            return None
        # every ⚠ of the body in one short line here too (fresh9 F2: at 80x24 the standby's and the lock holder's
        # were below the fold while the Drops line showed); the body, scrolled, says them in full
        lines = []
        c = plan.standby
        if c is not None and not c.ok:
            lines.append("⚠ Synchronous standby not connected: the restore's COMMIT will hang (text above).")
        if plan.lock_holders:
            pids = ", ".join(h.split(",", 1)[0].removeprefix("pid ") for h in plan.lock_holders)
            lines.append(f"⚠ pid {pids} holds locks here: the restore waits up to "
                         f"{core_restore.DEFAULT_LOCK_TIMEOUT:g}s, then rolls back (text above).")
        note = Text("\n".join(lines), style="bold yellow")
        brief = plan.drops_brief()
        if brief is not None:
            head, names = brief
            note.append(("\n" if lines else "") + f"⚠ {head}{':' if names else '.'}", style="bold yellow")
            if names:
                note.append(f"\n{names}", style="yellow")
        return note if note.plain else None

    @staticmethod
    def _when(e: pgtools.BackupEntry) -> str:
        """'7 minutes ago (2026-11-28 04:22:46)', and where that time comes from when it was not recorded."""
        caveat = e.taken_caveat()
        return f"{fmt.ago(e.taken)} ({fmt.date_time(e.taken)}{', ' + caveat if caveat else ''})"

    @work(exclusive=True, group="restore", exit_on_error=False)
    async def run_restore(self, e: pgtools.BackupEntry, plan: core_restore.RestorePlan | None = None) -> None:
        status = self.query_one("#restore-status", Static)
        bar = self.query_one("#restore-progress", ToolProgress)
        status.update(f"Restoring {e.path.name}…")
        t0 = time.time()

        by_bytes = []  # set once the server's counters report (backups whose metadata weighs the tables)
        step = [0, 1, ""]  # the TOC step the server has reached: done, about, its words
        waiting = [""]  # core.restore's words while psql waits for another session's lock ("" once it is over)

        def steps_line() -> None:
            done, total, what = step
            bar.show(done, total, bool(waiting[0]))  # waiting: no percentage, the line names the holder
            line = Text(f"Restoring {e.path.name}: step {done} of about {total} · {what[:80]}" if what else
                        f"Restoring {e.path.name}…")
            if waiting[0]:  # fresh8 R3: headless's 'restore: waiting 5s for a lock on … held by pid …' line
                line.append(f"\n⏳ {waiting[0]}", style="bold yellow")
            status.update(line)

        def progress(done: int, total: int, what: str) -> None:
            step[:] = [done, total, what]
            if not by_bytes:
                steps_line()

        # at every poll of any backup's restore (a weighed one's on_progress too); also the COMMIT waiting on SyncRep
        def on_wait(words: str) -> None:
            if words or waiting[0]:
                waiting[0] = words
                if not by_bytes:
                    steps_line()  # the seconds waited, or the wait is over

        def on_progress(p) -> None:  # COPY, then index builds: MiB, %, rate, ETA
            by_bytes[:] = [True]
            bar.show(p.done, p.total, bool(p.waiting))  # waiting: no percentage, the line names the holder
            status.update(f"Restoring {e.path.name}: {p.line().removeprefix('restore: ')}")

        r = self.app.restore_result = core_restore.RestoreResult(e.path)  # (its stage and, after a cancel, words)
        try:
            r = await core_restore.restore(self.app.settings, e, reports_dir=self.app.options.reports_dir,
                                           progress=progress, expected=plan, on_progress=on_progress, result=r,
                                           on_wait=on_wait)
        except asyncio.CancelledError:  # escape, confirmed (or the console closing): stopped, and what it left
            if self.is_attached:
                if r.outcome != "restored":  # rolled back (or unknown): no bar as if part of it were in
                    bar.show(0, 1)
                mark = "⚠ Restore " if r.primary_only else "✗ Restore "  # committed on the primary only
                status.update(Text.assemble((mark, "bold yellow"), (r.error or "cancelled", "yellow"),
                                            f"\nReport: {r.report}" if r.report else ""))
                self.app.dashboard.action_refresh_now()
            raise
        except (core_restore.RestoreError, pgtools.ToolError) as exc:
            bar.show(0, 1)  # rolled back, refused: nothing of it is in (fresh9 F7: it stayed ~36 % filled)
            report = getattr(exc, "result", None) and exc.result.report
            status.update(Text(str(exc) + (f"\nReport: {report}" if report else ""), style="bold red"))
            refused = getattr(exc, "result", None) is not None and exc.result.outcome == "refused"
            self.notify(str(exc), title="Restore refused" if refused else "Restore failed", severity="error",
                        timeout=12)
            return
        except Exception as exc:  # never a traceback on screen
            bar.show(0, 1)
            status.update(Text(f"Restore failed: {exc}", style="bold red"))
            return
        self.result = r
        bar.show(max(r.toc_entries, 1), max(r.toc_entries, 1))
        text = Text.assemble(("✓ Restored ", "bold green"), e.path.name,
                             f" in {fmt.elapsed(time.time() - t0)} ({r.toc_entries} TOC entries, as the backup "
                             "counted them)\n")
        if r.dropped:
            text.append(f"Dropped (created after the backup): {', '.join(r.dropped)}\n")
        if r.primary_only:  # another session ended its COMMIT's wait for the synchronous standby (fresh8 R1)
            text.append(f"⚠ COMMIT: {r.primary_only}\n", style="bold yellow")
        for line in r.words():
            text.append(f"  {line}\n", style="green" if line.startswith("✓") else "")
        text.append(f"Report: {r.report}\n", style="bold")
        status.update(text)
        self.app.dashboard.action_refresh_now()

    def action_cancel_restore(self) -> None:
        """escape while a restore runs: ask first (what the database is left as, what to do next), then stop it."""
        running = [w for w in self.workers if w.group == "restore" and w.is_running]
        if not running:
            return
        if all(w.is_cancelled for w in running):
            self.notify("The restore is being cancelled…", severity="information")
            return
        db = self.app.settings.dbname

        def go(ok: bool | None) -> None:
            still = [w for w in self.workers if w.group == "restore" and w.is_running]
            if not ok:
                return
            if not still:
                self.notify("The restore had already ended (see below).", severity="information")
                return
            for w in still:
                w.cancel()
            self.query_one("#restore-status", Static).update(Text(
                "Cancelling: stopping pg_restore and psql, ending psql's session on the server…", style="yellow"))

        self.app.push_screen(ConfirmModal("Cancel the restore?", core_restore.cancel_prompt(db, self.app.restore_result),
                                          confirm="Cancel the restore", cancel="Keep restoring",
                                          id="restore-cancel-modal", q_quits=True), go)

    def action_back(self) -> None:
        if any(w.group == "restore" and w.is_running for w in self.workers):
            self.notify("A restore is running; it finishes or fails as a whole.", severity="warning")
            return
        self.app.pop_screen()

    def action_dashboard(self) -> None:
        """d: the dashboard (the console's first screen), also when this screen was opened over another."""
        if any(w.group == "restore" and w.is_running for w in self.workers):
            self.notify("A restore is running; it finishes or fails as a whole.", severity="warning")
            return
        for _ in range(len(self.app.screen_stack) - 1):
            self.app.pop_screen()
