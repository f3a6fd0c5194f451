"""Restore: in place in one transaction vs side by side (restore into a new database, swap names). Prints
ratios, asserts nothing. The README's "Restore" section quotes it.

Setup, as in issue 9 item 6: namespaces, groups and targets with rows (ROWS targets, about 1 kB each); a
backup (pg_dump -Fc); the migration applied on top (seven more tables whose foreign keys point at the old
three, uuid-ossp, seed rows). Then the database is brought back to the backup both ways:

- in place: aami-tui's restore (one psql session: drops of what is not in the backup, pg_restore's --clean
  script, COMMIT);
- side by side: CREATE DATABASE, pg_restore --single-transaction into it, validate it, then terminate the
  sessions on both databases and swap the names (the old one is kept under another name).

For each: the wall time, and how long a client that reads `targets` every 20 ms could not (blocked by
the restore's locks, or disconnected / database missing during the swap).

Run: .venv/bin/python benchmarks/restore_bench.py [ROWS]   (AAMI_TEST_SERVER=pg15 for Debian's 15)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

from aami_tui.core import embedded, migration, pgtools, schema
from aami_tui.core import restore as core_restore

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000


class Reader(threading.Thread):
    """Reads targets every 20 ms (lock_timeout 20 s); records the longest stretch without a successful read."""

    def __init__(self, conninfo: str):
        super().__init__(daemon=True)
        self.conninfo, self.stop, self.worst, self.failures, self.reads = conninfo, threading.Event(), 0.0, 0, 0

    def run(self) -> None:
        last_ok = time.monotonic()
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
                conn.execute("SELECT count(*) FROM targets WHERE hostname = 'h1'").fetchone()
                self.reads += 1
                now = time.monotonic()
                self.worst = max(self.worst, now - last_ok)  # includes the time this read waited
                last_ok = now
            except psycopg.Error:
                self.failures += 1
                conn = None
                self.worst = max(self.worst, time.monotonic() - last_ok)
            time.sleep(0.02)


def build(pg, dbname: str, work: Path) -> pgtools.BackupEntry:
    admin = pg.settings("postgres")
    with psycopg.connect(admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    s = pg.settings(dbname)
    mig = migration.load(migration.resolve_migration_path())
    stmts = [st.sql for st in mig.statements]
    cut = next(i for i, t in enumerate(stmts) if "target_groups" in t)
    with psycopg.connect(s.conninfo(), autocommit=True) as c:
        for t in stmts[:cut]:
            if "EXTENSION" not in t.upper():
                c.execute(t)
        c.execute("INSERT INTO namespaces (name) SELECT 'ns' || i FROM generate_series(1, 50) i")
        c.execute("INSERT INTO groups (name) SELECT 'g' || i FROM generate_series(1, 1000) i")
        c.execute("INSERT INTO targets (hostname, ip_address, metadata) SELECT 'h' || i, '10.0.0.1', "
                  "jsonb_build_object('pad', repeat(md5(i::text), 28)) FROM generate_series(1, %s) i", (ROWS,))
        c.execute("VACUUM ANALYZE")
    with psycopg.connect(s.conninfo()) as c:
        major = c.info.server_version // 10000
    tool = pgtools.find_tool("pg_dump", major)
    bdir = pgtools.ensure_private_dir(work / "backups")
    dump, _ = pgtools.unique_backup_paths(bdir, dbname)
    asyncio.run(pgtools.run_dump(tool, s, dump, server_major=major))
    pgtools.write_checksum(dump, pgtools.sha256_file(dump), {"dbname": dbname})
    with psycopg.connect(s.conninfo()) as c:  # the apply, committed
        for t in stmts:
            c.execute(t)
    return pgtools.list_backups(bdir, dbname)[0]


def in_place(pg, dbname: str, entry: pgtools.BackupEntry, work: Path) -> tuple[float, float]:
    s = pg.settings(dbname)
    reader = Reader(s.conninfo())
    reader.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    asyncio.run(core_restore.restore(s, entry, reports_dir=work / "reports"))
    took = time.monotonic() - t0
    time.sleep(0.3)
    reader.stop.set()
    reader.join()
    return took, reader.worst


def side_by_side(pg, dbname: str, entry: pgtools.BackupEntry) -> tuple[float, float, float]:
    s = pg.settings(dbname)
    admin = pg.settings("postgres")
    reader = Reader(s.conninfo())
    reader.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    new = f"{dbname}_restoring"
    with psycopg.connect(admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(new)))
    with psycopg.connect(s.conninfo()) as c:
        major = c.info.server_version // 10000
    tool = pgtools.find_tool("pg_restore", major)
    asyncio.run(pgtools.run_restore(tool, s.with_dbname(new), entry.path, server_major=major))

    async def check() -> None:
        from aami_tui.core.db import connect

        conn = await connect(s.with_dbname(new))
        try:
            await schema.validate(conn)
        finally:
            await conn.close()

    asyncio.run(check())
    t_swap = time.monotonic()
    with psycopg.connect(admin.conninfo(), autocommit=True) as c:
        for db in (dbname, new):
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                      "AND pid <> pg_backend_pid()", (db,))
        c.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(dbname),
                                                                   sql.Identifier(f"{dbname}_before")))
        c.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(new), sql.Identifier(dbname)))
    swap = time.monotonic() - t_swap
    took = time.monotonic() - t0
    time.sleep(0.5)
    reader.stop.set()
    reader.join()
    return took, reader.worst, swap


def main() -> None:
    bin_path = None
    which = os.environ.get("AAMI_TEST_SERVER", "")
    if which.startswith("pg") and which[2:].isdigit():
        bin_path = Path(f"/usr/lib/postgresql/{which[2:]}/bin")
    pg = embedded.start("postgres", bin_path=bin_path)
    try:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            e1 = build(pg, "bench_inplace", work)
            e2 = build(pg, "bench_side", work)
            size = e1.size
            t_in, blocked_in = in_place(pg, "bench_inplace", e1, work)
            t_side, blocked_side, swap = side_by_side(pg, "bench_side", e2)
    finally:
        pg.stop()
    print(f"server: {bin_path or 'embedded 18'}; {ROWS} rows in targets, backup {size / 1e6:.1f} MB")
    print(f"in place (one transaction):   {t_in:6.2f} s total; readers of targets blocked for {blocked_in:6.2f} s")
    print(f"side by side (new db + swap): {t_side:6.2f} s total; readers without an answer for {blocked_side:6.2f} s "
          f"(the swap itself {swap * 1000:.0f} ms; every session on the database is terminated)")
    print(f"ratio side-by-side / in-place: total {t_side / t_in:.2f}x, reader outage {blocked_side / max(blocked_in, 1e-3):.2f}x")


if __name__ == "__main__":
    main()
