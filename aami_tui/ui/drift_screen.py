"""Drift view: what differs from the migration file, classified, and the plan that repairs it (core/plan.py).

Once written, the plan file is shown beside the differences (ui/plan_file_panel.py): linted as ``aami-tui lint``
does, with the parts that still need a person. r runs it through the runbook (the same engine and screen as the
shipped migration, recorded as a drift plan in the report); l re-reads it after the operator edited it outside."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from aami_tui.core import migration
from aami_tui.core import plan as core_plan
from aami_tui.ui import fmt
from aami_tui.ui.footer import KeyFooter
from aami_tui.ui.plan_file_panel import PlanFilePanel

PLAN_TIMEOUT = 180.0  # the reference may need the embedded server to start
# re-reading and linting the plan file (helper process for pglast and squawk, a connection for the live facts)
REVIEW_TIMEOUT = core_plan.REVIEW_PARSE_TIMEOUT * 2 + core_plan.REVIEW_QUERY_TIMEOUT * 2 + 30
KIND_LABEL = {"safe": Text("safe", style="green"), "person": Text("needs a person", style="bold yellow"),
              "note": Text("note", style="dim")}


class DriftScreen(Screen):
    # r and l are shown once a plan file exists; before that, their hidden twins say why nothing happens.
    BINDINGS = [
        Binding("p,f5", "make_plan", "Compare"),
        Binding("w", "write_plan", "Write plan"),
        Binding("r", "run_plan", "Run plan"),
        Binding("l", "reread", "Re-read"),
        Binding("e", "edit_plan", "Edit"),
        Binding("escape,d", "back", "Back"),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
        Binding("r", "refused('run_plan')", show=False),
        Binding("l", "refused('reread')", show=False),
        Binding("e", "refused('edit_plan')", show=False),
    ]
    NEEDS_FILE = frozenset({"run_plan", "reread", "edit_plan"})

    def __init__(self) -> None:
        super().__init__(id="drift")
        self.plan: core_plan.Plan | None = None
        self.written: str | None = None  # the plan file this view shows (the last one written in this console)
        self.review: core_plan.FileReview | None = None  # that file as last read and linted

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="drift-head", classes="panel"):
            yield Static("", id="drift-title")
            yield Static("", id="drift-about")
        with Horizontal(id="drift-main"):
            with Vertical(id="drift-left"):
                yield DataTable(id="drift-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="drift-detail", classes="panel")
            yield PlanFilePanel(id="plan-file")
        yield Static("", id="drift-status", classes="panel")
        yield Static("", id="small-warning")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "aami-tui · drift"
        self.call_after_refresh(self.app.size_check)
        s = self.app.settings
        # The console started on a drift plan (--migration-file plan.sql): the plan is the file shown beside the
        # differences, and the reference is the shipped migration (a plan's ALTERs build nothing on their own).
        self.reference = self.app.migration_path
        if _is_drift_plan(self.app.migration_path):
            self.reference = migration.resolve_migration_path()
            if self.app.plan_file is None:
                self.app.plan_file = self.app.migration_path
        self.sub_title = fmt.redact(s.display())
        self._title()
        self.set_interval(1.0, self._follow_tx)  # a runbook's transaction, open under this view, changes state
        self.query_one("#drift-about", Static).update(Text.assemble(
            ("The migration runs in a scratch database (dropped afterwards) and the two catalogs are compared. ",
             "dim"), ("Safe", "green"), (" parts become SQL; parts that ", "dim"), ("need a person", "yellow"),
            (" become a commented skeleton that apply refuses until edited.", "dim")))
        t = self.query_one("#drift-table", DataTable)
        t.add_columns("class", "part", "what")
        self.query_one("#drift-table").border_title = "Differences"
        panel = self.query_one(PlanFilePanel)
        panel.display = False
        if self.app.plan_file is not None:  # the plan written earlier in this console: shown, re-read
            self.written = str(self.app.plan_file)
            self.action_reread()
        self.action_make_plan()

    def _title(self) -> None:
        """The title; while a runbook's transaction is open (or its end is not known), its state first, as the
        runbook's bar and the inspection pane show it (fmt.tx_badge), and where to end it."""
        s = self.app.settings
        rb = self.app.runbook
        self._tx = rb.tx if rb is not None else None
        title = Text.assemble(("Drift", "bold"), fmt.redact(f": database {s.dbname} on {s.host}:{s.port} against "
                                                            f"{self.reference.name}"))
        if rb is not None and rb.tx.name not in ("NONE", "COMMITTED", "ROLLED_BACK"):
            title = Text.assemble(fmt.tx_badge(rb.tx), "  ", title, "\n", (
                "COMMIT or ROLLBACK it in the runbook (escape, then r).", "bold yellow"))
            # The comparison reads the database on connections of its own: an open transaction's work is not in it.
            if rb.tx_open:
                title.append("\nThis view compares the committed database: what the open transaction has done is "
                             "invisible to it until COMMIT (then it compares again by itself).", style="yellow")
            elif rb.tx.name == "UNKNOWN":
                title.append("\nThe COMMIT's outcome is unknown: this comparison may be out of date (it compares "
                             "again by itself once the runbook knows it committed).", style="yellow")
        self.query_one("#drift-title", Static).update(title)

    def _commit_mark(self) -> tuple[int, bool] | None:
        """Which runbook, and whether it has committed: a comparison made under another mark than the current
        committed one is out of date (a COMMIT changed the database since)."""
        rb = self.app.runbook
        return None if rb is None else (id(rb), rb.outcome.value == "committed")

    def _compare_again_if_committed_since(self) -> bool:
        """A COMMIT landed after the last comparison started (one in flight when the view opened, or the plan run
        from here): that comparison is out of date; compare again (once)."""
        now = self._commit_mark()
        if now is None or not now[1] or now == getattr(self, "_compared_mark", now):
            return False
        if any(w.group == "plan" and w.is_running for w in self.workers):
            return False  # the next tick, once this comparison has ended (its mark is the old one)
        self.action_make_plan()
        return True

    def _follow_tx(self) -> None:
        if self.app.gone(self):  # a late tick while the console closes
            return
        rb = self.app.runbook
        if (rb.tx if rb is not None else None) != self._tx:
            self._title()
        if self.is_current:  # (under the runbook: when it comes back, on_screen_resume)
            self._compare_again_if_committed_since()

    def on_screen_resume(self) -> None:
        """Back from the runbook that ran the plan: once it is committed, compare again (the proof: no
        differences left, or what is)."""
        self._title()
        self._compare_again_if_committed_since()

    def action_make_plan(self) -> None:
        if any(w.group == "plan" and w.is_running for w in self.workers):
            self.notify("Already comparing.", severity="information")
            return
        self.query_one("#drift-table", DataTable).clear()
        self.query_one("#drift-detail", Static).update("")
        self.query_one("#drift-status", Static).update("Building the reference and comparing…")
        self._compared_mark = self._commit_mark()  # (a COMMIT after this makes the comparison out of date)
        self.run_plan()

    @work(exclusive=True, group="plan", exit_on_error=False)
    async def run_plan(self) -> None:
        status = self.query_one("#drift-status", Static)

        def say(msg: str) -> None:
            status.update(msg)

        try:
            p = await asyncio.wait_for(core_plan.make_plan(self.app.settings, self.reference, say=say),
                                       PLAN_TIMEOUT)
        except TimeoutError:
            status.update(Text(f"No result within {PLAN_TIMEOUT:.0f} s; nothing was changed. Press p to try again.",
                               style="bold red"))
            return
        except Exception as exc:  # PlanError, ConnectError, anything: one line, never a traceback
            status.update(Text(f"Cannot make the plan: {exc}", style="bold red"))
            return
        self.plan = p
        self.query_one(PlanFilePanel).set_spent(self.spent)
        self.refresh_bindings()  # r leaves the footer once the plan is spent (and comes back with new drift)
        t = self.query_one("#drift-table", DataTable)
        t.clear()
        for n, item in enumerate(p.items):
            t.add_row(KIND_LABEL[item.kind], item.what, item.title, key=str(n))
        status.update(self._status_text())
        if p.items:
            t.focus()
            self._show(0)

    def _status_text(self) -> Text:
        text = self._status_text_raw()
        return Text(fmt.redact(text.plain), style="bold") if fmt.STABLE else text

    def _status_text_raw(self) -> Text:
        p = self.plan
        assert p is not None
        if not p.differences:
            text = Text("✓ ", style="bold green")
            text.append(p.summary(), style="bold green")
            text.append("\nNothing to repair: the normal runbook (r on the dashboard) is all it takes.")
            if self.written:
                text.append(f"\n{Path(self.written).name} has done its work: r does not run it again.")
            return text
        text = Text(p.summary(), style="bold")
        text.append(f"\nReference: {p.reference}.")
        if self.written:
            text.append("\ne edits the plan file in $EDITOR (or edit it elsewhere, then l re-reads and re-lints it); r "
                        "runs it through the runbook (backup, BEGIN, apply, verify, COMMIT).")
        else:
            text.append("\nPress w to write the plan file (0600): it is linted here, and r runs it through the "
                        "runbook once no part waits for a person.")
        return text

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "drift-table":
            return
        if event.row_key is not None and event.row_key.value is not None:
            self._show(int(event.row_key.value))

    def _show(self, n: int) -> None:
        if not self.plan or n >= len(self.plan.items):
            return
        item = self.plan.items[n]
        text = Text(item.title + "\n", style="bold")
        for f in item.facts:
            text.append(f"Facts: {f}\n")
        if item.kind == "safe":
            for s in item.sql:
                text.append(s + "\n", style="green")
        elif item.kind == "person":
            text.append("Suggestions (commented out in the plan; a person decides):\n", style="yellow")
            for s in item.sql:
                text.append(f"  {s}\n")
        self.query_one("#drift-detail", Static).update(text)

    def action_write_plan(self) -> None:
        p = self.plan
        if p is None:
            self.notify("No plan yet: the comparison is still running, or it failed.", severity="warning")
            return
        if not p.differences:
            self.notify("No differences: there is no plan to write.", severity="information")
            return
        if any(w.group == "write" and w.is_running for w in self.workers):
            self.notify("The plan file is being written…", severity="information")
            return
        self.write_plan(p)

    @work(exclusive=True, group="write", exit_on_error=False)
    async def write_plan(self, p) -> None:
        """The plan file (0600, in the reports folder), rendered and written in a thread: never on the event loop
        (a slow disk's write and fsync would hold every key)."""
        from aami_tui.core import files

        reports, dbname = self.app.options.reports_dir, self.app.settings.dbname

        def write() -> Path:
            d = files.private_dir(reports)
            path = d / f"plan_{files.safe_name(dbname)}_{datetime.now():%Y%m%d_%H%M%S}.sql"
            files.write_private(path, p.render(path.name))
            return path

        try:
            path = await files.in_thread(write)
        except files.FileError as exc:  # already one sentence naming the folder
            self.notify(f"Cannot write the plan: {exc}", severity="error", timeout=10)
            return
        except OSError as exc:
            self.notify(f"Cannot write the plan into {reports}: {exc.strerror or exc}"
                        f"{f' ({exc.filename})' if exc.filename else ''}.", severity="error", timeout=10)
            return
        except Exception as exc:  # never a traceback on screen
            self.notify(f"Cannot write the plan: {type(exc).__name__}: {exc}", severity="error", timeout=10)
            return
        self.written = str(path)
        self.app.plan_file = path
        self.review = None
        self.query_one("#drift-status", Static).update(self._status_text())
        self.notify(f"Plan written to {path}.", title="Drift plan", timeout=8)
        self.action_reread()

    # ---- the plan file: re-read, lint, run ------------------------------------------------------------------
    @property
    def spent(self) -> bool:
        """A plan file is written and the last comparison found no differences: nothing is left for it to do
        (the plan already committed, or the database was repaired another way)."""
        return self.written is not None and self.plan is not None and not self.plan.differences

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "refused":
            return not self.check_action(str(parameters[0]), ())
        if action == "run_plan":
            return self.written is not None and not self.spent
        if action in self.NEEDS_FILE:
            return self.written is not None
        return True

    def action_refused(self, action: str) -> None:
        getattr(self, f"action_{action}")()

    def _reviewing(self) -> bool:
        return any(w.group == "review" and w.is_running for w in self.workers)

    def action_reread(self) -> None:
        if self.written is None:
            self.notify("No plan file yet: press w to write one (it is linted here).", severity="information")
            return
        self.query_one(PlanFilePanel).busy(Path(self.written))
        self.add_class("-has-file")
        self.refresh_bindings()  # r and l join the footer
        self.review_file(False)

    def action_run_plan(self) -> None:
        if self.written is None:
            self.notify("No plan file yet: press w to write it and review it first; r then runs it through the "
                        "runbook.", severity="warning", timeout=8)
            return
        if self.spent:
            self.notify(f"No differences remain: {Path(self.written).name} has nothing left to repair, so r does not "
                        "run it again (p compares again).", severity="information", timeout=8)
            return
        if self._reviewing():
            self.notify("Still reading the plan file: r again in a moment.", severity="information")
            return
        self.review_file(True)  # the file as it is now (edited outside?), then the runbook or one sentence

    def action_edit_plan(self) -> None:
        """The plan file in $VISUAL / $EDITOR, the console suspended meanwhile; re-read and re-linted after."""
        if self.written is None:
            self.notify("No plan file yet: press w to write one.", severity="information")
            return
        name = Path(self.written).name
        rb = self.app.runbook
        if rb is not None and (rb.tx_open or rb.running):
            # the console must keep watching an open transaction: no editor in its terminal now
            self.notify(f"A runbook transaction is open or a step is running: edit {name} in another terminal, "
                        "then press l.", severity="warning", timeout=10)
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or shutil.which("editor") or shutil.which("vi")
        if not editor:
            self.notify(f"No editor found: set $EDITOR, or edit {self.written} in another terminal, then press l.",
                        severity="warning", timeout=10)
            return
        # Resolved before the console hands the terminal over: a missing program is said here, in one sentence.
        try:
            argv = shlex.split(editor)
        except ValueError:
            argv = []
        found = shutil.which(argv[0]) if argv else None
        if found is None:
            where = "$VISUAL" if os.environ.get("VISUAL") else "$EDITOR" if os.environ.get("EDITOR") else "the system"
            self.notify(f"The editor {argv[0] if argv else editor!r} (from {where}) is not installed or not on PATH: "
                        f"set $EDITOR, or edit {self.written} in another terminal, then press l.",
                        severity="error", timeout=10)
            return
        failure: BaseException | None = None
        try:
            # An interactive editor owns the terminal until it exits: the console is suspended (Textual's own
            # pattern), so this is the one subprocess not run in a worker; nothing else of ours is in flight.
            # Nothing may leave the block by an exception: Textual's suspend() resumes the console only when the
            # block ends normally (an editor that fails to start would leave a blank, deaf terminal).
            with self.app.suspend():
                try:
                    subprocess.call([found, *argv[1:], self.written])
                except BaseException as exc:  # noqa: BLE001 - re-raised below once the console is back
                    failure = exc
        except SuspendNotSupported:
            self.notify(f"This terminal cannot hand over to an editor: edit {self.written} in another terminal, "
                        "then press l.", severity="warning", timeout=10)
            return
        if failure is not None and not isinstance(failure, Exception):
            raise failure
        if failure is not None:
            self.notify(f"The editor {editor!r} could not be started ({getattr(failure, 'strerror', None) or failure}):"
                        f" edit {name} in another terminal, then press l.", severity="error", timeout=10)
            return
        self.action_reread()

    @work(exclusive=True, group="review", exit_on_error=False)
    async def review_file(self, then_run: bool) -> None:
        path = Path(self.written)
        try:
            review = await asyncio.wait_for(core_plan.review_file(self.app.settings, path), REVIEW_TIMEOUT)
        except TimeoutError:
            review = core_plan.FileReview(path, refusal=f"{path.name} could not be read and linted within "
                                          f"{REVIEW_TIMEOUT:.0f} s.")
        except Exception as exc:  # anything: one line, never a traceback
            review = core_plan.FileReview(path, refusal=f"{path.name} could not be read and linted: {exc}")
        if str(path) != self.written:
            return  # a newer file was written meanwhile
        changed = self.review is not None and review.sha256 != self.review.sha256
        self.review = review
        if review.runnable:  # what the toasts said about an older version of the file ("cannot run yet") is over
            self.app.clear_notifications()
        self.query_one(PlanFilePanel).show(review)
        if changed and not then_run:
            self.notify(f"{path.name} changed on disk: re-linted.", timeout=5)
        if not then_run:
            return
        if not review.runnable:
            self.notify(review.refusal_sentence(), title="The runbook refuses this plan", severity="error",
                        timeout=15)
            return
        why = await self.app.open_runbook(path)
        if why:
            self.notify(why, severity="warning", timeout=12)

    def palette_commands(self):
        """This view's keys in the command palette (the app adds them while the view is shown)."""
        from textual.app import SystemCommand

        yield SystemCommand("Drift: compare again", "Build the reference again and compare (p)", self.action_make_plan)
        yield SystemCommand("Drift: write the plan file", "Write the repair plan (0600) and lint it here (w)",
                            self.action_write_plan)
        if self.written is not None and not self.spent:
            yield SystemCommand("Drift: run the plan", "Run the plan file through the runbook: backup, BEGIN, apply, "
                                "verify, COMMIT; refused while a part needs a person (r)", self.action_run_plan)
        if self.written is not None:
            yield SystemCommand("Drift: re-read the plan", "Re-read and re-lint the plan file after editing it "
                                "outside (l)", self.action_reread)
            yield SystemCommand("Drift: edit the plan", "Open the plan file in $VISUAL / $EDITOR; re-read when it "
                                "closes (e)", self.action_edit_plan)

    def action_back(self) -> None:
        self.app.pop_screen()


def _is_drift_plan(path: Path) -> bool:
    """Whether the file starts with a drift plan's header (its first line; a small read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return migration.drift_plan_header(f.read(4096)) is not None
    except OSError:
        return False
