"""Fixtures: a real PostgreSQL (the embedded 18, Debian's 15 with AAMI_TEST_SERVER=pg15, or AAMI_TEST_DSN) and a
fresh database per test."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from aami_tui.core.settings import ConnSettings, resolve

ROOT = Path(__file__).resolve().parent.parent
MIGRATION = ROOT / "migrations" / "001_initial_schema.sql"


class Server:
    """Where the tests' databases live."""

    def __init__(self, admin: ConnSettings, embedded=None):
        self.admin = admin  # connects to the maintenance database
        self.embedded = embedded

    def settings(self, dbname: str) -> ConnSettings:
        return self.admin.with_dbname(dbname)

    def env(self, dbname: str) -> dict[str, str]:
        """DB_* variables pointing at dbname, as the Config Server would get them."""
        e = self.admin.effective()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "PG"))}
        env.update({"DB_HOST": e["host"], "DB_PORT": e["port"], "DB_USER": e["user"], "DB_NAME": dbname,
                    "DB_SSLMODE": self.admin.params.get("sslmode", "disable")})
        if self.admin.password:
            env["DB_PASSWORD"] = self.admin.password
        return env


def _server_bin() -> Path | None:
    """AAMI_TEST_SERVER selects the test server: unset or ``embedded`` is the wheel's PostgreSQL 18; ``pg15``
    (``pgNN``) is Debian's /usr/lib/postgresql/NN/bin, started the same way (initdb in a temporary
    directory, scram on 127.0.0.1, a free port, a system user when root) with its real contrib extensions."""
    which = os.environ.get("AAMI_TEST_SERVER", "embedded").strip().lower()
    if which in ("", "embedded", "pg18-embedded"):
        return None
    if not (which.startswith("pg") and which[2:].isdigit()):
        raise pytest.UsageError(f"AAMI_TEST_SERVER={which!r}: use 'embedded' or pgNN (for example pg15)")
    path = Path(f"/usr/lib/postgresql/{which[2:]}/bin")
    if not (path / "initdb").exists():
        raise pytest.UsageError(f"AAMI_TEST_SERVER={which}: {path}/initdb is missing "
                                f"(apt-get install postgresql-{which[2:]})")
    return path


SERVER_BIN: Path | None = None


def pytest_configure(config):
    global SERVER_BIN
    SERVER_BIN = _server_bin()


@pytest.fixture(scope="session")
def pg_server():
    dsn = os.environ.get("AAMI_TEST_DSN")
    if dsn:
        yield Server(resolve(dsn, dbname="postgres"))
        return
    from aami_tui.core import embedded

    pg = embedded.start("postgres", bin_path=SERVER_BIN)
    try:
        yield Server(pg.settings("postgres"), pg)
    finally:
        pg.stop()


def pytest_report_header(config):
    if os.environ.get("AAMI_TEST_DSN"):
        return "test server: AAMI_TEST_DSN"
    return f"test server: {SERVER_BIN or 'embedded PostgreSQL 18 (wheel)'}"


@pytest.fixture
def fresh_db(pg_server):
    """A new, empty database for one test (dropped afterwards). Yields its ConnSettings."""
    name = f"aami_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield pg_server.settings(name)
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# The tests' own sessions are not the tool's: a closed session's backend can still be listed for a moment, and a
# check for the tool's sessions right after (`faults.tool_sessions`) must not see the test's own query there.
TEST_APP = "aami-tests"


def run_sql(settings: ConnSettings, text: str) -> None:
    with psycopg.connect(settings.conninfo(application_name=TEST_APP), autocommit=True) as c:
        c.execute(text)


def apply_migration(settings: ConnSettings, path: Path = MIGRATION) -> None:
    """Apply a migration file statement by statement in one transaction (as psql -1 -f would)."""
    from aami_tui.core.migration import parse_text

    stmts = parse_text(path.read_text(), path)
    with psycopg.connect(settings.conninfo(application_name=TEST_APP)) as c:
        for s in stmts:
            c.execute(s.sql)


def apply_migration_but_one_template(settings: ConnSettings) -> None:
    """A database migrated all but one default alert template: the runbook goes past pre-flight there (an already
    migrated one ends the run after pre-flight: nothing to do), and its re-run of the whole file takes the same locks
    as on a migrated one (CREATE INDEX IF NOT EXISTS: SHARE on every table) and puts the template back."""
    apply_migration(settings)
    run_sql(settings, "DELETE FROM alert_templates WHERE id = (SELECT min(id) FROM alert_templates)")


def catalog_fingerprint(settings: ConnSettings) -> list[tuple]:
    """Every relation, column, constraint and index in public, and the row count of alert_templates."""
    q = """
    SELECT 'rel', c.relname, c.relkind::text, '' FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace
      WHERE n.nspname='public'
    UNION ALL
    SELECT 'col', c.relname, a.attname, format_type(a.atttypid, a.atttypmod) || coalesce(' default ' ||
           pg_get_expr(d.adbin, d.adrelid), '') || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
      FROM pg_attribute a JOIN pg_class c ON c.oid=a.attrelid JOIN pg_namespace n ON n.oid=c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid=a.attrelid AND d.adnum=a.attnum
      WHERE n.nspname='public' AND a.attnum>0 AND NOT a.attisdropped AND c.relkind='r'
    UNION ALL
    SELECT 'con', conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
      WHERE connamespace='public'::regnamespace
    UNION ALL
    SELECT 'idx', tablename, indexname, indexdef FROM pg_indexes WHERE schemaname='public'
    UNION ALL
    SELECT 'ext', extname, '', '' FROM pg_extension
    ORDER BY 1, 2, 3, 4
    """
    with psycopg.connect(settings.conninfo(application_name=TEST_APP), autocommit=True) as c:
        rows = c.execute(q).fetchall()
        if any(r[0] == "rel" and r[1] == "alert_templates" for r in rows):
            rows.append(("rows", "alert_templates", str(c.execute("SELECT count(*) FROM alert_templates")
                                                        .fetchone()[0]), ""))
        return rows


def cli(*args: str, env: dict | None = None, timeout: float = 60):
    import subprocess

    return subprocess.run([sys.executable, "-m", "aami_tui", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture
def db_factory(pg_server):
    """Make more fresh databases in one test: ``db_factory("Aami-Test")`` (a unique suffix is added)."""
    made: list[str] = []

    def make(prefix: str = "aami_test") -> ConnSettings:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return pg_server.settings(name)

    yield make
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        for name in made:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def proxy(fresh_db):
    """A TCP proxy in front of the test server that a test can freeze (a half-open network) or cut."""
    from faults import Proxy

    p = Proxy(fresh_db.host, fresh_db.port)
    try:
        yield p
    finally:
        p.close()
