"""Owner-only files: the one writer and the one name sanitiser every backup and report goes through.

- ``private_dir(path)``: the directory, created 0700 when missing (each parent it creates too), checked writable.
- ``write_private(path, text)``: the whole file, 0600 from its first byte, written atomically (a temporary
  file in the same directory, fsync, rename): a reader never sees half a report, an existing file of
  another mode (or a symlink planted at that name) is replaced, never written through.
- ``create_private(path)``: a new 0600 file for streaming (pg_dump's output); refuses an existing name.
- ``unique_stem(directory, stem, suffixes)``: ``stem``, or ``stem_2``, ``stem_3``… so that two files made in
  the same second never overwrite each other.
- ``safe_name(text)``: a database name (any Unicode, quotes, slashes) as a file-name part.
- ``in_thread(write, *args)``: a writer run off the event loop (awaited; a cancel waits for it to end).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


ROOM_MARGIN = 16 * 1024 * 1024  # bytes kept free beyond what a backup or a copy needs (plus a fifth of it)


def free_bytes(path: Path | str) -> int | None:
    """Free space on the file system holding ``path`` (an existing path), or None when it cannot be measured."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def room_for(free: int, need: int) -> bool:
    """The one rule for "does it fit": what is needed, plus a fifth, plus 16 MiB, must be free (pre-flight's
    backup check and the rehearsal copy both ask it)."""
    return free > need * 1.2 + ROOM_MARGIN


class FileError(OSError):
    """A directory or file that cannot be used, phrased for a person (an OSError, so old handlers hold)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "file error"


def safe_name(text: str) -> str:
    """``text`` as a file-name part: ASCII letters, digits, ``_ . -``; everything else becomes ``_``.

    Never empty, never starts with a dot (no hidden files, no ``..``), at most 100 characters.
    """
    out = _UNSAFE.sub("_", str(text))[:100]
    if not out or out.startswith("."):
        out = "_" + out[:99]
    return out


def private_dir(path: Path | str) -> Path:
    """``path`` created 0700 (with its parents) if missing; an existing one is used as it is. Checks it is a
    writable directory. Raises FileError with one sentence."""
    path = Path(path).expanduser()
    try:
        if not path.exists():
            # every directory created here is 0700, the parents too (mkdir(parents=True) gives them the umask's
            # mode: a reports folder made for its rehearsal-runs subfolder ended up 0755)
            missing, d = [], path
            while not d.exists() and d.parent != d:
                missing.append(d)
                d = d.parent
            for d in reversed(missing):
                with contextlib.suppress(FileExistsError):  # made meanwhile by someone else: used as it is
                    d.mkdir(mode=0o700)
                    os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
        elif not path.is_dir():
            raise FileError(f"{path} exists and is not a directory.")
    except PermissionError:
        raise FileError(f"Cannot create the directory {path}: permission denied.") from None
    except FileError:
        raise
    except OSError as exc:
        raise FileError(f"Cannot create the directory {path}: {exc.strerror or exc}.") from None
    probe = path / f".aami-write-test-{os.getpid()}"
    try:
        os.close(create_private(probe))
        probe.unlink()
    except OSError as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        raise FileError(f"The directory {path} is not writable ({why}).") from None
    return path


def create_private(path: Path | str) -> int:
    """Open a new file 0600 for writing; fails (FileExistsError) if the name exists. Returns the fd."""
    return os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                   | getattr(os, "O_NOFOLLOW", 0), 0o600)


def write_private(path: Path | str, data: str | bytes | list[str]) -> Path:
    """Write ``data`` to ``path`` atomically, mode 0600. Returns the path. A list of strings is written part by
    part (a large text never encoded in one piece)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "wb") as f:
            for part in (data if isinstance(data, list) else [data]):
                f.write(part.encode("utf-8") if isinstance(part, str) else part)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash once the directory is synced
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def why_not_writable(path: Path | str) -> str | None:
    """Why ``write_private(path, …)`` would fail, in words, checked before any work (None: it can be written): the
    folder does not exist, is not a folder or may not be written to; the path is a folder."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        return "it is a folder"
    if not parent.exists():
        return f"the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} may not be written to by this user"
    return None


def write_error_words(exc: OSError) -> str:
    """An OSError of a write as words: its reason (strerror), never the temporary file's name."""
    return (exc.strerror or str(exc)).rstrip(".").lower()


async def in_thread(write, *args):
    """``write(*args)`` (a report, a checksum: files written whole and fsynced) in a thread, off the event loop: a
    slow disk's fsync never holds the console's keys. Cancelled meanwhile, it still waits for the write to end
    before the cancel goes on, so a caller's cleanup never races a file still being written."""
    fut = asyncio.ensure_future(asyncio.to_thread(write, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await fut
        raise


def unique_stem(directory: Path | str, stem: str, suffixes: tuple[str, ...]) -> str:
    """``stem`` if no ``directory/stem+suffix`` exists for any suffix, else ``stem_2``, ``stem_3``…"""
    directory = Path(directory)
    candidate, n = stem, 1
    while any((directory / f"{candidate}{s}").exists() for s in suffixes):
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


def claim_unique(directory: Path | str, stem: str, suffix: str) -> Path:
    """Create (empty, 0600, O_EXCL) and return ``directory/stem<suffix>`` or the first free ``stem_N<suffix>``:
    the name is reserved even against another process choosing at the same moment."""
    directory = Path(directory)
    n = 1
    while True:
        p = directory / (f"{stem}{suffix}" if n == 1 else f"{stem}_{n}{suffix}")
        try:
            os.close(create_private(p))
            return p
        except FileExistsError:
            n += 1
