"""A console stand-in for the kill -9 tests: drives the real engine to a step, says READY, then waits.

usage: runbook_child.py STAGE MIGRATION WORKDIR   (STAGE: begin | apply | verify; env AAMI_CHILD_DSN)
``verify`` leaves the transaction open and idle exactly where the console shows the COMMIT prompt.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aami_tui.core.runbook import Options, Runbook
from aami_tui.core.settings import resolve


async def main(stage: str, migration: str, workdir: str) -> None:
    settings = resolve(os.environ["AAMI_CHILD_DSN"], env={})
    w = Path(workdir)
    rb = Runbook(settings, Path(migration), Options(backup_dir=w / "backups", reports_dir=w / "reports",
                                                   skip_backup=True), interactive=False)
    await rb.preflight()
    await rb.backup_step()
    await rb.begin()
    if stage in ("apply", "verify"):
        await rb.apply()
    if stage == "verify":
        await rb.verify()
    await rb.flush_reports()  # the report written as the steps happened is on disk (the kill -9 tests read it)
    print(f"READY {rb.backend_pid}", flush=True)
    await asyncio.sleep(600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
