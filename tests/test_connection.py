"""Connection settings resolution and the one-sentence connection errors."""

from __future__ import annotations

import json
import os
import socket

import psycopg
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
    with pytest.raises(SettingsError, match=r"port 'x' in --dsn is not a number"):
        resolve("host=h port=x", env={})
    with pytest.raises(SettingsError, match=r"port 'abc' \(DB_PORT\) is not a number"):
        resolve(None, env={"DB_PORT": "abc"})
    r = cli("check", env={**os.environ, "DB_PORT": "abc"})
    assert r.returncode == 64 and r.stderr.strip() == "aami-tui: The port 'abc' (DB_PORT) is not a number"  # was exit 2


def test_a_port_out_of_range_or_an_unknown_sslmode_is_a_usage_error(pg_server, fresh_db):
    """fresh5 F11: DB_PORT=99999 and DB_SSLMODE=bogus exited 2 ("connection is bad: invalid port number") though a
    setting that cannot be used is the user's error (64, one sentence), as DB_PORT=abc is; the same in --dsn."""
    env = pg_server.env(fresh_db.dbname)
    for extra, said in (({"DB_PORT": "99999"}, "The port '99999' (DB_PORT) is not a port number (1-65535)"),
                        ({"DB_SSLMODE": "bogus"}, "The sslmode 'bogus' (DB_SSLMODE) is not one of disable, allow, "
                                                  "prefer, require, verify-ca, verify-full")):
        r = cli("check", env={**env, **extra})
        assert (r.returncode, r.stderr.strip()) == (64, f"aami-tui: {said}"), r.stdout + r.stderr
    with pytest.raises(SettingsError, match=r"^The port '0' in --dsn is not a port number \(1-65535\)$"):
        resolve("host=h port=0", env={})
    with pytest.raises(SettingsError, match=r"^The sslmode 'Require' in --dsn is not one of disable, "):
        resolve("postgresql://h/db?sslmode=Require", env={})
    assert resolve("host=h port=5432,5433 sslmode=verify-full", env={}).params["port"] == "5432,5433"


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
    said = (f'aami-tui: Authentication failed: the server at {e["host"]}:{e["port"]} rejected the password for user '
            f'"{e["user"]}". The password comes from ')
    assert r.returncode == 2
    # fresh5 F7: where the refused password came from, as the console says it (README: Configuration)
    assert r.stderr.strip() == said + "DB_PASSWORD, which wins over ~/.pgpass.", r.stderr
    assert "Traceback" not in r.stderr and "definitely-wrong" not in r.stderr
    env = {k: v for k, v in env.items() if k != "DB_PASSWORD"} | {"PGPASSWORD": "definitely-wrong",
                                                                  "PGPASSFILE": "/nonexistent/pgpass"}
    r = cli("check", env=env)
    assert r.returncode == 2 and r.stderr.strip() == said + "PGPASSWORD, which wins over " \
        "/nonexistent/pgpass (PGPASSFILE).", r.stderr
    dsn = f"postgresql://{e['user']}:definitely-wrong@{e['host']}:{e['port']}/{fresh_db.dbname}"
    r = cli("check", "--json", "--dsn", dsn, env=env)
    data = json.loads(r.stdout)
    assert data["error_kind"] == "auth" and data["error"] == said.removeprefix("aami-tui: ") + "--dsn, which " \
        "wins over /nonexistent/pgpass (PGPASSFILE).", data


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
    # fresh7 N6: a command to run, not "or let the console create it" (check has no console)
    assert ("or run aami-tui init --dbname no_such_db_here: it creates the database, applies the migration and "
            "verifies it.") in r.stderr, r.stderr
    assert "console" not in r.stderr and "Traceback" not in r.stderr


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


