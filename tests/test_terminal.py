"""The console as a real process on a real terminal (a pty): no terminal, a redirected stdin, and every
ending (SIGHUP, SIGTERM, two quick SIGINTs) with the transaction open writes the report and restores the
terminal."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from faults import child_env, query, wait_until

ALT_SCREEN_OFF = b"\x1b[?1049l"
# Escape sequences in the console's output: colours and attributes (dropped: styled runs of one line join up),
# anything else (cursor moves, modes, titles) becomes a line break.
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")
_OTHER = re.compile(rb"\x1b\[[0-9;?<>=$]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-B]|\x1b[=>]")
MOUSE_OFF = b"\x1b[?1000l"


def terminal_restored(out: bytes) -> bool:
    """The last thing said about the alternate screen and mouse tracking turned them off."""
    return (out.rfind(ALT_SCREEN_OFF) > out.rfind(b"\x1b[?1049h") >= 0
            and out.rfind(MOUSE_OFF) > out.rfind(b"\x1b[?1000h") >= 0)


class PtyConsole:
    """``python -m aami_tui ARGS`` on a pty that is its controlling terminal (as in a terminal window)."""

    def __init__(self, args: list[str], env: dict, *, stdin_devnull: bool = False, size=(120, 36)):
        import fcntl
        import struct
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        cmd = [sys.executable, "-m", "aami_tui", *args]
        if stdin_devnull:
            cmd = ["sh", "-c", 'exec "$@" </dev/null', "sh", *cmd]
        # setsid -c: a new session whose controlling terminal is the pty (no preexec_fn with threads running)
        self.proc = subprocess.Popen(["setsid", "-c", *cmd], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                                     env={**child_env(env), "TERM": "xterm-256color", "COLUMNS": str(size[0]),
                                          "LINES": str(size[1])}, close_fds=True)
        os.close(slave)
        self.out = bytearray()

    def read(self, seconds: float = 0.2) -> bytes:
        """Read what the console wrote (at most ``seconds`` of waiting)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.master], [], [], left)
            if not r:
                break
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not chunk:
                break
            self.out += chunk
        return bytes(self.out)

    def text(self, start: int = 0) -> str:
        """What the console wrote from byte ``start`` on, as plain text (escape sequences removed)."""
        return _OTHER.sub(b"\n", _SGR.sub(b"", bytes(self.out[start:]))).decode("utf-8", "replace")

    # 60 s, not 30: on a loaded CI machine (two suites on two cores) a pty console got ~1/6 of a core and a
    # 30 s wait failed; the console's own budget for a closing rollback and report is 25 s.
    def wait_text(self, *words: str, start: int = 0, timeout: float = 60.0) -> str:
        """Read until the console has drawn one of ``words`` (each on one line) since byte ``start``; return it."""
        end = time.monotonic() + timeout
        while not (seen := [w for w in words if w in self.text(start)]):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError(f"the console did not show {words!r} within {timeout}s; last output: "
                                     f"{self.text(max(start, len(self.out) - 1500))[-600:]!r}")
            self.read(0.1)
        return seen[0]

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())
        self.read(0.05)

    def wait(self, timeout: float = 60.0) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self.read(0.1)
        self.read(0.3)
        if self.proc.poll() is None:
            self.proc.kill()
            raise AssertionError(f"the console did not exit within {timeout}s; last output: {bytes(self.out[-400:])!r}")
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def consoles():
    made: list[PtyConsole] = []

    def make(*a, **kw) -> PtyConsole:
        c = PtyConsole(*a, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def open_transaction(c: PtyConsole, settings) -> None:
    """Keys, as a person types them, each once the screen shows what it answers: the runbook, the five ticks,
    then n and enter for pre-flight, backup and BEGIN."""
    c.wait_text("/ 10 present")  # the dashboard's first refresh
    mark = len(c.out)
    c.send("r")
    c.wait_text("0 / 5 ticked", start=mark)
    mark = len(c.out)
    for i in range(5):
        c.send(" ")
        if i < 4:
            c.send("\t")
    c.wait_text("5 / 5 ticked", start=mark)
    for step, then in (("Pre-flight", "Backup"), ("Backup", "BEGIN"), ("BEGIN", "Apply")):
        while True:  # n while the automatic checks still run is refused ("still running"): press it again
            mark = len(c.out)
            c.send("n")
            if c.wait_text(f"Run {step}?", "A step is still running", start=mark) != "A step is still running":
                break
            c.read(0.2)
        mark = len(c.out)
        c.send("\r")
        c.wait_text(f"Next: n → {then}", start=mark, timeout=60)
    # The migration session: idle in a transaction that has an xid (BEGIN records it). The dashboard's
    # validation runs in short read-only transactions of its own, which are briefly idle in transaction too
    # (between pipelined messages) but never get an xid. The console's refresh reads the tables through that same
    # session (what the transaction sees), which is then briefly active: asked again for a moment (a full run
    # under load caught it active once).
    sql = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aami-tui' AND datname = current_database() "
           "AND state = 'idle in transaction' AND backend_xid IS NOT NULL")
    deadline = time.monotonic() + 3
    while (found := query(settings, sql)) != [(1,)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found == [(1,)]


def report_of(tmp_path) -> dict:
    (path,) = (tmp_path / "reports").glob("report_*.json")
    return json.loads(path.read_text())


def console_args(tmp_path) -> list[str]:
    return ["--backup-dir", str(tmp_path / "backups"), "--reports-dir", str(tmp_path / "reports")]


def test_no_terminal_exits_at_once_with_one_sentence(pg_server, fresh_db):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "aami_tui"], stdin=subprocess.DEVNULL, capture_output=True,
                       env=child_env(pg_server.env(fresh_db.dbname)), cwd=ROOT, timeout=30)
    assert time.monotonic() - t0 < 10
    assert r.returncode == 64
    assert r.stdout == b""
    assert r.stderr.decode().splitlines() == [
        "aami-tui: the console needs a terminal and stdout is not one; for scripts and CI use `aami-tui check`, "
        "`aami-tui apply` or `aami-tui init`."]


