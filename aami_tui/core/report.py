"""Run reports: Markdown for people, JSON beside it for tools. Files 0600 in a 0700 directory. No password."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

from aami_tui import __version__
from aami_tui.core import pgtools


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts).isoformat(timespec="seconds") if ts else None


def to_dict(rb) -> dict:
    from aami_tui.core.runbook import PREFLIGHT_ITEMS, STEP_ORDER, Step

    s = rb.settings.effective()
    steps = []
    for step in (*STEP_ORDER, Step.ROLLBACK):
        r = rb.steps[step]
        steps.append({"step": step.value, "title": step.title, "state": r.state.value, "detail": r.detail,
                      "started": _iso(r.started), "ended": _iso(r.ended),
                      "seconds": round(r.elapsed, 3) if r.elapsed is not None else None})
    return {
        "tool": f"aami-tui {__version__}",
        "operator": rb.operator,
        "client_host": rb.client_host,
        "server": {"host": rb.server.get("host") or s.get("host"), "port": rb.server.get("port") or s.get("port"),
                   "version": rb.server.get("server_version"), "user": rb.server.get("user") or s.get("user")},
        "database": rb.settings.dbname,
        "started": rb.started_at.isoformat(timespec="seconds"),
        "ended": rb.ended_at.isoformat(timespec="seconds") if rb.ended_at else None,
        "final_state": rb.outcome.value,
        "transaction": rb.tx.value,
        "attempts": rb.attempt,
        "failure": rb.failure or None,
        "timeouts": {"lock_timeout_s": rb.opt.lock_timeout, "statement_timeout_s": rb.opt.statement_timeout},
        "migration": ({"path": str(rb.migration.path), "sha256": rb.migration.sha256, "size": rb.migration.size,
                       "statements": len(rb.migration.statements)} if rb.migration else
                      {"path": str(rb.migration_path)}),
        "steps": steps,
        "preflight": {"checklist": {label: ("yes" if rb.answers[k] else ("not asked (headless)"
                                                                          if not rb.interactive else "no"))
                                    for k, label in PREFLIGHT_ITEMS},
                      "checks": [c.to_dict() for c in rb.checks]},
        "backup": rb.backup.to_dict() if rb.backup else ("skipped" if rb.opt.skip_backup else None),
        "statements": [{"attempt": x.attempt, "index": x.index, "statement": x.summary, "line": x.line,
                        "tag": x.tag, "ms": round(x.seconds * 1000, 2), "ok": x.ok, "error": x.error or None}
                       for x in rb.statements],
        "verify": [c.to_dict() for c in rb.verify_checks],
        "post_commit_validation": rb.post_commit_lines,
        "log": [{"at": _iso(t), "level": lvl, "message": m} for t, lvl, m in rb.log],
    }


def to_markdown(d: dict) -> str:
    out = [f"# aami-tui run report: {d['database']} — {d['final_state']}", ""]
    out += [f"- Operator: {d['operator']} on {d['client_host']}",
            f"- Server: {d['server']['host']}:{d['server']['port']} "
            f"({'PostgreSQL ' + d['server']['version'] if d['server']['version'] else 'not reached'}), "
            f"user {d['server']['user']}",
            f"- Database: {d['database']}",
            f"- Started: {d['started']} · Ended: {d['ended'] or '—'}",
            f"- Final state: **{d['final_state']}**"
            + (f" (transaction: {d['transaction']})" if d["transaction"] != d["final_state"] else "")
            + f", attempts: {d['attempts']}",
            f"- Timeouts: lock_timeout {d['timeouts']['lock_timeout_s']}s, statement_timeout "
            f"{d['timeouts']['statement_timeout_s']}s",
            f"- Migration: {d['migration'].get('path')} sha256 {d['migration'].get('sha256', '—')}"]
    if d["failure"]:
        out += ["", f"**Failure:** {d['failure']}"]
    out += ["", "## Steps", "", "| step | state | seconds | detail |", "|---|---|---|---|"]
    for s in d["steps"]:
        out.append(f"| {s['title']} | {s['state']} | {s['seconds'] if s['seconds'] is not None else ''} | "
                   f"{(s['detail'] or '').replace('|', '/')} |")
    out += ["", "## Pre-flight", ""]
    out += [f"- [{'x' if v == 'yes' else ' '}] {k} ({v})" for k, v in d["preflight"]["checklist"].items()]
    out += [f"- {'✓' if c['ok'] else '✗'} {c['name']}: {c['detail']}" for c in d["preflight"]["checks"]]
    out += ["", "## Backup", ""]
    b = d["backup"]
    if isinstance(b, dict):
        out += [f"- Dump: {b['dump_path']}", f"- Schema: {b['schema_path']}", f"- Size: {b['size']} bytes",
                f"- sha256: {b['sha256']}", f"- TOC entries (pg_restore --list): {b['toc_entries']}",
                f"- Verified: {b['verified']}", f"- Tool: {b['tool']}"]
    else:
        out.append(f"- {b or 'not taken'}")
    out += ["", "## Statements", "", "| attempt | # | statement | tag | ms |", "|---|---|---|---|---|"]
    for x in d["statements"]:
        out.append(f"| {x['attempt']} | {x['index']} | {x['statement']} | {x['tag']} | {x['ms']} |")
    if d["verify"]:
        out += ["", "## Verify", ""] + [f"- {'✓' if c['ok'] else '✗'} {c['name']}: {c['detail']}"
                                        for c in d["verify"]]
    if d["post_commit_validation"]:
        out += ["", "## Server validation after COMMIT", "", "```"] + d["post_commit_validation"] + ["```"]
    out += ["", "## Log", "", "```"] + [f"{e['at']} {e['level']:5} {e['message']}" for e in d["log"]] + ["```", ""]
    return "\n".join(out)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text


def write(rb, existing: tuple[Path, Path] | None = None) -> tuple[Path, Path]:
    """Write (or rewrite) the run's report pair. Returns (markdown, json)."""
    d = pgtools.ensure_private_dir(rb.opt.reports_dir)
    if existing:
        md, js = existing
    else:
        ts = rb.started_at.strftime("%Y%m%d_%H%M%S")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", rb.settings.dbname)
        md, js = d / f"report_{safe}_{ts}.md", d / f"report_{safe}_{ts}.json"
        n = 1
        while md.exists() or js.exists():
            n += 1
            md, js = d / f"report_{safe}_{ts}_{n}.md", d / f"report_{safe}_{ts}_{n}.json"
    data = to_dict(rb)
    secret = rb.settings.password
    for path, text in ((js, json.dumps(data, indent=2, default=str)), (md, to_markdown(data))):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_scrub(text, secret))
        os.chmod(path, 0o600)
    return md.resolve(), js.resolve()
