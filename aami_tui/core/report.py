"""Run reports: Markdown for people, JSON beside it for tools. Files 0600 in a 0700 directory. No password.

Takes a frozen ``RunRecord`` (built by the engine) and imports nothing from the engine.
Timestamps carry the local timezone offset.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aami_tui.core import files
from aami_tui.core.secret import Mask
from aami_tui.core.words import plural


@dataclass(frozen=True)
class StepRow:
    step: str
    title: str
    state: str  # pending / running / done / failed / skipped / not run
    detail: str
    started: float | None
    ended: float | None
    seconds: float | None


class Rows(Sequence):
    """A record's statement rows, read as one sequence without being copied into one: ``chunks`` of rows that never
    change (an ended attempt's rows, one tuple shared by every later record) and a last chunk (the open attempt's).
    A record snapshot then costs the open attempt's rows, not the whole run's, and it makes no new container of
    every statement for Python's full garbage collections to walk while the next apply runs."""

    __slots__ = ("chunks", "_starts", "_len")

    def __init__(self, chunks: Sequence[Sequence[dict]] = ()) -> None:
        self.chunks = tuple(c for c in chunks if c)
        starts, n = [], 0
        for c in self.chunks:
            starts.append(n)
            n += len(c)
        self._starts, self._len = tuple(starts), n

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, step = i.indices(self._len)
            if step != 1:
                return list(self)[i]
            out: list[dict] = []
            k = max(0, bisect.bisect_right(self._starts, start) - 1)
            while start < stop and k < len(self.chunks):
                base = self._starts[k]
                part = self.chunks[k][start - base:stop - base]
                out.extend(part)
                start += len(part)
                k += 1
            return out
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("statement row index out of range")
        k = bisect.bisect_right(self._starts, i) - 1
        return self.chunks[k][i - self._starts[k]]

    def __iter__(self):
        for c in self.chunks:
            yield from c

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Rows({self._len} rows in {len(self.chunks)} chunks)"


@dataclass(frozen=True)
class RunRecord:
    tool: str
    operator: str
    client_host: str
    server: dict
    database: str
    started: datetime
    ended: datetime | None
    final_state: str
    transaction: str
    attempts: int
    verdict: str | None  # the run's typed outcome, in words
    exit_code: int | None
    failure: str | None
    transaction_id: str | None
    backend_pid: int | None
    timeouts: dict
    migration: dict
    steps: tuple[StepRow, ...]  # pre-flight … COMMIT, ROLLBACK (the last attempt)
    earlier_attempts: tuple[tuple[int, tuple[StepRow, ...]], ...]  # (attempt, BEGIN … ROLLBACK) before it
    checklist: tuple[tuple[str, str], ...]
    checks: tuple[dict, ...]
    backup: dict | str | None
    statements: Sequence[dict]  # Rows (the engine's) or a tuple
    verify: tuple[dict, ...]
    post_commit_validation: tuple[str, ...]
    waiters: tuple[dict, ...]  # sessions seen waiting on our locks
    log: tuple[tuple[float, str, str], ...]
    mode: str = "production"  # or "development" (short checklist, no backup of an empty database)
    inspections: tuple[dict, ...] = ()  # queries run in the inspection pane, inside the transaction
    lint: dict | None = None  # the pre-flight's lint of the file that ran (core.lint.LintResult.to_dict)
    rehearsals: tuple[dict, ...] = ()  # the optional rehearsal step on a scratch copy, before BEGIN
    answered_by: tuple[tuple[str, str], ...] = ()  # checklist item -> who answered it (operator / evidence)
    begin_confirmed: str | None = None  # BEGIN explicitly confirmed by the operator although this
    # COMMIT waited on SyncRep past --commit-timeout and the console asked (engine.commit_waits): each question, when,
    # and what the operator answered ("keep waiting", "end the wait"; None: withdrawn, ``closed`` says why)
    commit_waits: tuple[dict, ...] = ()
    # the first ``settled`` statements belong to attempts that have ended: they never change again, and a later
    # record of the same run holds the same objects (the writer renders them once: Rendered). Not in the report.
    settled: int = 0
    # False while the run is open: the report is written as the steps happen, and a process killed (kill -9, a power
    # cut, the OOM killer) leaves this version, which must say it is not the end of the story.
    closed: bool = True


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds") if ts else None


