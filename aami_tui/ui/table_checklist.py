"""The live checklist of the ten required tables (present / missing / drifted) plus extras in public."""

from __future__ import annotations

import time

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from aami_tui.core.schema import REQUIRED_TABLES, ValidationResult
from aami_tui.ui import fmt
from aami_tui.ui.line import Line
from aami_tui.ui.scrollbars import KeptScrollBars

FRESH_SECONDS = 10.0  # younger data reads "refreshed just now"

ICONS = {"present": ("✓", "green"), "missing": ("✗", "red"), "drifted": ("≠", "yellow"), "extra": ("+", "cyan")}


def _labels(names) -> list[Text]:
    """Column labels as Text: a str label goes through Rich's markup parser, whose first use imports Rich's table of
    emoji codes (~6 ms of the console's first frame)."""
    return [Text(n) for n in names]


class _OneRender:
    """A component's styles during one render (ChecklistTable.render_lines): its Rich style computed once."""

    __slots__ = ("styles", "rich_style")

    def __init__(self, styles) -> None:
        self.styles = styles
        self.rich_style = styles.rich_style

    def __getattr__(self, name: str):
        return getattr(self.styles, name)


class ChecklistTable(KeptScrollBars, DataTable):
    """Textual's DataTable, drawing the checklist the short way (the console's first frame: the table was ~8 ms of
    its CPU, README Performance), with exactly Textual's output:
    - Every cell here is one line of Text in one style, no wider than its column: Textual renders each through
      Rich's padding, wrapping and cropping (about half of the table's render); this builds the same segments
      directly (a test compares them with Textual's, cell by cell). Any other cell (a cursor or hover style, a fixed
      or label column, a row taller than one line, spans, control characters, a cell wider than its column) goes
      Textual's way.
    - Textual computes the table's Rich style (walking its ancestors' backgrounds), its background colours and the
      header's style again for every line it draws; within one render they cannot change, so they are computed
      once per render."""

    _render_memo: dict | None = None

    def render_lines(self, crop):
        self._render_memo = {}
        try:
            return super().render_lines(crop)
        finally:
            self._render_memo = None

    @property
    def rich_style(self) -> Style:
        memo = self._render_memo
        if memo is None:
            return super().rich_style
        if "rich_style" not in memo:
            memo["rich_style"] = super().rich_style
        return memo["rich_style"]

    @property
    def background_colors(self):
        memo = self._render_memo
        if memo is None:
            return super().background_colors
        if "background_colors" not in memo:
            memo["background_colors"] = super().background_colors
        return memo["background_colors"]

    def get_component_styles(self, *names: str):
        memo = self._render_memo
        if memo is None:
            return super().get_component_styles(*names)
        if names not in memo:
            memo[names] = _OneRender(super().get_component_styles(*names))
        return memo[names]

    def _update_dimensions(self, new_rows) -> None:
        """Textual measures new rows' columns when the table is next idle, and keeps the rows and cells it drew
        before under keys that hold no width. Drawn meanwhile (the dashboard coming back from under the help, resized
        there), they stayed at their labels' widths ("targe" for targets and target_groups, no ✓ column) until the
        next resize. New rows measured: what was drawn at the old widths is drawn again."""
        super()._update_dimensions(new_rows)
        if new_rows:
            self._update_count += 1  # in every row, line and cell cache key
            self.refresh()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool = False,
                     hover: bool = False):
        fast = self._fast_cell(row_index, column_index, base_style, width, cursor, hover)
        if fast is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return fast

    def _fast_cell(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool,
                   hover: bool):
        if (column_index < 0 or self.fixed_rows or self.fixed_columns or self.cell_padding != 1
                or (cursor and self.show_cursor) or (hover and self.show_cursor and self._show_hover_cursor)):
            return None
        header = row_index == -1
        row_key = self._header_row_key if header else self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor, self._update_count,
               self._pseudo_class_state)  # Textual's own cache and key (DataTable._render_cell)
        cache = self._cell_render_cache
        if key in cache:
            return cache[key]
        if (self.header_height if header else self.rows[row_key].height) != 1:
            return None
        row_label, row_cells = self._get_row_renderables(row_index)
        cell = row_cells[column_index]
        if type(cell) is not Text or cell.spans or not isinstance(cell.style, str):
            return None
        plain = cell.plain
        if plain != plain.strip() or not (plain.isprintable() or not plain):
            return None
        fill = width - 2 - cell_len(plain)
        if fill < 0:
            return None
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index})
        text = Segment(plain, pre + self.app.console.get_style(cell.style)) if plain and cell.style else Segment(plain, pre)
        pad = Segment(" ", pre)
        line = [pad, text, Segment(" " * fill, pre), pad] if fill else [pad, text, pad]
        cache[key] = lines = [line]
        return lines


