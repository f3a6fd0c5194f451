"""Command line: ``aami-tui`` (console), ``check``, ``apply``, ``lint``, ``demo``, ``screenshots``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aami_tui import __version__
from aami_tui.core.words import plural
from aami_tui.start import COMMANDS, EXIT_USAGE
from aami_tui.start import need_terminal as _need_terminal

# Exit codes (documented in the README).
EXIT_OK = 0
EXIT_MISSING = 1
EXIT_CONNECT = 2
EXIT_DRIFT = 3  # check --strict only
EXIT_TIMEOUT = 4  # check: the validation could not finish within its own lock_timeout / statement_timeout


PG_MAX_TIMEOUT_S = 2147483.647  # lock_timeout / statement_timeout are ints of milliseconds (INT_MAX)


def _seconds(text: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if v != v:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds")
    if v < 0 or (v == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(f"{text!r} must be {'zero or more' if allow_zero else 'more than zero'} "
                                         "seconds")
    return v


def _positive(text: str) -> float:
    return _seconds(text)


def _rehearsal_report(text: str) -> Path:
    """--rehearsal-report: the report must be there (its JSON is what pre-flight reads) before anything runs: a
    mistyped path was only a `!` in pre-flight, naming the .json instead of the file given, and the run went on."""
    p = Path(text).expanduser()
    js = p.with_suffix(".json") if p.suffix == ".md" else p
    if not p.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not js.exists():
        raise argparse.ArgumentTypeError(f"{js}, the JSON beside {text}, does not exist (the JSON is what is read)")
    return p


def _non_negative(text: str) -> float:
    return _seconds(text, allow_zero=True)


def _pg_timeout(text: str) -> float:
    """A lock_timeout / statement_timeout: PostgreSQL counts them in whole milliseconds and reads 0 as "no
    timeout at all", so a value below 1 ms (which the runbook would send as 0ms) is refused, not rounded."""
    v = _seconds(text)
    if v < 0.001:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1 ms: PostgreSQL counts timeouts in whole "
                                         "milliseconds and 0 means no timeout at all (use 0.001 or more)")
    if v > PG_MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text!r} is more than PostgreSQL accepts: at most {PG_MAX_TIMEOUT_S:g} "
                                         "seconds (about 24.8 days)")
    return v


def _whole_seconds(text: str) -> int:
    v = _seconds(text)
    if v != int(v):
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of seconds")
    if v > 2147483647:
        raise argparse.ArgumentTypeError(f"{text!r} is too large: at most 2147483647 seconds")
    return int(v)


def _compress(text: str) -> str:
    from aami_tui.core.compress import parse_compress  # not pgtools: it loads asyncio and subprocess

    try:
        return parse_compress(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of parallel jobs") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and 64")
    return n


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--dsn", help="libpq conninfo or URI (wins over DB_* and PG* variables)")
    g.add_argument("--dbname", help="database name (overrides the resolved one)")
    g.add_argument("--connect-timeout", type=_whole_seconds, default=None, metavar="S",
                   help="seconds to wait for a connection (default 5)")
    g.add_argument("--embedded", action="store_true",
                   help="start a throwaway embedded PostgreSQL 18 with an empty aami_config and use it")
    p.add_argument("--migrations-dir", type=Path, default=None,
                   help="folder holding 001_initial_schema.sql (default: the shipped one)")