# Issue 7 item 9: a secret never appears in a message, whatever libpq's parser says about the DSN.
SECRET = "Zq9%xY7w"
SECRET_PLAIN = "Zq9xY7wK"
BAD_DSNS = [
    (f"postgresql://u:{SECRET}@127.0.0.1/db", "password", SECRET),  # a literal % (not %25)
    (f"postgresql://u:{SECRET_PLAIN}%@127.0.0.1/db", "password", SECRET_PLAIN),
    (f"postgresql://u:{SECRET_PLAIN}%4@127.0.0.1/db", "password", SECRET_PLAIN),
    (f"postgres://u:{SECRET_PLAIN}@127.0.0.1/d%b", "database name", SECRET_PLAIN),
    (f"postgresql://u%:{SECRET_PLAIN}@127.0.0.1/db", "user name", SECRET_PLAIN),
    (f"postgresql://u:{SECRET_PLAIN}@127.0.0.1/db?password={SECRET}", "password", SECRET),
    (f"postgresql://u:{SECRET_PLAIN}@[::1/db", "]", SECRET_PLAIN),
    (f"postgresql://u:Zq9@{SECRET_PLAIN}@127.0.0.1:5432/db", "%40", SECRET_PLAIN),  # libpq: host "Zq9x…@127…"
    (f"postgresql://u:{SECRET_PLAIN}/Zq9@127.0.0.1:5432/db", "%2F", SECRET_PLAIN),  # libpq: port "Zq9x…"
    (f"postgresql://u:Zq9%00{SECRET_PLAIN}@127.0.0.1/db", "the password holds %00", SECRET_PLAIN),
    (f"postgresql://u:{SECRET_PLAIN}@127.0.0.1/db?passwrd=x", "password", SECRET_PLAIN),
    (f"postgresql://u:{SECRET_PLAIN}@127.0.0.1/db?sslmode", "=", SECRET_PLAIN),
    (f"postgresql://u@127.0.0.1/db?password={SECRET_PLAIN}=x", "%3D", SECRET_PLAIN),
    (f"postgresql://u:{SECRET_PLAIN}@127.0.0.1/db?&", "=", SECRET_PLAIN),
    (f"host=127.0.0.1 password='{SECRET_PLAIN} user=u", "quote", SECRET_PLAIN),
    (f"host=127.0.0.1 password=Zq9 {SECRET_PLAIN} user=u", "quote", SECRET_PLAIN),  # unquoted space
    (f"host=127.0.0.1 pasword={SECRET_PLAIN}", "password", SECRET_PLAIN),
    (f"postgres:u:{SECRET_PLAIN}@127.0.0.1", "postgresql://", SECRET_PLAIN),  # not a URI, not key=value
    (f"{SECRET_PLAIN}", "key=value", SECRET_PLAIN),
]


@pytest.mark.parametrize("dsn, hint, secret", BAD_DSNS)
def test_dsn_parse_errors_never_show_a_secret(dsn, hint, secret):
    with pytest.raises(SettingsError) as e:
        resolve(dsn, env={})
    msg = str(e.value)
    assert msg.startswith("The --dsn value is not a valid libpq connection string or URI: ")
    assert hint in msg
    for i in range(len(secret) - 3):  # not even four characters of it
        assert secret[i:i + 4] not in msg, msg
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


def test_cli_bad_dsn_with_a_password_shows_neither_it_nor_a_traceback(pg_server):
    r = cli("check", "--dsn", f"postgresql://u:{SECRET}@127.0.0.1:1/db")
    assert r.returncode == 64  # settings that cannot be parsed are the user's error (usage), not "cannot connect"
    assert "Zq9" not in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert "password" in r.stderr and "%25" in r.stderr


def test_a_uri_password_holding_an_at_then_a_slash_is_refused_not_turned_into_a_host(pg_server, fresh_db):
    """fresh5 F3: `postgresql://postgres:p@ss/word@127.0.0.1:PORT/x` printed `Unknown host "ss"` (a piece of the
    password; exit 2): libpq took `p` for the password, `ss` for the host and the rest for the database name. An
    @ after the first / of a URI is refused before anything connects (exit 64), quoting nothing of it."""
    e = fresh_db.effective()
    for password in ("Zq@9xY/7wK", "Zq9x/Y7@wK"):
        r = cli("check", "--dsn", f"postgresql://{e['user']}:{password}@{e['host']}:{e['port']}/{fresh_db.dbname}")
        assert r.returncode == 64, r.stdout + r.stderr
        msg = r.stderr.strip()
        assert msg.startswith("aami-tui: The --dsn value is not a valid libpq connection string or URI: ") and \
            "%2F" in msg and "%40" in msg and "Traceback" not in msg, msg
        assert not any(password[i:i + 2] in msg.split(": ", 2)[2] for i in range(len(password) - 1)
                       if password[i:i + 2] not in ("%2F", "%40")), msg