def test_on_a_terminal_a_bad_argument_or_setting_is_said_in_the_same_words_with_exit_64(pg_server, fresh_db, consoles):
    """The console's start parses its command line in the early child (aami_tui.start): what the child cannot take
    is said by the command line as always, before anything is drawn."""
    env = pg_server.env(fresh_db.dbname)
    c = consoles(["--refresh", "inf"], env)
    assert c.wait(30) == 64
    assert "aami-tui console: error: argument --refresh: 'inf' must be a finite number of seconds" in c.text()
    assert b"\x1b[?1049h" not in c.out  # never the console's screen
    c = consoles([], {**env, "DB_PORT": "abc"})
    assert c.wait(30) == 64
    assert c.text().strip() == "aami-tui: The port 'abc' (DB_PORT) is not a number"
    c = consoles(["console", "--help"], env)
    assert c.wait(30) == 0 and "--refresh S" in c.text() and b"\x1b[?1049h" not in c.out


def test_demo_with_dsn_is_a_usage_error():
    r = subprocess.run([sys.executable, "-m", "aami_tui", "demo", "--dsn", "host=x"], capture_output=True,
                       text=True, cwd=ROOT, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 64
    assert "--dsn and --embedded do not apply" in r.stderr and "Traceback" not in r.stderr


def test_stdin_from_dev_null_on_a_terminal_q_still_quits(pg_server, fresh_db, consoles):
    c = consoles([], pg_server.env(fresh_db.dbname), stdin_devnull=True)
    c.wait_text("/ 10 present")  # the dashboard is up (keys sent before its first frame could be lost)
    c.send("q")
    assert c.wait(20) == 0
    assert terminal_restored(bytes(c.out))


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "two SIGINTs", "terminal closed"])
def test_every_ending_with_the_transaction_open_writes_the_report_and_restores_the_terminal(
        pg_server, fresh_db, tmp_path, consoles, how):
    c = consoles(console_args(tmp_path), pg_server.env(fresh_db.dbname))
    open_transaction(c, fresh_db)
    if how == "terminal closed":  # the window goes away: the kernel hangs up the session
        os.close(c.master)
        c.master = os.open(os.devnull, os.O_RDONLY)
        c.proc.wait(60)
    elif how == "two SIGINTs":
        c.proc.send_signal(signal.SIGINT)
        time.sleep(0.01)
        c.proc.send_signal(signal.SIGINT)
        c.wait()
    else:
        c.proc.send_signal(getattr(signal, how))
        c.wait()
    assert c.proc.returncode != 0
    report = report_of(tmp_path)
    assert report["final_state"] == "rolled back", report
    assert report["transaction"] == "rolled back"
    # fresh8 R5: the report says what ended the run (a closed terminal is SIGHUP, from the kernel or the driver)
    why = {"SIGTERM": "terminated (SIGTERM)", "two SIGINTs": "interrupted (SIGINT)"}.get(
        how, "the terminal was closed (SIGHUP)")
    assert any(e["message"].startswith(f"The run ends: {why}") for e in report["log"]), report["log"]
    wait_until(lambda: not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aami-tui' "
                                           "AND datname = current_database()"), what="the console's sessions to end")
    if how != "terminal closed":
        assert terminal_restored(bytes(c.out)), bytes(c.out[-600:])


