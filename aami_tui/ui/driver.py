"""The terminal driver: Textual's own, made safe for a terminal that goes away.

When the terminal window or SSH session closes, reads and writes on it fail with EIO. Textual's writer thread
then dies and the next screen update blocks the event loop for good (its queue fills), so the console could
neither roll back nor write its report. Here output to a dead terminal is dropped, and a failed read ends the
console the way SIGHUP does (report written, transaction rolled back).

It also keeps Python's cyclic garbage collector from running while a key press is on its way to the screen
(``KeyGcHold``): a collection that starts then holds the key's frame for its whole length.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
import time

from textual import events
from textual.drivers.linux_driver import LinuxDriver


class KeyGcHold:
    """From the moment a key is read until the frame that shows its effect has been written to the terminal,
    Python's cyclic garbage collector waits; it runs (as often as before) right after.

    A collection holds the interpreter for its whole length, 40-280 ms at worst in a console running a big file,
    and it starts whenever enough objects have been made: rendering a key's frame makes many, so a collection
    often started inside the very frame a person was waiting for (the most of a key press's p95, even with nothing
    running; README, Performance). The hold ends after the first frame written once the key's action has run, or
    after ``MAX_HOLD`` seconds whatever happens (a key that changes nothing on the screen). Three threads call it:
    the driver's input thread (``key_read``), the event loop (``key_handled``, ``frame_queued``) and the writer
    thread (``frame_written``)."""

    MAX_HOLD = 0.5  # seconds: the collector never waits longer than this for a key's frame

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.since: float | None = None  # when the collector was held for a key (None: not held by us)
        self.key_at: float | None = None  # when the newest key whose frame has not gone to the writer was read
        self._handled = False  # the key's action has run
        self._queued = False  # a frame has gone to the writer since then

    @property
    def held(self) -> bool:
        return self.since is not None

    @property
    def pending(self) -> bool:
        """A key has been read and the frame after its action has not gone to the writer yet (for MAX_HOLD at
        most: a key that changes nothing has no such frame). What can wait for it waits (the runbook's stream)."""
        at = self.key_at
        return at is not None and self._clock() - at < self.MAX_HOLD

    def key_read(self) -> None:
        with self._lock:
            self.key_at = self._clock()
            self._handled = self._queued = False  # a newer key: wait for its frame
            if self.since is None and gc.isenabled():  # (disabled by someone else: not ours to hold, nor to enable)
                gc.disable()
                self.since = self.key_at

    def key_handled(self) -> None:
        with self._lock:
            if self.since is not None or self.key_at is not None:
                self._handled = True

    def frame_queued(self) -> None:
        with self._lock:
            if self._handled:
                self._queued = True
                self.key_at = None

    def frame_written(self) -> None:
        with self._lock:
            if self.since is not None and (self._queued or self._clock() - self.since >= self.MAX_HOLD):
                self._release()

    def expire(self) -> None:
        """Called MAX_HOLD after a key was handled: whatever the screen did, the collector waits no longer."""
        with self._lock:
            if self.since is not None and self._clock() - self.since >= self.MAX_HOLD:
                self._release()

    def release(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self.since is not None:
            self.since = None
            self._handled = self._queued = False
            gc.enable()


class _HangupSafe:
    """A text stream whose writes are dropped once the terminal has gone (instead of raising in a thread)."""

    def __init__(self, stream, hold: KeyGcHold | None = None) -> None:
        self._stream = stream
        self.gone = False
        self._hold = hold

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.gone = True
        if self._hold is not None:  # the writer thread flushes once what was queued has been written
            self._hold.frame_written()

    def __getattr__(self, name):
        return getattr(self._stream, name)


class ConsoleDriver(LinuxDriver):
    def __init__(self, app, **kw) -> None:
        super().__init__(app, **kw)
        self.gc_hold = KeyGcHold()
        self._file = _HangupSafe(self._file, self.gc_hold)

    def process_message(self, message) -> None:
        if isinstance(message, events.Key):  # the input thread: the key has just been read
            self.gc_hold.key_read()
        super().process_message(message)

    def write(self, data: str) -> None:
        self.gc_hold.frame_queued()  # the event loop hands a frame to the writer thread
        super().write(data)

    def stop_application_mode(self) -> None:
        self.gc_hold.release()
        super().stop_application_mode()

    def _run_input_thread(self) -> None:
        try:
            self.run_input_thread()
        except OSError:  # EIO: the terminal hung up; end as on SIGHUP (the app ignores a second ending)
            on_signal = getattr(self._app, "_on_signal", None)
            if on_signal is not None:
                with contextlib.suppress(Exception):
                    self._app.call_later(on_signal, signal.SIGHUP)
        except BaseException:
            import rich.traceback

            self._app.call_later(self._app.panic, rich.traceback.Traceback())
