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


class EngineStreamMsg(Message):
    """The engine's stream (log lines, statements done, progress: ``STREAM``), consecutive events in order, in one
    message: a 10,000-statement file sent 10,000 messages and the console fell seconds behind the apply; then a
    message per batch of statements, its log line and its progress repainted the screen 20-60 times a second
    while keys waited. The listener appends to ``events`` until another kind of event comes (which is posted after
    this one), or until the screen has taken them (``taken``); it posts one at most every few tenths of a second
    (``posted``). Every other kind of event has a message of its own, at once."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[ev.Event] = []
        self.taken = False
        self.posted = False

    def take(self) -> list[ev.Event]:
        self.taken = True
        return self.events


STREAM = (ev.Log, ev.Progress, ev.StatementDone)


class TxChangedMsg(RunbookMessage):
    event: ev.TxChanged


class ChecksDoneMsg(RunbookMessage):
    event: ev.ChecksDone


class ReportWrittenMsg(RunbookMessage):
    event: ev.ReportWritten


class OutcomeRecheckedMsg(RunbookMessage):
    event: ev.OutcomeRechecked


class CommitWaitAskedMsg(RunbookMessage):
    event: ev.CommitWaitAsked


class CommitWaitClosedMsg(RunbookMessage):
    event: ev.CommitWaitClosed


class SilenceMsg(RunbookMessage):
    event: ev.Silence


MESSAGE_FOR: dict[type, type[RunbookMessage]] = {
    ev.StepChanged: StepChangedMsg, ev.Log: LogMsg, ev.Progress: ProgressMsg, ev.StatementDone: StatementDoneMsg,
    ev.TxChanged: TxChangedMsg, ev.ChecksDone: ChecksDoneMsg, ev.ReportWritten: ReportWrittenMsg,
    ev.OutcomeRechecked: OutcomeRecheckedMsg, ev.CommitWaitAsked: CommitWaitAskedMsg,
    ev.CommitWaitClosed: CommitWaitClosedMsg, ev.Silence: SilenceMsg,
}


def message_for(event: ev.Event) -> RunbookMessage:
    return MESSAGE_FOR[type(event)](event)
