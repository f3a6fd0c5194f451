"""The rehearsal step in the console (Pilot): r after the backup; a failed rehearsal makes BEGIN ask for the name.

Kept out of tests/test_rehearse.py, which CI's PostgreSQL 15 lane runs again: one picture of the console is enough.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_sql
from test_rehearse import NOTES, scratch_databases


async def test_console_rehearsal_step_fails_then_begin_needs_the_typed_name(fresh_db, tmp_path):
    """The console face (Pilot): r after the backup rehearses; a failed rehearsal makes n ask for the typed name."""
    from faults import migration_with
    from test_console import SIZE, make_app, text_of

    from aami_tui.core import files
    from aami_tui.core.runbook import Phase, State, Step
    from aami_tui.ui import scenes

    run_sql(fresh_db, NOTES)
    bad, _ = migration_with(tmp_path, "CREATE UNIQUE INDEX site_notes_note ON site_notes (note);", after=1)
    app = make_app(fresh_db, tmp_path, migration_path=bad)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        screen = app.screen
        for key, _ in app.runbook.items:
            if key != "staging":  # left for the rehearsal
                screen.query_one(f"#tick-{key}").focus()
                await pilot.press("space")
        await scenes.next_step(pilot)  # pre-flight
        await scenes.next_step(pilot)  # backup
        assert "Next: n → BEGIN   r → rehearse on a copy first (optional)" in text_of(app, "#rehearse-info")
        # a copy that plainly cannot fit: refused with the sentence, no confirmation, nothing run
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(files, "free_bytes", lambda _path: 1024 * 1024)
            await pilot.press("r")
            await scenes.wait_for(pilot, lambda: any("Not enough disk for the rehearsal" in line.plain
                                                     for line in screen._said), what="refusal")
        assert app.screen is screen and not app.runbook.rehearsals
        assert app.runbook.steps[Step.REHEARSE].state is State.PENDING
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "rehearse-modal", what="modal")
        body = text_of(app, "#confirm-body")  # what the copy costs, against what is free where it goes
        assert "The rehearsal needs a whole extra copy of the database in a new database on the same server: " \
               "about " in body and " is free in " in body
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: app.runbook.rehearsals and scenes._idle(app), 60, what="rehearsal")
        info = text_of(app, "#rehearse-info")
        # the copy's restore moved its own bar, from the copy's server counters (shown while the rehearsal runs)
        bar = screen.query_one("#rehearse-progress")
        assert bar.total > 1 and bar.progress == bar.total and not bar.display
        assert text_of(app, "#rehearse-line").startswith("restoring the copy: ")
        assert text_of(app, "#rehearse-line").endswith("(100 %), done")
        assert "✗ Rehearsal on a copy: The real run would fail: Statement 2 / 44" in info
        assert "copy: a new database aami_rehearse_" in info.lower() and "; dropped" in info
        assert "r → rehearse again, or n → BEGIN anyway" in info
        assert not screen.query_one("#tick-staging").value
        # the file edited on disk after pre-flight: r says so (BEGIN applies what pre-flight loaded), n re-runs it
        bad.write_text(bad.read_text() + "\n-- edited\n")
        await pilot.press("r")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "rehearse-modal", what="modal 2")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: any("changed since pre-flight" in line.plain for line in screen._said)
                              and scenes._idle(app), what="stale file")
        assert "Next: n → Pre-flight" in text_of(app, "#txbar") and len(app.runbook.rehearsals) == 1
        await scenes.next_step(pilot)  # pre-flight again: loads the edited file
        assert app.runbook.phase is Phase.READY and app.runbook.steps[Step.PREFLIGHT].state is State.DONE
        # edited again: n (BEGIN) says so at once, instead of asking to BEGIN on a copy that is not the file
        bad.write_text(bad.read_text() + "\n-- edited again\n")
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen, app.screen  # no BEGIN confirmation
        assert any(str(n.message).startswith("BEGIN not run: ") and "changed since pre-flight" in str(n.message)
                   for n in app._notifications)
        assert "Next: n → Pre-flight" in text_of(app, "#txbar")
        from screen_text import svg_text

        footer = svg_text(app.export_screenshot()).splitlines()[-1]  # r would be refused too: not offered
        assert "Rehearse" not in footer and "Next" in footer, footer
        await scenes.next_step(pilot)
        assert app.runbook.phase is Phase.READY and app.runbook.steps[Step.PREFLIGHT].state is State.DONE
        await pilot.press("n")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "begin-anyway-modal", what="ask")
        await pilot.press(*fresh_db.dbname, "enter")
        await scenes.wait_for(pilot, lambda: app.runbook.phase is Phase.OPEN and scenes._idle(app), what="BEGIN")
    assert scratch_databases(fresh_db) == []
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("report_*.json")]
    assert report["begin_confirmed_although"].startswith("the rehearsal on a copy failed: The real run would fail")
    assert [x["outcome"] for x in report["rehearsals"]] == ["failed"]
