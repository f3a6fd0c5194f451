"""Backup speed options and honest progress (issue 8): compression as pg_dump spells it, directory format
with --jobs (sha256 over a manifest), and progress read from the server while pg_dump runs."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from faults import backup_tools, take_verified_backup

from aami_tui.core import pgtools, progress


def _fill(settings, rows: int = 250_000, schema: str = "public") -> None:
    """Two tables; md5 text compresses slowly at gzip level 9, so a few tens of MB take a few seconds. The
    runbook's tests put them outside public (its verify wants exactly the ten tables there)."""
    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        c.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for t in (f"{schema}.events", f"{schema}.samples"):
            c.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, a text, b text, c text)")
            c.execute(f"INSERT INTO {t} SELECT g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text) "
                      f"FROM generate_series(1, {rows}) g")
        c.execute("ANALYZE")


async def _filled_backup(settings, backup_dir, rows: int = 250_000) -> pgtools.BackupEntry:
    """The two tables of ``_fill``, backed up: what a restore's progress is measured on."""
    _fill(settings, rows)
    await take_verified_backup(settings, backup_dir, source={"dbname": settings.dbname})
    [entry] = pgtools.list_backups(backup_dir, settings.dbname)
    return entry


async def test_progress_events_arrive_during_a_backup_and_only_move_forward(fresh_db, tmp_path):
    _fill(fresh_db)
    dump_tool, restore_tool, major = backup_tools(fresh_db)
    seen: list[progress.Progress] = []
    res = await pgtools.take_backup(dump_tool, restore_tool, fresh_db, tmp_path, compress="9", server_major=major,
                                    source={"dbname": fresh_db.dbname}, on_progress=seen.append)
    assert res.verified and res.toc_entries > 0
    mid = [p for p in seen if 0 < p.fraction < 1]
    assert len(mid) >= 2, [p.line() for p in seen]  # the bar moved while pg_dump ran, not only at the end
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions)  # never backwards
    assert seen[-1].fraction == 1.0 and seen[-1].done == seen[-1].total
    assert any("public.events" in p.current or "public.samples" in p.current for p in mid)
    assert all(p.exact for p in seen) == (major >= 14)
    assert any(p.rate and p.eta is not None for p in mid)
    line = mid[-1].line()
    assert "MiB" in line and "%" in line and "ETA" in line
    meta = json.loads(res.dump_path.with_name(res.dump_path.name + ".json").read_text())
    assert meta["format"] == "custom" and meta["compression"] == "9" and meta["compression_label"] == "gzip level 9"
    assert meta["pg_restore_needed"] == f">= {dump_tool.major}" and meta["archive_version"].startswith("1.")
    assert {w["name"] for w in meta["work"] if w["kind"] == "table"} == {"events", "samples"}


async def test_directory_format_with_jobs_is_listed_verified_and_restored(fresh_db, tmp_path):
    _fill(fresh_db, 20_000)
    dump_tool, restore_tool, major = backup_tools(fresh_db)
    res = await pgtools.take_backup(dump_tool, restore_tool, fresh_db, tmp_path, compress="1", jobs=2,
                                    server_major=major, source={"dbname": fresh_db.dbname})
    d = res.dump_path
    assert d.is_dir() and d.suffix == ".dir" and res.format == "directory" and res.verified
    assert (d / pgtools.MANIFEST).is_file()
    assert all((p.stat().st_mode & 0o077) == 0 for p in d.iterdir())  # owner-only, like every backup file
    assert d.with_name(d.name + ".sha256").read_text() == f"{res.sha256}  {d.name}/{pgtools.MANIFEST}\n"
    [entry] = pgtools.list_backups(tmp_path, fresh_db.dbname)
    assert entry.path == d and entry.size == res.size and entry.matches() is True
    # the restore path reads it (pg_restore detects the format)
    from aami_tui.core import restore

    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        c.execute("DELETE FROM events WHERE id > 10")
    r = await restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports")
    assert r.outcome == "restored", r.error
    with psycopg.connect(fresh_db.conninfo()) as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 20_000
    # a changed, added or removed file no longer matches
    data = next(p for p in d.iterdir() if p.name.endswith(".dat.gz"))
    data.write_bytes(data.read_bytes() + b"x")
    assert entry.matches() is False


