"""The console at rest (issue 8): an idle refresh repaints nothing, a change shows at the next refresh, and a
lock in the way of the validation is a sentence on the checklist, not a stuck or crashed refresh."""

from __future__ import annotations

import asyncio

import psycopg
from conftest import apply_migration, run_sql
from test_console import make_app, text_of

from aami_tui.ui import scenes
from aami_tui.ui.table_checklist import TableChecklist

SIZE = (120, 36)


async def _refreshes(app, n: int) -> None:
    dash = app.screen
    for _ in range(n):
        await dash.refresh_now()


async def test_idle_refreshes_repaint_nothing_and_a_change_shows(fresh_db, tmp_path, monkeypatch):
    from textual.widgets import DataTable, Static

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        rebuilt: list[int] = []
        updates: list[int] = []
        changed: list[int] = []
        real_clear, real_update, real_cell = DataTable.clear, Static.update, DataTable.update_cell
        monkeypatch.setattr(DataTable, "clear", lambda self, *a, **k: (rebuilt.append(1), real_clear(self, *a, **k))[1])
        monkeypatch.setattr(DataTable, "update_cell",
                            lambda self, *a, **k: (changed.append(1), real_cell(self, *a, **k))[1])
        monkeypatch.setattr(Static, "update", lambda self, *a, **k: (updates.append(1), real_update(self, *a, **k))[1])
        await _refreshes(app, 3)
        await pilot.pause()
        assert rebuilt == changed == updates == []  # nothing changed: nothing was rebuilt or repainted
        run_sql(fresh_db, "CREATE TABLE namespaces (id int)")
        await _refreshes(app, 1)
        await pilot.pause()
        assert rebuilt == [] and changed  # namespaces' row, its cells changed in place (the same rows)
        assert "1 / 10 present" in text_of(app, "#checklist-header")


async def test_a_validation_that_cannot_finish_is_a_sentence_on_the_checklist(fresh_db, tmp_path):
    apply_migration(fresh_db)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        with psycopg.connect(fresh_db.conninfo(application_name="dba-maintenance")) as holder:
            holder.execute("LOCK TABLE pg_catalog.pg_namespace IN ACCESS EXCLUSIVE MODE")
            await asyncio.wait_for(app.screen.refresh_now(), 30)
            await pilot.pause()
            assert "did not finish within its own limits" in text_of(app, "#checklist-header")
        await app.screen.refresh_now()
        await pilot.pause()
        assert "10 / 10 present" in text_of(app, "#checklist-header")
        assert app.screen.query_one(TableChecklist).error is None