def _dt(d: datetime | None) -> str | None:
    if d is None:
        return None
    return (d if d.tzinfo else d.astimezone()).isoformat(timespec="seconds")


def _step(r: StepRow) -> dict:
    return {"step": r.step, "title": r.title, "state": r.state, "detail": r.detail, "started": _iso(r.started),
            "ended": _iso(r.ended), "seconds": r.seconds}


def to_dict(r: RunRecord, statements: bool = True) -> dict:
    """The report's content. ``statements=False``: without the statements' rows (``[]``), which the writer renders
    apart (Rendered): no list of the run's every statement made for nothing."""
    return {
        "tool": r.tool,
        "operator": r.operator,
        "client_host": r.client_host,
        "server": r.server,
        "database": r.database,
        "started": _dt(r.started),
        "ended": _dt(r.ended),
        "closed": r.closed,
        "final_state": r.final_state,
        "transaction": r.transaction,
        "verdict": r.verdict,
        "exit_code": r.exit_code,
        "attempts": r.attempts,
        "failure": r.failure,
        "transaction_id": r.transaction_id,
        "backend_pid": r.backend_pid,
        "timeouts": r.timeouts,
        "migration": r.migration,
        "steps": [_step(s) for s in r.steps],
        "earlier_attempts": [{"attempt": n, "steps": [_step(s) for s in rows]} for n, rows in r.earlier_attempts],
        "mode": r.mode,
        "preflight": {"checklist": dict(r.checklist), "answered_by": dict(r.answered_by), "checks": list(r.checks)},
        "backup": r.backup,
        "statements": list(r.statements) if statements else [],
        "verify": list(r.verify),
        "post_commit_validation": list(r.post_commit_validation),
        "waiting_sessions": list(r.waiters),
        "inspections": list(r.inspections),
        "lint": r.lint,
        "rehearsals": list(r.rehearsals),
        "begin_confirmed_although": r.begin_confirmed,
        "commit_waits": [{**w, "asked": _iso(w["asked"]), "answered": _iso(w["answered"])} for w in r.commit_waits],
        "log": [{"at": _iso(t), "level": lvl, "message": m} for t, lvl, m in r.log],
    }


