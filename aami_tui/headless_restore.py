"""``aami-tui restore``: the console's restore (core/restore.py) without the UI, for a pipeline's rollback job.

Without ``--yes`` it only says what it would do (the backup, what it holds against the live database, what the one
transaction drops) and exits 6: nothing irreversible without an explicit confirmation. With ``--yes`` it restores,
printing progress; SIGINT, SIGTERM or SIGHUP cancels it as escape does in the console (pg_restore and psql stopped, psql's
session ended, the transaction's fate asked of the server) and it exits 130 with the same sentence. Exit codes: see
``EXIT`` and the README.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import humanize

from aami_tui.core import pgtools
from aami_tui.core import restore as core_restore
from aami_tui.core.db import ConnectError
from aami_tui.core.runbook.model import Verdict
from aami_tui.core.words import size as size_words
from aami_tui.headless import PROGRESS_EVERY, SILENT_EVERY, out
from aami_tui.signals import cancel_on_signals

EXIT = {"restored": 0, "connection": 2, "refused": 3, "failed": 4, "dry run": 6, "locked": 7, "unknown": 9,
        "cancelled": 130}


def _entry(args, settings) -> pgtools.BackupEntry | None:
    """The backup named on the command line, or the newest of this database taken from this server."""
    if args.backup is not None:
        path = args.backup.expanduser()
        if not path.exists():
            return None
        return pgtools.backup_entry(path)
    found = pgtools.list_backups(args.backup_dir, settings.dbname)
    mine = [e for e in found  # as the console lists them: not those recorded as taken from elsewhere
            if core_restore.same_source(e, settings.host, settings.port, settings.dbname) is not False]
    return mine[0] if mine else None


async def _run(settings, args) -> int:
    with cancel_on_signals() as got:  # SIGINT, SIGTERM, SIGHUP, from the first check to the last line (the
        return await _checks_then_restore(settings, args, got)  # restore's task is cancelled with this one)


async def _checks_then_restore(settings, args, got: list[int]) -> int:
    """``got``: the signal that cancels it, once it comes (its words and report say which)."""
    entry = _entry(args, settings)
    if entry is None:
        if args.backup is not None:
            out(f"aami-tui: no backup to restore: {args.backup}: no such file.", err=True)
        else:
            out(f"aami-tui: no backup to restore: no backup of {settings.dbname} taken from this server in "
                f"{args.backup_dir}.", err=True)
        return EXIT["refused"]
    if entry.matches() is False:
        out(f"aami-tui: {entry.path.name}: its sha256 no longer matches the one recorded when it was verified; the "
            "file changed since, so it is not restored.", err=True)
        return EXIT["refused"]
    r = core_restore.RestoreResult(entry.path.resolve(), headless=True, signals=got)
    try:
        timeout = getattr(args, "commit_timeout", None)
        plan = await core_restore.plan(settings, entry, reports_dir=args.reports_dir,
                                       commit_bound=f"--commit-timeout ({timeout:g}s)" if timeout else "")
    except asyncio.CancelledError:  # a signal during the read-only checks: nothing ran
        return await _cancelled_checking(settings, args, entry, r)
    except ConnectError as exc:
        out(f"aami-tui: {exc}", err=True)
        return EXIT["connection"]
    except core_restore.RestoreError as exc:
        out(f"aami-tui: {exc}", err=True)
        return EXIT["refused"]
    caveat = entry.taken_caveat()
    when = datetime.fromtimestamp(entry.taken).astimezone()  # local time with its zone, as the report's
    out(f"Backup: {entry.path} ({size_words(entry.size)}, taken {when:%Y-%m-%d %H:%M:%S %Z}, "
        f"{humanize.naturaltime(time.time() - entry.taken)}{f'; {caveat}' if caveat else ''}"
        f"{'' if entry.source else _unrecorded(plan, entry)})")
    out(f"This replaces the objects in {settings.dbname} with the ones in the backup. Changes made since then are "
        "lost, rows written since in the tables it holds too. It runs in one transaction: all or nothing.")
    out(plan.summary())
    if plan.standby is not None and not plan.standby.ok:  # apply's pre-flight warning, as apply prints it
        out(f"  ! {plan.standby.name}: {plan.standby.detail}")
    if not args.yes:
        if plan.refusal:  # what --yes would meet now (it asks again under the lock, and refuses with exit 7)
            out(f"aami-tui: --yes would be refused now (exit {EXIT['locked']}): "
                f"{plan.refusal.removeprefix('Restore refused, nothing changed: ')}", err=True)
        out("Dry run: nothing was restored. --yes restores it.")
        return EXIT["dry run"]

    def started() -> None:  # every check passed (never before a refusal: a migration holding the lock, exit 7)
        if plan.standby is not None and not plan.standby.ok:  # fresh9 F6: not 'nothing is committed' then
            out(f"Restoring into {settings.dbname} in one transaction (SIGINT, SIGTERM or SIGHUP cancels: nothing "
                "is committed before the COMMIT; once the COMMIT waits for the synchronous standby, a cancel leaves "
                "the restore committed on the primary only, as warned above)…")
        else:
            out(f"Restoring into {settings.dbname} in one transaction (SIGINT, SIGTERM or SIGHUP cancels: nothing "
                "is committed)…")

    progress, on_wait = _printers()
    task = asyncio.ensure_future(core_restore.restore(
        settings, entry, reports_dir=args.reports_dir, expected=plan, lock_timeout=args.lock_timeout,
        progress=progress, result=r, on_wait=on_wait, on_start=started,
        commit_timeout=getattr(args, "commit_timeout", None)))
    return await _restoring(task, r, entry, settings, args)


async def _cancelled_checking(settings, args, entry: pgtools.BackupEntry, r: core_restore.RestoreResult) -> int:
    """Cancelled (SIGINT, SIGTERM, SIGHUP) before the restore started: its checks only read. The console's sentence
    ("cancelled before anything ran: … is as it was"), exit 130, and with --yes the report a restore always leaves
    (a dry run writes none)."""
    r.outcome, r.stage = "cancelled", "checking"
    r.error = core_restore.cancelled_words(r, settings.dbname)
    r.ended_at = datetime.now().astimezone()
    r.seconds = (r.ended_at - r.started_at).total_seconds()
    if args.yes:
        try:
            r.report = await asyncio.to_thread(core_restore.write_report, settings, entry, r, args.reports_dir)
        except OSError as exc:
            r.error += f"; the report could not be written: {exc}"
    out(f"aami-tui: restore {r.error}", err=True)
    out(f"Final state: cancelled (exit {EXIT['cancelled']})")
    if r.report:
        out(f"Report: {r.report} (JSON beside it)")
    return EXIT["cancelled"]


async def _restoring(task: asyncio.Future, r: core_restore.RestoreResult, entry: pgtools.BackupEntry, settings,
                     args) -> int:
    """Awaits the restore's task: a signal cancels the caller's task, and with it the awaited one, which stops
    pg_restore and psql, ends psql's session and writes its report before this goes on."""
    try:
        await task
        code = EXIT["restored"]
        out(f"✓ Restored {entry.path.name} ({r.toc_entries} TOC entries)"
            + (f"; dropped (created after the backup): {', '.join(r.dropped)}" if r.dropped else ""))
        if r.primary_only:  # another session ended its COMMIT's wait for the standby (apply's "  ⚠ COMMIT: …" line)
            out(f"  ⚠ COMMIT: {r.primary_only}")
        for line in r.words():
            out(f"  {line}")
    except asyncio.CancelledError:  # SIGINT/SIGTERM/SIGHUP: stopped (or too late: COMMIT had reached the server)
        if r.error is None:  # cancelled before its task even started (a signal as the checks' lines were printed)
            return await _cancelled_checking(settings, args, entry, r)
        out(f"aami-tui: restore {r.error}", err=True)
        code = EXIT[r.outcome] if r.outcome in ("restored", "unknown") else EXIT["cancelled"]
    except core_restore.RestoreError as exc:
        out(f"aami-tui: {exc}", err=True)
        code = EXIT["locked"] if exc.locked else EXIT["failed"] if r.outcome == "failed" else EXIT["refused"]
    except pgtools.ToolError as exc:
        out(f"aami-tui: {exc}", err=True)
        code = EXIT["failed"] if r.outcome == "failed" else EXIT["refused"]
    except ConnectError as exc:
        out(f"aami-tui: {exc}", err=True)
        code = EXIT["connection"]
    # its COMMIT's wait for the synchronous standby was ended: apply's verdict's words (committed on the primary only)
    only = f": {Verdict.COMMITTED_PRIMARY_ONLY.words}" if r.outcome == "restored" and r.primary_only else ""
    out(f"Final state: {r.outcome} (exit {code}{only})")
    if r.report:
        out(f"Report: {r.report} (JSON beside it)")
    return code


