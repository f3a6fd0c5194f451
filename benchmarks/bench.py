"""Issue 8's table, measured: every row as a ratio against its anchor measured in the same run. Asserts nothing.

  what                                          anchor (same run)                       goal
  backup step (dump + schema + verify + sha256) the guide's bare `pg_dump -F c`         <= 0.6x, restorable, verified
  backup progress                               -                                       >= 1 Hz, no stall-and-jump
  check on 10,010 tables / on 10 tables         `psql -c '\\dt'` the same way             <= 1.2x
  check / a bare python that connects + 1 query -                                       <= 1.25x
  console: first live data / minimal Textual    a minimal Textual app's first frame     <= 1.3x
  console idle CPU (2 s refresh)                -                                       <= 0.5 % of a core
  UI responsiveness while backup + apply run    -                                       p95 < 50 ms
    (event-loop lag of the engine as the console runs it, and real key presses on the console in a pty, at a
     person's pace: `?` opens the help, `s` shows the SQL (a light key); the time until the effect reaches the
     terminal, p50/p95/max, with the load average; the same keys with nothing running are the anchor)
  apply of a 10,000-statement file              `psql -1 -f` of the same file           <= 1.1x

Run:   .venv/bin/python benchmarks/bench.py            (the embedded PostgreSQL 18, started and removed here)
       .venv/bin/python benchmarks/bench.py keys console   (only those rows: backup check console apply
                                                            responsiveness keys)
       AAMI_BENCH_DSN='host=… user=… dbname=postgres' .venv/bin/python benchmarks/bench.py   (any server; needs
       CREATE DATABASE; makes and drops aami_bench_* databases)
       AAMI_BENCH_ROWS=1000000 (rows per table of the large database, two tables; default 1,000,000 ≈ 460 MB)
       AAMI_BENCH_SAMPLES=FILE (`keys`: every press to FILE as JSON; benchmarks/keytrace/README.md says what
       the console was doing during the slow ones)
       AAMI_BENCH_NO_IDLE=1 (the console rows without the 30 s idle-CPU measurement; `bench.py console` alone
       does not build the large database)
Takes 3-6 minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aami_tui.core import pgtools  # noqa: E402
from aami_tui.core.settings import ConnSettings, resolve  # noqa: E402

PY = sys.executable
ROWS = int(os.environ.get("AAMI_BENCH_ROWS", "1000000"))
results: list[tuple[str, str, str]] = []


def row(what: str, value: str, goal: str) -> None:
    results.append((what, value, goal))
    print(f"  {what}: {value}   (goal {goal})", flush=True)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def timed(argv: list[str], env: dict | None = None, runs: int = 5) -> float:
    """Median wall time of a command (seconds)."""
    return interleaved([(argv, env)], runs)[0]


def interleaved(commands: list[tuple[list[str], dict | None]], runs: int = 5) -> list[float]:
    """Median wall time of each (argv, env), run in turn (A B A B …): a ratio between them does not move with
    the machine's load drifting between one command's runs and the other's."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for (argv, env), ts in zip(commands, times, strict=True):
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


# ---- the server and the databases ------------------------------------------------------------------------------
class Server:
    def __init__(self) -> None:
        self.pg = None
        dsn = os.environ.get("AAMI_BENCH_DSN")
        if dsn:
            self.admin = resolve(dsn, dbname="postgres")
            self.where = "AAMI_BENCH_DSN"
        else:
            from aami_tui.core import embedded

            self.pg = embedded.start("postgres")
            self.admin = self.pg.settings("postgres")
            self.where = "embedded PostgreSQL 18"
        with psycopg.connect(self.admin.conninfo()) as c:
            self.version = c.execute("SHOW server_version").fetchone()[0]
            self.major = c.info.server_version // 10000
        self.made: list[str] = []

    def db(self, name: str) -> ConnSettings:
        name = f"aami_bench_{name}"
        with psycopg.connect(self.admin.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.made.append(name)
        return self.admin.with_dbname(name)

    def env(self, s: ConnSettings) -> dict:
        e = s.effective()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "PG"))}
        env.update({"DB_HOST": e["host"], "DB_PORT": e["port"], "DB_USER": e["user"], "DB_NAME": s.dbname,
                    "DB_SSLMODE": s.params.get("sslmode", "disable")})
        if s.password:
            env["DB_PASSWORD"] = s.password
        return env

    def close(self) -> None:
        with psycopg.connect(self.admin.conninfo(), autocommit=True) as c:
            for name in self.made:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if self.pg is not None:
            self.pg.stop()