def _steps_table(rows: list[dict]) -> list[str]:
    out = ["| step | state | seconds | detail |", "|---|---|---|---|"]
    for s in rows:
        out.append(f"| {s['title']} | {s['state']} | {s['seconds'] if s['seconds'] is not None else ''} | "
                   f"{(s['detail'] or '').replace('|', '/')} |")
    return out


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
            + f", attempts: {d['attempts']}"]
    if not d.get("closed", True):
        out += ["", "**The run had not closed when this was written** (its last entry: "
                f"{d['log'][-1]['at'] if d['log'] else '—'}). "
                "It is rewritten as each step happens: if no later version follows, the run ended without closing "
                "(killed, power cut): " + _unclosed_fate(d), ""]
    if d.get("verdict"):
        out.append(f"- Outcome: {d['verdict']} (exit code {d['exit_code']})")
    if d.get("transaction_id"):
        out.append(f"- Transaction id: {d['transaction_id']} (backend pid {d['backend_pid']})")
    t = d["timeouts"]
    out += [f"- Timeouts: lock_timeout {t['lock_timeout_s']}s, statement_timeout {t['statement_timeout_s']}s, "
            f"COMMIT/ROLLBACK {t.get('commit_timeout_s')}s, idle_in_transaction_session_timeout "
            f"{t.get('idle_in_transaction_session_timeout_s')}s",
            f"- Migration: {d['migration'].get('path')} sha256 {d['migration'].get('sha256', '—')}"]
    plan = d["migration"].get("drift_plan")
    if plan:
        out.append(f"- The migration file is a drift plan (aami-tui plan) for {plan.get('database', '?')}, "
                   f"generated {plan.get('generated', '?')}; reference {plan.get('reference', '?')}")
    if d["failure"]:
        out += ["", f"**Failure:** {d['failure']}"]
    out += ["", "## Steps", ""] + _steps_table(d["steps"])
    for a in d["earlier_attempts"]:
        failed = any(s["step"] == "begin" and s["state"] == "failed" for s in a["steps"])
        out += ["", f"### Attempt {a['attempt']} ({'BEGIN failed, ' if failed else ''}retried afterwards)", ""
                ] + _steps_table(a["steps"])
    out += ["", "## Pre-flight" + (" (development mode: short checklist)" if d.get("mode") == "development"
                                   else ""), ""]
    who = d["preflight"].get("answered_by") or {}
    out += [f"- [{'x' if v == 'yes' else ' '}] {k} ({v}" + (f", answered by {who[k]}" if v == "yes" and k in who
                                                           else "") + ")"
            for k, v in d["preflight"]["checklist"].items()]
    out += [f"- {'✓' if c['ok'] else ('✗' if c.get('blocking', True) else '!')} {c['name']}: {c['detail']}"
            for c in d["preflight"]["checks"]]
    out += _lint_section(d.get("lint"))
    if d.get("rehearsals") or d.get("begin_confirmed_although"):
        out += ["", "## Rehearsal on a copy, before BEGIN", ""]
        for x in d.get("rehearsals") or ():
            out.append(f"- {x['outcome']}: {x['verdict']} ({x['report'] or 'no report'})")
            if x.get("copy"):
                out.append(f"  - copy: {x['copy']}; dropped: {'yes' if x['copy_dropped'] else 'NO'}; "
                           f"restored: {x['backup']}")
            if x["outcome"] in ("passed", "failed") and x.get("copy"):
                strict = {True: "passes", False: "fails"}.get(x.get("strict_ok"), "not reached")
                out.append(f"  - apply {x['apply_seconds']:.2f} s ({plural(x['statements'], 'statement')}), total "
                           f"{x['seconds']:.1f} s; check --strict on the copy: {strict}")
                out += [f"  - lock until COMMIT: {lk['mode']} on {lk['table']} (~{plural(lk['est_rows'], 'row')}, "
                        f"{lk['size_bytes'] or 0} bytes)" for lk in x.get("locks") or ()]
        if d.get("begin_confirmed_although"):
            out.append(f"- **BEGIN explicitly confirmed by the operator although {d['begin_confirmed_although']}.**")
    out += ["", "## Backup", ""]
    b = d["backup"]
    if isinstance(b, dict):
        out += [f"- Dump: {b['dump_path']}", f"- Schema: {b['schema_path']}", f"- Size: {b['size']} bytes",
                f"- sha256: {b['sha256']}", f"- TOC entries (pg_restore --list): {b['toc_entries']}",
                f"- Verified: {b['verified']}", f"- Tool: {b['tool']}"]
    else:
        out.append(f"- {b or 'not taken'}")
    out += ["", "## Statements", "", "| attempt | # | statement | tag | ms |", "|---|---|---|---|---|"]
    rows = d["statements"]
    if isinstance(rows, RenderedRows):  # already rendered (write() reuses the rows of attempts that have ended)
        out += [rows] if rows else []
    else:
        out += [_statement_md(x) for x in rows]
    if d["verify"]:
        out += ["", "## Verify", ""] + [
            f"- {'✓' if c['ok'] else ('✗' if c.get('blocking', True) else '!')} {c['name']}: {c['detail']}"
            for c in d["verify"]]
    if d.get("inspections"):
        out += ["", "## Inspections inside the transaction", "", "| attempt | query | kind | rows | result |",
                "|---|---|---|---|---|"]
        for x in d["inspections"]:
            outcome = x.get("outcome") or ("failed" if x["error"] else "kept" if x["kept"] else "ok")
            outcome = "refused (not sent)" if outcome == "refused" else outcome
            result = f"{outcome}: {x['error'] or x['status']}" + (f" — {x['guard']}" if x.get("guard") else "")
            out.append(f"| {x['attempt']} | `{x['query'].replace('|', '/')}` | {x['kind']} | {x['row_count']} | "
                       f"{result.replace('|', '/')} |")
    if d["waiting_sessions"]:
        out += ["", "## Sessions that waited on the migration's locks", "",
                "| attempt | pid | user | application | waited s | query |", "|---|---|---|---|---|---|"]
        for w in d["waiting_sessions"]:
            out.append(f"| {w['attempt']} | {w['pid']} | {w['user']} | {w['application_name']} | {w['waited_s']} | "
                       f"{(w['query'] or '').replace('|', '/')} |")
    if d.get("commit_waits"):
        out += ["", "## COMMIT's wait for the synchronous standby (the operator was asked)", ""]
        for w in d["commit_waits"]:
            said = (f"the operator chose: {w['answer']} (at {w['answered']})" if w["answer"] else
                    f"no answer needed: {w['closed'] or 'not answered'}" + (f" (at {w['answered']})" if w["answered"]
                                                                           else ""))
            out.append(f"- COMMIT waited for the synchronous standby '{w['standby']}': asked after {w['waited_s']}s "
                       f"(attempt {w['attempt']}, question {w['question']}, at {w['asked']}): {said}")
    if d["post_commit_validation"]:
        out += ["", "## Server validation after COMMIT", "", "```"] + d["post_commit_validation"] + ["```"]
    out += ["", "## Log", "", "```"] + [f"{e['at']} {e['level']:5} {e['message']}" for e in d["log"]] + ["```", ""]
    return "\n".join(out)


