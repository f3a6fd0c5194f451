"""Restore: the guide's rollback, on the embedded 18 and (AAMI_TEST_SERVER=pg15) Debian's PostgreSQL 15."""

from __future__ import annotations

import psycopg
from conftest import SERVER_BIN


def test_the_server_is_the_one_the_lane_names(pg_server, fresh_db):
    """The PostgreSQL 15 lane really runs on 15 with the real (C) uuid-ossp; the default lane on 18."""
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as c:
        major = c.info.server_version // 10000
        c.execute('CREATE EXTENSION "uuid-ossp"')
        v1 = c.execute("SELECT count(*) FROM pg_proc WHERE proname = 'uuid_generate_v1mc'").fetchone()[0]
    if pg_server.embedded is None:
        return  # AAMI_TEST_DSN: whatever that server is
    if SERVER_BIN is None:
        assert major == 18 and v1 == 0  # the wheel's stand-in only has v4
    else:
        assert str(SERVER_BIN) == f"/usr/lib/postgresql/{major}/bin" and v1 == 1
