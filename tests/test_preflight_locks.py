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
            # where it connects from, as the one-operator lock's sentence says it (not psycopg's inet '/32')
            assert "application 'dba-maintenance', host 127.0.0.1, idle in transaction" in check.detail, check.detail
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
    assert all(f"for a lock on app_data.events held by pid {pid} (user " in ln
               and "application 'dba-maintenance', host 127.0.0.1, idle in transaction)" in ln
               and "lock_timeout (3s) ends the backup" in ln and "ETA" not in ln for ln in waiting), waiting
    msg = str(e.value)
    assert f"waited more than 3s for a lock on app_data.events held by pid {pid}" in msg, msg
    assert "application 'dba-maintenance', host 127.0.0.1, idle in transaction)" in msg, msg
    assert "no backup was written" in msg and "statement timeout" not in msg, msg
    assert rb.steps[Step.BACKUP].state.value == "failed"
    assert not list((tmp_path / "backups").glob("backup_*")), list((tmp_path / "backups").iterdir())


async def test_a_holder_on_the_unix_socket_is_said_to_be_local(pg_server, fresh_db, tmp_path):
    """The sentences naming a lock's holder say where it connects from: a session on the server's Unix socket has
    no address (pg_stat_activity's client_addr is NULL, client_port -1); it is said so, never 'host None'."""
    from aami_tui.core import schema
    from aami_tui.core.db import connect

    if pg_server.embedded is None:
        pytest.skip("needs the test server's Unix socket (embedded or pgNN, not AAMI_TEST_DSN)")
    apply_migration(fresh_db)
    local = fresh_db.conninfo(host=str(pg_server.embedded.socket_dir), application_name="dba-local")
    with psycopg.connect(local) as holder:
        holder.execute("LOCK TABLE groups IN ACCESS EXCLUSIVE MODE")
        conn = await connect(fresh_db)
        try:
            res = await schema.validate(conn)
        finally:
            await conn.close()
    (locked,) = res.locked
    sentence = locked.lock_sentence()
    assert "application 'dba-local', local Unix socket, idle in transaction" in sentence, sentence
    assert "None" not in sentence and "host" not in sentence, sentence


def test_where_a_holder_connects_from_is_said_one_way():
    """One formatter for every 'held by …' sentence: an address without its host mask (psycopg's inet, or the
    text of one: '127.0.0.1/32'), a Unix-socket session (client_port -1) said to be one, never 'None'."""
    from ipaddress import ip_address, ip_interface

    from aami_tui.core.locks import client_words

    assert client_words(ip_address("127.0.0.1"), 54321) == "host 127.0.0.1"
    assert client_words("127.0.0.1/32", 54321) == "host 127.0.0.1"
    assert client_words(ip_interface("10.0.0.5/32"), 40000) == "host 10.0.0.5"
    assert client_words("::1/128", 40000) == client_words(ip_address("::1"), 40000) == "host ::1"
    assert client_words("10.1.0.0/16", 1) == "host 10.1.0.0/16"  # not a host mask: kept
    assert client_words(None, -1) == "local Unix socket"
    assert client_words(None, None) == "host unknown"  # a server process, or hidden from this role