def fill_large(s: ConnSettings, rows: int) -> str:
    with psycopg.connect(s.conninfo(), autocommit=True) as c:
        c.execute("CREATE SCHEMA app_data")
        for t in ("events_a", "events_b"):
            c.execute(f"CREATE TABLE app_data.{t} (id bigint PRIMARY KEY, target_id int, name text, payload jsonb, "
                      "created_at timestamptz, note text)")
            c.execute(f"INSERT INTO app_data.{t} SELECT g, g % 5000, 'target-' || (g % 5000) || '.example.internal', "
                      "jsonb_build_object('labels', jsonb_build_object('env', CASE WHEN g % 3 = 0 THEN 'prod' "
                      "ELSE 'staging' END, 'rack', g % 40), 'value', random()), now() - (g || ' seconds')::interval, "
                      f"md5(g::text) FROM generate_series(1, {rows}) g")
        c.execute("VACUUM ANALYZE")
        return c.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]


# ---- rows --------------------------------------------------------------------------------------------------------
async def bench_backup(srv: Server, s: ConnSettings) -> None:
    from aami_tui.core import progress

    dump = pgtools.find_tool("pg_dump", srv.major)
    restore = pgtools.find_tool("pg_restore", srv.major)
    env = pgtools.tool_env(s, srv.major)
    work = Path(tempfile.mkdtemp(prefix="aami-bench-"))
    try:
        def bare(*flags: str) -> tuple[float, int]:
            out = work / f"bare{'_'.join(flags)}.dump"
            t0 = time.perf_counter()
            subprocess.run([dump.path, "--no-password", *flags, "-f", str(out)], env=env, check=True)
            dt = time.perf_counter() - t0
            size = out.stat().st_size
            out.unlink()
            return dt, size

        anchor, anchor_size = bare("-F", "c")
        z1, z1_size = bare("-F", "c", "-Z", "1")
        events: list[tuple[float, progress.Progress]] = []
        t0 = time.perf_counter()
        res = await pgtools.take_backup(dump, restore, s, work / "b", server_major=srv.major,
                                        source={"dbname": s.dbname},
                                        on_progress=lambda p: events.append((time.perf_counter(), p)))
        step = time.perf_counter() - t0
        row("backup step (pg_dump -Fc -Z 0 + schema + pg_restore --list + sha256) / bare `pg_dump -F c`",
            f"{ratio(step, anchor)} ({step:.1f} s / {anchor:.1f} s; {res.size / 2**20:.0f} MiB vs "
            f"{anchor_size / 2**20:.0f} MiB; -Z 1 would take {z1:.1f} s = {ratio(z1, anchor)}, "
            f"{z1_size / 2**20:.0f} MiB; verified: {res.verified})", "<= 0.6x")
        if srv.major >= 13:
            j2 = work / "j2"
            t0 = time.perf_counter()
            await pgtools.take_backup(dump, restore, s, j2, jobs=2, server_major=srv.major)
            row("  same with --jobs 2 (directory format) / bare `pg_dump -F c`",
                ratio(time.perf_counter() - t0, anchor) + f" ({time.perf_counter() - t0:.1f} s)", "(information)")
        times = [t for t, p in events if 0 < p.fraction < 1]
        gaps = [b - a for a, b in zip([t0 for t0, _ in events], [t for t, _ in events][1:], strict=False)]
        fr = [p.fraction for _, p in events]
        jumps = [b - a for a, b in zip(fr, fr[1:], strict=False)]
        row("backup progress", f"{len(events)} updates ({len(times)} mid-dump), max gap {max(gaps or [0]):.2f} s "
            f"(>= {1 / max(max(gaps or [1]), 1e-9):.1f} Hz), largest step {max(jumps or [0]) * 100:.0f} %, "
            f"monotonic: {fr == sorted(fr)}, exact (server counters): {all(p.exact for _, p in events)}",
            ">= 1 Hz, no stall-and-jump")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_check(srv: Server) -> None:
    from aami_tui.core import migration

    small, big = srv.db("check10"), srv.db("check10010")
    mig = migration.load(migration.resolve_migration_path())
    for s in (small, big):
        with psycopg.connect(s.conninfo()) as c:
            for st in mig.statements:
                c.execute(st.sql)
    with psycopg.connect(big.conninfo(), autocommit=True) as c:
        for i in range(0, 10000, 500):
            c.execute("BEGIN; " + "".join(f"CREATE TABLE site_{j} (id int);" for j in range(i, i + 500)) + "COMMIT")
    check = [PY, "-m", "aami_tui", "check"]
    psql = str(Path(pgtools.find_tool("pg_dump", srv.major).path).parent / "psql")
    a_small, a_big = interleaved([(check, srv.env(small)), (check, srv.env(big))], 7)
    p_small, p_big = interleaved([([psql, "-X", "-q", "-c", "\\dt"], pgtools.tool_env(small)),
                                  ([psql, "-X", "-q", "-c", "\\dt"], pgtools.tool_env(big))])
    j_big = timed(check + ["--json"], srv.env(big))
    row("`check` on 10,010 tables / on 10 tables", f"{ratio(a_big, a_small)} ({a_big * 1000:.0f} / "
        f"{a_small * 1000:.0f} ms; --json {j_big * 1000:.0f} ms); anchor `psql \\dt` {ratio(p_big, p_small)}",
        "<= 1.2x")
    bare = [PY, "-c", "import os, psycopg\nwith psycopg.connect(host=os.environ['DB_HOST'], "
            "port=os.environ['DB_PORT'], user=os.environ['DB_USER'], password=os.environ.get('DB_PASSWORD'), "
            "dbname=os.environ['DB_NAME'], sslmode=os.environ['DB_SSLMODE']) as c:\n"
            "    c.execute('SELECT 1').fetchall()"]
    b, a = interleaved([(bare, srv.env(small)), (check, srv.env(small))], 9)
    row("`check` / a bare python process that connects and runs one query", f"{ratio(a, b)} ({a * 1000:.0f} / "
        f"{b * 1000:.0f} ms)", "<= 1.25x")