# EXIT_USAGE (64): bad command-line arguments (BSD sysexits EX_USAGE), distinct from "cannot connect"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2, which here means "cannot connect"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Unused:
    """A command's parser whose options are not needed for this run (build_parser's ``command``): every call is
    dropped. The command itself is registered (its name and help are listed as always)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


def _part(parser: argparse.ArgumentParser, command: str | None, name: str):
    return parser if command is None or command == name else _Unused()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. ``command``: only that command's options are built (the others' names and help are listed
    as always): the console starts ~3 ms sooner than with every command's options built."""
    p = Parser(prog="aami-tui", description=(
        "Guided console for the AAMI Config Server's PostgreSQL schema migration. "
        "Without a command it opens the console."))
    p.add_argument("--version", action="version", version=f"aami-tui {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=Parser)

    c = _part(sub.add_parser("check", help="the server's start-up schema validation, headless (CI)"), command, "check")
    _common(c)
    c.add_argument("--json", action="store_true", help="print a machine-readable result instead")
    c.add_argument("--strict", action="store_true",
                   help=f"also fail (exit {EXIT_DRIFT}) when a required table exists but its columns drifted")

    for name, helptext in (("console", "open the full-screen console (default)"),
                           ("demo", "open the console on an embedded PostgreSQL with an empty aami_config")):
        t = _part(sub.add_parser(name, help=helptext), command, name)
        _common(t)
        _runbook_opts(t)
        t.add_argument("--refresh", type=_positive, default=2.0, metavar="S",
                       help="seconds between checklist refreshes (default 2)")
        t.add_argument("--dev", action="store_true",
                       help="development mode, for a local or throwaway database: a one-item checklist, no backup "
                            "when the database is empty (both recorded in the report), and the DB_* lines printed "
                            "when the console closes")

    a = _part(sub.add_parser("apply", help="run the runbook headless: pre-flight, backup, BEGIN, apply, verify, "
                                           "COMMIT only with --yes"), command, "apply")
    _common(a)
    _runbook_opts(a)
    a.add_argument("--yes", action="store_true", help="COMMIT when verify passes (otherwise ROLLBACK)")
    a.add_argument("--rehearse", action="store_true",
                   help="after the backup, rehearse on a scratch copy restored from it (as `aami-tui rehearse`); "
                        "BEGIN runs on the real database only if the rehearsal passed (else exit 10)")
    a.add_argument("--no-backup", action="store_true",
                   help="skip the backup step (recorded in the report); for throwaway databases only")

    i = _part(sub.add_parser("init", help="day one: create the database if missing, apply and verify the migration, "
                                          "print the Config Server's DB_* lines (never drops anything)"), command, "init")
    _common(i)
    i.add_argument("--reports-dir", type=Path, default=Path("reports"),
                   help="where the run report goes (default ./reports)")
    i.add_argument("--migration-file", type=Path, default=None, help="apply this file instead of the shipped one")
    i.add_argument("--lock-timeout", type=_pg_timeout, default=5.0, metavar="S",
                   help="lock_timeout in seconds (default 5)")
    i.add_argument("--statement-timeout", type=_pg_timeout, default=300.0, metavar="S",
                   help="statement_timeout in seconds (default 300)")
    i.add_argument("--env-file", type=Path, default=None, metavar="PATH",
                   help="also write the DB_* lines to PATH (0600; other lines in it are kept), for `source` "
                        "or docker compose's env_file")

    lt = _part(sub.add_parser("lint", help="lint a migration file: squawk's rules mapped to this runbook, plus the "
                                           "runbook's own refusals and (connected) live table sizes"), command, "lint")
    lt.add_argument("file", type=Path, nargs="?", default=None,
                    help="the SQL file (default: the shipped 001_initial_schema.sql)")
    _common(lt)
    lt.add_argument("--offline", action="store_true",
                    help="never connect (otherwise lint connects when --dsn/--dbname/--embedded or DB_*/PG* "
                         "variables say where)")
    lt.add_argument("--json", action="store_true", help="print a machine-readable result instead")

    pl = _part(sub.add_parser("plan", help="compare the database with what the migration builds and write a repair "
                                           "plan (safe SQL, plus commented parts a person must decide)"), command, "plan")
    _common(pl)
    pl.add_argument("--migration-file", type=Path, default=None, help="compare with this file instead of the "
                                                                       "shipped one")
    pl.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                    help="write the plan to FILE (0600) instead of stdout")
    pl.add_argument("--json", action="store_true", help="print the classified differences as JSON instead")

    rh = _part(sub.add_parser("rehearse", help="rehearse the migration on a scratch copy restored from a fresh "
                                               "backup (the real database is only read); exit 0 only if the real run "
                                               "would succeed and leave no drift"), command, "rehearse")
    _common(rh)
    rh.add_argument("--migration-file", type=Path, default=None, help="rehearse this file instead of the shipped one")
    rh.add_argument("--from-backup", type=Path, default=None, metavar="FILE",
                    help="restore this pg_dump -Fc file instead of taking a fresh backup")
    rh.add_argument("--backup-dir", type=Path, default=Path("backups"), help="where the fresh backup goes "
                                                                             "(default ./backups)")
    rh.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where the rehearsal report goes "
                                                                              "(default ./reports)")
    rh.add_argument("--lock-timeout", type=_positive, default=5.0, metavar="S", help="lock_timeout (default 5)")
    rh.add_argument("--statement-timeout", type=_positive, default=300.0, metavar="S",
                    help="statement_timeout (default 300)")
    rh.add_argument("--rehearse-timeout", type=_positive, default=3600.0, metavar="S",
                    help="the rehearsal's bound in seconds: the backup's restore into the copy plus the run there "
                        "(default 3600, one hour); past it the rehearsal is stopped and the copy dropped")
    rh.add_argument("--json", action="store_true", help="print the rehearsal's record as JSON")

    rs = _part(sub.add_parser("restore", help="restore a backup into the database in one transaction (the guide's "
                                              "rollback), as the console's restore; only with --yes"), command,
               "restore")
    _common(rs)
    rs.add_argument("backup", type=Path, nargs="?", default=None,
                    help="the backup (.dump, or a --jobs .dir); default: the newest of this database taken from this "
                         "server in --backup-dir")
    rs.add_argument("--backup-dir", type=Path, default=Path("backups"), help="where backups are (default ./backups)")
    rs.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where the restore report goes "
                                                                              "(default ./reports)")
    rs.add_argument("--lock-timeout", type=_positive, default=30.0, metavar="S",
                    help="how long the restore waits for another session's lock before it rolls back (default 30)")
    rs.add_argument("--commit-timeout", type=_positive, default=60.0, metavar="S",
                    help="how long the restore's COMMIT may go unanswered (default 60). A COMMIT waiting for a "
                         "synchronous standby that has gone (wait_event SyncRep: committed locally) then has that "
                         "wait ended, as apply --yes does: the restore stays committed on the primary only, NOT "
                         "confirmed on the standby, and the output and the report say so")
    rs.add_argument("--yes", action="store_true", help="restore (without it: say what it would do, exit 6)")

    s = _part(sub.add_parser("screenshots", help="regenerate the SVGs in screenshots/ (uses the embedded server)"),
              command, "screenshots")
    s.add_argument("--out", type=Path, default=Path("screenshots"))
    return p


