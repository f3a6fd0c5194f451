"""Connection panel: server, database, user, privileges, standby, pg tools, migration file."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from aami_tui.core.migration import MigrationFile
from aami_tui.core.pgtools import Tool
from aami_tui.core.status import ServerStatus
from aami_tui.ui import fmt


def _yes(ok: bool, yes: str = "yes", no: str = "no") -> Text:
    return Text(yes if ok else no, style="green" if ok else "bold red")


class ConnectionPanel(Static):
    def __init__(self, id: str | None = None) -> None:
        super().__init__("Connecting…", id=id, classes="panel")
        self.status: ServerStatus | None = None
        self.tools: dict[str, Tool | str] = {}
        self.migration: MigrationFile | str | None = None
        self.target = ""
        self.error: str | None = None

    def on_mount(self) -> None:
        self.border_title = "Connection"

    def render_panel(self) -> None:
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold", no_wrap=True)
        t.add_column()
        if self.error:
            t.add_row(Text("Status", style="bold red"), Text(self.error, style="red"))
            t.add_row("Target", self.target)
        s = self.status
        if s:
            t.add_row("Server", f"PostgreSQL {s.server_version} at {s.where}" if not fmt.STABLE
                      else f"PostgreSQL {s.server_version} at {s.host}")
            t.add_row("Database", Text.assemble(s.dbname, (f"  ({fmt.size(s.db_size_bytes)})"
                                                           if not fmt.STABLE else "", "dim")))
            t.add_row("User", Text.assemble(s.user, (" (superuser)" if s.is_superuser else "", "dim")))
            t.add_row("May CREATE", Text.assemble("database: ", _yes(s.can_create_in_db), "  schema public: ",
                                                  _yes(s.can_create_in_public)))
            t.add_row("Role", _yes(not s.in_recovery, "primary (read-write)", "READ-ONLY STANDBY"))
        elif not self.error:
            t.add_row("Target", self.target)
        for name in ("pg_dump", "pg_restore"):
            tool = self.tools.get(name)
            if isinstance(tool, Tool):
                t.add_row(name, Text.assemble(tool.version, (f"  {tool.origin}", "dim")))
            elif tool:
                t.add_row(name, Text(str(tool), style="bold red"))
        m = self.migration
        if isinstance(m, MigrationFile):
            t.add_row("Migration", Text.assemble(m.name, (f"  {fmt.size(m.size)}, {len(m.statements)} statements",
                                                          "dim")))
            t.add_row("sha256", Text(m.sha256[:32] + "…", style="dim"))
        elif m:
            t.add_row(Text("Migration", style="bold red"), Text(str(m), style="red"))
        self.update(t)