async def test_compression_is_checked_against_the_chosen_pg_dump(fresh_db, tmp_path):
    dump_tool, restore_tool, major = backup_tools(fresh_db)
    with pytest.raises(ValueError, match="not a pg_dump compression"):
        pgtools.parse_compress("fast")
    for ok in ("0", "9", "gzip", "gzip:1", "none", "zstd:3", "lz4"):
        assert pgtools.parse_compress(ok) == ok
    pgtools.check_compress(dump_tool, "1")  # every pg_dump writes gzip levels
    unsupported = [m for m in ("lz4", "zstd") if pgtools._compress_probe(dump_tool.path, m) is not None]
    if not unsupported:
        pytest.skip("this pg_dump supports lz4 and zstd")
    with pytest.raises(pgtools.ToolError, match=f"cannot write --compress {unsupported[0]}.*It supports: 0-9"):
        await pgtools.take_backup(dump_tool, restore_tool, fresh_db, tmp_path, compress=unsupported[0],
                                  server_major=major)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_headless_apply_prints_backup_progress_lines(pg_server, fresh_db, tmp_path):
    import re

    from conftest import cli

    _fill(fresh_db, schema="app_data")
    r = cli("apply", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r"), "--compress", "9",
            env=pg_server.env(fresh_db.dbname), timeout=180)
    assert r.returncode == 6, r.stdout + r.stderr  # dry run
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith("backup: ")]
    pat = re.compile(r"backup: [\d.]+ / [\d.]+ MiB \(\d+ %\)((, [\d.]+ MiB/s)?, ETA [\d:–]+|, done)")
    assert len(lines) >= 2 and all(pat.match(ln) for ln in lines), r.stdout
    assert "(100 %)" in lines[-1]
    meta = json.loads(next((tmp_path / "b").glob("*.dump.json")).read_text())
    assert meta["compression"] == "9"