def _pty_until(argv: list[str], marker: bytes, env: dict, timeout: float = 30.0) -> float | None:
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execvpe(argv[0], argv, {**env, "TERM": "xterm-256color"})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    t0, buf, found = time.perf_counter(), b"", None
    try:
        while time.perf_counter() - t0 < timeout:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                if marker in buf:
                    found = time.perf_counter() - t0
                    break
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    return found


def bench_console(srv: Server) -> None:
    s = srv.db("console")
    env = {**os.environ, **srv.env(s)}
    minimal = [PY, "-c", "from textual.app import App\nfrom textual.widgets import Static\nclass A(App):\n"
               "    def compose(self):\n        yield Static('first-frame-marker')\nA().run()"]
    work = tempfile.mkdtemp(prefix="aami-bench-")
    console = [PY, "-m", "aami_tui", "--reports-dir", work, "--backup-dir", work]
    # A fair anchor: Textual comes with its bytecode (pip compiles it on install, as it does ours from a wheel);
    # an editable checkout run with PYTHONDONTWRITEBYTECODE=1 would compile aami_tui on every start.
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "aami_tui")], check=False)
    m, f, c = [], [], []
    for _ in range(5):
        m.append(_pty_until(minimal, b"first-frame-marker", env) or float("nan"))
        f.append(_pty_until(console, b"Tables", env) or float("nan"))  # the checklist's border: first frame
        c.append(_pty_until(console, b"/ 10 present", env) or float("nan"))  # the checklist, from the server
    mm, fm, cm = statistics.median(m), statistics.median(f), statistics.median(c)
    row("console: first live data / a minimal Textual app's first frame", f"{ratio(cm, mm)} ({cm * 1000:.0f} / "
        f"{mm * 1000:.0f} ms)", "<= 1.3x")
    row("  the console's own first frame (before data) / the same anchor", f"{ratio(fm, mm)} ({fm * 1000:.0f} ms)",
        "(information)")
    if os.environ.get("AAMI_BENCH_NO_IDLE"):  # while iterating on the start-up rows: skip the 36 s below
        shutil.rmtree(work, ignore_errors=True)
        return
    # idle CPU over 30 s, default refresh
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execvpe(console[0], console, {**env, "TERM": "xterm-256color"})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    os.read(fd, 65536)
                except OSError:
                    return

    def cpu() -> float:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    try:
        drain(6)
        c0, t0 = cpu(), time.monotonic()
        drain(30)
        pct = (cpu() - c0) / (time.monotonic() - t0) * 100
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        shutil.rmtree(work, ignore_errors=True)
    row("console idle CPU (default 2 s refresh, 30 s)", f"{pct:.2f} % of a core", "<= 0.5 %")


