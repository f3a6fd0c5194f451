"""Typed Textual messages: one per engine event kind (``core/runbook/events.py``)."""

from __future__ import annotations

from textual.message import Message

from aami_tui.core.runbook import events as ev


class RunbookMessage(Message):
    """Base of the engine's messages; ``event`` is the frozen engine event."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event


class StepChangedMsg(RunbookMessage):
    event: ev.StepChanged


class LogMsg(RunbookMessage):
    event: ev.Log


class ProgressMsg(RunbookMessage):
    event: ev.Progress


class StatementDoneMsg(RunbookMessage):
    event: ev.StatementDone


class StatementsDoneMsg(Message):
    """A run of consecutive StatementDone events, in one message (a 10,000-statement file sent 10,000 messages,
    and the console fell seconds behind the apply). The listener appends to ``events`` until another kind of
    event comes, or until the screen has taken them (``taken``)."""

    def __init__(self, first: ev.StatementDone) -> None:
        super().__init__()
        self.events: list[ev.StatementDone] = [first]
        self.taken = False

    def take(self) -> list[ev.StatementDone]:
        self.taken = True
        return self.events


class TxChangedMsg(RunbookMessage):
    event: ev.TxChanged


class ChecksDoneMsg(RunbookMessage):
    event: ev.ChecksDone


class ReportWrittenMsg(RunbookMessage):
    event: ev.ReportWritten


class OutcomeRecheckedMsg(RunbookMessage):
    event: ev.OutcomeRechecked


MESSAGE_FOR: dict[type, type[RunbookMessage]] = {
    ev.StepChanged: StepChangedMsg, ev.Log: LogMsg, ev.Progress: ProgressMsg, ev.StatementDone: StatementDoneMsg,
    ev.TxChanged: TxChangedMsg, ev.ChecksDone: ChecksDoneMsg, ev.ReportWritten: ReportWrittenMsg,
    ev.OutcomeRechecked: OutcomeRecheckedMsg,
}


def message_for(event: ev.Event) -> RunbookMessage:
    return MESSAGE_FOR[type(event)](event)