def test_apply_refuses_a_compression_the_pg_dump_cannot_write(pg_server, fresh_db, tmp_path):
    from conftest import cli

    r = cli("apply", "--backup-dir", str(tmp_path / "b"), "--reports-dir", str(tmp_path / "r"), "--compress",
            "fast", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 64 and "not a pg_dump compression" in r.stderr
    r = cli("apply", "--jobs", "0", env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 64 and "between 1 and 64" in r.stderr


async def test_console_backup_bar_moves_with_rate_and_eta(fresh_db, tmp_path):
    from test_console import make_app
    from textual.widgets import ProgressBar

    from aami_tui.core.runbook import Step
    from aami_tui.ui import scenes

    _fill(fresh_db, schema="app_data")
    app = make_app(fresh_db, tmp_path, options={"compress": "9"})
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.tick_all(pilot)
        await scenes.next_step(pilot)  # pre-flight
        seen: list[tuple[float, str]] = []
        bar = app.screen.query_one("#backup-progress", ProgressBar)
        line = app.screen.query_one("#backup-line")
        task = pilot.app.run_worker(scenes.next_step(pilot, timeout=120))  # the backup
        while not task.is_finished:
            await pilot.pause(0.3)
            r = line.render()
            seen.append((bar.percentage or 0.0, getattr(r, "plain", str(r))))
        assert app.runbook.steps[Step.BACKUP].state.value == "done"
        mid = [(p, t) for p, t in seen if 0 < p < 1]
        assert mid and any("MiB/s" in t and "ETA" in t for _, t in mid), seen
        assert [p for p, _ in seen] == sorted(p for p, _ in seen)
        await pilot.pause()
        r = line.render()
        last = getattr(r, "plain", str(r))
        assert "(100 %), done" in last and "ETA" not in last, last  # the finished backup's line, not a stale one


async def test_restore_progress_comes_from_the_server_and_only_moves_forward(fresh_db, tmp_path, monkeypatch):
    """The restore's tables are created in its own open transaction: the watch's catalog cannot see them, so it
    names what the server copies from the statement the session runs (the bar stayed at 0 % and jumped to 100 %).
    The watch polls often here so that a COPY of a second or less is seen at all."""
    from aami_tui.core import restore

    monkeypatch.setattr(progress, "POLL_INTERVAL", 0.05)
    entry = await _filled_backup(fresh_db, tmp_path)
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        c.execute("TRUNCATE events")
    seen: list[progress.Progress] = []
    r = await restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", on_progress=seen.append)
    assert r.outcome == "restored", r.error
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0 < f < 1 for f in fractions), [p.line() for p in seen]
    assert all(p.line().startswith("restore: ") for p in seen)
    with psycopg.connect(fresh_db.conninfo()) as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 250_000


async def test_restore_of_a_backup_without_sizes_counts_its_tables_and_indexes(fresh_db, tmp_path, monkeypatch):
    """A backup whose metadata records no sizes (an older one, or a .json without 'work') had no progress watch:
    the console's bar followed pg_restore's lines, which run ahead of psql (and on while it waits for a lock).
    Now the archive's TOC is counted: each table's data and each index one step, moved by what the server did."""
    from aami_tui.core import restore

    monkeypatch.setattr(progress, "POLL_INTERVAL", 0.05)
    entry = await _filled_backup(fresh_db, tmp_path)
    meta = entry.path.with_name(entry.path.name + ".json")
    meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "work"}))
    [entry] = pgtools.list_backups(tmp_path, fresh_db.dbname)
    assert "work" not in entry.source
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        c.execute("TRUNCATE events")
    seen: list[progress.Progress] = []
    r = await restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", on_progress=seen.append)
    assert r.outcome == "restored", r.error
    assert seen, "no progress at all"
    assert {p.total for p in seen} == {4}  # events, samples, and their primary keys
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == 4 and any(0 < d < 4 for d in done), [p.line() for p in seen]
    assert all("tables and indexes" in p.line() and "/s" not in p.line() and "ETA" not in p.line()
               for p in seen), [p.line() for p in seen]
    assert seen[-1].line().startswith("restore: 4 of 4 tables and indexes (100 %), done"), seen[-1].line()


def test_progress_line_of_a_tiny_or_empty_database_says_something_true():
    """A new user's demo database read "0.0 / 0.0 MiB": sizes in the unit that fits, and "no table data"."""
    empty = progress.Progress("backup", 0, 0, None, None)
    assert empty.line() == "backup: no table data to copy (schema only)"
    small = progress.Progress("backup", 8192, 16384, 4096.0, 2.0)
    assert small.line() == "backup: 8.0 / 16.0 KiB (50 %), 4.0 KiB/s, ETA 0:02"
    assert progress.Progress("backup", 16384, 16384, None, None).line() == "backup: 16.0 / 16.0 KiB (100 %), done"
    big = progress.Progress("backup", 3 * progress.MIB, 4 * progress.MIB, None, None)
    assert big.line().startswith("backup: 3.0 / 4.0 MiB (75 %)")
    # A database without table data (the demo's) weighs nothing: its tracker says so, not "1 / 1 bytes".
    t = progress.Tracker("backup", [])
    t.finish()
    assert t.progress().line() == "backup: no table data to copy (schema only)"


