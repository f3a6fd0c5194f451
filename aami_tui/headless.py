"""``aami-tui apply``: the runbook engine without the UI, for pipelines.

Prints each step as it goes and exits with one code per outcome (see EXIT_* below and the README).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aami_tui.core import migration
from aami_tui.core.runbook import Event, Options, Outcome, Runbook, RunbookError, Step

EXIT_COMMITTED = 0
EXIT_VERIFY_FAILED = 1
EXIT_CONNECT = 2
EXIT_PREFLIGHT = 3
EXIT_BACKUP = 4
EXIT_APPLY_FAILED = 5
EXIT_DRY_RUN = 6  # everything passed, rolled back because --yes was not given
EXIT_LOCKED = 7
EXIT_INTERRUPTED = 130


def _printer(e: Event) -> None:
    if e.kind in ("log", "statement"):  # statements: "  12/43 CREATE TABLE  2.1 ms  CREATE TABLE groups"
        print(f"  {e.message}", flush=True)
    elif e.kind == "step" and e.data is not None and e.data.state.value == "running":
        print(f"== {e.step.title} ==", flush=True)


async def _run(settings, args) -> int:
    path = migration.resolve_migration_path(args.migrations_dir, args.migration_file)
    opts = Options(backup_dir=args.backup_dir, reports_dir=args.reports_dir, lock_timeout=args.lock_timeout,
                   statement_timeout=args.statement_timeout, skip_backup=args.no_backup, pace=args.pace)
    rb = Runbook(settings, path, opts, _printer, interactive=False)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    step = Step.PREFLIGHT
    try:
        await rb.preflight()
        step = Step.BACKUP
        await rb.backup_step()
        step = Step.BEGIN
        await rb.begin()
        step = Step.APPLY
        await rb.apply()
        step = Step.VERIFY
        await rb.verify()
        if not args.yes:
            await rb.rollback("no --yes: dry run")
            print("Dry run passed: everything verified, rolled back because --yes was not given.")
            return EXIT_DRY_RUN
        step = Step.COMMIT
        await rb.commit(settings.dbname)
        return EXIT_COMMITTED
    except RunbookError as exc:
        print(f"aami-tui: {exc}", file=sys.stderr, flush=True)
        if rb.tx_open:
            await rb.rollback("step failed")
        if rb.connection_lost:  # the server ended our session (whatever step it was in)
            return EXIT_CONNECT
        if step is Step.PREFLIGHT:
            kinds = {c.name for c in rb.checks if not c.ok and c.blocking}
            if "Connection" in kinds:
                return EXIT_CONNECT
            if "One operator" in kinds:
                return EXIT_LOCKED
            return EXIT_PREFLIGHT
        if step is Step.BACKUP:
            return EXIT_BACKUP
        if step is Step.VERIFY:
            return EXIT_VERIFY_FAILED
        if rb.outcome == Outcome.ROLLED_BACK and step in (Step.BEGIN, Step.APPLY, Step.COMMIT):
            return EXIT_APPLY_FAILED if step is Step.APPLY else EXIT_CONNECT
        return EXIT_APPLY_FAILED
    except asyncio.CancelledError:
        print("aami-tui: interrupted; rolling back.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        await asyncio.shield(rb.close("headless run ended"))
        if rb.report_paths:
            print(f"Report: {rb.report_paths[0]} (JSON beside it)", flush=True)


def run_apply(settings, args) -> int:
    return asyncio.run(_run(settings, args))