def _runbook_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runbook")
    g.add_argument("--backup-dir", type=Path, default=Path("backups"), help="where backups go (default ./backups)")
    g.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where run reports go (default ./reports)")
    g.add_argument("--lock-timeout", type=_pg_timeout, default=5.0, metavar="S", help="lock_timeout in seconds (default 5)")
    g.add_argument("--statement-timeout", type=_pg_timeout, default=300.0, metavar="S",
                   help="statement_timeout in seconds (default 300)")
    g.add_argument("--commit-timeout", type=_positive, default=60.0, metavar="S",
                   help="client-side bound on COMMIT and ROLLBACK (default 60); past it the outcome is asked of "
                        "the server (pg_xact_status), never guessed. A COMMIT waiting for its synchronous standby "
                        "(SyncRep): the console asks you to keep waiting or end the wait; apply ends it")
    g.add_argument("--idle-timeout", type=_non_negative, default=900.0, metavar="S",
                   help="idle_in_transaction_session_timeout of the migration session: the server rolls back a "
                        "transaction left idle this long (default 900; 0 = off)")
    g.add_argument("--rehearse-timeout", type=_positive, default=3600.0, metavar="S",
                   help="with --rehearse (or r in the console), the rehearsal's bound in seconds: the backup's restore into the copy plus the run there "
                        "(default 3600, one hour); past it the rehearsal is stopped and the copy dropped")
    g.add_argument("--migration-file", type=Path, default=None, help="apply this file instead of the shipped one")
    g.add_argument("--rehearsal-report", type=_rehearsal_report, default=None, metavar="FILE",
                   help="a report from `aami-tui rehearse`: pre-flight's 'Tested on staging' evidence")
    g.add_argument("--exact", action="store_true",
                   help="require exactly the ten tables in public (the guide's CI gate); without it, tables that "
                        "were there before are reported, not blocking")
    g.add_argument("--compress", type=_compress, default="0", metavar="Z",
                   help="pg_dump's -Z for the backup, as pg_dump spells it: a level 0-9 (gzip) or METHOD[:LEVEL] "
                        "(none, gzip, lz4, zstd; pg_dump 16+ and as built); checked against the pg_dump used. "
                        "Default 0: no compression, the fastest backup (README, Performance)")
    g.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                   help="back up with N parallel pg_dump sessions (directory format; pays with several large "
                        "tables and spare cores on both ends). Default 1: one custom-format file")
    g.add_argument("--pace", type=_non_negative, default=0.0, metavar="S",
                   help="pause S seconds between statements while applying (slow motion, to watch and learn)")


