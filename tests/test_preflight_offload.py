"""Pre-flight parses and lints the migration file in another Python process (issue 8): pglast's parse of a
10,000-statement file holds the interpreter for seconds, which froze the console. The results are the same."""

from __future__ import annotations

import asyncio

import pglast
from faults import runbook

from aami_tui.core import lint, migration


def _file(tmp_path, n: int):
    lines = ["CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);"]
    lines += [f"INSERT INTO items (id, name) VALUES ({i}, 'item {i}');" for i in range(1, n + 1)]
    lines.append("ALTER TABLE items ADD COLUMN note text NOT NULL;")  # a squawk finding: the lint ran
    path = tmp_path / "big.sql"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_preflight_parses_and_lints_off_the_consoles_interpreter(fresh_db, tmp_path, monkeypatch):
    path = _file(tmp_path, 400)
    want_mig = migration.load(path)
    want_lint = lint.lint(path, {}, None)
    ticks = 0

    async def probe() -> None:  # the console's event loop, answering while pre-flight runs
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    def not_here(*a, **k):
        raise AssertionError("pglast parsed the file on the console's own interpreter")

    monkeypatch.setattr(pglast, "parse_sql", not_here)
    rb = runbook(fresh_db, tmp_path, path, skip_backup=True)
    task = asyncio.create_task(probe())
    try:
        await rb.preflight()
    finally:
        task.cancel()
        await rb.close("test")
    assert rb.migration.statements == want_mig.statements and rb.migration.sha256 == want_mig.sha256
    assert rb.migration.tables == want_mig.tables
    assert rb.lint_result is not None
    assert [(f.rule, f.line) for f in rb.lint_result.findings] == [(f.rule, f.line) for f in want_lint.findings]
    assert rb.lint_result.suppressed == want_lint.suppressed == {"adding-required-field": 1}  # squawk ran
    assert ticks > 0
