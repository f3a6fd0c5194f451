"""Stray writes to file descriptor 2 while the full-screen console runs.

libpq writes some warnings straight to fd 2 with fprintf (``WARNING: password file "…" has group or world access;
permissions should be u=rw (0600) or less``, ``… is not a plain file``), and so may any C library the process
loads. In the console such bytes land in the middle of the frame and corrupt the screen. While the console runs,
fd 2 goes to an owner-only (0600) file beside the reports; the terminal keeps a descriptor of its own, which
``sys.__stderr__`` (Textual's output, the exit watchdog) and ``sys.stderr`` write to. What was captured is shown in
the console as it comes (``new_text``) and printed once the terminal is restored (``stop``). Our subprocesses
(pg_dump, pg_restore, psql, squawk, the offload helper, the early child) never inherit the console's fd 2: their
stderr is a pipe or /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

READ_MAX = 64 * 1024  # bytes read per look (a flood is kept in the file, not in memory)


class StrayOutput:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()
        self.path: Path | None = None
        self._fd: int | None = None  # the capture file (read and write)
        self._term_fd: int | None = None  # the terminal fd 2 was
        self._saved = None  # (sys.__stderr__, sys.stderr) before
        self._read = 0  # bytes of the file already given out by new_text
        self._made: list[Path] = []  # directories created for the file (removed with it when nothing was written)

    def _open(self) -> int:
        name = f"stderr_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}.log"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            d = self.directory
            while not d.exists() and d.parent != d:  # made 0700 as the reports' own; removed again if unused
                self._made.append(d)
                d = d.parent
            for d in reversed(self._made):
                d.mkdir(mode=0o700)
                os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
            fd = os.open(self.directory / name, flags, 0o600)
            self.path = self.directory / name
        except OSError:  # no reports directory to write to: the temporary one (mkstemp's file is 0600 too)
            import tempfile  # only then (not on the console's first-frame path)

            fd, p = tempfile.mkstemp(prefix="aami-tui-stderr-", suffix=".log")
            self.path = Path(p)
        return fd

    def start(self) -> bool:
        """Send fd 2 to the capture file; False (nothing changed) when fd 2 is not a terminal or it cannot."""
        try:
            if not os.isatty(2):
                return False
            fd = self._open()
        except OSError:
            return False
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        term_fd = os.dup(2)  # not inheritable: no child gets the terminal through it
        enc = getattr(sys.__stderr__, "encoding", None) or "utf-8"
        term = open(term_fd, "w", buffering=1, encoding=enc, errors="backslashreplace", closefd=False)  # noqa: SIM115
        self._fd, self._term_fd, self._saved = fd, term_fd, (sys.__stderr__, sys.stderr)
        sys.__stderr__ = sys.stderr = term
        os.dup2(fd, 2)
        return True

    @property
    def active(self) -> bool:
        return self._fd is not None

    def new_text(self) -> str:
        """What reached fd 2 since the last call ('' when nothing did). Cheap: one fstat when nothing is new."""
        fd = self._fd
        if fd is None:
            return ""
        try:
            size = os.fstat(fd).st_size
            if size <= self._read:
                return ""
            data = os.pread(fd, min(size - self._read, READ_MAX), self._read)
        except OSError:
            return ""
        self._read += len(data)
        return data.decode("utf-8", "replace")

    def stop(self) -> str:
        """fd 2 and sys.stderr back to the terminal; everything captured (the file is kept if there was any,
        removed if not)."""
        if self._fd is None:
            return ""
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        term = sys.__stderr__
        sys.__stderr__, sys.stderr = self._saved
        os.dup2(self._term_fd, 2)
        with contextlib.suppress(Exception):
            term.close()
        os.close(self._term_fd)
        fd, self._fd = self._fd, None
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, min(size, READ_MAX), 0) if size else b""
        except OSError:
            data = b""
        os.close(fd)
        if not data and self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
                for d in self._made:  # innermost first; one that now holds a report stays
                    d.rmdir()
        return data.decode("utf-8", "replace")


def summary(text: str) -> list[str]:
    """The captured text as lines a person reads: blank lines dropped, repeats counted ('… (×12)')."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        line = line.rstrip()
        if line:
            counts[line] = counts.get(line, 0) + 1
    return [f"{line} (×{n})" if n > 1 else line for line, n in counts.items()]
