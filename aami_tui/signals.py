"""How every headless command (apply, restore, plan, rehearse, init) ends on a signal.

SIGINT (Ctrl+C), SIGTERM (a scheduler or ``kill``) and SIGHUP (the terminal or SSH session went away) all cancel
the command's task, so its cleanup runs as for Ctrl+C: the transaction rolled back or the restore cancelled, a
scratch database dropped, the closing sentence and report written, exit 130. Only the first signal counts: a
second one while the command is ending (two Ctrl+C, or SIGHUP then the shell's SIGTERM) changes nothing, so the
cleanup is never cut short half-way (each of its steps is bounded by its own timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def cancel_on_signals(task: asyncio.Task | None = None, before: Callable[[int], None] | None = None
                      ) -> Iterator[list[int]]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP cancel ``task`` (the current task by default), once.
    Yields the list of signals received (empty, or the one that cancelled). ``before(sig)`` runs first (a runbook
    told why it ends, so that what the cancel leaves says so). Call it inside the running loop."""
    loop = asyncio.get_running_loop()
    task = task or asyncio.current_task()
    got: list[int] = []

    def on_signal(sig: int) -> None:
        if not got:
            got.append(sig)
            if before is not None:
                with contextlib.suppress(Exception):  # never in the way of the cancel itself
                    before(sig)
            task.cancel()

    for sig in ENDING:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield got
    finally:
        for sig in ENDING:
            loop.remove_signal_handler(sig)
