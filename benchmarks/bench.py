"""Speed and memory benchmark: prints ratios, asserts nothing (targets are in the README comments below).

Targets:
- validate() is one round trip whatever the catalog size. With 3,000 extra tables in public it returns one row
  per table (the checklist lists extras), so it grows with the catalog; target: under 25 ms there, i.e. a 2 s
  poll spends under ~1% of its time on it (sizes and columns are computed for the ten required tables only);
- the runbook's apply step adds little over running the statements bare (target: < 2x, the overhead being the
  events, the blocker watcher and timing);
- polling the checklist for a while does not grow memory (target: RSS growth < 10% over 200 polls).

Run: .venv/bin/python benchmarks/bench.py
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from aami_tui.core import embedded, migration, schema
from aami_tui.core.db import connect
from aami_tui.core.runbook import Options, Runbook

MIG = migration.load(migration.resolve_migration_path())


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class CountingCursor(psycopg.AsyncCursor):
    """Counts round trips (every execute) made through the connection."""

    calls = 0

    async def execute(self, *a, **k):
        CountingCursor.calls += 1
        return await super().execute(*a, **k)


async def timed_validate(settings, runs: int = 30) -> tuple[float, int]:
    conn = await connect(settings)
    try:
        conn.cursor_factory = CountingCursor
        CountingCursor.calls = 0
        await schema.validate(conn, MIG.tables)
        trips = CountingCursor.calls
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await schema.validate(conn, MIG.tables)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), trips
    finally:
        await conn.close()


async def main() -> None:
    pg = embedded.start("postgres")
    try:
        admin = pg.settings("postgres")
        with psycopg.connect(admin.conninfo(), autocommit=True) as c:
            for name in ("bench_small", "bench_big", "bench_apply", "bench_bare"):
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for name in ("bench_small", "bench_big"):
            with psycopg.connect(pg.settings(name).conninfo()) as c:
                for st in MIG.statements:
                    c.execute(st.sql)
        with psycopg.connect(pg.settings("bench_big").conninfo(), autocommit=True) as c:
            for i in range(3000):
                c.execute(f"CREATE TABLE extra_{i} (id int primary key, v text)")
        small, trips_small = await timed_validate(pg.settings("bench_small"))
        big, trips_big = await timed_validate(pg.settings("bench_big"))
        print(f"validate(): {trips_small} round trip(s) with 10 tables, {trips_big} with 3,010 tables")
        print(f"validate() median: {small * 1000:.2f} ms (10 tables), {big * 1000:.2f} ms (3,010 tables); "
              f"ratio {big / small:.1f}x; {big * 1000 / 2000 * 100:.2f}% of a 2 s poll (target: < 25 ms)")

        # apply through the engine vs bare statements
        t0 = time.perf_counter()
        with psycopg.connect(pg.settings("bench_bare").conninfo()) as c:
            for st in MIG.statements:
                c.execute(st.sql)
            c.rollback()
        bare = time.perf_counter() - t0
        work = Path(tempfile.mkdtemp())
        rb = Runbook(pg.settings("bench_apply"), MIG.path, Options(backup_dir=work / "b", reports_dir=work / "r",
                                                                   skip_backup=True), interactive=False)
        await rb.preflight()
        await rb.backup_step()
        await rb.begin()
        t0 = time.perf_counter()
        await rb.apply()
        engine = time.perf_counter() - t0
        await rb.rollback("benchmark")
        await rb.close()
        print(f"apply {len(MIG.statements)} statements: bare {bare * 1000:.1f} ms, engine {engine * 1000:.1f} ms; "
              f"ratio {engine / bare:.2f}x (target < 2x)")

        # memory over many polls
        conn = await connect(pg.settings("bench_big"))
        for _ in range(20):
            await schema.validate(conn, MIG.tables)
        before = _rss_kib()
        for _ in range(200):
            await schema.validate(conn, MIG.tables)
        after = _rss_kib()
        await conn.close()
        print(f"peak RSS over 200 polls of a 3,010-table catalog: {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB; "
              f"ratio {after / before:.3f} (target < 1.10)")
    finally:
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
