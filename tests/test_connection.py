"""Connection settings resolution and the one-sentence connection errors."""

from __future__ import annotations

import socket

import pytest
from conftest import cli

from aami_tui.core.settings import SettingsError, resolve


def test_dsn_wins_over_db_and_pg_vars():
    s = resolve("host=h1 port=6000 user=u1 dbname=d1", env={"DB_HOST": "h2", "PGHOST": "h3"})
    assert (s.params["host"], s.params["port"], s.params["user"], s.params["dbname"]) == ("h1", "6000", "u1", "d1")
    assert s.source == "--dsn"
    ci = s.conninfo()
    assert "application_name=aami-tui" in ci and "connect_timeout=5" in ci


def test_uri_dsn_and_default_dbname():
    s = resolve("postgresql://u@h:6001", env={})
    assert s.params["dbname"] == "aami_config" and s.params["port"] == "6001"


def test_db_vars_with_server_defaults():
    s = resolve(None, env={"DB_NAME": "x", "DB_PASSWORD": "sekret"})
    assert s.params == {"host": "localhost", "port": "5432", "user": "postgres", "dbname": "x",
                        "sslmode": "disable", "password": "sekret"}
    assert "sekret" not in repr(s) and "sekret" not in s.display()
    env = s.child_env({})
    assert env["PGPASSWORD"] == "sekret" and env["PGHOST"] == "localhost" and env["PGDATABASE"] == "x"


def test_libpq_fallback_defaults_dbname():
    s = resolve(None, env={"PGHOST": "somewhere"})
    assert s.params == {"dbname": "aami_config"} and s.source.startswith("libpq")
    assert resolve(None, env={"PGDATABASE": "mine"}).params == {}


def test_bad_dsn_and_port_are_clear():
    with pytest.raises(SettingsError, match="not a valid libpq connection string"):
        resolve("host=x port", env={})
    with pytest.raises(SettingsError, match="port 'abc' is not a number"):
        resolve(None, env={"DB_PORT": "abc"})


def test_pg_vars_resolution_reaches_the_server(pg_server, fresh_db):
    e = fresh_db.effective()
    env = {k: v for k, v in pg_server.env(fresh_db.dbname).items() if not k.startswith("DB_")}
    env.update({"PGHOST": e["host"], "PGPORT": e["port"], "PGUSER": e["user"], "PGDATABASE": fresh_db.dbname})
    if fresh_db.password:
        env["PGPASSWORD"] = fresh_db.password
    r = cli("check", env=env)
    assert r.returncode == 1 and "Missing required database tables" in r.stdout


def test_dsn_flag_reaches_the_server(pg_server, fresh_db):
    env = {k: v for k, v in pg_server.env(fresh_db.dbname).items() if not k.startswith("DB_")}
    env["DB_HOST"] = "no-such-host.invalid"  # --dsn must win over this
    r = cli("check", "--dsn", fresh_db.conninfo(), env=env)
    assert r.returncode == 1 and "Missing required database tables" in r.stdout


def test_wrong_password_message(pg_server, fresh_db):
    if not fresh_db.password:
        pytest.skip("server without password authentication")
    env = pg_server.env(fresh_db.dbname)
    env["DB_PASSWORD"] = "definitely-wrong"
    r = cli("check", env=env)
    e = fresh_db.effective()
    assert r.returncode == 2
    assert r.stderr.strip() == (f'aami-tui: Authentication failed: the server at {e["host"]}:{e["port"]} '
                                f'rejected the password for user "{e["user"]}".')
    assert "Traceback" not in r.stderr and "definitely-wrong" not in r.stderr


def test_unreachable_port_message(pg_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = pg_server.env("aami_config")
    env.update({"DB_HOST": "127.0.0.1", "DB_PORT": str(port)})
    r = cli("check", env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"aami-tui: Cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused "
                                "(is the server running and listening on that address and port?).")


def test_unanswering_host_times_out(pg_server):
    # A listening socket that never answers the startup packet: libpq waits for connect_timeout.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        env = pg_server.env("aami_config")
        env.update({"DB_HOST": "127.0.0.1", "DB_PORT": str(s.getsockname()[1])})
        r = cli("check", "--connect-timeout", "2", env=env)
    assert r.returncode == 2
    assert "within 2 s (connect_timeout)" in r.stderr


def test_missing_database_message(pg_server):
    env = pg_server.env("no_such_db_here")
    r = cli("check", env=env)
    assert r.returncode == 2
    assert 'aami-tui: Database "no_such_db_here" does not exist on' in r.stderr
    assert "Traceback" not in r.stderr


def test_json_connection_error(pg_server):
    import json

    r = cli("check", "--json", env=pg_server.env("no_such_db_here"))
    out = json.loads(r.stdout)
    assert r.returncode == 2 and out["error_kind"] == "no_database" and out["exit_code"] == 2


def test_bad_arguments_exit_64_not_2():
    for args in (("apply", "--lock-timeout", "-1"), ("check", "--connect-timeout", "abc"), ("apply", "--bogus")):
        r = cli(*args)
        assert r.returncode == 64, args
        assert "Traceback" not in r.stderr and "error:" in r.stderr