# ---- the console's early child (core/early.py): first live data fetched while Textual starts ------------------
def _children(pid: int) -> list[tuple[int, str, str]]:
    """(pid, command name, state) of every child of ``pid`` (zombies too: they keep their parent until reaped)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append((int(d), comm, rest[0]))
    return out


def _pythons_under(pid: int) -> list[tuple[int, str, str]]:
    return [c for c in _children(pid) if c[1].startswith("python")]  # not pg_dump --version (the tools panel)


def _holding(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (the console's and its forked child's: same argv)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker.encode() in open(f"/proc/{d}/cmdline", "rb").read():
                    found.append(int(d))
            except OSError:
                pass
    return found


def test_first_data_and_refused_login_through_the_early_child_which_never_outlives_the_console(
        pg_server, fresh_db, tmp_path, consoles):
    """The real start-up path (a pty, DB_* variables): live data comes, a wrong password says what the dashboard
    always said, and the child that fetched them is gone (reaped: no zombie) while the console runs and after."""
    marker = str(tmp_path / "reports")
    c = consoles(console_args(tmp_path), pg_server.env(fresh_db.dbname))
    c.wait_text("0 / 10 present")
    wait_until(lambda: not _pythons_under(c.proc.pid), what="the early child to be gone")
    c.send("q")
    assert c.wait(20) == 0
    assert _holding(marker) == []
    assert not (tmp_path / "reports").exists()  # nothing reached fd 2: its capture file (and folder) are gone

    if fresh_db.password:
        env = pg_server.env(fresh_db.dbname)
        env["DB_PASSWORD"] = "definitely-wrong"
        e = fresh_db.effective()
        c = consoles(console_args(tmp_path), env)
        c.wait_text(f'rejected the password for user "{e["user"]}"')
        c.wait_text("Password authentication failed")  # the hint (wrapped in its panel)
        wait_until(lambda: not _pythons_under(c.proc.pid), what="the early child to be gone")
        assert "definitely-wrong" not in c.text()
        c.send("q")
        assert c.wait(20) == 0
        assert _holding(marker) == []


def test_a_key_is_pending_from_its_read_until_the_frame_after_its_action_goes_whoever_holds_the_collector():
    """What waits for a key's frame (the runbook's stream) asks ``pending``: from the key's read until a frame goes
    to the writer after its action ran (not one queued before it), MAX_HOLD at most; also when the collector is
    someone else's to hold."""
    import gc

    from aami_tui.ui.driver import KeyGcHold

    now = [100.0]
    hold = KeyGcHold(clock=lambda: now[0])
    try:
        for theirs in (False, True):
            if theirs:
                gc.disable()
            assert not hold.pending
            hold.key_read()
            assert hold.pending and hold.held is not theirs
            hold.frame_queued()  # an earlier repaint, before the key's action
            assert hold.pending
            hold.key_handled()
            assert hold.pending
            hold.frame_queued()  # the key's frame
            assert not hold.pending
            hold.frame_written()
            hold.key_read()  # a key that draws nothing: pending for MAX_HOLD, no longer
            now[0] += hold.MAX_HOLD * 0.9
            assert hold.pending
            now[0] += hold.MAX_HOLD * 0.2
            assert not hold.pending
            hold.expire()
        assert not gc.isenabled()  # theirs: left alone
    finally:
        hold.release()
        gc.enable()

