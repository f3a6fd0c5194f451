"""The runbook's lifecycle in the console (issue 7 items 3 and 4), driven with Pilot against a real server."""

from __future__ import annotations

from pathlib import Path

from faults import advisory_locks, commit_never_answered, public_tables, query

from aami_tui.core.runbook import Options, Outcome, Phase, State, Step, Tx
from aami_tui.core.schema import REQUIRED_TABLES
from aami_tui.ui import scenes
from aami_tui.ui.app import create_app

SIZE = (120, 36)


def make_app(settings, tmp_path: Path, **opts):
    o = Options(backup_dir=tmp_path / "backups", reports_dir=tmp_path / "reports", **opts)
    return create_app(settings, options=o, refresh_interval=0.5)


def text_of(app, selector: str) -> str:
    r = app.screen.query_one(selector).render()
    return getattr(r, "plain", str(r))


async def test_after_a_commit_without_answer_the_console_does_not_lock_itself_out(pg_server, fresh_db, tmp_path):
    """Item 3: after a COMMIT timeout the next runbook's 'One operator' check named the console's own pid,
    ROLLBACK was refused while the bar still said the transaction was open, and the finished runbook was
    replaced without close(), its connection and lock living on.
    Last stop's known-left: the COMMIT here waits on SyncRep, and --commit-timeout ended that wait without asking
    the DBA at the keyboard; now a dialog asks (Keep waiting focused: escape keeps waiting, and asks again a period
    later), the bar counting the wait meanwhile."""
    import re

    from aami_tui.ui.commit_wait import CommitWaitModal

    app = make_app(fresh_db, tmp_path, commit_timeout=1.0, skip_backup=True)
    with commit_never_answered(pg_server, fresh_db):
        async with app.run_test(size=(80, 24)) as pilot:  # fresh9 F3: the narrowest terminal we support
            await scenes.dashboard_ready(pilot)
            await scenes.walk_to(pilot, Step.VERIFY)
            first = app.runbook
            await scenes.open_commit_modal(pilot)
            await scenes.paste(pilot, fresh_db.dbname)
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: isinstance(app.screen, CommitWaitModal), what="the question")
            assert app.screen.focused.id == "cancel" and str(app.screen.focused.label) == "Keep waiting"
            assert "the synchronous standby 'never' has not confirmed it (wait_event SyncRep)" in text_of(
                app, "#confirm-body")
            bar = app.runbook_screen.query_one("#txbar").render()  # under the dialog, still counting the wait
            bar = getattr(bar, "plain", str(bar))
            # fresh9 F3: at 80 columns the count was cut ("…standby 'never'…"), and the badge said TRANSACTION OPEN
            assert all(len(line) <= 80 for line in bar.splitlines()), bar
            assert re.search(r"waiting for standby 'never' \d+s", bar) and "…" not in bar, bar
            assert "COMMITTED LOCALLY" in bar and "TRANSACTION OPEN" not in bar, bar
            # fresh8 R5: the step pane said Verify's "Verify passed … c COMMIT … x ROLLBACK" while COMMIT was out;
            # fresh9 F3: its header said Verify, and "never cancelled" beside the dialog's "End the wait"
            step = app.runbook_screen.query_one("#verify-next").render()
            step = getattr(step, "plain", str(step))
            assert step.startswith(f"COMMIT committed locally (transaction {first.xid})") and "Verify passed" not in step
            assert "never cancelled" not in step and "only the wait for the standby can be ended" in step, step
            title = app.runbook_screen.query_one("#verify-title").render()
            assert "COMMIT" in getattr(title, "plain", str(title)) and "Verify" not in getattr(title, "plain", "")
            # fresh9 F4: q did nothing in the dialog; now the same toast as ctrl+c, and the dialog's count moves
            await pilot.press("q")
            await scenes.wait_for(pilot, lambda: any("COMMIT is waiting for the synchronous standby" in n.message
                                                     for n in app._notifications), what="q's toast")
            assert isinstance(app.screen, CommitWaitModal) and app.is_running
            said = text_of(app, "#confirm-body")
            await scenes.wait_for(pilot, lambda: text_of(app, "#confirm-body") != said, what="the dialog to count")
            await pilot.press("escape")  # keep waiting: asked again a --commit-timeout later
            await scenes.wait_for(pilot, lambda: isinstance(app.screen, CommitWaitModal)
                                  and app.screen.event.number == 2, what="the second question")
            assert first.steps[Step.COMMIT].state is State.RUNNING
            await pilot.click("#confirm")  # end the wait: as before, committed on the primary only
            await scenes.wait_for(pilot, lambda: first.steps[Step.COMMIT].state in (State.DONE, State.FAILED)
                                  and not isinstance(app.screen, CommitWaitModal), what="COMMIT")
            assert [w["answer"] for w in first.commit_waits] == ["keep waiting", "end the wait"]
            # Certain, and said so: committed (the server confirms), the bar agrees, nothing is left open.
            assert first.outcome == Outcome.COMMITTED and first.tx == Tx.COMMITTED and not first.tx_open
            assert text_of(app, "#txbar").strip().startswith("COMMITTED")
            # fresh7 N1: our resolver ended the COMMIT's wait for the standby: the pane said "✓ COMMITTED" only
            done = text_of(app, "#done-text")
            assert "⚠ COMMITTED ON THE PRIMARY ONLY" in done and "✓ COMMITTED" not in done
            assert "NOT confirmed on the synchronous standby named by synchronous_standby_names = 'never'" in done
            assert "committed on the primary only, NOT confirmed" in text_of(app, "#txbar")
            assert not app.runbook_screen.check_action("commit", ())  # c and x are not offered after COMMITTED
            assert not app.runbook_screen.check_action("rollback", ())
            assert advisory_locks(fresh_db) == []
            await pilot.press("d")
            await scenes.wait_for(pilot, lambda: app.screen is app.dashboard)
            await pilot.press("r")
            await scenes.wait_for(pilot, lambda: app.runbook is not first and app.screen is app.runbook_screen
                                  and app.runbook.checks, what="a fresh runbook")
            one = next(c for c in app.runbook.checks if c.name == "One operator")
            assert one.ok, one.detail
            assert first.conn is None and first.monitor is None  # the finished run was closed
    assert public_tables(fresh_db) == sorted(REQUIRED_TABLES)