def _silence(stream) -> None:
    """Point a stream whose reader went away (``| head``) at /dev/null: later writes, and the interpreter's own
    flush at exit, then succeed quietly instead of raising BrokenPipeError or turning the exit code into 120."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _emit(text: str, stream=None) -> None:
    """Print a line. Output failures never change the outcome or the exit code."""
    stream = sys.stdout if stream is None else stream
    try:
        print(text, file=stream, flush=True)
    except (BrokenPipeError, ConnectionResetError):
        _silence(stream)
    except OSError as exc:  # EIO from a terminal that went away, ENOSPC on a redirected file...
        import errno

        if exc.errno not in (errno.EPIPE, errno.EIO, errno.ENOSPC):
            raise
        _silence(stream)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            _silence(stream)


def _err(msg: str) -> None:
    _emit(f"aami-tui: {msg}", sys.stderr)


def _resolve(args):
    from aami_tui.core.settings import SettingsError, resolve

    try:
        return resolve(args.dsn, connect_timeout=args.connect_timeout, dbname=args.dbname)
    except SettingsError as exc:  # a DSN or DB_PORT that cannot be parsed: the user's settings, not the network
        _err(str(exc))
        raise SystemExit(EXIT_USAGE) from None


async def _check(settings, args) -> int:
    # Only what the check needs: no pglast (expected columns come pre-parsed for the shipped file), no Textual.
    from aami_tui.core import schema
    from aami_tui.core.db import ConnectError, connect
    from aami_tui.core.expected import expected_columns
    from aami_tui.core.paths import resolve_migration_path  # not migration: its regexes and dataclasses

    # drift detection needs the file; the server's check does not (None: no drift detection)
    expected = expected_columns(resolve_migration_path(args.migrations_dir))
    try:
        conn = await connect(settings)
    except ConnectError as exc:
        if args.json:
            _emit(json.dumps({"ok": False, "error": str(exc), "error_kind": exc.kind, "exit_code": EXIT_CONNECT}))
        else:
            _err(str(exc))
        return EXIT_CONNECT
    try:
        result = await schema.validate(conn, expected, sizes=args.json)
        info = conn.info
        host, port, user, dbname = info.host, info.port, info.user, info.dbname
        running = await _migration_in_progress(conn)
    except schema.ValidationTimeout as exc:
        if args.json:
            _emit(json.dumps({"ok": False, "error": str(exc), "error_kind": "timeout", "exit_code": EXIT_TIMEOUT}))
        else:
            _err(str(exc))
        return EXIT_TIMEOUT
    finally:
        await conn.close()
    for t in result.locked:
        _emit(f"WARNING: {t.lock_sentence()}", sys.stderr)
    code = EXIT_OK if result.ok else EXIT_MISSING
    if code == EXIT_OK and args.strict and result.drifted:
        code = EXIT_DRIFT
    if args.json:
        out = result.to_dict()
        out.update({"exit_code": code, "server_lines": schema.server_lines(result, host, user, dbname, port),
                    "database": {"host": host, "port": port, "user": user, "dbname": dbname},
                    "migration_in_progress": running and {
                        k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in running.items()}})
        _emit(json.dumps(out, indent=2))
        return code
    for line in schema.server_lines(result, host, user, dbname, port):
        _emit(line)
    if running:  # the server's lines stay exact (the spec); what aami-tui knows besides goes to stderr
        _emit(_migration_note(running, dbname, result.ok), sys.stderr)
    for name in result.drifted:
        t = next(t for t in result.required if t.name == name)
        parts = []
        if t.missing_columns:
            parts.append("missing columns " + ", ".join(t.missing_columns))
        if t.unexpected_columns:
            parts.append("unexpected columns " + ", ".join(t.unexpected_columns))
        _emit(f"WARNING: table {name} differs from 001_initial_schema.sql: {'; '.join(parts)} "
              "(built by the archived migrations? IF NOT EXISTS never repairs it)", sys.stderr)
    if result.drifted:  # apply refuses drift: the way forward is the drift plan
        _emit("HINT: `aami-tui plan --output plan.sql` writes the repair; review it, then "
              "`aami-tui apply --migration-file plan.sql --yes` (the console: p, the Drift view)", sys.stderr)
    return code


async def _migration_in_progress(conn) -> dict | None:
    """The session running the runbook on this database now, or None; best effort: a failure to ask never changes
    the check's answer."""
    import psycopg

    from aami_tui.core import locks

    try:
        return await locks.migration_in_progress(conn)
    except psycopg.Error:
        return None


