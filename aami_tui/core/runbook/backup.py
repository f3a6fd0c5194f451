"""Step 2, the backup: pg_dump -Fc plus a schema-only .sql, verified with pg_restore --list, sha256 recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aami_tui.core import pgtools

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook


def remove_partial(dump: Path | None, schema_sql: Path | None) -> None:
    """Only this attempt's files (their names were free when it started): never an older backup."""
    for p in (dump, schema_sql, dump and dump.with_name(dump.name + ".sha256"),
              dump and dump.with_name(dump.name + ".json")):
        if p is not None:
            with contextlib.suppress(OSError):
                p.unlink()


async def take(rb: Runbook, paths: list) -> pgtools.BackupResult:
    """Take and verify the backup; ``paths`` receives (dump, schema) as soon as they are chosen."""
    from aami_tui.core.runbook.events import Progress
    from aami_tui.core.runbook.model import Step

    t0 = time.time()
    total = int(rb.server.get("db_size_bytes") or 0)
    dump, schema_sql = pgtools.unique_backup_paths(pgtools.ensure_private_dir(rb.opt.backup_dir), rb.settings.dbname)
    paths[:] = [dump, schema_sql]
    result = pgtools.BackupResult(dump, schema_sql, tool=rb.dump_tool.describe())
    rb.say(f"pg_dump -Fc → {dump}", step=Step.BACKUP)
    major = rb.server.get("server_major")
    await pgtools.run_dump(rb.dump_tool, rb.settings, dump, server_major=major,
                           progress=lambda n: rb.emit(Progress(Step.BACKUP, n, total, "bytes written")))
    rb.say(f"pg_dump -s → {schema_sql}", step=Step.BACKUP)
    await pgtools.run_dump(rb.dump_tool, rb.settings, schema_sql, schema_only=True, server_major=major)
    rb.say("Verifying: pg_restore --list …", step=Step.BACKUP)
    result.toc_entries = await pgtools.toc_count(rb.restore_tool, dump)
    result.size = dump.stat().st_size
    result.sha256 = await asyncio.to_thread(pgtools.sha256_file, dump)
    srv = rb.server
    pgtools.write_checksum(dump, result.sha256, {
        "host": srv.get("host"), "port": srv.get("port"), "dbname": rb.settings.dbname,
        "server_version": srv.get("server_version"),
        "taken_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "toc_entries": result.toc_entries, "size": result.size, "operator": rb.operator})
    result.verified = True
    result.seconds = time.time() - t0
    return result
