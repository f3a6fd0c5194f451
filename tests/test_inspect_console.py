"""The inspection pane in the runbook screen, driven with Pilot: it survives a failing query."""

from __future__ import annotations

import json

from screen_text import svg_text
from test_console import SIZE, make_app, text_of

from aami_tui.core.runbook import Step
from aami_tui.ui import scenes


async def test_inspection_pane_survives_a_failing_query_then_commit(fresh_db, tmp_path):
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.VERIFY)
        await pilot.press("i")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "inspect", what="inspect pane")
        pane = app.screen
        await pilot.press(*"\\dt", "enter")
        await scenes.wait_for(pilot, lambda: pane.last is not None and pane.last.text == "\\dt", what="\\dt")
        assert sum(1 for row in pane.last.rows if row[0] == "public") == 10
        assert "✓ SELECT" in text_of(app, "#inspect-status")
        # Keys typed while a query runs are kept (the finished query cleared the line under them).
        await scenes.paste(pilot, "select pg_sleep(0.4)")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: "Running" in text_of(app, "#inspect-status"), what="running")
        await pilot.press("ctrl+u", *"select 2")
        await scenes.wait_for(pilot, lambda: pane.last.text == "select pg_sleep(0.4)", what="pg_sleep")
        assert "1 row ·" in text_of(app, "#inspect-status")  # not "1 rows"
        assert pane.query_one("#inspect-input").value == "select 2"
        pane.query_one("#inspect-input").value = ""
        await scenes.paste(pilot, "select * from nope")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: pane.last.text == "select * from nope", what="failing query")
        assert 'relation "nope" does not exist' in text_of(app, "#inspect-status")
        pane.query_one("#inspect-input").value = ""
        await scenes.paste(pilot, "delete from groups")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: "Read-only" in text_of(app, "#inspect-status"), what="refusal")
        assert "DELETE changes the database" in text_of(app, "#inspect-status")  # was "Delete is not a read"
        pane.query_one("#inspect-input").value = ""
        await pilot.press(*"select 1", "enter")
        await scenes.wait_for(pilot, lambda: pane.last.text == "select 1", what="select 1")
        await scenes.paste(pilot, "create table t (x int)")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: "CREATE" in text_of(app, "#inspect-status"), what="2nd refusal")
        # the refusal takes select 1's result away, and typing replaces the refused line (it was appended to)
        assert pane.query_one("#inspect-table").row_count == 0
        await pilot.press(*"select 3")
        assert pane.query_one("#inspect-input").value == "select 3"
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.runbook_screen, what="back")
        await scenes.commit(pilot, fresh_db.dbname)
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["final_state"] == "committed"
    assert [(x["query"], x["outcome"]) for x in report["inspections"]] == [
        ("\\dt", "ok"), ("select pg_sleep(0.4)", "ok"), ("select * from nope", "failed"),
        ("delete from groups", "refused"), ("select 1", "ok"), ("create table t (x int)", "refused")]


async def test_inspection_pane_shows_the_transaction_state_and_follows_it_when_the_connection_is_lost(fresh_db,
                                                                                                     tmp_path):
    """The pane is a modal over the runbook: it shows the runbook bar's state itself (the same words and colours)
    and follows it: a session terminated from outside turns it to CONNECTION LOST while the pane is open."""
    from conftest import run_sql

    from aami_tui.core.runbook import Tx

    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.BEGIN)
        await pilot.press("i")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "inspect", what="inspect pane")
        pane = app.screen

        def badge(screen, selector: str) -> tuple[str, str]:
            head = screen.query_one(selector).render()
            first = head.spans[0]
            return head.plain[first.start:first.end], str(first.style)

        bar = app.runbook_screen
        footer = svg_text(app.export_screenshot()).splitlines()[-1]
        assert "esc Close" in footer and "COMMIT" not in footer, footer  # the pane's keys, not the runbook's
        open_badge = badge(pane, "#inspect-head")
        assert open_badge == badge(bar, "#txbar") and open_badge[0] == " TRANSACTION OPEN "
        run_sql(fresh_db, f"SELECT pg_terminate_backend({app.runbook.backend_pid})")  # a DBA, a failover…
        await scenes.wait_for(pilot, lambda: app.runbook.tx == Tx.LOST and pane.rb.tx == pane._tx, 30, what="lost")
        assert app.screen is pane  # still open, and it says so
        lost_badge = badge(pane, "#inspect-head")
        assert lost_badge == badge(bar, "#txbar") and lost_badge[0] == " CONNECTION LOST: NOT COMMITTED "
        assert lost_badge[1] != open_badge[1] and "red" in lost_badge[1]
        assert text_of(app, "#inspect-status").startswith("The migration transaction is no longer open (connection "
                                                           "lost: not committed): nothing more runs here.")
