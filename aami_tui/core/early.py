"""The console's first live data, fetched from the first milliseconds by a forked child process.

The console spends its first ~200 ms importing Textual and painting. A child forked before that (``start``) resolves
the connection settings, connects and runs the dashboard's own validation query (``schema.validate``) and the
server's status (``status.server_status``), on the other core, and sends each result through a pipe. The dashboard
shows them instead of connecting and querying itself for its first refresh; every later refresh is its own.

Rules the child keeps:
- Nothing goes on argv or to a terminal or a log: the settings (password included) cross only the pipe, and the
  child's stdin, stdout and stderr are /dev/null; it runs in a session of its own (no controlling terminal).
- It never outlives the console: it dies with its parent (PR_SET_PDEATHSIG), exits once it has said everything,
  and ``Early.close`` kills and reaps it if it is still there (no zombie).
- Any failure in it is silent: the console then does what it does without it (resolves its own settings, which
  also prints a bad setting's error; connects and queries itself). A connection the server refuses is the one
  result it sends as an error, in the words ``db.explain_connect_error`` gives it, the same the dashboard says.

Messages, each a pickled tuple framed by its length:
  ("args", dict)                                   the command line, when the child parsed it (start.py)
  ("settings", ConnSettings, effective)           settings resolved (``effective()`` as libpq sees it)
  ("connect_error", message, kind)                 db.ConnectError
  ("result", migration_path, ValidationResult)     the checklist
  ("status", ServerStatus)                         the connection panel's facts
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import time
from pathlib import Path

_HEADER = struct.Struct("!I")


def start(args=None, *, argv: list[str] | None = None) -> Early | None:
    """Fork the child for the console's command-line ``args`` (argparse namespace), or for its ``argv`` (starting
    with "console"), which the child parses (start.py: the console's process then never loads argparse); None if
    it cannot be."""
    try:
        r, w = os.pipe()
    except OSError:
        return None
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # pragma: no cover - the child (covered through the console on a pty)
        try:
            os.close(r)
            _child(args, w, parent, argv)
        except BaseException:  # noqa: BLE001 - silent: the console falls back to its own way
            pass
        os._exit(0)
    os.close(w)
    return Early(pid, r)


class Early:
    """The parent's end: messages as they come, and the child's end."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid: int | None = pid
        self.fd: int | None = fd
        self._buf = b""
        self._msgs: list[tuple] = []
        self.eof = False

    # ---- reading --------------------------------------------------------------------------------------------
    def _read(self, timeout: float) -> None:
        """Read what has come (waiting at most ``timeout`` for something) and split it into messages."""
        if self.fd is None or self.eof:
            return
        try:
            ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
            if not ready:
                return
            chunk = os.read(self.fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            self._reap(block=True)
            return
        self._buf += chunk
        while len(self._buf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(self._buf)
            if len(self._buf) < _HEADER.size + n:
                break
            body, self._buf = self._buf[_HEADER.size:_HEADER.size + n], self._buf[_HEADER.size + n:]
            try:
                msg = pickle.loads(body)
            except Exception:  # noqa: BLE001 - a message we cannot read ends the early path
                self.eof = True
                return
            self._msgs.append(msg)

    def _take(self, kinds: tuple[str, ...]) -> tuple | None:
        for i, msg in enumerate(self._msgs):
            if msg[0] in kinds:
                return self._msgs.pop(i)
        return None

    def take(self, *kinds: str) -> tuple | None:
        """The first message of one of ``kinds`` if it has come (never waits)."""
        while True:  # everything already in the pipe, without waiting
            got = self._take(kinds)
            if got is not None or self.eof or self.fd is None:
                return got
            before = len(self._buf), len(self._msgs)
            self._read(0)
            if (len(self._buf), len(self._msgs)) == before and not self.eof:
                return None

    def wait(self, *kinds: str, timeout: float) -> tuple | None:
        """Block until a message of one of ``kinds`` comes (None: the child ended without one, or timeout)."""
        end = time.monotonic() + timeout
        while (got := self._take(kinds)) is None and not self.eof and self.fd is not None:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self._read(left)
        return got

    async def wait_async(self, *kinds: str, timeout: float) -> tuple | None:
        """``wait`` on the event loop: the loop runs on while the pipe is empty."""
        import asyncio

        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (got := self.take(*kinds)) is None and not self.eof and self.fd is not None:
            left = end - loop.time()
            if left <= 0:
                return None
            ready = loop.create_future()
            fd = self.fd
            loop.add_reader(fd, lambda f=ready: f.done() or f.set_result(None))
            try:
                await asyncio.wait_for(ready, left)
            except TimeoutError:
                return None
            finally:
                loop.remove_reader(fd)
        return got

    # ---- the end --------------------------------------------------------------------------------------------
    def _reap(self, block: bool) -> None:
        if self.pid is None:
            return
        try:
            done, _ = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done = self.pid
        if done:
            self.pid = None

    def close(self) -> None:
        """Kill the child if it is still there, reap it, close the pipe. Safe to call more than once."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(block=True)
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        self.eof = True

    async def finish(self, timeout: float = 2.0) -> None:
        """Let the child end by itself (it closes its connection: no 'unexpected EOF' in the server's log), then
        close; a child that has not ended within ``timeout`` is killed."""
        await self.wait_async("-", timeout=timeout)  # no such message: returns at EOF
        self.close()


# ---- the child ------------------------------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:  # pragma: no cover - the child
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the parent's close() still ends it
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def _child(args, w: int, parent: int, argv: list[str] | None = None) -> None:  # pragma: no cover - the child
    import gc

    gc.disable()  # a short life that makes no cyclic garbage worth a collection (importing psycopg ran 2-4 of them)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # never a byte to the console's terminal
        os.dup2(null, fd)
    os.close(null)
    # Its own session: no terminal, and (where the kernel groups tasks by session, sched_autogroup: most Linux
    # desktops and this test machine) its own share of a busy machine's CPU instead of half of the console's. On a
    # loaded machine the console's first frame waited for the child's CPU too (1.95x -> 1.54x of the minimal app at
    # load 4-5, 12 interleaved runs). It still dies with the console (below) and is killed by Early.close.
    with contextlib.suppress(OSError):
        os.setsid()
    _die_with_parent(parent)

    def send(*msg) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        os.write(w, _HEADER.pack(len(data)) + data)

    if args is None:  # start.py: the command line, parsed here (help or a bad argument: the console says it)
        from aami_tui.cli import build_parser

        try:
            args = build_parser("console").parse_args(argv)
        except SystemExit:
            return
        send("args", vars(args))
        if args.embedded:  # the console starts its throwaway server itself
            return

    from aami_tui.core.settings import SettingsError, resolve

    try:
        s = resolve(getattr(args, "dsn", None), connect_timeout=getattr(args, "connect_timeout", None),
                    dbname=getattr(args, "dbname", None))
    except SettingsError:
        return  # the console resolves them itself and says what is wrong
    send("settings", s, s.effective())

    import asyncio

    from aami_tui.core import db, expected, migration, schema, status

    path = migration.resolve_migration_path(getattr(args, "migrations_dir", None),
                                            getattr(args, "migration_file", None))
    columns = expected.expected_columns(path, parse=False)

    async def fetch() -> None:
        try:
            conn = await asyncio.wait_for(db.connect(s), s.connect_timeout + 2)
        except db.ConnectError as exc:
            send("connect_error", str(exc), exc.kind)
            return
        try:
            result = await asyncio.wait_for(schema.validate(conn, columns), 15)
            send("result", Path(path), result)
            send("status", await asyncio.wait_for(status.server_status(conn), 10))
        finally:
            await conn.close()

    asyncio.run(fetch())