def test_the_garbage_collector_waits_for_a_keys_frame_and_always_runs_again():
    """A key read holds Python's cyclic GC until the frame that shows it is written (not a frame written before
    the key's action ran), and never longer than MAX_HOLD; a collector disabled by someone else stays theirs."""
    import gc

    from aami_tui.ui.driver import KeyGcHold

    now = [100.0]
    hold = KeyGcHold(clock=lambda: now[0])
    assert gc.isenabled()
    try:
        hold.key_read()  # the input thread
        assert not gc.isenabled() and hold.held
        hold.frame_queued()  # an earlier repaint goes out before the key's action: not the key's frame
        hold.frame_written()
        assert not gc.isenabled()
        hold.key_handled()  # the action ran; the next frame shows it
        hold.frame_queued()
        hold.frame_written()
        assert gc.isenabled() and not hold.held

        hold.key_read()  # a key that changes nothing: no frame comes
        hold.key_handled()
        now[0] += hold.MAX_HOLD / 2
        hold.expire()
        assert not gc.isenabled()
        now[0] += hold.MAX_HOLD
        hold.expire()
        assert gc.isenabled()

        hold.key_read()  # a key whose action never runs (a dialog closing took it): any frame after MAX_HOLD
        now[0] += hold.MAX_HOLD
        hold.frame_written()
        assert gc.isenabled()

        gc.disable()  # someone else's: the hold leaves it alone
        hold.key_read()
        assert not hold.held
        hold.release()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_libpq_warnings_on_fd_2_never_reach_the_frame_and_the_user_is_told(pg_server, fresh_db, tmp_path, consoles):
    """libpq fprintf's "WARNING: password file … has group or world access" to fd 2: in the console those bytes
    landed in the middle of the frame (over the title bar). fd 2 now goes to an owner-only file; the warning is a
    notification, and is printed once the terminal is restored."""
    if not fresh_db.password:
        pytest.skip("the test server takes no password: libpq needs a password prompt path to re-read the passfile")
    e = fresh_db.effective()
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{e['host']}:{e['port']}:*:{e['user']}:{fresh_db.password}\n")
    passfile.chmod(0o644)  # libpq warns, and ignores the file
    env = {k: v for k, v in pg_server.env(fresh_db.dbname).items() if k != "DB_PASSWORD"}
    env["PGPASSFILE"] = str(passfile)
    c = consoles(console_args(tmp_path), env)
    c.wait_text("wants a password")  # the first try (the early child's) failed: no retry by itself
    mark = len(c.out)
    c.send("\x1b[15~")  # F5: the console's own connection reads the passfile, and libpq warns on fd 2
    c.wait_text("ritten to stderr (kept in", start=mark)  # the notification (its first cell is drawn apart)
    raw = b"has group or world access; permissions should be u=rw (0600) or less"
    assert raw not in bytes(c.out)  # the notification wraps it: the whole line never went to the terminal
    c.send("q")
    assert c.wait(20) == 0
    after = c.text(bytes(c.out).rfind(ALT_SCREEN_OFF))
    assert "aami-tui: while the console ran, this was written to stderr (kept in " in after, after
    assert f'  WARNING: password file "{passfile}" has group or world access;' in after.replace("\r", ""), after
    (log,) = (tmp_path / "reports").glob("stderr_*.log")
    assert log.stat().st_mode & 0o777 == 0o600 and raw.decode() in log.read_text()
