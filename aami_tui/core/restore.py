"""The guide's rollback procedure: restore a verified backup, then re-verify.

pg_restore --clean --if-exists --exit-on-error --single-transaction: all or nothing. Holds the
one-operator advisory lock while it runs. Tables created after the backup are not in it, so
--clean leaves them; they are reported, and dropping them is a separate, confirmed action.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from psycopg import sql as q

from aami_tui.core import files, locks, pgtools, schema
from aami_tui.core.db import connect
from aami_tui.core.settings import ConnSettings


class RestoreError(Exception):
    pass


@dataclass
class RestoreResult:
    dump: Path
    seconds: float = 0.0
    toc_entries: int = 0
    lines: list[str] = field(default_factory=list)  # the server's validation lines afterwards
    validation: schema.ValidationResult | None = None
    not_in_backup: list[str] = field(default_factory=list)
    report: Path | None = None


async def backup_tables(tool: pgtools.Tool, dump: Path) -> set[str]:
    """Tables in schema public that the backup contains (from pg_restore --list)."""
    proc = await asyncio.create_subprocess_exec(tool.path, "--list", str(dump), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode:
        raise RestoreError(f"{dump.name} is not a readable pg_dump archive: "
                           f"{err.decode(errors='replace').strip().splitlines()[-1:] or ['?']}")
    names = set()
    for line in out.decode(errors="replace").splitlines():
        m = re.match(r"^\d+;\s*\d+\s+\d+\s+TABLE\s+public\s+(\S+)\s", line)
        if m:
            names.add(m.group(1))
    return names


async def restore(settings: ConnSettings, entry: pgtools.BackupEntry, *, reports_dir: Path,
                  progress: Callable[[int, int, str], None] | None = None) -> RestoreResult:
    match = await asyncio.to_thread(entry.matches)
    if match is False:
        raise RestoreError(f"{entry.path.name}: its sha256 no longer matches the one recorded when it was verified; "
                           "the file changed since, so it is not restored.")
    lock_conn = await connect(settings)
    try:
        holder = await locks.try_lock(lock_conn)
        if holder is not None:
            raise RestoreError(f"A migration is running on {settings.dbname} ({locks.describe_holder(holder)}); "
                               "restore refused.")
        major = lock_conn.info.server_version // 10000
        tool = await asyncio.to_thread(pgtools.find_tool, "pg_restore", major)  # runs --version: off the loop
        total = await pgtools.toc_count(tool, entry.path)
        in_backup = await backup_tables(tool, entry.path)
        t0 = time.time()
        try:
            await pgtools.run_restore(tool, settings, entry.path, server_major=major,
                                      progress=lambda n, what: progress and progress(n, total, what))
        except pgtools.ToolError as exc:
            raise RestoreError(f"{exc} The restore ran in one transaction, so nothing was changed.") from None
        res = await schema.validate(lock_conn, extra_limit=None)  # every table, to find those not in the backup
        i = lock_conn.info
        result = RestoreResult(entry.path, time.time() - t0, total,
                               schema.server_lines(res, i.host, i.user, i.dbname, i.port), res,
                               sorted(t.name for t in res.tables if t.present and t.name not in in_backup))
        await locks.unlock(lock_conn)
    finally:
        await lock_conn.close()
    result.report = write_report(settings, entry, result, reports_dir)
    return result


async def drop_tables(settings: ConnSettings, names: list[str]) -> None:
    """Drop tables (created after the backup) in one transaction, identifiers quoted."""
    conn = await connect(settings, autocommit=False)
    try:
        async with conn.transaction():
            for n in names:
                await conn.execute(q.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(q.Identifier("public"),
                                                                                     q.Identifier(n)))
    finally:
        await conn.close()


def write_report(settings: ConnSettings, entry: pgtools.BackupEntry, r: RestoreResult, reports_dir: Path) -> Path:
    d = pgtools.ensure_private_dir(reports_dir)
    ts = datetime.now().strftime("%Y%m%d_%H%M%S")
    safe = files.safe_name(settings.dbname)
    data = {"kind": "restore", "operator": getpass.getuser(), "client_host": socket.gethostname(),
            "database": settings.dbname, "server": f"{settings.host}:{settings.port}", "at": ts,
            "backup": str(entry.path), "backup_size": entry.size, "sha256_recorded": entry.recorded_sha256,
            "toc_entries": r.toc_entries, "seconds": round(r.seconds, 3), "validation": r.lines,
            "tables_not_in_backup": r.not_in_backup}
    md = "\n".join([f"# aami-tui restore report: {settings.dbname}", "",
                    *(f"- {k}: {v}" for k, v in data.items() if k != "validation"),
                    "", "```", *r.lines, "```", ""])
    path = d / f"restore_{safe}_{ts}.md"
    for p, text in ((path, md), (path.with_suffix(".json"), json.dumps(data, indent=2))):
        files.write_private(p, text)
    return path.resolve()
