"""Typed messages the workers post to the screens."""

from __future__ import annotations

from textual.message import Message

from aami_tui.core.runbook import Event


class RunbookEvent(Message):
    """An event from the runbook engine (step change, log line, progress...)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event
