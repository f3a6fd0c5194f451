"""The runbook's options (the console builds them before its first frame; the model's records load later)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Options:
    backup_dir: Path = Path("backups")
    reports_dir: Path = Path("reports")
    lock_timeout: float = 5.0
    statement_timeout: float = 300.0
    commit_timeout: float = 60.0  # client-side bound on COMMIT / ROLLBACK round trips
    query_timeout: float = 15.0  # client-side bound on BEGIN, verify, lock watch, pre-flight queries
    grace: float = 10.0  # a statement's client-side deadline is statement_timeout + grace
    idle_timeout: float = 900.0  # idle_in_transaction_session_timeout of the migration session (0: off)
    idle_warn_seconds: float = 60.0
    skip_backup: bool = False
    skip_backup_why: str = "--no-backup"  # why skip_backup is set, in the pre-flight line and the report
    dev: bool = False  # development mode: short checklist, no backup of an empty database (in the report)
    rehearsal_report: Path | None = None  # `aami-tui rehearse` report: evidence for "Tested on staging"
    rehearse_timeout: float = 3600.0  # the optional rehearsal step (restore of the backup + the run on the copy)
    exact: bool = False  # the guide's "exactly ten tables in public" as a gate (tables that were there before too)
    pace: float = 0.0  # seconds to pause between statements (demo "slow motion", screenshots)
    compress: str = "0"  # pg_dump -Z, as pg_dump spells it (pgtools.DEFAULT_COMPRESS; README, Performance)
    jobs: int = 1  # > 1: directory-format backup written by that many parallel pg_dump sessions