async def test_a_restore_waiting_for_a_lock_says_so_and_shows_no_progress_it_has_not_made(fresh_db, tmp_path):
    """fresh5 F5: a restore queued behind another session's lock showed '248.0 / 296.0 KiB (83 %), 18.4 KiB/s,
    ETA 0:03' decaying to 'ETA 4:49' (pg_restore's lines run ahead of psql by a pipe's buffer). While psql waits
    the line names the holder, and the bar moves only with what the server has done."""
    from aami_tui.core import restore

    entry = await _filled_backup(fresh_db, tmp_path, 2_000)
    seen: list[progress.Progress] = []
    with psycopg.connect(fresh_db.conninfo(application_name="config-server")) as holder:
        holder.execute("SELECT count(*) FROM events").fetchone()  # idle in transaction, ACCESS SHARE held
        with pytest.raises(restore.RestoreError, match="waited more than 3 s for a lock"):
            await restore.restore(fresh_db, entry, reports_dir=tmp_path / "reports", lock_timeout=3,
                                  on_progress=seen.append)
        pid = holder.info.backend_pid
    lines = [p.line() for p in seen]
    waiting = [ln for ln in lines if "waiting" in ln]
    assert waiting and all(
        f"for a lock on public.events held by pid {pid} (user " in ln
        and "'config-server', host 127.0.0.1, idle in transaction" in ln
        and "lock_timeout (3s) ends the restore, rolled back" in ln for ln in waiting), lines
    assert all("/s" not in ln and "ETA" not in ln for ln in lines[lines.index(waiting[0]):]), lines
    assert all(p.done == 0 for p in seen), lines  # nothing was restored: no amount, no jump


async def test_console_backup_that_gave_up_on_a_lock_says_so_in_its_pane(fresh_db, tmp_path):
    """Seen in tmux: after pg_dump gave up (lock_timeout), the pane still read 'waiting 8s for a lock …; lock_timeout
    (8s) ends the backup' under a 0 % bar, as if it still waited. It says the backup failed, and why."""
    from test_console import make_app, text_of

    from aami_tui.core.runbook import Step
    from aami_tui.ui import scenes

    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        c.execute("CREATE SCHEMA app_data; CREATE TABLE app_data.events (id int)")
    app = make_app(fresh_db, tmp_path, options={"lock_timeout": 2.0})
    async with app.run_test(size=(120, 36)) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        await scenes.tick_all(pilot)
        await scenes.next_step(pilot)  # pre-flight
        with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
            holder.execute("LOCK TABLE app_data.events IN ACCESS EXCLUSIVE MODE")
            await scenes.next_step(pilot, timeout=60)  # the backup: it gives up after lock_timeout
        assert app.runbook.steps[Step.BACKUP].state.value == "failed"
        await pilot.pause(0.6)  # a progress poll that was in flight as it failed has arrived by now
        line = text_of(app, "#backup-line")
        assert line.startswith("✗ Backup failed: pg_dump waited more than 2s for a lock on app_data.events held by "
                               "pid "), line
        assert "'dba-maintenance'" in line and "ends the backup" not in line, line


async def test_a_backup_ends_even_when_its_progress_watch_misses_the_cancel(fresh_db, tmp_path, monkeypatch):
    """Python 3.11's asyncio.wait_for returns the awaited result, dropping a cancel that comes as the awaited
    operation completes. The progress watch polls through wait_for, and the backup cancelled it and then waited for
    it without bound: a missed cancel left the backup step running forever once pg_dump had finished (three CI runs
    under load had a console step 'not finished' after 60 s; a dump of the hung test showed the watch still polling).
    Here every cancel that lands in a poll is missed, as it can be."""
    real = asyncio.wait_for

    async def missing_cancels(aw, timeout):
        task = asyncio.ensure_future(real(aw, timeout))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:  # the poll's answer came as the cancel did: 3.11 returns the answer
            return await task

    async def slow_poll(aw, timeout):  # most of the watch's time is in a poll: the cancel lands there
        result = await missing_cancels(aw, timeout)
        await missing_cancels(asyncio.sleep(0.2), None)
        return result

    monkeypatch.setattr(progress, "POLL_INTERVAL", 0.01)
    dump_tool, restore_tool, major = backup_tools(fresh_db)
    monkeypatch.setattr(asyncio, "wait_for", slow_poll)
    try:
        task = asyncio.ensure_future(pgtools.take_backup(dump_tool, restore_tool, fresh_db, tmp_path,
                                                         server_major=major, source={"dbname": fresh_db.dbname}))
        done, _ = await asyncio.wait({task}, timeout=20)
    finally:
        monkeypatch.setattr(asyncio, "wait_for", real)  # a hung watch then ends with the test
    assert task in done, "the backup never ended: its progress watch was waited for without bound"
    assert task.result().verified