async def test_the_runbook_screen_open_keeps_no_lock_and_restore_is_not_refused(fresh_db, tmp_path):
    """Item 4: opening the runbook ran the checks and kept the lock; after a passed pre-flight the console's
    own restore was refused, naming the console's own pid."""
    app = make_app(fresh_db, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        await scenes.open_runbook(pilot)
        assert advisory_locks(fresh_db) == []  # looking is not holding
        await scenes.tick_all(pilot)
        await scenes.next_step(pilot)  # pre-flight passed: the lock is held until BEGIN
        await scenes.next_step(pilot)  # the backup
        assert advisory_locks(fresh_db) == [(app.runbook.backend_pid, 0x41414D49, 1, True)]
        await pilot.press("d")
        await scenes.wait_for(pilot, lambda: app.screen is app.dashboard)
        await pilot.press("b")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore" and app.screen.entries,
                              what="the restore screen")
        assert advisory_locks(fresh_db) == []  # released for the console's own restore
        await scenes.wait_for(pilot, lambda: list(app.screen.checks.values()) == [True], what="sha256 check")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "restore-modal")
        await scenes.paste(pilot, fresh_db.dbname)
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: app.screen.id == "restore" and app.screen.result is not None,
                              what="restore")
        assert "refused" not in text_of(app, "#restore-status")


