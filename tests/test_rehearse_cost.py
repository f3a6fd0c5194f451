"""What a rehearsal costs, and its progress: a whole extra copy of the database (said, and refused up front when it
plainly cannot fit), and the copy's restore followed with the same progress as a backup's."""

from __future__ import annotations

import os

import psycopg
import pytest
from conftest import MIGRATION, run_sql
from test_rehearse import NOTES, scratch_databases

from aami_tui.core import files, rehearse
from aami_tui.core.db import connect
from aami_tui.core.words import size


def database_size(settings) -> int:
    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        return c.execute("SELECT pg_database_size(current_database())").fetchone()[0]


async def cost_as(settings, backup_dir=None, **params) -> rehearse.CopyCost:
    conn = await connect(settings.__class__({**settings.params, **params}, "--dsn"))
    try:
        return await rehearse.copy_cost(conn, settings, backup_dir)
    finally:
        await conn.close()


async def test_the_copy_costs_the_database_size_against_what_is_free_where_it_goes(fresh_db, tmp_path):
    run_sql(fresh_db, NOTES)
    cost = await cost_as(fresh_db)
    need = database_size(fresh_db)
    # the test server runs on this machine and we are its superuser: its data directory is measured
    assert (cost.db_size, cost.need, cost.where) == (need, need, "in a new database on the same server")
    assert cost.free is not None and cost.fits is True and os.path.isdir(cost.path)
    assert cost.sentence().startswith(
        "The rehearsal needs a whole extra copy of the database in a new database on the same server: about "
        f"{size(need)} of disk (the database's size, {size(need)}); ")
    assert cost.sentence().endswith(f" is free in {cost.path}.")
    # no backup given: it takes one first, and says where and how much room that needs
    with_backup = (await cost_as(fresh_db, tmp_path / "b")).sentence()
    assert with_backup.startswith(cost.sentence().split("; ")[0])
    assert f" It takes a backup first (pg_dump): up to {size(need)} in {tmp_path / 'b'} (" in with_backup
    # a role that may create databases but not read data_directory: said, not guessed
    role = f"cost_r_{os.getpid()}"
    run_sql(fresh_db, f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw' CREATEDB;"
                      f"DROP ROLE IF EXISTS {role}_n; CREATE ROLE {role}_n LOGIN PASSWORD 'pw' NOCREATEDB")
    try:
        blind = await cost_as(fresh_db, user=role, password="pw")
        assert blind.free is None and blind.fits is None
        assert blind.sentence().endswith("the free space there cannot be measured from here (the role may not read "
                                         "the server's data_directory): make sure it has room before you confirm.")
        embedded = await cost_as(fresh_db, user=f"{role}_n", password="pw")
        assert embedded.where == "in the embedded PostgreSQL (the role may not create databases)"
        assert embedded.need == embedded.db_size + rehearse.EMBEDDED_OVERHEAD and embedded.fits is True
        assert f"plus {size(rehearse.EMBEDDED_OVERHEAD)} for the embedded server's own files" in embedded.sentence()
    finally:
        run_sql(fresh_db, f"DROP ROLE {role}; DROP ROLE {role}_n")


async def test_a_copy_that_cannot_fit_is_refused_up_front_headless_and_in_the_runbook(fresh_db, tmp_path,
                                                                                       monkeypatch):
    from faults import runbook

    from aami_tui.core.runbook import Log, Phase, State, Step

    run_sql(fresh_db, NOTES)
    need = database_size(fresh_db)
    monkeypatch.setattr(files, "free_bytes", lambda _path: need)  # exactly the copy: not the room the rule asks
    said: list[str] = []
    with pytest.raises(rehearse.RehearsalError) as exc:
        await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r",
                                say=said.append)
    words = str(exc.value)
    assert words.startswith(f"Not enough disk for the rehearsal: it needs a whole extra copy of the database in a "
                            f"new database on the same server: about {size(need)} of disk")
    assert f"and only {size(need)} is free in " in words
    assert words.endswith("free space there first, the real database was not touched.")
    assert said == [] and not (tmp_path / "b").exists() and not (tmp_path / "r").exists()  # no backup, no report
    assert scratch_databases(fresh_db) == []
    # room for the copy, not for the backup it would take first: that is refused too, and said so
    monkeypatch.setattr(files, "free_bytes", lambda path: 1 << 50 if str(path).endswith("/data") else need)
    with pytest.raises(rehearse.RehearsalError) as exc:
        await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r")
    assert str(exc.value).startswith(f"Not enough disk for the rehearsal's backup: it takes a pg_dump of the "
                                     f"database first, up to {size(need)} in {tmp_path / 'b'}, and only "
                                     f"{size(need)} is free there")
    assert str(exc.value).endswith("(or give it a backup: --from-backup FILE).") and not (tmp_path / "b").exists()
    # the runbook's step (the console's r, `apply --rehearse`), which restores the run's own backup: the same
    # function, the same words
    monkeypatch.setattr(files, "free_bytes", lambda _path: need)
    events: list = []
    rb = runbook(fresh_db, tmp_path, events=events)
    await rb.preflight()
    await rb.backup_step()
    words = (await rb.rehearsal_cost()).refusal()
    assert words.startswith("Not enough disk for the rehearsal: it needs a whole extra copy of the database")
    assert "backup" not in words.split(" (what is needed")[0]  # the run's backup exists: no second one
    rec = await rb.rehearse()
    assert rec.outcome == "no copy" and rec.verdict == f"The rehearsal could not run: {words[:-1]}; no copy was made."
    assert rb.steps[Step.REHEARSE].state is State.FAILED and rb.phase is Phase.READY
    assert any(isinstance(e, Log) and e.message == rec.verdict for e in events)  # what headless prints
    assert scratch_databases(fresh_db) == []
    await rb.close("test")


async def test_the_copy_is_restored_with_the_same_progress_as_a_backup(fresh_db, tmp_path):
    import re

    run_sql(fresh_db, "CREATE TABLE site_notes AS SELECT g AS id, repeat('x', 200) AS note "
                      "FROM generate_series(1, 5000) g; CREATE INDEX ON site_notes (id)")
    seen: list = []
    r = await rehearse.rehearse(fresh_db, MIGRATION, backup_dir=tmp_path / "b", reports_dir=tmp_path / "r",
                                on_progress=seen.append)
    assert r.exit_code == 0, r.failed
    assert seen and {p.what for p in seen} == {"restoring the copy"}
    assert [p.done for p in seen] == sorted(p.done for p in seen)  # only forward
    last = seen[-1]  # weighed by the table and its index: bytes, a percentage, done
    assert last.total > 0 and last.done == last.total, last
    assert re.fullmatch(r"restoring the copy: [\d.]+ / [\d.]+ (KiB|MiB) \(100 %\), done", last.line()), last.line()