def _unrecorded(plan: core_restore.RestorePlan, entry: pgtools.BackupEntry) -> str:
    """A backup without metadata (a pg_dump by hand, as the guide's): what its archive header still says."""
    sha = "" if entry.recorded_sha256 else "; no sha256 beside it: nothing checks that the file is unchanged"
    if plan.archive.dbname:
        return (f"; no metadata beside it: its archive header says it is a dump of database {plan.archive.dbname}, "
                f"the server it came from is not recorded{sha}")
    return f"; where it came from is not recorded{sha}"


def _printers():
    """(progress, on_wait): the restore's steps as the server reaches them (the first, then one every PROGRESS_EVERY
    seconds, and the last), and a wait for another session's lock as the console's restore line says it (which
    table, held by whom: pid, user, application, state; how long; what ends it): at once when the watch first sees
    it, after the step that waits (fresh7 N5: what the server is on, never what psql has read ahead), then at most
    one line every PROGRESS_EVERY seconds while it lasts, as headless apply's lock-wait lines (fresh6 F6)."""
    said = [0.0]
    pending: list[str] = []  # the step the server is on, when its line was not printed
    waiting: list[float | None] = [None]
    syncrep: list[float] = []  # when the COMMIT's SyncRep wait was last said

    def progress(done: int, total: int, what: str) -> None:
        now = time.monotonic()
        line = f"  restore: step {done} of about {total}: {what[:100]}"
        pending[:] = [line]
        if now - said[0] >= PROGRESS_EVERY or done >= total:
            said[0] = now
            out(pending.pop())

    def on_wait(words: str) -> None:
        if not words:
            waiting[0] = None
            return
        now = time.monotonic()
        if words.startswith("COMMIT: committed locally"):  # SyncRep: in full once, then a short line every 30 s
            if not syncrep:  # (fresh9 F6: its ~280 characters came every 4 s)
                out(f"  restore: {words}")
                syncrep[:] = [now]
            elif now - syncrep[0] >= SILENT_EVERY:
                out(f"  restore: {words.split('; ', 1)[0]}")
                syncrep[:] = [now]
            return
        if waiting[0] is None or now - waiting[0] >= PROGRESS_EVERY:
            if waiting[0] is None and pending:
                out(pending.pop())  # the step that waits
            waiting[0] = now
            out(f"  restore: {words}")

    return progress, on_wait


def run_restore(settings, args) -> int:
    return asyncio.run(_run(settings, args))