def _migration_note(h: dict, dbname: str, ok: bool) -> str:
    """fresh6 F8: 'NOTE: a migration is in progress on rt (pid 11428, …, transaction open since …)': beside the
    server's 'Please run database migrations … psql -f …', which must not be followed while it runs."""
    from aami_tui.core import locks

    return (f"NOTE: {locks.in_progress_words(h, dbname)}"
            + ("" if ok else ": the tables it creates appear when it commits; do not run psql -f now.")
            + ("." if ok else ""))


def _init(settings, args, embedded: bool = False) -> int:
    """`aami-tui init`: progress and sentences on stderr, only the DB_* lines on stdout
    (so `aami-tui init > config.env` works too)."""
    import asyncio

    from aami_tui.core import devinit, migration
    from aami_tui.signals import cancel_on_signals

    def say(line: str) -> None:
        _emit(line, sys.stderr)

    async def go() -> devinit.InitResult:
        with cancel_on_signals():  # SIGINT, SIGTERM, SIGHUP
            return await devinit.run_init(
                settings, migration.resolve_migration_path(args.migrations_dir, args.migration_file),
                reports_dir=args.reports_dir, lock_timeout=args.lock_timeout,
                statement_timeout=args.statement_timeout, say=say)

    say(f"aami-tui init: {settings.display()}")
    r = asyncio.run(go())
    say(("" if r.code == devinit.EXIT_READY else "aami-tui: ") + r.message)
    if r.report:
        say(f"Report: {r.report} (JSON beside it)")
    if r.code != devinit.EXIT_READY:
        return r.code
    if args.env_file:
        try:
            path = devinit.write_env_file(args.env_file, r.env_lines)
        except OSError as exc:
            _err(f"could not write {args.env_file}: {exc.strerror or exc}")
            return devinit.EXIT_PREFLIGHT
        say(devinit.env_file_words(args.env_file, path, r.env_lines))
    else:
        say("The Config Server's settings (DB_PASSWORD is never shown: set it yourself):")
    if embedded:  # these lines point at a server that is about to go
        say("Note: --embedded is a throwaway server, stopped and removed when this command exits: the lines "
            "below show the procedure; for a database that stays, run init against your own server (--dsn or "
            "DB_*).")
    for line in r.env_lines:
        _emit(line)  # a closed stdout never changes the outcome
    return r.code