class TableChecklist(Vertical):
    """Shows a ValidationResult; call ``show(result, uncommitted=...)``."""

    DEFAULT_CSS = ""

    def __init__(self, *, compact: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel checklist")
        self.compact = compact
        self.result: ValidationResult | None = None
        self.refreshed_at: float | None = None
        self.uncommitted = False
        self.error: str | None = None
        self.note: str | None = None
        self.stale = False  # uncommitted, but refreshes are paused while a step runs: what the transaction SAW
        self._shown_header: Text | None = None
        self._shown_rows: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Line("Required tables: waiting for the first refresh…", id="checklist-header")
        table = ChecklistTable(id="checklist-table", cursor_type="row", zebra_stripes=False, show_cursor=False)
        yield table

    def on_mount(self) -> None:
        self.border_title = "Tables"
        t = self.query_one(DataTable)
        t.add_columns(*_labels(("", "table", "rows") if self.compact else ("", "table", "est. rows", "size", "note")))
        self.set_interval(1.0, self._tick)

    # Below this content width the five columns do not fit (80×24): the note, the one that says what is wrong,
    # would scroll out of sight. There the third column is the note when there is one, else the rows.
    NARROW_BELOW = 50

    @property
    def narrow(self) -> bool:
        return not self.compact and 0 < self.content_size.width < self.NARROW_BELOW

    def on_resize(self, event) -> None:
        want = ("", "table", "rows/note") if self.narrow else (
            ("", "table", "rows") if self.compact else ("", "table", "est. rows", "size", "note"))
        t = self.query_one(DataTable)
        if tuple(str(c.label) for c in t.columns.values()) != want:
            t.clear(columns=True)
            t.add_columns(*_labels(want))
            self._shown_rows = None
            if self.result is not None:
                self._fill(self.result)

    def _tick(self) -> None:
        self._header()

    def _header(self) -> None:
        text = self._header_text()
        if text == self._shown_header:  # unchanged: no repaint (the 1 s tick is free while nothing changes)
            return
        lines = str(text).count("\n")
        same_height = self._shown_header is not None and str(self._shown_header).count("\n") == lines
        self._shown_header = text
        # (a header of as many lines that wraps to more, as a long error in a narrow panel, is laid out too: Line)
        self.query_one("#checklist-header", Static).update(text, layout=None if same_height else True)

    def _age(self) -> str:
        """How fresh the data is. Within a few refreshes it reads "just now", so that an idle screen does not
        repaint every second to count seconds; a refresh that is late shows its age."""
        if self.refreshed_at is not None and time.time() - self.refreshed_at < FRESH_SECONDS:
            return "just now"
        return fmt.ago(self.refreshed_at)

    def _header_text(self) -> Text:
        if self.error:
            return Text.assemble(("⚠ ", "bold red"), (self.error, "red"),
                                 ("\n" + f"last good refresh {self._age()}" if self.refreshed_at else "", "dim"))
        if self.result is None:
            return Text("Required tables: waiting for the first refresh…")
        n = len(self.result.present)
        style = "bold green" if n == len(REQUIRED_TABLES) else ("bold red" if n == 0 else "bold yellow")
        parts: list = [(f"{n} / {len(REQUIRED_TABLES)} present", style)]
        if self.result.drifted:
            parts += ["  ", (f"{len(self.result.drifted)} drifted", "bold yellow")]
        if self.uncommitted:  # (paused: a step has changed it since, perhaps; fresh8 R2)
            parts += ["  ", (" UNCOMMITTED: what the open transaction saw before this step " if self.stale else
                             " UNCOMMITTED: what the open transaction sees ", "bold black on yellow")]
        parts += ["\n", (f"refreshed {self._age()}", "dim")]
        if self.note:
            parts += [(f" · {self.note}", "dim italic")]
        return Text.assemble(*parts)

    def set_note(self, note: str | None, *, stale: bool = False) -> None:
        """A short remark under the header, e.g. that refreshes pause while a statement runs (``stale``: what it
        shows is from before the step that runs)."""
        self.note, self.stale = note, stale
        self._header()

    def show_error(self, message: str) -> None:
        self.error = message
        self._header()

    def clear_error(self) -> None:
        """What it said went wrong no longer holds (the server answered): the last good refresh, with its age."""
        self.error = None
        self._header()

    def show(self, result: ValidationResult, *, uncommitted: bool = False) -> None:
        self.result, self.uncommitted, self.error, self.note, self.stale = result, uncommitted, None, None, False
        self.refreshed_at = time.time()
        self.set_class(uncommitted, "-uncommitted")
        self._fill(result)
        self._header()

    def _fill(self, result: ValidationResult) -> None:
        rows = self._rows(result)
        if self.narrow:  # icon, name, and the note if any (what is wrong) or else the rows
            rows = tuple((r[0], r[1], r[4] if r[4][0] else r[2]) if len(r) == 5 else r for r in rows)
        if rows == self._shown_rows:  # idle refreshes repaint nothing
            return
        old, self._shown_rows = self._shown_rows, rows
        t = self.query_one(DataTable)
        if old is not None and len(old) == len(rows) == t.row_count and all(
                len(a) == len(b) == len(t.columns) for a, b in zip(old, rows, strict=True)):
            # The same rows: the cells that changed, in place. Cleared and filled again, the table went back to its
            # top under a DBA reading its end, and its size to nothing and back (a layout of the screen and its
            # scrollbars, twice: ~20 ms of the event loop at each step's end, a key waiting). Column widths grow
            # to fit as they do when rows are added (clear() keeps them too).
            for y, (new, was) in enumerate(zip(rows, old, strict=True)):
                for x, (cell, before) in enumerate(zip(new, was, strict=True)):
                    if cell != before:
                        t.update_cell_at(Coordinate(y, x), Text(cell[0], style=cell[1]), update_width=True)
            return
        t.clear()
        for row in rows:
            t.add_row(*(Text(text, style=style) for text, style in row))

    def _rows(self, result: ValidationResult) -> tuple:
        """The table's cells as (text, style) pairs: comparable, so that an unchanged result costs nothing."""
        out = []
        for ts in result.tables:
            status = ts.status if ts.required else "extra"
            icon, color = ICONS[status]
            note = ""
            if ts.drifted:
                bits = []
                if ts.missing_columns:
                    bits.append("lacks " + ", ".join(ts.missing_columns[:3]) + ("…" if len(ts.missing_columns) > 3 else ""))
                if ts.unexpected_columns:
                    bits.append("has " + ", ".join(ts.unexpected_columns[:3])
                                + ("…" if len(ts.unexpected_columns) > 3 else ""))
                note = "; ".join(bits)
            elif ts.locked:
                h = ts.locked_by[0]
                # the pid first: a narrow note column cuts the end ("locked by pi" lost whose lock it is)
                note = f"pid {h.pid} locks it ({h.application or h.user or '?'})"
                color = "yellow"
            elif not ts.required:
                note = "not required (extra)"
            elif not ts.present:
                note = "missing"
            cells = [(icon, f"bold {color}"), (ts.name, "" if ts.required else "italic"),
                     (fmt.rows(ts.est_rows) if ts.present else "", "")]
            if not self.compact:
                cells += [(fmt.size(ts.size_bytes) if ts.present else "", ""),
                          (note, color if status != "present" or ts.locked else "dim")]
            out.append(tuple(cells))
        if result.extra_truncated:  # the server sends at most EXTRA_LIMIT names; the count is exact
            cells = [(ICONS["extra"][0], f"bold {ICONS['extra'][1]}"),
                     (f"… and {result.extra_count - len(result.extra):,} more", "italic dim"), ("", "")]
            if not self.compact:
                cells += [("", ""), ("", "")]
            out.append(tuple(cells))
        return tuple(out)
