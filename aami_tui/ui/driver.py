"""The terminal driver: Textual's own, made safe for a terminal that goes away.

When the terminal window or SSH session closes, reads and writes on it fail with EIO. Textual's writer thread
then dies and the next screen update blocks the event loop for good (its queue fills), so the console could
neither roll back nor write its report. Here output to a dead terminal is dropped, and a failed read ends the
console the way SIGHUP does (report written, transaction rolled back).
"""

from __future__ import annotations

import contextlib
import signal

from textual.drivers.linux_driver import LinuxDriver


class _HangupSafe:
    """A text stream whose writes are dropped once the terminal has gone (instead of raising in a thread)."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.gone = False

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

    def __getattr__(self, name):
        return getattr(self._stream, name)


class ConsoleDriver(LinuxDriver):
    def __init__(self, app, **kw) -> None:
        super().__init__(app, **kw)
        self._file = _HangupSafe(self._file)

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