def _lint_wants_connection(args) -> bool:
    import os

    if args.offline:
        return False
    if args.dsn or args.dbname or args.embedded:
        return True
    return any(os.environ.get(v) for v in ("DB_HOST", "DB_NAME", "PGHOST", "PGDATABASE", "PGSERVICE"))


def _lint(args) -> int:
    import asyncio

    from aami_tui.core import lint, migration

    path = args.file or migration.resolve_migration_path(args.migrations_dir)
    if not Path(path).is_file():  # a wrong path is the command line's error, not a finding of a rule
        what = "is a directory" if Path(path).is_dir() else "does not exist"
        where = "" if Path(path).is_absolute() else f" (relative to {Path.cwd()})"
        _err(f"{path} {what}{where}; give the migration file's path.")
        return EXIT_USAGE

    async def live(settings):
        from aami_tui.core.db import ConnectError, connect

        try:
            conn = await connect(settings)
        except ConnectError as exc:
            return exc
        try:
            version = f"{conn.info.server_version // 10000}.0"
            return (*await lint.live_facts(conn, path), version)
        finally:
            await conn.close()

    facts, version, indexes, unreachable = None, None, frozenset(), None
    if _lint_wants_connection(args):
        got = _with_embedded(args, lambda s, pg: asyncio.run(live(s)))
        if isinstance(got, int | Exception):
            # The file's own findings (a syntax error above all) are never hidden behind the connection's error.
            unreachable = got
            if isinstance(got, Exception):
                _err(str(got))
            _err("The file's findings above were linted without live facts (no row counts or sizes for the tables "
                 "it locks); --offline lints without a connection on purpose.")
        else:
            facts, indexes, version = got
    res = lint.lint(path, facts, version, live_indexes=indexes)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        for line in lint.format_text(res):
            print(line)
    if unreachable is not None and res.exit_code < lint.EXIT_ERRORS:
        return lint.EXIT_CONNECT  # what was asked for (live facts) could not be had
    return res.exit_code


async def _rehearse(settings, args) -> int:
    from aami_tui.core import migration
    from aami_tui.signals import cancel_on_signals

    path = migration.resolve_migration_path(args.migrations_dir, args.migration_file)
    with cancel_on_signals():  # SIGINT, SIGTERM, SIGHUP: the copy dropped, the report written, exit 130
        return await _rehearsing(settings, args, path)


