"""A tool's progress bar (pg_dump, pg_restore): what the server has confirmed, and nothing it has not.

While the tool's session waits for another session's lock the bar is marked ``waiting`` (screens.tcss: drawn in
the warning colour, no percentage): the line beside it names the holder and what ends the wait. The bar keeps
what was done, but never shows a percentage as if the work moved.
"""

from __future__ import annotations

from textual.widgets import ProgressBar


class ToolProgress(ProgressBar):
    def show(self, done: int, total: int, waiting: bool = False) -> None:
        self.update(total=max(total, done, 1), progress=done)
        self.set_class(waiting, "waiting")

    @property
    def waiting(self) -> bool:
        return self.has_class("waiting")
