"""``aami-tui apply``: the runbook engine without the UI, for pipelines.

Prints each step as it goes and exits with one code per typed outcome (``Verdict``; see the README).
Output is best effort: a closed stdout or stderr (``apply --yes | head -2``) never changes what is done
to the database, the report, or the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time

from aami_tui.core import migration
from aami_tui.core.runbook import (
    Event,
    Log,
    Options,
    Outcome,
    Progress,
    Runbook,
    RunbookError,
    Silence,
    State,
    StatementDone,
    Step,
    StepChanged,
    Verdict,
)
from aami_tui.core.words import signal_words
from aami_tui.signals import cancel_on_signals

# Kept for callers and tests; the values come from Verdict.
EXIT_COMMITTED = Verdict.COMMITTED.exit_code
EXIT_VERIFY_FAILED = Verdict.VERIFY_FAILED.exit_code
EXIT_CONNECT = Verdict.CONNECTION.exit_code
EXIT_PREFLIGHT = Verdict.PREFLIGHT.exit_code
EXIT_BACKUP = Verdict.BACKUP.exit_code
EXIT_APPLY_FAILED = Verdict.APPLY_FAILED.exit_code
EXIT_DRY_RUN = Verdict.DRY_RUN.exit_code
EXIT_LOCKED = Verdict.LOCKED.exit_code
EXIT_COMMIT_REJECTED = Verdict.COMMIT_REJECTED.exit_code
EXIT_COMMIT_UNKNOWN = Verdict.COMMIT_UNKNOWN.exit_code
EXIT_INTERRUPTED = Verdict.INTERRUPTED.exit_code


def _silence(stream) -> None:
    """The reader went away: send the rest of this stream to /dev/null (also for the interpreter's
    final flush, which would otherwise turn a finished run into exit 120)."""
    with contextlib.suppress(Exception):
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, stream.fileno())
        os.close(fd)


def out(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):
        _silence(stream)


_notices: list[str] = []  # the server's notices during this run's apply (printed as one line)
PROGRESS_EVERY = 4.0  # seconds between headless progress lines (at least one every 5 s while a backup runs)


class Every:
    """Which progress lines a headless face prints: the first, then one every PROGRESS_EVERY seconds, and the
    last (once: a schema-only copy's "no table data" is said once, not at every poll)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.at, self.last, self.waiting = 0.0, "", False

    def due(self, done: int, total: int, line: str, waiting: bool = False) -> bool:
        """... and at once when a wait for another session's lock begins or ends."""
        now = time.monotonic()
        if now - self.at >= PROGRESS_EVERY or (done >= total and line != self.last) or waiting != self.waiting:
            self.at, self.last, self.waiting = now, line, waiting
            return True
        return False


_every = Every()
SILENT_EVERY = 30.0  # a round trip with no answer (events.Silence, from SILENT_AFTER on): a line, then one this often
LOCK_SAMPLE_EVERY = 1.0  # seconds between lock-watch samples while headless apply runs (the console's cadence)


async def _apply_saying_lock_waits(rb: Runbook) -> None:
    """rb.apply(), printing the console's step-pane line (LockWatch.waiting: which statement waits for whose lock,
    for how long, and what ends the wait) while a statement queues behind another session: the first sample
    that sees it, then at most one line every PROGRESS_EVERY seconds. A quick apply never samples at all."""
    stop = asyncio.Event()

    async def watch() -> None:
        said = None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LOCK_SAMPLE_EVERY)
                return
            w = await rb.lock_watch()
            if w is not None and w.waiting and not stop.is_set() and (
                    said is None or time.monotonic() - said >= PROGRESS_EVERY):
                said = time.monotonic()
                out(f"  {w.waiting}")

    watcher = asyncio.create_task(watch())
    try:
        await rb.apply()
    finally:
        stop.set()  # the watcher ends its sample (bounded by query_timeout) rather than being cut mid-query
        try:
            await asyncio.shield(watcher)
        except asyncio.CancelledError:
            watcher.cancel()
            raise


_silence_said: list[float] = []  # when the Silence line of the round trip now out was last printed


def _say_silence(e: Silence) -> None:
    """The engine's Silence (a round trip of the running step with no answer for SILENT_AFTER seconds: a frozen
    network, a server that stopped, or a long statement): its words, with the client's deadline, then one line every
    SILENT_EVERY seconds while it lasts; the console shows the same event's words on its step pane."""
    if e.over:
        _silence_said.clear()
    elif not _silence_said or time.monotonic() - _silence_said[0] >= SILENT_EVERY:
        _silence_said[:] = [time.monotonic()]
        out(f"  {e.message}")


def _printer(e: Event) -> None:
    if isinstance(e, Silence):
        _say_silence(e)
    elif isinstance(e, Log) and e.level == "notice":  # 42 "already exists, skipping" on a migrated database
        _notices.append(e.message)
    elif isinstance(e, Log | StatementDone):  # statements: "  12/43 CREATE TABLE  2.1 ms  CREATE TABLE groups"
        out(f"  {e.message}")
    elif isinstance(e, StepChanged) and e.record.state is State.RUNNING:
        _every.reset()
        out(f"== {e.step.title} ==")
    elif isinstance(e, Progress) and e.step in (Step.BACKUP, Step.REHEARSE):
        # "  backup: 123.4 / 456.7 MiB (27 %), 45.6 MiB/s, ETA 0:07 (public.events)" (the rehearsal's copy:
        # "  restoring the copy: …"): the first, then every PROGRESS_EVERY seconds, and the last
        if _every.due(e.done, e.total, e.message, e.waiting):
            out(f"  {e.message}")
    elif isinstance(e, Progress) and e.step is Step.BEGIN:
        # "  BEGIN: waiting 3s for a lock on the system catalog pg_class held by pid 123 (…); lock_timeout (5s) ends
        # the wait…": at once when the wait is seen, then every PROGRESS_EVERY seconds while it lasts
        if _every.due(e.done, e.total, e.message, e.waiting) and e.message:
            out(f"  {e.message}")
    if isinstance(e, StepChanged) and e.record.state is not State.RUNNING and _notices:
        first = _notices[0].split(": ", 1)[-1]
        out(f"  {len(_notices)} server notice{'s' if len(_notices) != 1 else ''} (first: {first}): kept in full "
            "in the report")
        _notices.clear()