def make_10k(path: Path) -> None:
    base = (ROOT / "migrations" / "001_initial_schema.sql").read_text()
    out = [base] + [f"CREATE TABLE IF NOT EXISTS bench_t{t} (id bigint PRIMARY KEY, name text NOT NULL, "
                    "created_at timestamptz DEFAULT now());" for t in range(200)]
    n = 10000 - 43 - 200
    out += [f"INSERT INTO bench_t{i % 200} (id, name) VALUES ({i}, 'item {i}');" for i in range(n)]
    path.write_text("\n".join(out) + "\n")


async def _engine_apply(s: ConnSettings, path: Path, work: Path, listener=None) -> float:
    from aami_tui.core.runbook import Options, Runbook

    rb = Runbook(s, path, Options(backup_dir=work / "b", reports_dir=work / "r", skip_backup=True),
                 listener or (lambda e: None), interactive=False)
    try:
        await rb.preflight()
        await rb.backup_step()
        await rb.begin()
        t0 = time.perf_counter()
        await rb.apply()
        dt = time.perf_counter() - t0
        await rb.rollback("benchmark")
    finally:
        await rb.close("benchmark")
    return dt


async def bench_apply(srv: Server) -> None:
    work = Path(tempfile.mkdtemp(prefix="aami-bench-"))
    try:
        path = work / "m10k.sql"
        make_10k(path)
        psql = str(Path(pgtools.find_tool("pg_dump", srv.major).path).parent / "psql")
        ps, en = [], []
        for i in range(3):  # alternated, the best of each: the other suites on the same cores swing both sides
            a = srv.db(f"psql{i}")
            t0 = time.perf_counter()
            r = subprocess.run([psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(path)],
                               env=pgtools.tool_env(a), capture_output=True, text=True)
            ps.append(time.perf_counter() - t0)
            if r.returncode:
                print("psql failed:", r.stderr[-300:])
            en.append(await _engine_apply(srv.db(f"engine{i}"), path, work))
        p, e = min(ps), min(en)
        row("apply of a 10,000-statement file / `psql -1 -f`", f"{ratio(e, p)} ({e:.2f} s / {p:.2f} s)", "<= 1.1x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def bench_responsiveness(srv: Server, large: ConnSettings) -> None:
    """The console's event loop while a backup of the large database and then an apply of the 10,000-statement
    file run in it: how late a 10 ms timer fires (a key press waits at least that long to be handled)."""
    from aami_tui.core.runbook import Options, Runbook

    work = Path(tempfile.mkdtemp(prefix="aami-bench-"))
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t0 - 0.01)

    try:
        path = work / "m10k.sql"
        make_10k(path)
        rb = Runbook(large, path, Options(backup_dir=work / "b", reports_dir=work / "r"), lambda e: None,
                     interactive=False)
        task = None
        try:
            await rb.preflight()  # (parsing and linting a 10,000-statement file holds the interpreter: not measured)
            task = asyncio.create_task(probe())
            await rb.backup_step()
            await rb.begin()
            await rb.apply()
            await rb.rollback("benchmark")
        finally:
            await rb.close("benchmark")
            stop.set()
            if task is not None:
                await task
        lags.sort()
        p95 = lags[int(len(lags) * 0.95)] if lags else float("nan")
        row("event-loop lag while a backup and an apply run (engine as in the console)",
            f"p95 {p95 * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms over {len(lags)} samples", "p95 < 50 ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


class PtyApp:
    """The real console on a pty, as in a terminal window: keys written to it, the screen read back."""

    def __init__(self, argv: list[str], env: dict, size=(120, 36)) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - child
            os.execvpe(argv[0], argv, {**env, "TERM": "xterm-256color"})
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.buf = bytearray()
        # AAMI_BENCH_PTY_LOG=FILE: what the console wrote and when, with the keys sent (to debug a scripted run)
        self.log = open(os.environ["AAMI_BENCH_PTY_LOG"], "ab") if os.environ.get("AAMI_BENCH_PTY_LOG") else None

    def read(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._got(chunk)

    def wait_for(self, marker: bytes, timeout: float, since: int = 0) -> float | None:
        """perf_counter() when ``marker`` first shows in what the screen got after byte ``since``, or None."""
        end = time.perf_counter() + timeout
        while True:
            if self.buf.find(marker, max(0, since - len(marker))) >= 0:
                return time.perf_counter()
            left = end - time.perf_counter()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], min(left, 0.05))
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return None
                if not chunk:
                    return None
                self._got(chunk)

    def _got(self, chunk: bytes) -> None:
        self.buf += chunk
        if self.log is not None:
            self.log.write(b"\n@@@ %.3f @@@\n" % time.time() + chunk)

    def send(self, keys: bytes) -> None:
        if self.log is not None:
            self.log.write(b"\n@@@ %.3f SEND %r @@@\n" % (time.time(), keys))
        os.write(self.fd, keys)

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        if self.log is not None:
            self.log.close()


