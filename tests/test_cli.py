"""Command-line argument validation: bad values are usage errors (exit 64) before anything touches the server."""

from __future__ import annotations

import pytest
from conftest import catalog_fingerprint, cli

EXIT_USAGE = 64


@pytest.mark.parametrize("value, words", [
    ("inf", "finite"), ("Infinity", "finite"), ("nan", "not a number"), ("-1", "more than zero"),
    ("0", "more than zero"), ("0.0004", "1 ms"), ("0.0009999", "1 ms"), ("1e9", "at most"),
])
def test_bad_lock_timeout_is_a_usage_error_before_any_backup(pg_server, fresh_db, tmp_path, value, words):
    before = catalog_fingerprint(fresh_db)
    r = cli("apply", "--yes", "--lock-timeout", value, "--backup-dir", str(tmp_path / "b"),
            "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname))
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "--lock-timeout" in r.stderr and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "r").exists()
    assert catalog_fingerprint(fresh_db) == before


@pytest.mark.parametrize("args", [
    ("apply", "--statement-timeout", "inf"), ("apply", "--statement-timeout", "0.0001"),
    ("apply", "--pace", "inf"), ("console", "--refresh", "inf"), ("check", "--connect-timeout", "inf"),
    ("check", "--connect-timeout", "1e400"), ("init", "--lock-timeout", "inf"),
])
def test_other_infinite_or_sub_millisecond_values_are_usage_errors(args):
    r = cli(*args)
    assert r.returncode == EXIT_USAGE, (r.returncode, r.stderr)
    assert args[1] in r.stderr and "Traceback" not in r.stderr


def test_one_millisecond_is_accepted_and_reaches_the_server(pg_server, fresh_db, tmp_path):
    r = cli("apply", "--no-backup", "--lock-timeout", "0.001", "--reports-dir", str(tmp_path / "r"),
            env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 6, r.stderr  # dry run: everything passed, rolled back
    report = next((tmp_path / "r").glob("report_*.md")).read_text()
    assert "lock_timeout = 1ms" in report


def test_bad_rehearse_timeout_is_a_usage_error_with_a_clear_sentence():
    """`--rehearse-timeout` (the rehearsal's bound, one hour by default) is checked like the other timeouts."""
    for command in (("rehearse",), ("apply", "--rehearse"), ("console",)):
        for value, words in (("0", "more than zero"), ("-5", "more than zero"), ("inf", "finite"),
                             ("soon", "not a number of seconds")):
            r = cli(*command, "--rehearse-timeout", value)
            assert r.returncode == EXIT_USAGE, (command, value, r.returncode, r.stderr)
            assert "--rehearse-timeout" in r.stderr and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_rehearsal_report_that_is_not_there_is_a_usage_error_naming_the_file_given(pg_server, fresh_db, tmp_path):
    """fresh5 F13: `--rehearsal-report /nonexist.md` was only a `!` in pre-flight naming another file
    ("rehearsal report /nonexist.json cannot be read") and the run went on: a mistyped evidence path is the
    operator's error, said before anything touches the server, with the name they gave."""
    env = pg_server.env(fresh_db.dbname)
    missing = tmp_path / "nonexist.md"
    only_md = tmp_path / "only.md"
    only_md.write_text("# a rehearsal report without its JSON\n")
    for given, words in ((missing, f"{missing}: no such file"),
                         (only_md, f"{tmp_path / 'only.json'}, the JSON beside {only_md}, does not exist (the JSON "
                                   "is what is read)")):
        for command in (("apply", "--no-backup", "--reports-dir", str(tmp_path / "r")), ("console",)):
            r = cli(*command, "--rehearsal-report", str(given), env=env)
            assert r.returncode == EXIT_USAGE, (command, r.returncode, r.stdout + r.stderr)
            assert f"--rehearsal-report: {words}" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


def test_a_restore_of_a_file_that_is_not_there_names_it_in_one_clear_sentence(pg_server, fresh_db, tmp_path):
    """fresh7 N6: `restore /nonexistent.dump` said 'no backup to restore: no such file/nonexistent.dump.'"""
    missing = tmp_path / "nonexistent.dump"
    r = cli("restore", str(missing), "--yes", "--reports-dir", str(tmp_path / "r"), env=pg_server.env(fresh_db.dbname))
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"aami-tui: no backup to restore: {missing}: no such file." in r.stderr, r.stderr