LINT_LINES = 60  # findings listed in the Markdown; the JSON has them all


def _lint_section(lint: dict | None) -> list[str]:
    if not lint:
        return []
    found = lint.get("findings") or []
    errors = sum(f["severity"] == "error" for f in found)
    warnings = sum(f["severity"] == "warning" for f in found)
    tool = lint.get("squawk") or f"squawk not run: {lint.get('squawk_problem') or 'unknown'}"
    out = ["", "## Lint (pre-flight)", "",
           f"- {lint.get('file')}: {plural(errors, 'error')}, {plural(warnings, 'warning')}, exit code {lint.get('exit_code')} ({tool}"
           + ("" if lint.get("connected") else "; not connected: no live facts") + ")"]
    out += [f"- line {f['line']}:{f['column']} {f['severity']} {f['rule']}: {f['message']}" for f in found[:LINT_LINES]]
    if len(found) > LINT_LINES:
        out.append(f"- … {plural(len(found) - LINT_LINES, 'more finding')} in the JSON report")
    for rule, why in (lint.get("satisfied_by_runbook") or {}).items():
        out.append(f"- satisfied by the runbook: {rule}: {why}")
    return out


def _statement_md(x: dict) -> str:
    """One statement's row of the Markdown table."""
    ms = x["ms"] if x.get("batch", 1) == 1 else f"≈{x['ms']} (share of one round trip for {x['batch']})"
    return f"| {x['attempt']} | {x['index']} | {x['statement']} | {x['tag']} | {ms} |"


_encode_str = json.encoder.encode_basestring_ascii  # what json.dumps (ensure_ascii) writes for a str, in C

# json.dumps(..., indent=2) places a statement (an item of the list under the top-level "statements") four spaces
# in: its own dump, with every line after the first moved in by four, is the same text.
_ITEM_SEP = ",\n    "


def _statement_json(x: dict) -> str:
    """One statement's item of the JSON report's "statements" list, as json.dumps(indent=2) writes it there, byte
    for byte. Written by hand for a flat dict: json.dumps with indent runs the pure-Python encoder, ~10 µs a row
    (0.1 s for the 10,000 statements an apply adds, holding the interpreter and so the console's keys); this is
    ~3x cheaper. A value that is not a plain scalar is left to json.dumps."""
    if not x or not all(type(k) is str for k in x):
        return json.dumps(x, indent=2, default=str).replace("\n", "\n    ")
    return "{" + ",".join(f"\n      {_json_scalar(k)}: {_json_scalar(v)}" for k, v in x.items()) + "\n    }"