# The keys timed, each until its effect reaches the terminal, then pressed again to undo it:
#   `?` opens the help (a screen over the runbook): its title;
#   `s` shows the migration SQL in the step pane (a light key: the pane switches, the border says so).
KEYS = {"?": (b"?", b"how the migration works"), "s": (b"s", b"Migration SQL")}
ROUNDS = int(os.environ.get("AAMI_BENCH_ROUNDS", "25"))  # BEGIN, apply, ROLLBACK: with the backup, ~40 presses of each key while steps run (10 gave 15-18 once
#   the console applied the file in ~1 s, so the p95 was the slowest press)
NEXT = "n → ".encode()  # the runbook bar's hint, e.g. "Next: n → Apply"


def _press(app: PtyApp, key: str, samples: dict, timeout: float = 15.0) -> None:
    """One real key press: the time until its effect reaches the terminal; then the same key undoes it. A press
    whose effect never shows (a key typed while a dialog closes goes to the dialog) is counted as lost (inf) and
    not undone, so that the next press finds the same screen."""
    send, marker = KEYS[key]
    pos, wall, t0 = len(app.buf), time.time(), time.perf_counter()
    app.send(send)
    seen = app.wait_for(marker, timeout, pos)
    samples.setdefault(key, []).append((wall, (seen - t0) if seen is not None else float("inf")))
    if seen is not None:
        app.send(send)
    app.read(0.3)  # a person's pace, and the undo's repaint