PASSWORDS = ["Zq9%xY7w", "Zq9'x\\Y 7w", "Zq9@x:Y/7w?", "Zq9xY7wé"]


@pytest.mark.parametrize("password", PASSWORDS)
async def test_odd_password_connects_through_a_uri_and_a_wrong_one_is_never_shown(pg_server, fresh_db, password):
    from urllib.parse import quote

    from psycopg import sql

    from aami_tui.core.db import ConnectError, connect

    role = f"aami_pw_{abs(hash(password)) % 10**8}"
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        e = fresh_db.effective()
        uri = f"postgresql://{role}:{quote(password, safe='')}@{e['host']}:{e['port']}/{fresh_db.dbname}"
        conn = await connect(resolve(uri, env={}))  # the right password, percent-encoded, gets in
        await conn.close()
        for wrong in (password + "x", "x" + password):
            s = resolve(f"postgresql://{role}:{quote(wrong, safe='')}@{e['host']}:{e['port']}/{fresh_db.dbname}",
                        env={})
            with pytest.raises(ConnectError) as err:
                await connect(s)
            assert err.value.kind == "auth" and "Zq9" not in str(err.value)
        # The same through DB_PASSWORD and the CLI: exit 2, the sentence, no password.
        env = pg_server.env(fresh_db.dbname)
        env.update({"DB_USER": role, "DB_PASSWORD": password + "x"})
        r = cli("check", env=env)
        assert r.returncode == 2 and "rejected the password" in r.stderr
        assert "Zq9" not in r.stderr + r.stdout
    finally:
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_ssl_required_by_a_server_without_ssl_says_what_to_set(pg_server, fresh_db):
    e = fresh_db.effective()
    env = pg_server.env(fresh_db.dbname)
    env["DB_SSLMODE"] = "require"
    r = cli("check", env=env)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"aami-tui: The server at {e['host']}:{e['port']} does not support SSL; set "
                                     "DB_SSLMODE=disable or enable SSL on the server."]
    dsn = f"host={e['host']} port={e['port']} user={e['user']} dbname={fresh_db.dbname} sslmode=require"
    r = cli("check", "--dsn", dsn, env=env)
    assert r.returncode == 2 and "does not support SSL; set sslmode=disable in --dsn or enable SSL" in r.stderr


def test_unknown_service_names_the_service_file(tmp_path):
    services = tmp_path / "services.conf"
    services.write_text("[other]\nhost=127.0.0.1\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("PG", "DB_"))}
    env["PGSERVICEFILE"] = str(services)
    r = cli("check", "--dsn", "service=nosuch", env=env)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f'aami-tui: The service "nosuch" is not defined in {services} (PGSERVICEFILE) '
                                     "nor in the system's pg_service.conf; add a [nosuch] section or use another "
                                     "service name."]
    assert "/var/run/postgresql" not in r.stderr
    env["PGSERVICEFILE"] = str(tmp_path / "missing.conf")
    r = cli("check", "--dsn", "service=nosuch", env=env)
    assert r.returncode == 2 and f"The service file {tmp_path / 'missing.conf'} (PGSERVICEFILE) does not exist" in r.stderr


def test_psql_hint_quotes_a_database_name_the_shell_would_split(pg_server, db_factory):
    from aami_tui.core.schema import psql_hint

    assert psql_hint("h", "u", "aami config-Prod") == "  psql -h h -U u -d 'aami config-Prod' -f migrations/001_initial_schema.sql"
    assert psql_hint("h", "u", "aami_config") == "  psql -h h -U u -d aami_config -f migrations/001_initial_schema.sql"
    odd = db_factory("aami config-Prod")
    r = cli("check", env=pg_server.env(odd.dbname))
    assert r.returncode == 1
    assert f"-d '{odd.dbname}' -f" in r.stdout


