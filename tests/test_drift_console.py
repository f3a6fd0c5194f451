"""The Drift view in the console, driven with Pilot against a real PostgreSQL."""

from __future__ import annotations

import stat

from conftest import apply_migration
from test_console import SIZE, make_app, text_of
from test_plan import build_upstream

from aami_tui.core import plan
from aami_tui.ui import scenes


async def test_drift_view_shows_the_plan_and_writes_it(fresh_db, tmp_path):
    build_upstream(fresh_db, tmp_path)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("p")
        await scenes.wait_for(pilot, lambda: app.screen.id == "drift" and app.screen.plan is not None,
                              what="drift plan", timeout=60)
        screen = app.screen
        assert [(i.kind, i.what) for i in screen.plan.items] == [("safe", "target_groups.is_default_own")]
        assert "ALTER TABLE target_groups ADD COLUMN IF NOT EXISTS is_default_own" in text_of(app, "#drift-detail")
        assert "1 safe (SQL), 0 need a person" in text_of(app, "#drift-status")
        await pilot.press("w")
        await scenes.wait_for(pilot, lambda: screen.written is not None, what="plan file")
        written = list((tmp_path / "reports").glob("plan_*.sql"))
        assert len(written) == 1 and stat.S_IMODE(written[0].stat().st_mode) == 0o600
        assert "is_default_own boolean DEFAULT false NOT NULL" in written[0].read_text()
        assert plan.PERSON_MARKER not in written[0].read_text()
        assert f"--migration-file {written[0]}" in text_of(app, "#drift-status")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard, what="back to the dashboard")


async def test_drift_view_with_no_differences(fresh_db, tmp_path):
    apply_migration(fresh_db)
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await pilot.press("p")
        await scenes.wait_for(pilot, lambda: app.screen.id == "drift" and app.screen.plan is not None,
                              what="drift plan", timeout=60)
        assert "No differences from 001_initial_schema.sql" in text_of(app, "#drift-status")
        await pilot.press("w")
        await pilot.pause()
        assert not list((tmp_path / "reports").glob("plan_*.sql"))


async def test_exact_is_a_console_setting(fresh_db, tmp_path):
    from conftest import run_sql

    run_sql(fresh_db, "CREATE TABLE site_notes (id int)")
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        app.action_toggle_exact()
        assert app.options.exact
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: app.runbook is not None and app.runbook.checks, what="checks",
                              timeout=30)
        gate = [c for c in app.runbook.checks if c.name == "Exactly ten tables in public"]
        assert gate and gate[0].blocking and not gate[0].ok
        await pilot.press("d")
        app.action_toggle_exact()  # pre-flight has not passed: still possible
        assert not app.options.exact and not app.runbook.opt.exact