def bench_keys(srv: Server, large: ConnSettings) -> None:
    """Key-to-screen latency of the real console while it runs pre-flight, a backup of the large database and
    applies of the 10,000-statement file (ROUNDS BEGIN/apply/ROLLBACK rounds, for enough presses): keys typed on
    a pty, the time until the screen shows their effect. The anchor: the same keys with nothing running."""

    work = Path(tempfile.mkdtemp(prefix="aami-bench-"))
    path = work / "m10k.sql"
    make_10k(path)
    argv = [PY, "-m", "aami_tui", "--migration-file", str(path), "--backup-dir", str(work / "b"),
            "--reports-dir", str(work / "r")]
    load0 = os.getloadavg()
    app = PtyApp(argv, {**os.environ, **srv.env(large)})
    samples: dict = {}  # phase -> key -> [(wall time, latency)]
    checks_seconds = float("nan")  # from `r` until pre-flight's automatic checks show the file
    order = ["?", "s"]
    turn = [0]

    def step(key: bytes, prompt: bytes, done: bytes, phase: str, timeout: float = 300, confirm: bytes = b"\r") -> None:
        """Press the step's key once, confirm its prompt, then press the timed keys in turn until ``done``
        shows. Never a key that is refused while a step runs (its toast would cover what is timed)."""
        print(f"    (console: {prompt.decode()})", flush=True)
        pos = len(app.buf)
        app.send(key)  # once: the last step ended when the bar said so (its run report is written after it)
        if app.wait_for(prompt, 30, pos) is None:
            raise RuntimeError(f"no prompt {prompt!r}")
        app.read(0.3)
        pos = len(app.buf)
        app.send(confirm)
        app.wait_for(b"escape cancels)", 2.0, pos)  # it runs: keys now go to the runbook, not to the dialog
        end = time.perf_counter() + timeout
        while app.buf.find(done, max(0, pos - len(done))) < 0:
            if time.perf_counter() > end:
                raise RuntimeError(f"{prompt!r} did not finish")
            _press(app, order[turn[0] % 2], samples.setdefault(phase, {}))
            turn[0] += 1
        app.read(0.3)

    try:
        if app.wait_for(b"/ 10 present", 30) is None:
            raise RuntimeError("the console showed no checklist")
        t_open = time.perf_counter()
        app.send(b"r")
        if app.wait_for(b"Pre-flight checklist", 30) is None:
            raise RuntimeError("the runbook did not open")
        checked = app.wait_for(b"10,000 statements", 120)  # the automatic checks have parsed (and linted) the file
        if checked is None:
            raise RuntimeError("the automatic checks did not finish")
        checks_seconds = checked - t_open
        app.read(1.0)
        for i in range(5):  # the operator's checklist: space ticks, tab moves on
            app.send(b" " + (b"\t" if i < 4 else b""))
            app.read(0.1)
        try:
            step(b"n", b"Run Pre-flight?", NEXT + b"Backup", "preflight")
            # The first `s` loads the 10,000 statements into the SQL view (once): not a light key, not timed.
            pos = len(app.buf)
            app.send(b"s")
            app.wait_for(KEYS["s"][1], 30, pos)
            app.read(0.5)
            app.send(b"s")
            app.read(0.5)
            # Each step's end is read from the bar's "Next:" hint, which shows the present state only (a log
            # line of an earlier round can be painted again with the log).
            step(b"n", b"Run Backup?", NEXT + b"BEGIN, or r", "backup")
            for attempt in range(1, ROUNDS + 1):
                step(b"n", b"Retry the transaction from BEGIN?" if attempt > 1 else b"Run BEGIN?", NEXT + b"Apply",
                     "begin")
                step(b"n", b"Run Apply?", NEXT + b"Verify", "apply")
                if attempt < ROUNDS:
                    step(b"x", b"ROLLBACK the transaction?", NEXT + b"BEGIN (retry)", "rollback",
                         confirm=b"\t\r")  # its dialog focuses Cancel: tab to ROLLBACK
            app.read(2.0)
            for i in range(40):  # the anchor: the same keys on the same screen, nothing running
                _press(app, order[i % 2], samples.setdefault("idle", {}))
                app.read(0.1)
        except RuntimeError as exc:  # the samples so far still count
            print(f"  (the scripted run stopped: {exc})", flush=True)
        os.kill(app.pid, signal.SIGTERM)  # ends like a quit that rolls back: the report is written
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((work / "r").glob("report_*.json")):
            app.read(0.2)
        app.read(1.0)
    finally:
        app.close()
    load1 = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)

    def lat(key: str, *phases: str) -> list[float]:
        return sorted(x for ph in phases for _, x in samples.get(ph, {}).get(key, []))

    def stats(xs: list[float]) -> str:
        if not xs:
            return "no samples"
        q = lambda f: xs[min(len(xs) - 1, int(len(xs) * f))] * 1000  # noqa: E731
        return f"p50 {q(0.5):.0f} ms, p95 {q(0.95):.0f} ms, max {xs[-1] * 1000:.0f} ms ({len(xs)} presses)"

    load = f"load average {load0[0]:.2f} before, {load1[0]:.2f} after"
    if os.environ.get("AAMI_BENCH_SAMPLES"):  # every press: [phase, key, wall time, seconds] (benchmarks/keytrace)
        import json
        Path(os.environ["AAMI_BENCH_SAMPLES"]).write_text(json.dumps(
            [[ph, k, w, x] for ph, d in samples.items() for k, xs in d.items() for w, x in xs]))
    for key, what in (("?", "`?` opens the help"), ("s", "`s` shows the SQL (a light key)")):
        row(f"key press to screen, {what}, while a backup and an apply run (real console, pty)",
            stats(lat(key, "backup", "apply")) + f"; {load}", "p95 < 50 ms")
        row("  the same key, nothing running (anchor)", stats(lat(key, "idle")), "(anchor)")
        row("  the same key during pre-flight of the 10,000-statement file", stats(lat(key, "preflight")),
            "(information)")
    row("(information) the console's automatic checks of the 10,000-statement file (parse, lint, server)",
        f"{checks_seconds:.1f} s from `r` until they show the file", "(information)")


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM"