async def _rehearsing(settings, args, path) -> int:
    import asyncio

    from aami_tui.core import rehearse
    from aami_tui.core.db import ConnectError
    from aami_tui.headless import Every

    every = Every()

    def on_progress(p) -> None:  # "restoring the copy: 12.3 / 45.6 MiB (27 %), 8.1 MiB/s, ETA 0:04 (public.x)"
        if every.due(p.done, p.total, p.line()):
            _emit(p.line(), sys.stderr)

    held: list = []  # the rehearsal's record as soon as it exists: its report, on a timeout
    try:
        r = await asyncio.wait_for(rehearse.rehearse(
            settings, path, backup_dir=args.backup_dir, reports_dir=args.reports_dir, from_backup=args.from_backup,
            lock_timeout=args.lock_timeout, statement_timeout=args.statement_timeout,
            say=lambda m: _emit(m, sys.stderr), on_progress=on_progress, started=held.append),
            args.rehearse_timeout)
    except TimeoutError:
        made = held and held[0].copy_name
        copy = ("no copy was made" if not made else "the copy was dropped" if held[0].copy_dropped
                else f"the copy {held[0].copy_name} could NOT be dropped: drop it by hand")
        report = f" Report: {held[0].report}." if held and held[0].report else ""
        _err(f"The rehearsal did not finish within {args.rehearse_timeout:g}s (--rehearse-timeout); {copy}; the "
             f"real database was only read.{report}")
        return rehearse.EXIT_TIMED_OUT
    except ConnectError as exc:
        _err(str(exc))
        return rehearse.EXIT_CONNECT
    except rehearse.RehearsalError as exc:
        _err(str(exc))
        return rehearse.EXIT_NO_COPY
    except asyncio.CancelledError:  # SIGINT, SIGTERM or SIGHUP
        made = held and held[0].copy_name
        copy = ("no copy was made" if not made else "the copy was dropped" if held[0].copy_dropped
                else f"the copy {held[0].copy_name} could NOT be dropped: drop it by hand "
                     f"(DROP DATABASE {held[0].copy_name};)")
        report = f" Report: {held[0].report}." if held and held[0].report else ""
        _err(f"interrupted: {copy}; the real database was only read.{report}")
        return rehearse.EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(r.to_dict(), indent=2, default=str))
        return r.exit_code
    for line in rehearse.summary_lines(r):
        if not line.startswith("check --strict"):  # the verdict already says it
            print(line)
    print(f"Report: {r.report} (pre-flight evidence: --rehearsal-report {r.report})")
    return r.exit_code


async def _live_lint_facts(settings, path) -> tuple:
    """(live tables, server version, live indexes) for lint; empty when the database cannot be reached."""
    from aami_tui.core import lint
    from aami_tui.core.db import ConnectError, connect

    try:
        conn = await connect(settings)
    except ConnectError:
        return (None, None)
    try:
        tables, indexes = await lint.live_facts(conn, path)
        return (tables, f"{conn.info.server_version // 10000}.0", None, indexes)
    finally:
        await conn.close()


async def _plan(settings, args) -> int:
    import asyncio

    from aami_tui.core import lint, migration
    from aami_tui.core import plan as planmod
    from aami_tui.core.db import ConnectError
    from aami_tui.core.files import FileError, why_not_writable, write_error_words, write_private
    from aami_tui.signals import cancel_on_signals

    path = migration.resolve_migration_path(args.migrations_dir, args.migration_file)
    if args.output is not None and (why := why_not_writable(args.output)):  # before the comparison, not after
        _err(f"cannot write the plan to {args.output}: {why}.")
        return EXIT_USAGE
    try:
        with cancel_on_signals():  # SIGINT, SIGTERM, SIGHUP: the temporary database dropped, exit 130
            plan = await planmod.make_plan(settings, path, say=lambda m: _emit(m, sys.stderr))
    except asyncio.CancelledError:
        _err("interrupted: no plan was written; the database was only read.")
        return planmod.EXIT_INTERRUPTED
    except ConnectError as exc:
        _err(str(exc))
        return planmod.EXIT_CONNECT
    except planmod.PlanError as exc:
        _err(str(exc))
        return planmod.EXIT_REFERENCE_FAILED
    code = planmod.EXIT_PLAN_WRITTEN if plan.differences else planmod.EXIT_NO_DIFFERENCES
    if args.json:
        print(json.dumps(plan.to_dict() | {"exit_code": code}, indent=2))
        return code
    print(plan.summary(), file=sys.stderr)
    if not plan.differences:
        for item in plan.of("note"):
            print(f"note: {item.title}", file=sys.stderr)
        return code
    text = plan.render(args.output.name if args.output else "plan.sql")
    if args.output is None:
        print(text)
        return code
    try:
        write_private(args.output, text)
    except (FileError, OSError) as exc:
        _err(f"cannot write the plan to {args.output}: "
             f"{write_error_words(exc) if isinstance(exc, OSError) else str(exc).rstrip('.')}.")
        return EXIT_USAGE
    print(f"Plan written to {args.output}.", file=sys.stderr)
    if plan.of("person"):
        print(f"{plural(len(plan.of('person')), 'part needs', 'parts need')} a person: apply refuses the plan until each is edited "
              f"(search for '{planmod.PERSON_MARKER}').", file=sys.stderr)
    else:
        res = lint.lint(args.output, *(await _live_lint_facts(settings, args.output)))
        for f in res.findings:
            if f.severity != "info":
                print(f.format(str(args.output)), file=sys.stderr)
        print(f"Lint: {plural(len(res.errors), 'error')}, {plural(len(res.warnings), 'warning')} "
              f"(aami-tui lint {args.output} for details).", file=sys.stderr)
    return code