def _json_scalar(v) -> str:
    """``v`` as json.dumps(..., indent=2, default=str) writes it as a value three levels deep (six spaces)."""
    t = type(v)
    if t is str:
        return _encode_str(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if t is int:
        return int.__repr__(v)
    if t is float and math.isfinite(v):
        return float.__repr__(v)
    return json.dumps(v, indent=2, default=str).replace("\n", "\n      ")


class RenderedRows(str):
    """Statement rows already rendered: Markdown table rows joined by newlines (``to_markdown`` takes it in place
    of the list of statements)."""


class Rendered:
    """What one run's report writer keeps between writes: the text of the statements that can no longer change
    (``RunRecord.settled``, the attempts that have ended), Markdown and JSON, so that each write renders only the
    statements it has not rendered before. With a password that cannot straddle the seams between parts (the usual
    case), the kept text is kept masked and encoded (bytes, final): a rewrite neither masks nor encodes it again
    (both scans held the interpreter, and so the console's keys, ~0.4 s per write of a 75 MB report). Used by one
    thread at a time (the engine's report thread)."""

    def __init__(self) -> None:
        self.count = 0  # statements rendered and kept
        self.last: dict | None = None  # the last of them (the same object in every later record)
        self.md: list[str | bytes] = []  # chunks of rows, one per write that added some
        self.js: list[str | bytes] = []
        self.key: tuple | None = None  # the mask the chunks were kept for (its forms); None: no password

    def take(self, record: RunRecord, secret: Mask | None = None, pause: float = 0.0
             ) -> tuple[list[str | bytes], list[str | bytes]]:
        """The statements of ``record`` rendered, reusing what was kept: Markdown chunks (rows joined by newlines)
        and JSON chunks (items joined by ``_ITEM_SEP``), one chunk per write that added rows, then the fresh ones.
        A chunk in bytes is final (masked with ``secret``, encoded); a str chunk is still to be masked."""
        rows, settled = record.statements, min(record.settled, len(record.statements))
        key = secret.forms if secret else None
        if (settled < self.count or (self.count and rows[self.count - 1] is not self.last)
                or (self.count and key != self.key)):
            self.__init__()  # not the record (or the password) these rows were kept for: everything again
        self.key = key
        final = secret is not None and _seam_safe(secret)
        if settled > self.count:
            md, js = _sliced(rows[self.count:settled], secret if final else None, pause)
            self.md.append(md)
            self.js.append(js)
            self.count, self.last = settled, rows[settled - 1]
        fresh = rows[settled:]
        if not fresh:
            return list(self.md), list(self.js)
        md, js = _sliced(fresh, None, pause)
        return self.md + [md], self.js + [js]


# In the console (``pause``), rows are rendered in slices of ~0.7 ms of work with a sleep between them: the report
# thread then never holds the interpreter for long, and the console's event loop, each time it gives the
# interpreter up (every select, every write), gets it back within a slice rather than a 5 ms switch interval. The
# 10,000 rows an apply adds took ~0.35 s of wall time this way, in the background; headless, no sleep.
_SLICE = 100
YIELD = 0.003  # the pause the engine passes when it runs under a console (Runbook.interactive)


def _sliced(rows, secret: Mask | None = None, pause: float = 0.0) -> tuple[str | bytes, str | bytes]:
    """The rows' Markdown (joined by newlines) and JSON items (joined by ``_ITEM_SEP``), rendered a slice at a time
    with ``pause`` seconds of sleep between slices; with ``secret`` masked and encoded (bytes, final: the separators
    hold seam characters only, so masking slice by slice is masking the whole)."""
    md: list = []
    js: list = []
    for i in range(0, len(rows), _SLICE):
        if i and pause:
            time.sleep(pause)
        part = rows[i:i + _SLICE]
        m, j = "\n".join(_statement_md(x) for x in part), _ITEM_SEP.join(_statement_json(x) for x in part)
        if secret is not None:
            m, j = secret(m).encode("utf-8"), secret(j).encode("utf-8")
        md.append(m)
        js.append(j)
    if secret is not None:
        return b"\n".join(md), _ITEM_SEP.encode("utf-8").join(js)
    return "\n".join(md), _ITEM_SEP.join(js)


def _seam_safe(mask: Mask) -> bool:
    """Whether masking part by part is masking the whole text: no form of the password holds a seam character."""
    return all(_SEAMS.isdisjoint(f) for f in mask.forms)


def _scrub_parts(parts: list[str | bytes], secret: Mask | None) -> list[str | bytes]:
    """The parts with every password masked (core.secret.Mask: where a password stands, never inside other
    words). Bytes parts are final (kept by Rendered, already masked)."""
    if not secret:
        return parts
    if _seam_safe(secret):
        return [p if isinstance(p, bytes) else secret(p) for p in parts]
    return [secret("".join(parts))]  # a password that could straddle a seam: the whole text, as one (all str)


# The characters on either side of every seam between the parts _render returns: a text that holds none of them
# cannot occur across a seam, so masking it part by part is masking it in the whole text (the mask's word edges
# include every one of them).
_SEAMS = frozenset(" \n{}[],|")


def _interleave(chunks: list, sep: str) -> list:
    out: list = []
    for i, chunk in enumerate(chunks):
        out += [sep, chunk] if i else [chunk]
    return out


def _render(record: RunRecord, rendered: Rendered | None, secret: Mask | None = None, pause: float = 0.0
            ) -> tuple[list[str | bytes], list[str | bytes], dict]:
    """(Markdown, JSON, the report's dict) of the report, Markdown and JSON as lists of parts whose concatenation
    is byte for byte ``to_markdown(to_dict(record))`` and ``json.dumps(to_dict(record), indent=2, default=str)``
    (masked with ``secret`` by ``_scrub_parts``), the statements' text taken from ``rendered`` (only new statements
    are rendered). The parts are written one by one: the whole text (tens of MB after many attempts) is never
    joined or copied in one piece, which would hold the interpreter (and the console's event loop) for that
    long."""
    data = to_dict(record, statements=False)
    md_chunks, js_chunks = (rendered or Rendered()).take(record, secret, pause)
    hole = f"\x00aami-statements-{uuid.uuid4().hex}\x00"  # a string no report can hold (no NUL from Postgres)
    if md_chunks:
        head, tail = to_markdown({**data, "statements": RenderedRows(hole)}).split(hole, 1)
        md = [head, *_interleave(md_chunks, "\n"), tail]
    else:
        md = [to_markdown({**data, "statements": RenderedRows("")})]
    head, tail = json.dumps({**data, "statements": hole}, indent=2, default=str).split(json.dumps(hole), 1)
    js = [head, "[\n    ", *_interleave(js_chunks, _ITEM_SEP), "\n  ]", tail] if js_chunks else [f"{head}[]{tail}"]
    return md, js, data


def write(record: RunRecord, reports_dir: Path, secret: str | Mask | None = None,
          existing: tuple[Path, Path] | None = None, rendered: Rendered | None = None,
          mark: bool = False, pause: float = 0.0) -> tuple[Path, Path]:
    """Write (or rewrite) the run's report pair, owner-only and atomically. Returns (markdown, json).
    ``rendered``: the run's kept statement text (Rendered), so that a rewrite renders only what is new.
    ``mark``: then write the open run's marker beside it (``mark_open``) from the same dict. ``pause``: seconds
    of sleep between slices of statements rendered (``YIELD`` under a console: its keys first)."""
    d = files.private_dir(reports_dir)
    if existing:
        md, js = existing
    else:
        ts = record.started.strftime("%Y%m%d_%H%M%S")
        stem = files.unique_stem(d, f"report_{files.safe_name(record.database)}_{ts}", (".md", ".json"))
        md = files.claim_unique(d, stem, ".md")  # reserved even against another run choosing at the same moment
        js = md.with_suffix(".json")
    mask = _mask(secret)
    md_parts, js_parts, data = _render(record, rendered, mask, pause)
    files.write_private(js, _scrub_parts(js_parts, mask))
    files.write_private(md, _scrub_parts(md_parts, mask))
    if mark:
        mark_open(md, data, mask)
    return md.resolve(), js.resolve()


def _mask(secret: str | Mask | None) -> Mask | None:
    return (secret if isinstance(secret, Mask) else Mask(secret)) if secret else None


# ---- runs that did not close ------------------------------------------------------------------------------------
# While a run is open, a small marker beside its report (``<report stem>.running``, 0600) says who runs it (pid,
# host) and what it recorded last; it is rewritten after each write of the report and removed once the run has
# closed and its last report is on disk. A marker whose process is gone is a run that ended without closing.
MARK_SUFFIX = ".running"


def _unclosed_fate(d: dict) -> str:
    """What a run that ended at this point means for the database, in words (``d``: the report's dict)."""
    xid, pid = d.get("transaction_id"), d.get("backend_pid")
    commit = next((s for s in d.get("steps", ()) if s["step"] == "commit"), None)
    if commit and commit["state"] == "running":
        return (f"COMMIT had been sent: whether it committed is what the server says "
                f"(SELECT pg_xact_status('{xid}') in the database, or aami-tui check).")
    tx = d.get("transaction", "")
    if tx.startswith("transaction open") or tx.startswith("transaction aborted"):
        return (f"a transaction was open (transaction id {xid or '—'}, backend pid {pid or '—'}): the server rolled it "
                "back when the session died, so nothing of it is in the database (aami-tui check shows what is).")
    if tx == "committed":
        return "the migration had committed."
    return f"no transaction was open then ({tx})."


def _last_step(d: dict) -> str:
    rows = [s for s in d.get("steps", ()) if s["state"] not in ("pending", "not run")]
    if not rows:
        return "nothing yet"
    s = max(rows, key=lambda r: r["ended"] or r["started"] or "")
    return f"{s['title']}: {s['state']}" + (f" ({s['detail']})" if s["detail"] else "")


def mark_open(md: Path, d: dict, secret: str | Mask | None = None) -> None:
    """Write (or rewrite) the open run's marker beside its report ``md`` (``d``: the report's dict)."""
    info = {"pid": os.getpid(), "host": d["client_host"], "database": d["database"], "report": str(md),
            "started": d["started"], "last_entry": d["log"][-1]["at"] if d["log"] else None,
            "last_step": _last_step(d), "transaction": d["transaction"], "fate": _unclosed_fate(d)}
    files.write_private(md.with_suffix(MARK_SUFFIX), _scrub_parts([json.dumps(info, indent=2)], _mask(secret)))


def unmark(md: Path) -> None:
    """The run has closed and its last report is on disk: no marker any more."""
    md.with_suffix(MARK_SUFFIX).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True


def unclosed(reports_dir: Path | str, database: str | None = None) -> list[dict]:
    """The runs whose report in ``reports_dir`` says they never closed and whose process is gone (on this host; a
    marker written on another host is listed too: it cannot be checked from here). ``database``: only that one.
    Each is the marker's dict plus ``marker`` (its path). Cheap: a glob and a few small files."""
    out = []
    try:
        marks = sorted(Path(reports_dir).glob(f"report_*{MARK_SUFFIX}"))
    except OSError:
        return out
    here = socket.gethostname()
    for m in marks:
        try:
            info = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if database is not None and info.get("database") != database:
            continue
        if info.get("host") == here and isinstance(info.get("pid"), int) and _alive(info["pid"]):
            continue  # that run is still going (another console, or this process)
        out.append({**info, "marker": str(m)})
    return out


def unclosed_words(u: dict) -> str:
    """One paragraph for the operator about a run that ended without closing."""
    host = "" if u.get("host") == socket.gethostname() else f" on {u.get('host')}"
    return (f"The previous run on {u.get('database')} (started {u.get('started')}, pid {u.get('pid')}{host}) ended "
            f"without closing (killed, or the machine stopped) after {u.get('last_entry') or 'its start'}. It last "
            f"recorded: {u.get('last_step')}; {u.get('transaction')}. {u.get('fate', '')[:1].upper()}"
            f"{u.get('fate', '')[1:]} Its report, written as it ran: {u.get('report')}")


def run_of_backend(reports_dir: Path | str, database: str, pid: int, backend_start=None,
                   newest: int = 20) -> dict | None:
    """The earlier run of ours whose migration session is backend ``pid`` (started at ``backend_start``, a datetime:
    pids are reused), from its report in ``reports_dir`` (the ``newest`` reports of ``database``, newest first):
    {"report": its .md, "started", "final_state", "verdict", "transaction_id", "closed"}; None when none is. The
    one-operator lock held by our own earlier run (its COMMIT outcome unknown, its backend still in COMMIT) is then
    said as such, not as "another operator". Cheap: only asked when the lock is held."""
    try:
        found = sorted(Path(reports_dir).glob(f"report_{files.safe_name(database)}_*.json"),
                       key=lambda f: f.stat().st_mtime, reverse=True)[:newest]
    except OSError:
        return None
    for f in found:
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if d.get("database") != database or d.get("backend_pid") != pid:
            continue
        try:
            if backend_start is not None and datetime.fromisoformat(d["started"]) > backend_start:
                continue  # that run began after the backend: another session with the same pid
        except (KeyError, TypeError, ValueError):
            pass
        mark = f.with_suffix(MARK_SUFFIX)
        if mark.exists():  # not closed: still running (another console, here), or killed (report.unclosed)
            try:
                info = json.loads(mark.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
            if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and _alive(info["pid"]):
                return None  # a live run: another operator indeed
        return {"report": str(f.with_suffix(".md")), "started": d.get("started"), "final_state": d.get("final_state"),
                "verdict": d.get("verdict"), "transaction_id": d.get("transaction_id"), "closed": not mark.exists()}
    return None