def test_nothing_configured_and_no_local_server_says_how_to_configure(tmp_path):
    """A new developer without a local server: the sentence names --dsn, the DB_* variables and the demo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "PG"))}
    env["PGHOST"] = str(tmp_path)  # a socket directory with no server in it (libpq's own default, elsewhere)
    r = cli("check", env=env)
    assert r.returncode == 2
    assert "No PostgreSQL server is listening on the socket in" in r.stderr
    assert "--dsn" in r.stderr and "DB_HOST" in r.stderr and "aami-tui demo" in r.stderr
    assert "Traceback" not in r.stderr


def test_server_closing_the_connection_says_so_not_the_last_line_of_libpq(pg_server):
    # A port that accepts and hangs up at once: libpq's message is three lines, the reason on the first.
    import json
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def hang_up():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        env = pg_server.env("aami_config")
        env.update({"DB_HOST": "127.0.0.1", "DB_PORT": str(srv.getsockname()[1])})
        r = cli("check", "--connect-timeout", "2", env=env)
        j = cli("check", "--json", "--connect-timeout", "2", env=env)
    finally:
        srv.close()
    assert r.returncode == 2
    assert "closed the connection unexpectedly" in r.stderr
    assert "before or while processing the request" not in r.stderr
    out = json.loads(j.stdout)
    assert "closed the connection unexpectedly" in json.dumps(out)
    assert out["error_kind"] == "closed", out  # it was "other": a pipeline could not tell it from anything else


def test_password_origin_names_what_wins_over_pgpass():
    # the console told a --dsn user to fix ~/.pgpass and press F5, which could never work
    assert resolve("host=h password=x", env={}).password_origin({}) == "--dsn"
    assert resolve(None, env={"DB_PASSWORD": "x"}).password_origin({}) == "DB_PASSWORD"
    assert resolve("host=h", env={}).password_origin({"PGPASSWORD": "x"}) == "PGPASSWORD"
    assert resolve("host=h", env={}).password_origin({}) == "~/.pgpass"
    assert resolve(None, env={}).password_origin({"PGPASSFILE": "/p"}) == "/p (PGPASSFILE)"


async def test_no_password_supplied_says_where_one_may_go_and_which_wins(pg_server, fresh_db, tmp_path, monkeypatch):
    """A role with a password, none given anywhere: the sentence said only "set DB_PASSWORD or PGPASSWORD, or add
    it to ~/.pgpass", not which one wins, nor why the password file (PGPASSFILE here) gave nothing."""
    from psycopg import sql

    from aami_tui.core.db import ConnectError, connect

    role = "aami_nopw"
    with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'Zq9secret'").format(sql.Identifier(role)))
    try:
        e = fresh_db.effective()
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"{e['host']}:{e['port']}:*:someone_else:x\n")
        passfile.chmod(0o600)
        monkeypatch.delenv("PGPASSWORD", raising=False)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
        env = {"DB_HOST": e["host"], "DB_PORT": e["port"], "DB_USER": role, "DB_NAME": fresh_db.dbname}
        with pytest.raises(ConnectError) as err:
            await connect(resolve(None, env=env))
        assert err.value.kind == "auth"
        where = f"{e['host']}:{e['port']}"
        assert str(err.value) == (
            f'The server at {where} wants a password for user "{role}" and none was given: DB_PASSWORD and '
            f"PGPASSWORD are not set, and {passfile} (PGPASSFILE) has no line for {where}:{fresh_db.dbname}:{role}. "
            f"The first of DB_PASSWORD, PGPASSWORD and {passfile} (PGPASSFILE) that has one wins.")
        passfile.chmod(0o644)  # libpq ignores a password file others can read
        with pytest.raises(ConnectError) as err:
            await connect(resolve(f"host={e['host']} port={e['port']} user={role} dbname={fresh_db.dbname}", env={}))
        assert ("none was given: --dsn has no password and PGPASSWORD is not set, and libpq ignores "
                f"{passfile} (PGPASSFILE): others may read it (chmod 600 it). The first of a password in --dsn, "
                f"PGPASSWORD and {passfile} (PGPASSFILE) that has one wins.") in str(err.value), err.value
    finally:
        with psycopg.connect(pg_server.admin.conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
