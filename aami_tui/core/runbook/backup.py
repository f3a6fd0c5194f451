"""Step 2, the backup: pg_dump (custom format, or directory format with --jobs; compression per --compress) plus
a schema-only .sql, verified with pg_restore --list, sha256 recorded, progress from the server."""

from __future__ import annotations

import contextlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aami_tui.core import pgtools

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook


def remove_partial(dump: Path | None, schema_sql: Path | None) -> list[Path]:
    """Only this attempt's files (their names were free when it started): never an older backup. Returns the
    ones that could not be removed (they are still there)."""
    left = []
    for p in (dump, schema_sql, dump and dump.with_name(dump.name + ".sha256"),
              dump and dump.with_name(dump.name + ".json")):
        if p is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            if p.exists():
                left.append(p)
    return left


def cancelled_words(dump: Path | None, left: list[Path]) -> str:
    """What became of a cancelled backup's files, for the step's record and the log."""
    if left:
        return "partial file(s) NOT removed, delete them: " + ", ".join(str(p) for p in left)
    if dump is None:
        return "no file had been written"
    return f"partial file {dump.name} removed"


async def take(rb: Runbook, paths: list) -> pgtools.BackupResult:
    """Take and verify the backup (``pgtools.take_backup``); ``paths`` receives (dump, schema) as soon as they
    are chosen. Progress comes from the server's COPY counters, about twice a second."""
    from aami_tui.core.runbook.events import Progress
    from aami_tui.core.runbook.model import Step

    srv = rb.server
    source = {"host": srv.get("host"), "port": srv.get("port"), "dbname": rb.settings.dbname,
              "server_version": srv.get("server_version"),
              "taken_at": datetime.now().astimezone().isoformat(timespec="seconds"), "operator": rb.operator}

    def on_progress(p) -> None:
        rb.emit(Progress(Step.BACKUP, p.done, p.total, p.line(), p.rate, p.eta, bool(p.waiting)))

    t = rb.opt.lock_timeout
    bound = (f"lock_timeout ({t:g}s) ends the backup, nothing kept" if t else
             "--lock-timeout 0: only the holder ends the wait (or a cancel)")
    return await pgtools.take_backup(
        rb.dump_tool, rb.restore_tool, rb.settings, rb.opt.backup_dir, compress=rb.opt.compress, jobs=rb.opt.jobs,
        server_major=srv.get("server_major"), source=source, on_progress=on_progress,
        say=lambda m: rb.say(m, step=Step.BACKUP), chosen=paths, lock_wait_timeout=t or None, lock_bound=bound)
