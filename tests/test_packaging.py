"""The wheel carries the migrations; core never imports Textual."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_core_never_imports_textual():
    offenders = []
    for path in (ROOT / "aami_tui" / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "textual" or n.startswith(("textual.", "rich")) or n.startswith("aami_tui.ui")
                   for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_core_import_does_not_load_textual():
    code = ("import sys, aami_tui.core.runbook, aami_tui.core.schema, aami_tui.headless;"
            "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_the_consoles_first_frame_path_loads_no_psycopg():
    """psycopg takes ~70 ms to import: the console's own process paints its first frame without it (the early
    child resolves and connects: core/early.py). The command line, the app and its dashboard, and settings as the
    child hands them over (effective() included) must not load it."""
    code = ("import sys, dataclasses; from aami_tui import cli; cli.build_parser().parse_args(['console']);"
            "from aami_tui.core import early; import aami_tui.ui.app; from aami_tui.core.settings import resolve;"
            "s = resolve(None, env={'DB_HOST': 'h', 'DB_USER': 'u', 'DB_PASSWORD': 'p'});"
            "s = dataclasses.replace(s, known_effective={'host': 'h', 'port': '5432', 'user': 'u', 'dbname': 'd'});"
            "assert s.display() == 'u@h:5432/d (from DB_* variables)', s.display();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_consoles_first_frame_loads_no_command_line_parser_migration_module_or_dialog():
    """The console's start (aami_tui.start): its early child parses the command line while the console imports
    Textual (argparse and the eight commands' options cost the console ~15 ms of its first frame); the migration
    file's module (dataclasses, hashlib), its pre-parsed columns (json) and the dialogs load after the first frame."""
    code = ("import sys, aami_tui.start, aami_tui.core.early, aami_tui.ui.app;"
            "print(sorted(m for m in ('argparse', 'aami_tui.cli', 'aami_tui.core.migration', 'aami_tui.core.expected',"
            " 'aami_tui.ui.confirm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_wheel_contains_migrations(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if r.returncode != 0:  # hatchling not installed in this environment: build in isolation
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(Path(tmp_path).glob("aami_tui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "aami_tui/migrations/001_initial_schema.sql" in names
    assert "aami_tui/migrations/archive/009_refactor_target_group_relationship.sql" in names
    assert "aami_tui/core/queries/validate_schema.sql" in names
    assert "aami_tui/core/squawk.toml" in names  # lint never picks up a stray .squawk.toml
    assert any(n.startswith("aami_tui/ui/") and n.endswith(".tcss") for n in names)


def test_ci_runs_exactly_the_readme_test_commands():
    """.ci/run's commands are the README's, line for line (Development section), and the quick start's one."""
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.startswith(("python3 -m venv", "AAMI_TEST_SERVER="))]
    readme = (ROOT / "README.md").read_text()
    dev = readme.split("\n## Development\n", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert len(ci) == 2 and dev == ci
    assert f"```bash\n{ci[0]}\n```" in readme.split("\n## Development\n", 1)[0]  # the quick start's
    files = [a for a in ci[1].split()[2:] if not a.startswith("-") and not a.isdigit()]  # "-q -n 2" aside
    assert files
    for name in files:  # lane 2 names files: it can never collect nothing (pytest exit 5)
        assert (ROOT / name).is_file(), name