async def main() -> None:
    t_start = time.perf_counter()
    srv = Server()
    print(f"aami-tui benchmark on {srv.where} (PostgreSQL {srv.version}); machine: {machine()}", flush=True)
    try:
        only = set(sys.argv[1:])  # e.g. `bench.py keys console`: only those rows
        large = srv.db("large")
        if not only or only & {"backup", "responsiveness", "keys"}:  # the rows that need it (`console` does not)
            t0 = time.perf_counter()
            size = fill_large(large, ROWS)
            print(f"  built the large database: {size} ({2 * ROWS:,} rows in two tables) in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        if not only or "backup" in only:
            await bench_backup(srv, large)
        if not only or "check" in only:
            bench_check(srv)
        if not only or "console" in only:
            bench_console(srv)
        if not only or "apply" in only:
            await bench_apply(srv)
        if not only or "responsiveness" in only:
            await bench_responsiveness(srv, large)
        if not only or "keys" in only:
            try:
                bench_keys(srv, large)
            except (RuntimeError, OSError) as exc:  # the console did not go as scripted: say so, keep the rest
                row("key press to screen while a backup and an apply run", f"not measured: {exc}", "p95 < 50 ms")
    finally:
        srv.close()
    print(f"\nSummary ({srv.where}, PostgreSQL {srv.version}; {machine()}; {time.perf_counter() - t_start:.0f} s)")
    for what, value, goal in results:
        print(f"| {what} | {value} | {goal} |")


if __name__ == "__main__":
    asyncio.run(main())
