"""Restore from a backup (the guide's rollback procedure): pick, confirm by typing, restore, re-verify."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from aami_tui.core import pgtools
from aami_tui.core import restore as core_restore
from aami_tui.ui import fmt
from aami_tui.ui.confirm import ConfirmModal


class RestoreScreen(Screen):
    BINDINGS = [
        Binding("r", "restore", "Restore selected"),
        Binding("escape,d", "back", "Back"),
        Binding("f5", "reload", "Reload list"),
        Binding("x", "drop_extra", "Drop tables not in backup"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__(id="restore")
        self.entries: list[pgtools.BackupEntry] = []
        self.checks: dict[str, bool | None] = {}
        self.result: core_restore.RestoreResult | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="restore-head", classes="panel")
        yield DataTable(id="restore-table", cursor_type="row", zebra_stripes=True)
        yield ProgressBar(total=1, id="restore-progress", show_eta=False)
        yield Static("", id="restore-status", classes="panel")
        yield Static("", id="small-warning")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "aami-tui · restore"
        self.call_after_refresh(self.app.size_check)
        s = self.app.settings
        self.sub_title = fmt.redact(s.display())
        self.query_one("#restore-head", Static).update(Text.assemble(
            ("Restore from a backup", "bold"), f" into database {s.dbname} on {s.host}:{s.port}\n",
            ("pg_restore --clean --if-exists --exit-on-error --single-transaction: all or nothing. ", "dim"),
            ("Backups are listed newest first; ", "dim"), ("enter", "bold"), (" or ", "dim"), ("r", "bold"),
            (" restores the selected one.", "dim")))
        t = self.query_one(DataTable)
        t.add_columns("backup", "from", "size", "age", "sha256")
        self.action_reload()

    def action_reload(self) -> None:
        self.entries = pgtools.list_backups(self.app.options.backup_dir, self.app.settings.dbname)
        t = self.query_one(DataTable)
        t.clear()
        for e in self.entries:
            t.add_row(e.path.name, fmt.redact(e.source_label()), fmt.size(e.size), fmt.ago(e.mtime), "checking…",
                      key=str(e.path))
        status = self.query_one("#restore-status", Static)
        if not self.entries:
            status.update(f"No backups of {self.app.settings.dbname} in {self.app.options.backup_dir.resolve()}. "
                          "The runbook's Backup step makes one.")
        else:
            status.update(f"{len(self.entries)} backup(s) in {self.app.options.backup_dir.resolve()}.")
            t.focus()
        self.verify_checksums()

    @work(thread=True, exclusive=True, group="sha", exit_on_error=False)
    def verify_checksums(self) -> None:
        for e in list(self.entries):
            ok = e.matches()
            self.app.call_from_thread(self._set_check, e, ok)

    def _set_check(self, e: pgtools.BackupEntry, ok: bool | None) -> None:
        self.checks[str(e.path)] = ok
        label = {True: Text("✓ matches", style="green"), False: Text("✗ CHANGED", style="bold red"),
                 None: Text("? none recorded", style="yellow")}[ok]
        try:
            self.query_one(DataTable).update_cell(str(e.path), self.query_one(DataTable).ordered_columns[4].key,
                                                  label)
        except Exception:
            pass

    def _selected(self) -> pgtools.BackupEntry | None:
        t = self.query_one(DataTable)
        if not self.entries or t.cursor_row is None or t.cursor_row >= len(self.entries):
            return None
        return self.entries[t.cursor_row]

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

        def go(ok: bool | None) -> None:
            if ok:
                self.run_restore(e)

        self.app.push_screen(ConfirmModal(
            f"Restore {e.path.name}?",
            f"This replaces the objects in database {db} with the ones in the backup taken {fmt.ago(e.mtime)} "
            f"({fmt.size(e.size)}). Changes made since then to those objects are lost. It runs in one transaction."
            + warning,
            confirm="Restore", require_text=db, id="restore-modal"), go)

    @work(exclusive=True, group="restore", exit_on_error=False)
    async def run_restore(self, e: pgtools.BackupEntry) -> None:
        status = self.query_one("#restore-status", Static)
        bar = self.query_one("#restore-progress", ProgressBar)
        status.update(f"Restoring {e.path.name}…")
        t0 = time.time()

        def progress(done: int, total: int, what: str) -> None:
            bar.update(total=max(total, done, 1), progress=done)
            status.update(f"Restoring {e.path.name}: {done} / {total} entries · {what[:80]}")

        try:
            r = await core_restore.restore(self.app.settings, e, reports_dir=self.app.options.reports_dir,
                                           progress=progress)
        except (core_restore.RestoreError, pgtools.ToolError) as exc:
            status.update(Text(str(exc), style="bold red"))
            self.notify(str(exc), title="Restore failed", severity="error", timeout=12)
            return
        except Exception as exc:  # never a traceback on screen
            status.update(Text(f"Restore failed: {exc}", style="bold red"))
            return
        self.result = r
        bar.update(total=max(r.toc_entries, 1), progress=max(r.toc_entries, 1))
        text = Text.assemble(("✓ Restored ", "bold green"), e.path.name,
                             f" in {fmt.elapsed(time.time() - t0)} ({r.toc_entries} entries)\n")
        for line in r.lines:
            text.append(f"  {line}\n", style="green" if line.startswith("✓") else "")
        if r.not_in_backup:
            text.append(f"\n{len(r.not_in_backup)} table(s) exist that are not in this backup (created after it; "
                        f"--clean leaves them): {', '.join(r.not_in_backup)}.\nPress ", style="yellow")
            text.append("x", style="bold")
            text.append(" to drop them too (asks first) and get the database exactly as backed up.\n", style="yellow")
        text.append(f"Report: {r.report}\n", style="bold")
        status.update(text)
        self.app.dashboard.action_refresh_now()

    def action_drop_extra(self) -> None:
        r = self.result
        if not r or not r.not_in_backup:
            self.notify("Nothing to drop: this is for tables a restore reports as not in the backup.",
                        severity="information")
            return
        names = list(r.not_in_backup)
        db = self.app.settings.dbname

        def go(ok: bool | None) -> None:
            if ok:
                self.run_worker(self._drop(names), group="restore", exclusive=True, exit_on_error=False)

        self.app.push_screen(ConfirmModal(
            f"Drop {len(names)} table(s) not in the backup?", f"DROP TABLE … CASCADE in one transaction on {db}: "
            + ", ".join(names), confirm="Drop tables", require_text=db, id="drop-modal"), go)

    async def _drop(self, names: list[str]) -> None:
        try:
            await core_restore.drop_tables(self.app.settings, names)
        except Exception as exc:
            self.notify(f"Drop failed: {exc}", severity="error")
            return
        self.result.not_in_backup = []
        self.query_one("#restore-status", Static).update(Text(f"Dropped {len(names)} table(s): the database "
                                                              "now matches the backup.", style="bold green"))
        self.app.dashboard.action_refresh_now()

    def action_back(self) -> None:
        if any(w.group == "restore" and w.is_running for w in self.workers):
            self.notify("A restore is running; it finishes or fails as a whole.", severity="warning")
            return
        self.app.pop_screen()
