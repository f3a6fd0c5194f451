"""Driving the console the way a person does (keys), shared by the Pilot tests, the snapshot tests
and ``aami-tui screenshots``."""

from __future__ import annotations

import asyncio
import time

from aami_tui.core.runbook import State, Step


class SceneError(AssertionError):
    pass


async def wait_for(pilot, predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            await pilot.pause()
            return
        await pilot.pause(0.05)
    raise SceneError(f"timed out waiting for {what}")


def tables_settled(screen) -> bool:
    """Every DataTable on the screen has measured its rows: Textual sizes a table's columns when the table is next
    idle, so a screen drawn just after rows were added (a loaded machine) shows them in the header's widths."""
    from textual.widgets import DataTable

    return not any(t._require_update_dimensions or t._updated_cells for t in screen.query(DataTable))


async def dashboard_ready(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.dashboard.last_result is not None and app.dashboard.panel.migration is not None
                   and app.dashboard.panel.tools and app.dashboard.panel.is_mounted, what="the dashboard's first refresh")
    await wait_for(pilot, lambda: tables_settled(app.dashboard), what="the dashboard's tables sized")


async def open_runbook(pilot) -> None:
    app = pilot.app
    await pilot.press("r")
    await wait_for(pilot, lambda: app.runbook is not None and app.runbook.checks, what="automatic checks")
    await wait_for(pilot, lambda: app.screen.query_one("#rb-checklist").result is not None, what="checklist")
    # the automatic checks' worker and the refresh after it (catch-up): a refresh that lands later refills the
    # tables panel (a snapshot then caught its columns before Textual had sized them)
    await wait_for(pilot, lambda: _idle(app), what="the runbook's automatic checks and the refresh after them")
    await wait_for(pilot, lambda: tables_settled(app.screen), what="the runbook's tables sized")


async def tick_all(pilot) -> None:
    """Tick the pre-flight checklist with the keyboard: focus each box, press space."""
    screen = pilot.app.screen
    for key, _ in pilot.app.runbook.items:
        screen.query_one(f"#tick-{key}").focus()
        await pilot.press("space")
    await pilot.pause()
    await wait_for(pilot, lambda: tables_settled(pilot.app.screen), what="the runbook's tables sized")


def _idle(app) -> bool:
    rb = app.runbook
    screen = app.runbook_screen
    return (not any(r.state == State.RUNNING for r in rb.steps.values()) and not screen._busy()
            and not any(w.group == "catch-up" and w.is_running for w in screen.workers))  # the refresh after it


async def next_step(pilot, timeout: float = 60.0) -> None:
    """Press n, accept the step's confirmation with enter, wait until the step has finished."""
    app = pilot.app
    await pilot.press("n")
    await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmModal", what="the step's confirmation")
    await pilot.press("enter")
    await pilot.pause(0.1)
    await wait_for(pilot, lambda: _idle(app), timeout, what="the step to finish")


async def walk_to(pilot, step: Step) -> None:
    """From the dashboard: open the runbook, tick, and run every step up to and including ``step``."""
    await open_runbook(pilot)
    await tick_all(pilot)
    order = [Step.PREFLIGHT, Step.BACKUP, Step.BEGIN, Step.APPLY, Step.VERIFY]
    for s in order[: order.index(step) + 1]:
        if pilot.app.runbook.steps[s].state in (State.DONE, State.SKIPPED):  # pre-flight may settle the backup
            continue
        await next_step(pilot)
        st = pilot.app.runbook.steps[s].state
        if st not in (State.DONE, State.SKIPPED):
            raise SceneError(f"{s.title} ended {st.value}: {pilot.app.runbook.steps[s].detail}")


async def open_commit_modal(pilot) -> None:
    await pilot.press("c")
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "id", None) == "commit-modal", what="COMMIT modal")


async def paste(pilot, text: str) -> None:
    """Paste ``text`` into the focused field, as a terminal delivers a paste (one event, not a key per character:
    Pilot waits for the app to go idle after every key)."""
    from textual import events

    pilot.app.post_message(events.Paste(text))
    await pilot.pause()


async def commit(pilot, dbname: str, *, typed: bool = False) -> None:
    """Open the COMMIT dialog if needed, give the database's name (pasted, or ``typed`` key by key), press enter,
    wait for the COMMIT to end."""
    app = pilot.app
    if getattr(app.screen, "id", None) != "commit-modal":
        await open_commit_modal(pilot)
    if typed:
        await pilot.press(*dbname)
    else:
        await paste(pilot, dbname)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.runbook.steps[Step.COMMIT].state in (State.DONE, State.FAILED)
                   and _idle(app), what="COMMIT")


async def settle(pilot, seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)
    await pilot.pause()
