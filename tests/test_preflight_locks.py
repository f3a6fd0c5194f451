"""Issue 7 item 6, pre-flight side: another session's exclusive lock on a required table makes pre-flight
answer promptly with a sentence naming the session, instead of waiting (or letting pg_dump wait) without limit."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from conftest import apply_migration
from faults import runbook

from aami_tui.core.runbook import RunbookError


async def test_preflight_names_the_session_holding_a_required_table(fresh_db, tmp_path):
    apply_migration(fresh_db)
    with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
        holder.execute("LOCK TABLE targets IN ACCESS EXCLUSIVE MODE")
        rb = runbook(fresh_db, tmp_path)
        try:
            t0 = time.monotonic()
            with pytest.raises(RunbookError):
                await asyncio.wait_for(rb.preflight(), 60)
            assert time.monotonic() - t0 < 30  # not a timing target: it answers by itself
            [check] = [c for c in rb.checks if c.name == "Locks on required tables"]
            assert not check.ok
            assert check.detail.startswith("Table targets is locked in ACCESS EXCLUSIVE mode")
            assert f"pid {holder.info.backend_pid}" in check.detail and "dba-maintenance" in check.detail
        finally:
            await rb.close("test")


async def test_a_backup_behind_another_sessions_lock_names_the_holder_and_ends_at_lock_timeout(fresh_db, tmp_path):
    """fresh5 F4: pg_dump queued behind an ACCESS EXCLUSIVE lock sat at '0.0 / 192.0 KiB (0 %), ETA –' for ever,
    naming nobody. Its progress line names the holder while it waits, and --lock-timeout bounds the wait."""
    from aami_tui.core.runbook import Progress, Step

    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        c.execute("CREATE SCHEMA app_data; CREATE TABLE app_data.events (id int); INSERT INTO app_data.events "
                  "SELECT generate_series(1, 1000)")
    events: list = []
    rb = runbook(fresh_db, tmp_path, events=events, lock_timeout=3.0)
    await rb.preflight()
    with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
        holder.execute("LOCK TABLE app_data.events IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(RunbookError) as e:
            await asyncio.wait_for(rb.backup_step(), 30)  # without a bound it waits as long as the lock is held
        pid = holder.info.backend_pid
    lines = [ev.message for ev in events if isinstance(ev, Progress) and ev.step is Step.BACKUP]
    waiting = [ln for ln in lines if "waiting" in ln]
    assert waiting, lines
    assert all(f"for a lock on app_data.events held by pid {pid} (user " in ln and "'dba-maintenance'" in ln
               and "idle in transaction" in ln and "lock_timeout (3s) ends the backup" in ln
               and "ETA" not in ln for ln in waiting), waiting
    msg = str(e.value)
    assert f"waited more than 3s for a lock on app_data.events held by pid {pid}" in msg, msg
    assert "no backup was written" in msg and "statement timeout" not in msg, msg
    assert rb.steps[Step.BACKUP].state.value == "failed"
    assert not list((tmp_path / "backups").glob("backup_*")), list((tmp_path / "backups").iterdir())
