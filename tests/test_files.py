"""The one owner-only writer and the one name sanitiser (core/files.py)."""

from __future__ import annotations

import os
import stat

import pytest

from aami_tui.core import files, pgtools


def _mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_private_dir_is_created_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        d = files.private_dir(tmp_path / "a" / "reports")
    finally:
        os.umask(old)
    assert _mode(d) == 0o700
    assert _mode(tmp_path / "a") == 0o700  # every directory it created (it was 0777 & ~umask: `rehearse
    # --reports-dir r1` made r1 for r1/rehearsal-runs, and the reports then went into a 0755 folder)


def test_write_private_is_0600_and_replaces_a_world_readable_file(tmp_path):
    p = tmp_path / "report.md"
    p.write_text("old")
    os.chmod(p, 0o644)
    old = os.umask(0)
    try:
        files.write_private(p, "new ✓")
    finally:
        os.umask(old)
    assert _mode(p) == 0o600 and p.read_text() == "new ✓"
    assert [x.name for x in tmp_path.iterdir()] == ["report.md"]  # no temporary left behind


def test_write_private_never_writes_through_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    files.write_private(link, "{}")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "{}" and _mode(link) == 0o600


def test_checksum_and_metadata_files_are_0600(tmp_path):
    dump = tmp_path / "backup_x_20260101_000000.dump"
    dump.write_bytes(b"x")
    old = os.umask(0)
    try:
        side = pgtools.write_checksum(dump, "ab" * 32, {"dbname": "x"})
    finally:
        os.umask(old)
    assert _mode(side) == 0o600 and _mode(dump.with_name(dump.name + ".json")) == 0o600


def test_create_private_refuses_an_existing_name(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError):
        files.create_private(tmp_path / "f")


@pytest.mark.parametrize("name, expected", [
    ("aami_config", "aami_config"),
    ("Aami-Test.1", "Aami-Test.1"),
    ("a b/c\\d'e\"f", "a_b_c_d_e_f"),
    ("données", "donn_es"),
    ("..", "_.."),
    ("", "_"),
    ("x" * 300, "x" * 100),
])
def test_safe_name(name, expected):
    assert files.safe_name(name) == expected


def test_claim_unique_never_returns_the_same_name_twice(tmp_path):
    got = [files.claim_unique(tmp_path, "restore_db_20260101_000000", ".md") for _ in range(3)]
    assert [p.name for p in got] == ["restore_db_20260101_000000.md", "restore_db_20260101_000000_2.md",
                                     "restore_db_20260101_000000_3.md"]
    assert all(_mode(p) == 0o600 for p in got)


def test_counted_nouns_agree_with_their_number():
    from aami_tui.core.words import plural

    assert [plural(n, "row") for n in (0, 1, 2, 1200)] == ["0 rows", "1 row", "2 rows", "1,200 rows"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"
    from aami_tui.core.words import size

    # one unit word everywhere: humanize said "864 Bytes" below 1 KiB, the progress line "bytes"
    assert [size(n) for n in (1, 864, 2048)] == ["1 byte", "864 bytes", "2.0 KiB"]


def test_a_statement_row_is_written_in_json_exactly_as_json_dumps_writes_it():
    """The run report writes its statements' JSON by hand (json.dumps with indent is slow): byte for byte the same
    text, for every kind of value a row can hold and some it should not."""
    import datetime
    import json

    from aami_tui.core import report

    rows = [{}, {"attempt": 1, "index": 2, "statement": "CREATE TABLE \"t\" (x text DEFAULT 'a\nb\t\x01é€😀')",
                 "line": None, "tag": "CREATE TABLE", "ms": 0.1, "ok": True, "error": None, "batch": 50},
            {"ok": False, "ms": 1e-07, "big": 10 ** 30, "neg": -3, "f": 1e22, "nan": float("nan"),
             "inf": float("-inf"), "when": datetime.date(2026, 11, 28), "nested": {"a": [1, {"b": None}], "c": []},
             "list": [1, "x"], "empty": {}, "\u2028key": "\u2028"}, {1: "int key"}]
    for x in rows:
        assert report._statement_json(x) == json.dumps(x, indent=2, default=str).replace("\n", "\n    ")
