"""``aami-tui screenshots``: regenerate the SVGs in screenshots/ on a throwaway embedded server.

Stable mode masks values that change from run to run (ports, timings, checksums), so a
regeneration only changes a file when the screen itself changed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from aami_tui.core import embedded
from aami_tui.core.runbook import Options, Step
from aami_tui.ui import scenes
from aami_tui.ui.app import create_app

SIZE = (120, 36)


async def _shoot(out: Path, pg) -> list[Path]:
    work = Path(tempfile.mkdtemp(prefix="aami-shots-"))
    opts = Options(backup_dir=work / "backups", reports_dir=work / "reports", pace=0.15)
    app = create_app(pg.settings(), options=opts, refresh_interval=1.0, embedded=pg, stable=True)
    saved: list[Path] = []

    def save(name: str) -> None:
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
        saved.append(out / f"{name}.svg")

    async with app.run_test(size=SIZE) as pilot:
        await scenes.dashboard_ready(pilot)
        save("01-dashboard-missing-tables")
        await scenes.walk_to(pilot, Step.BEGIN)
        await pilot.press("n")
        await scenes.wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal")
        await pilot.press("enter")
        await scenes.wait_for(pilot, lambda: sum(1 for s in app.runbook.statements if s.ok) >= 18,
                              what="statement 18")
        save("02-runbook-mid-apply")
        await pilot.press("s")  # the SQL review pane follows the statement being applied
        await scenes.settle(pilot, 0.2)
        save("08-sql-review-during-apply")
        await pilot.press("s")
        await scenes.wait_for(pilot, lambda: scenes._idle(app), 60, what="apply to finish")
        await scenes.next_step(pilot)  # verify
        await pilot.press("i")  # the inspection pane, inside the open transaction
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "inspect", what="inspect pane")
        await pilot.press(*"\\dt", "enter")
        await scenes.wait_for(pilot, lambda: app.screen.last is not None, what="\\dt")
        await scenes.settle(pilot)
        save("06-inspect-pane")
        await pilot.press("escape")
        await scenes.wait_for(pilot, lambda: app.screen is app.runbook_screen, what="back to the runbook")
        await scenes.open_commit_modal(pilot)
        save("03-commit-confirmation")
        await scenes.commit(pilot, pg.dbname)
        await scenes.settle(pilot)
        save("04-runbook-committed")
        await pilot.press("d")
        app.dashboard.action_refresh_now()
        await scenes.wait_for(pilot, lambda: app.dashboard.last_result is not None
                              and app.dashboard.last_result.ok, what="10 / 10 on the dashboard")
        await scenes.settle(pilot)
        save("05-dashboard-ten-of-ten")
        # Drift: the database as the upstream project's 001 and an older chain would leave it
        await asyncio.to_thread(_run_sql, pg.settings(), DRIFT_SQL)
        await pilot.press("p")
        await scenes.wait_for(pilot, lambda: getattr(app.screen, "id", None) == "drift"
                              and app.screen.plan is not None, 90, what="the drift plan")
        await pilot.press("down", "down")
        await pilot.press("w")  # the plan file beside the differences: parts for a person, then its lint
        await scenes.wait_for(pilot, lambda: app.screen.review is not None, 60, what="the plan file's lint")
        await scenes.settle(pilot)
        save("07-drift-view")
    return saved


DRIFT_SQL = """
ALTER TABLE target_groups DROP COLUMN is_default_own;
ALTER TABLE check_instances RENAME COLUMN enabled TO is_active;
DROP INDEX idx_targets_status;
CREATE TABLE site_notes (id int PRIMARY KEY, note text);
INSERT INTO site_notes SELECT g, 'note ' || g FROM generate_series(1, 12) g;
"""


def _run_sql(settings, text: str) -> None:
    import psycopg

    with psycopg.connect(settings.conninfo(), autocommit=True) as c:
        c.execute(text)


def main(out: Path) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pg = embedded.start("aami_config")
    try:
        saved = asyncio.run(_shoot(out, pg))
    finally:
        pg.stop()
    for p in saved:
        os.chmod(p, 0o644)
        print(p)
    return 0
