"""Snapshot tests (pytest-textual-snapshot) of the dashboard and the runbook at key steps.

The app runs in stable mode (ports, timings, checksums masked) against the embedded server's
database ``aami_config``; with AAMI_TEST_DSN these are skipped (another server looks different,
and we never drop a database named aami_config on a server we do not own).
Update after an intended change: ``.venv/bin/pytest tests/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from aami_tui.core.runbook import Options, Step
from aami_tui.ui import scenes
from aami_tui.ui.app import create_app


@pytest.fixture
def aami_config(pg_server, tmp_path, monkeypatch):
    if pg_server.embedded is None or pg_server.embedded.bin_path is not None:
        pytest.skip("snapshots run on the embedded PostgreSQL 18 only")
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier("aami_config")))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("aami_config")))
    monkeypatch.chdir(tmp_path)
    opts = Options(backup_dir=tmp_path / "backups", reports_dir=tmp_path / "reports")
    yield create_app(pg_server.settings("aami_config"), options=opts, refresh_interval=60, stable=True)
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier("aami_config")))


def test_dashboard_missing_tables(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(120, 36), run_before=scenes.dashboard_ready)


def test_dashboard_80x24(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(80, 24), run_before=scenes.dashboard_ready)


async def _preflight(pilot):
    await scenes.dashboard_ready(pilot)
    await scenes.open_runbook(pilot)
    await scenes.tick_all(pilot)


def test_runbook_preflight(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(120, 36), run_before=_preflight)


async def _verified(pilot):
    await scenes.dashboard_ready(pilot)
    await scenes.walk_to(pilot, Step.VERIFY)
    pilot.app.runbook_screen.action_refresh_tables()
    def settled() -> bool:
        watch = pilot.app.screen.query_one("#lockwatch")
        shown = str(getattr(watch.render(), "plain", watch.render()))
        # the checklist shows the uncommitted preview, and the lock watch has seen the session sit idle
        return pilot.app.screen.query_one("#rb-checklist").uncommitted and "idle in transaction" in shown

    await scenes.wait_for(pilot, settled, what="the transaction views to settle")
    await scenes.settle(pilot)


def test_runbook_verified_transaction_open(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(120, 36), run_before=_verified)


async def _commit_modal(pilot):
    await _verified(pilot)
    await scenes.open_commit_modal(pilot)


def test_commit_confirmation(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(120, 36), run_before=_commit_modal)


def test_runbook_verified_80x24(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(80, 24), run_before=_verified)


def test_runbook_verified_200x50(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(200, 50), run_before=_verified)


async def _sql_review(pilot):
    await scenes.dashboard_ready(pilot)
    await scenes.open_runbook(pilot)
    await pilot.press("s")
    await scenes.settle(pilot)


def test_sql_review_80x24(snap_compare, aami_config):
    assert snap_compare(aami_config, terminal_size=(80, 24), run_before=_sql_review)