async def _run(settings, args) -> int:
    path = migration.resolve_migration_path(args.migrations_dir, args.migration_file)
    kw = {}
    for opt in ("commit_timeout", "idle_timeout", "rehearse_timeout"):
        if getattr(args, opt, None) is not None:
            kw[opt] = getattr(args, opt)
    opts = Options(backup_dir=args.backup_dir, reports_dir=args.reports_dir, lock_timeout=args.lock_timeout,
                   statement_timeout=args.statement_timeout, skip_backup=args.no_backup, pace=args.pace,
                   exact=getattr(args, "exact", False), rehearsal_report=getattr(args, "rehearsal_report", None),
                   compress=getattr(args, "compress", "0"), jobs=getattr(args, "jobs", 1), **kw)
    rb = Runbook(settings, path, opts, _printer, interactive=False)
    library = logging.getLogger("psycopg")
    routed = _LibraryLog(rb)
    library.addHandler(routed)  # its warnings (a cancel we gave up on) go to the report's log, not the terminal
    try:
        # SIGINT, SIGTERM, SIGHUP: until the report is written and the last line said; the run told why first
        with cancel_on_signals(before=lambda sig: rb.ending(signal_words(sig))):
            return await _steps(rb, settings, args)
    finally:
        library.removeHandler(routed)


class _LibraryLog(logging.Handler):
    """A library's log records (psycopg's 'query cancellation interrupted (CancelledError): closing connection' when
    the engine gives up a cancel that got no answer, which it says in its own words) go to the run's log, in the
    report; never raw on the user's terminal (Python printed them there: no handler was configured)."""

    def __init__(self, rb: Runbook) -> None:
        super().__init__(logging.WARNING)
        self.rb = rb

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.rb.log.append((record.created, "info", f"(library warning, {record.name}: {record.getMessage()})"))


async def _steps(rb: Runbook, settings, args) -> int:
    verdict = Verdict.COMMITTED
    try:
        await rb.preflight()
        if rb.nothing_to_do:  # the engine ended the run after pre-flight (said in its log): exit 0, as init
            return rb.verdict.exit_code
        await rb.backup_step()
        if getattr(args, "rehearse", False):
            await rb.rehearse()  # one that does not pass stops the run at BEGIN (exit 10)
        await rb.begin()
        await _apply_saying_lock_waits(rb)
        await rb.verify()
        if not args.yes:
            await rb.rollback("no --yes: dry run")
            rb.verdict = verdict = Verdict.DRY_RUN
            out("Dry run passed: everything verified, rolled back because --yes was not given.")
            return verdict.exit_code
        await _standbys_again(rb)
        await rb.commit(settings.dbname)
        verdict = rb.verdict or Verdict.COMMITTED
        return verdict.exit_code
    except RunbookError as exc:
        out(f"aami-tui: {exc}", err=True)
        if rb.tx_open:
            await rb.rollback("step failed")
        verdict = exc.verdict or rb.verdict or Verdict.APPLY_FAILED
        if rb.outcome is Outcome.COMMITTED:  # never report a committed migration as a failure
            verdict = rb.committed_verdict
        rb.verdict = verdict
        return verdict.exit_code
    except asyncio.CancelledError:  # SIGINT, SIGTERM or SIGHUP (aami_tui.signals)
        # the cancelled step may have left the transaction open (ROLLBACK follows), or lost its session
        out("aami-tui: interrupted; rolling back." if rb.tx_open else "aami-tui: interrupted.", err=True)
        verdict = rb.committed_verdict if rb.outcome is Outcome.COMMITTED else (
            Verdict.COMMIT_UNKNOWN if rb.outcome is Outcome.UNKNOWN else Verdict.INTERRUPTED)
        rb.verdict = verdict
        return verdict.exit_code
    finally:
        await asyncio.shield(rb.close("headless run ended"))
        v = rb.verdict  # what the database holds, in the report's words, and why the run ended
        if v and rb.outcome is Outcome.ABANDONED:  # ended before any transaction: why is the state (its words
            out(f"Final state: {v.words} (exit {v.exit_code})")  # say nothing changed), never "abandoned"
        else:
            out(f"Final state: {rb.outcome.value}" + (f" (exit {v.exit_code}: {v.words})" if v else ""))
        if rb.report_paths:
            out(f"Report: {rb.report_paths[0]} (JSON beside it)")


async def _standbys_again(rb: Runbook) -> None:
    """Pre-flight's synchronous-standby check asked again just before COMMIT, as the console's COMMIT prompt asks
    it (``standby_risk``): a standby can go, or synchronous_standby_names change, while the run backs up, applies and
    verifies. What it finds goes to the output and the report's log before COMMIT; COMMIT still runs, bounded by
    --commit-timeout (in the console it runs once the DBA has read the same words in its prompt)."""
    risk = await rb.standby_risk()
    if risk is not None and not risk.ok:
        rb.say(f"! {risk.name}, asked again before COMMIT: {risk.detail}", "warn", Step.COMMIT)


def run_apply(settings, args) -> int:
    return asyncio.run(_run(settings, args))