async def test_frozen_network_at_the_commit_prompt_is_noticed_and_said(fresh_db, tmp_path):
    """Item 5 in the console: the network freezes while the operator reads the COMMIT prompt. The lock watch
    gets no answer, the session check hits its deadline, the bar says 'not committed', the backend is fenced."""
    from faults import Proxy
    from screen_text import svg_text

    proxy = Proxy(fresh_db.host, fresh_db.port)
    app = make_app(proxy.settings(fresh_db), tmp_path, query_timeout=2.5, commit_timeout=1.0, skip_backup=True)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await scenes.dashboard_ready(pilot)
            await scenes.walk_to(pilot, Step.VERIFY)
            rb = app.runbook
            pid = rb.backend_pid
            proxy.freeze()
            await scenes.wait_for(pilot, lambda: rb.tx == Tx.LOST, 30, what="the console to notice")
            assert text_of(app, "#txbar").strip().startswith("CONNECTION LOST: NOT COMMITTED")
            assert "COMMIT was never sent, so nothing is committed" in rb.failure
            assert f"backend {pid} ended (pg_terminate_backend)" in rb.failure
            assert not query(fresh_db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
            assert advisory_locks(fresh_db) == [] and public_tables(fresh_db) == []
            proxy.thaw()
            # Retry from BEGIN; this time the network freezes with COMMIT in flight and no fresh connection can
            # ask the server: "outcome unknown" (exit 9). The console used to offer only the printed query; now
            # o re-runs the resolver on a fresh connection once the server can be reached, and the state follows.
            for _ in (Step.BEGIN, Step.APPLY, Step.VERIFY):
                await scenes.next_step(pilot)
            assert rb.phase is Phase.VERIFIED, rb.log[-3:]
            await scenes.open_commit_modal(pilot)
            await pilot.press(*fresh_db.dbname)
            proxy.freeze(new=True)
            await pilot.press("enter")
            await scenes.wait_for(pilot, lambda: rb.phase is not Phase.VERIFIED and not rb.running, 30,
                                  what="COMMIT to settle")
            assert rb.outcome == Outcome.UNKNOWN and rb.tx == Tx.UNKNOWN, "\n".join(m for _, _, m in rb.log[-4:])
            proxy.drop()  # the network is back; what the frozen connections held (COMMIT) never arrives
            await scenes.wait_for(pilot, lambda: not app.runbook_screen._busy(), 30, what="the console")
            footer = svg_text(app.export_screenshot()).splitlines()[-1]
            assert "o Re-check outcome" in footer and "c COMMIT" not in footer and "x ROLLBACK" not in footer
            assert "Next: o → re-check the COMMIT's outcome" in text_of(app, "#txbar")
            assert "Press o to ask the server again" in text_of(app, "#done-text")
            await pilot.press("o")
            await scenes.wait_for(pilot, lambda: rb.outcome == Outcome.ROLLED_BACK
                                  and not app.runbook_screen._busy(), 30, what="the re-check")
            assert "Next: n → BEGIN (retry)" in text_of(app, "#txbar")
            # the confirmed outcome, plainly (it said 'CONNECTION LOST: NOT COMMITTED')
            assert text_of(app, "#txbar").strip().startswith("ROLLED BACK"), text_of(app, "#txbar")
            assert "nothing of the migration is in the database" in text_of(app, "#done-text")
            assert any("rolled back" in str(n.message) for n in app._notifications)
            footer = svg_text(app.export_screenshot()).splitlines()[-1]
            assert "Re-check" not in footer and "n Next step" in footer
            assert public_tables(fresh_db) == []
    finally:
        proxy.close()



async def test_the_commit_prompt_checks_the_standbys_again(pg_server, fresh_db, tmp_path):
    """Known-left since fresh8: pre-flight warns when COMMIT will wait for a synchronous standby that is not
    connected, but a standby can go (or synchronous_standby_names change) while the DBA verifies and inspects. The
    COMMIT prompt asks the server again, and says so before the database's name is typed; without a synchronous
    standby it says nothing of standbys."""
    from screen_text import svg_text

    app = make_app(fresh_db, tmp_path, skip_backup=True)
    async with app.run_test(size=(80, 24)) as pilot:  # the narrowest: the dialog's body shows three lines
        await scenes.dashboard_ready(pilot)
        await scenes.walk_to(pilot, Step.VERIFY)
        assert not any(c.name == "Synchronous standby" for c in app.runbook.checks)  # none at pre-flight
        await scenes.open_commit_modal(pilot)
        assert "standby" not in text_of(app, "#confirm-body")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.runbook_screen, what="the runbook")
        with commit_never_answered(pg_server, fresh_db, standby="gone"):
            await scenes.open_commit_modal(pilot)
            body = text_of(app, "#confirm-body")
            assert "synchronous_standby_names = 'gone'" in body and "COMMIT will hang waiting for it" in body, body
            assert "committed on the primary only" in body, body
            await scenes.settle(pilot, 0.3)  # the dialog fits its body to the room left (at 80x24: three lines)
            shown = " ".join(svg_text(app.export_screenshot()).split())
            assert "COMMIT will hang waiting for it" in shown, "the warning is out of sight"
            await pilot.press("escape")
            await scenes.wait_for(pilot, lambda: app.screen is app.runbook_screen, what="the runbook")
        assert app.runbook.tx_open and app.runbook.phase is Phase.VERIFIED
