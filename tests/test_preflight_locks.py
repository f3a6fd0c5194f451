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
