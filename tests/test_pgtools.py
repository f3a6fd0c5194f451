"""pgtools: backups listed per database, tools started without Python between fork and exec."""

from __future__ import annotations

import asyncio
import threading

import psycopg
from psycopg import sql

from aami_tui.core import pgtools


async def _backup(settings, backup_dir):
    major = None
    with psycopg.connect(settings.conninfo()) as c:
        major = c.info.server_version // 10000
    tool = pgtools.find_tool("pg_dump", major)
    dump, _ = pgtools.unique_backup_paths(pgtools.ensure_private_dir(backup_dir), settings.dbname)
    await pgtools.run_dump(tool, settings, dump, server_major=major)
    pgtools.write_checksum(dump, pgtools.sha256_file(dump), {"dbname": settings.dbname, "host": settings.host,
                                                               "port": settings.port})
    return dump


async def test_list_backups_never_mixes_a_database_with_one_whose_name_it_prefixes(pg_server, tmp_path):
    """`aami` must not list `aami_config`'s backups (nor `aami_2`'s, nor `aami_config_20260101`'s)."""
    import uuid

    base = f"aami{uuid.uuid4().hex[:6]}"
    names = [base, f"{base}_config", f"{base}_2", f"{base}_20260101_000000"]
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        for n in names:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(n)))
    try:
        made = {n: await _backup(pg_server.settings(n), tmp_path) for n in names}
        for n in names:
            listed = pgtools.list_backups(tmp_path, n)
            assert [e.path for e in listed] == [made[n]], n
        assert len(pgtools.list_backups(tmp_path)) == 4
    finally:
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            for n in names:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(n)))


async def test_backups_of_names_the_sanitiser_merges_stay_apart(pg_server, tmp_path):
    """"a b" and "a_b" give the same file-name part; the metadata beside each dump tells them apart."""
    import uuid

    base = f"aami{uuid.uuid4().hex[:6]}"
    names = [f"{base} x", f"{base}_x"]
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        for n in names:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(n)))
    try:
        made = {n: await _backup(pg_server.settings(n), tmp_path) for n in names}
        for n in names:
            assert [e.path for e in pgtools.list_backups(tmp_path, n)] == [made[n]]
    finally:
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            for n in names:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(n)))


async def test_tools_get_no_preexec_fn_while_other_threads_run(fresh_db, tmp_path, monkeypatch):
    seen: list[dict] = []
    real = asyncio.create_subprocess_exec

    async def spy(*argv, **kw):
        seen.append({"argv": argv, **kw})
        return await real(*argv, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        dump = await _backup(fresh_db, tmp_path)
    finally:
        stop.set()
        t.join()
    assert dump.stat().st_size > 0
    assert seen and all(kw.get("preexec_fn") is None for kw in seen)
    assert all(kw.get("start_new_session") for kw in seen)
    # Dying with the console is then setpriv's job (see test_kill9_during_the_backup_leaves_no_pg_dump_behind).
    assert seen[0]["argv"][1:4] == ("--pdeathsig", "KILL", "--")


async def test_the_dump_is_flushed_to_disk_off_the_event_loop(fresh_db, tmp_path, monkeypatch):
    """pg_dump's file is fsynced before the backup counts as taken, but not on the console's event loop: the
    fsync of a 341 MiB dump held the loop ~130 ms, and a key pressed then waited for it. Both formats."""
    import os

    loop_thread, on_loop, synced = threading.get_ident(), [], []
    real = os.fsync

    def spy(fd):
        synced.append(fd)
        if threading.get_ident() == loop_thread:
            on_loop.append(fd)
        return real(fd)

    monkeypatch.setattr(pgtools.os, "fsync", spy)
    with psycopg.connect(fresh_db.conninfo()) as c:
        major = c.info.server_version // 10000
    tool = pgtools.find_tool("pg_dump", major)
    for jobs in (1, 2):
        out = tmp_path / f"d{jobs}"
        await pgtools.run_dump(tool, fresh_db, out, jobs=jobs, server_major=major)
        assert out.exists()
    assert synced and on_loop == []
