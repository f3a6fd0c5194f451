"""Connection panel: server, database, user, privileges, standby, pg tools, migration file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from aami_tui.core.status import ServerStatus
from aami_tui.ui import fmt

if TYPE_CHECKING:  # pgtools loads when the tools are looked up, the migration module with the file: after the
    # first frame
    from aami_tui.core.migration import MigrationFile
    from aami_tui.core.pgtools import Tool


def _yes(ok: bool, yes: str = "yes", no: str = "no") -> Text:
    return Text(yes if ok else no, style="green" if ok else "bold red")


def cell(*parts: str | tuple[str, str] | Text) -> Text:
    """Text.assemble with every plain part passed through fmt.redact (stable snapshots)."""
    out = []
    for p in parts:
        if isinstance(p, tuple):
            out.append((fmt.redact(p[0]), p[1]))
        elif isinstance(p, str):
            out.append(fmt.redact(p))
        else:
            out.append(p)
    return Text.assemble(*out)


class ConnectionPanel(Static):
    def __init__(self, id: str | None = None) -> None:
        super().__init__("Connecting…", id=id, classes="panel")
        self.status: ServerStatus | None = None
        self.tools: dict[str, Tool | str] = {}
        self.migration: MigrationFile | str | None = None
        self.target = ""
        self.error: str | None = None
        self.held = False  # True: not rendered yet (the dashboard's first frame does not paint it), see render_panel

    def on_mount(self) -> None:
        self.border_title = "Connection"

    def render_panel(self) -> None:
        """Render, unless nothing it shows changed since the last time (idle refreshes cost nothing), or while held
        (its facts are kept; it renders when released)."""
        if self.held:
            return
        from aami_tui.core.migration import MigrationFile

        m = self.migration
        key = (self.error, self.status, tuple(sorted(self.tools.items())), self.target,
               m.sha256 if isinstance(m, MigrationFile) else m, fmt.STABLE)
        if key == getattr(self, "_shown", None):
            return
        self._shown = key
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold", no_wrap=True)
        t.add_column()
        if self.error:
            t.add_row(Text("Status", style="bold red"), cell((self.error, "red")))
            t.add_row("Target", cell(self.target))
        s = self.status
        if s:
            t.add_row("Server", cell(f"PostgreSQL {s.server_version} at {s.where}"))
            t.add_row("Database", cell(s.dbname, (f"  ({fmt.size(s.db_size_bytes)})", "dim")))
            t.add_row("User", cell(s.user, (" (superuser)" if s.is_superuser else "", "dim")))
            t.add_row("May CREATE", cell("database ", _yes(s.can_create_in_db), " · schema public ",
                                         _yes(s.can_create_in_public)))
            t.add_row("Role", _yes(not s.in_recovery, "primary (read-write)", "READ-ONLY STANDBY"))
        elif not self.error:
            t.add_row("Target", cell(self.target))
        for name in ("pg_dump", "pg_restore"):
            tool = self.tools.get(name)
            if tool and not isinstance(tool, str):  # a Tool (a string says why there is none)
                t.add_row(name, cell(tool.version, (f"  {tool.origin}", "dim")))
            elif tool:
                t.add_row(name, cell((str(tool), "bold red")))
        m = self.migration
        if isinstance(m, MigrationFile):
            t.add_row("Migration", cell(m.name, (f"  {fmt.size(m.size)} · {len(m.statements)} statements", "dim")))
            t.add_row("sha256", Text(m.sha256[:32] + "…", style="dim"))
        elif m:
            t.add_row(Text("Migration", style="bold red"), cell((str(m), "red")))
        self.update(t)
