"""The plan file beside the Drift view's differences: its fingerprint, the parts that still need a person (they
make apply and the runbook refuse it) and its lint (core/plan.py ``review_file``: the same lint as
``aami-tui lint``)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from aami_tui.core import plan as core_plan
from aami_tui.core.words import plural
from aami_tui.ui import fmt

SEVERITY = {"person": Text("person", style="bold yellow"), "error": Text("error", style="bold red"),
            "warning": Text("warning", style="yellow"), "info": Text("info", style="dim")}
ORDER = {"person": 0, "error": 1, "warning": 2, "info": 3}


class PlanFilePanel(Vertical):
    """Shows one ``FileReview``; the Drift screen asks for it and hands it over."""

    def __init__(self, **kw) -> None:
        super().__init__(classes="panel", **kw)
        self.review: core_plan.FileReview | None = None
        self.rows: list[tuple[str, int, str, str]] = []  # (severity, line, rule or part, sentence)
        self.spent = False  # the last comparison found no differences: the plan has nothing left to do

    def compose(self) -> ComposeResult:
        yield Static("", id="plan-file-head")
        yield DataTable(id="plan-lint", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.border_title = "Plan file"
        self._width = 0

    def on_resize(self) -> None:
        if self.review is not None:
            self.query_one("#plan-file-head", Static).update(head_text(self.review, self._narrow(), self.spent))
        if self.rows and self._text_width() != self._width:
            self._fill()

    def _narrow(self) -> bool:
        return self.app.size.width < 100

    def _text_width(self) -> int:
        # the finding column wraps in what is left of the table's width (two narrow columns, cell padding,
        # the vertical scrollbar)
        return max(24, self.query_one(DataTable).size.width - (8 + 2) - (5 + 2) - 2 - 2)

    def busy(self, path, what: str = "Reading and linting") -> None:
        self.display = True
        self.query_one("#plan-file-head", Static).update(Text.assemble(
            (f"{path.name}\n", "bold"), (f"{what} (squawk, live facts)…", "dim")))

    def show(self, review: core_plan.FileReview) -> None:
        self.review = review
        self.display = True
        self.rows = rows_of(review)
        self.query_one("#plan-file-head", Static).update(head_text(review, self._narrow(), self.spent))
        self._fill()

    def set_spent(self, spent: bool) -> None:
        """The Drift view's last comparison found no differences (or some again): the head says so."""
        if spent != self.spent:
            self.spent = spent
            if self.review is not None:
                self.query_one("#plan-file-head", Static).update(head_text(self.review, self._narrow(), spent))

    def _fill(self) -> None:
        """One row per finding: severity, line, then the rule (or part) and its whole sentence, wrapped."""
        t = self.query_one(DataTable)
        self._width = width = self._text_width()
        t.clear(columns=True)
        t.add_column("", width=8)
        t.add_column("line", width=5)
        t.add_column("rule or part: finding", width=width)
        for n, (sev, line, rule, sentence) in enumerate(self.rows):
            t.add_row(SEVERITY.get(sev, Text(sev)), str(line),
                      Text.assemble((rule, "bold"), "\n", fmt.redact(sentence)), key=str(n), height=None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # the Drift screen's own table listens for its rows


def rows_of(review: core_plan.FileReview) -> list[tuple[str, int, str, str]]:
    """The parts for a person first, then the lint's findings, errors before warnings before info."""
    out = [("person", line, part, title) for line, part, title in review.unedited]
    res = review.lint
    for f in (res.findings if res is not None else ()):
        if f.rule == "refused-by-runbook" and review.unedited:
            continue  # the same refusal, listed above part by part
        out.append((f.severity, f.line, f.rule, f.message))
    out.sort(key=lambda r: (ORDER.get(r[0], 9), r[1]))
    return out


def head_text(review: core_plan.FileReview, narrow: bool = False, spent: bool = False) -> Text:
    text = Text()
    text.append(f"{fmt.redact(str(review.path))}", style="bold")
    if review.sha256:
        text.append(fmt.redact(f" · sha256 {review.sha256[:12]}… · {review.size:,} bytes"
                               + ("" if narrow else f" · read {fmt.clock_time(review.read_at)}")), style="dim")
    text.append("\n")
    if spent:
        text.append("✓ Spent: nothing left to repair (the last comparison found no differences); r does not run "
                    "it again.\n", style="bold green")
    elif review.runnable:
        text.append("✓ No part waits for a person: r runs it through the runbook.\n", style="bold green")
    elif review.unedited:
        n = len(review.unedited)
        text.append(f"✗ {plural(n, 'part')} need{'' if n > 1 else 's'} a person: r refuses the file until each is "
                    "edited.\n", style="bold yellow")
    else:
        text.append(f"✗ {fmt.redact(review.refusal or 'It cannot be read.')}\n", style="bold red")
    res = review.lint
    if res is not None:
        # the refusal of the parts for a person is counted once, above, not as a lint error
        errors = [f for f in res.errors if not (f.rule == "refused-by-runbook" and review.unedited)]
        info = len(res.findings) - len(res.errors) - len(res.warnings)
        text.append(f"Lint: {plural(len(errors), 'error')}, {plural(len(res.warnings), 'warning')}, {info} info "
                    f"({res.squawk or 'squawk not run'}" + ("" if res.connected else ", offline") + ")")
        if res.suppressed:
            text.append(f"; {sum(res.suppressed.values())} not applicable to tables the file creates", style="dim")
        if res.satisfied and not narrow:
            text.append(f"; {plural(len(res.satisfied), 'rule')} satisfied by the runbook", style="dim")
    if review.problem:
        text.append(f"\n{fmt.redact(review.problem)}", style="yellow")
    return text