def _with_embedded(args, fn):
    """Run fn(settings) against a throwaway embedded server when --embedded/demo, else resolved settings."""
    if getattr(args, "embedded", False) or args.command == "demo":
        from aami_tui.core import embedded

        _emit("Starting an embedded PostgreSQL 18 (throwaway, removed on exit)...", sys.stderr)
        try:
            pg = embedded.start(args.dbname or "aami_config")
        except Exception as exc:
            _err(f"could not start the embedded PostgreSQL: {exc}")
            return EXIT_CONNECT
        try:
            return fn(pg.settings(), pg)
        finally:
            pg.stop()
    return fn(_resolve(args), None)


def _console(args) -> int:
    """The console (start.console), with its early child unless it runs on an embedded server."""
    from aami_tui.start import console

    early = None
    if not args.embedded:
        from aami_tui.core import early as early_child

        early = early_child.start(args)
    return console(args, early)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["console", *argv]  # `aami-tui --dsn ...` opens the console
    parser = build_parser(argv[0] if argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    finally:
        _flush_quietly()


def _dispatch(parser: argparse.ArgumentParser, args) -> int:
    command = args.command
    if command == "demo" and (args.dsn or args.embedded):
        parser.error("`aami-tui demo` always runs on its own throwaway embedded server, so --dsn and --embedded "
                     "do not apply; for the console on your server run `aami-tui --dsn ...`")
    if command in ("console", "demo"):
        no_tty = _need_terminal()
        if no_tty:
            _err(no_tty)
            return EXIT_USAGE
    if command == "console":
        return _console(args)
    import asyncio  # not before the console's early child starts (see _console)

    try:
        if command == "check":
            return _with_embedded(args, lambda s, pg: asyncio.run(_check(s, args)))
        if command == "apply":
            from aami_tui.headless import run_apply

            return _with_embedded(args, lambda s, pg: run_apply(s, args))
        if command == "init":
            return _with_embedded(args, lambda s, pg: _init(s, args, embedded=pg is not None))
        if command == "demo":
            from aami_tui.ui.app import run_console

            return _with_embedded(args, lambda s, pg: run_console(s, args, embedded=pg))
        if command == "lint":
            return _lint(args)
        if command == "rehearse":
            return _with_embedded(args, lambda s, pg: asyncio.run(_rehearse(s, args)))
        if command == "plan":
            return _with_embedded(args, lambda s, pg: asyncio.run(_plan(s, args)))
        if command == "restore":
            from aami_tui.headless_restore import run_restore

            return _with_embedded(args, lambda s, pg: run_restore(s, args))
        if command == "screenshots":
            from aami_tui.ui.screenshots import main as shots

            return shots(args.out)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
