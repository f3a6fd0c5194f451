"""Step 1, pre-flight: the automatic checks (each a typed Check) plus the operator's checklist."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from aami_tui.core import files, lint, migration, offload, pgtools, schema
from aami_tui.core.db import ConnectError
from aami_tui.core.lint import describe_size
from aami_tui.core.obstacles import objects_in_the_way
from aami_tui.core.queries import sql
from aami_tui.core.runbook.model import NOTHING_TO_DO, Check, Verdict
from aami_tui.core.status import read_only_words, server_status
from aami_tui.core.words import plural
from aami_tui.core.words import size as size_words

if TYPE_CHECKING:
    from aami_tui.core.runbook.engine import Runbook

PARSE_TIMEOUT = 300.0  # seconds for the helper process that parses the file (a 10,000-statement file: ~3 s)


async def checks(rb: Runbook, keep_lock: bool = True) -> list[Check]:
    """The automatic checks. Takes the one-operator lock on the migration session (the caller decides
    whether to keep it: a passed pre-flight keeps it, a look at the checks does not)."""
    out: list[Check] = []
    t = rb.opt.query_timeout
    # Migration file first: parse errors are found before anything touches the server. pglast's parse of a big
    # file holds the interpreter for seconds (a thread would still freeze the console): another process does it.
    try:
        facts = await offload.call(lint.file_facts, rb.migration_path, timeout=PARSE_TIMEOUT)
    except (OSError, offload.OffloadError):  # no helper process: parse here, in a thread, as before
        facts = await asyncio.to_thread(lint.file_facts, rb.migration_path)
    rb.file_facts = facts
    rb.migration = facts.migration
    plan = None
    if facts.migration is not None:
        await asyncio.to_thread(rb.batch_plan)  # the apply's batches, sorted here rather than on the event loop
        out.append(Check("Migration file", True, f"{rb.migration.path} · {plural(len(rb.migration.statements), 'statement')}"
                         f" · sha256 {rb.migration.sha256[:12]}…"))
        plan = migration.drift_plan_header(rb.migration.text)
        if plan is not None:  # recorded as such in the report (engine.record)
            reference = plan.get("reference", "?").split(" run in ", 1)[0]
            out.append(Check("Drift plan", True, f"written by aami-tui plan for {plan.get('database', '?')} against "
                             f"{reference}; no part waits for a person", blocking=False))
    else:
        out.append(Check("Migration file", False, facts.error))
    try:
        conn = await rb.session.ensure(t)
    except ConnectError as exc:
        out.append(Check("Connection", False, str(exc), verdict=Verdict.CONNECTION))
        return out
    if rb.unseen_end is not None:  # a retry after a lost session nobody saw end: first, is its backend gone?
        gone, words = await rb.confirm_unseen(t)
        if not gone:
            out.append(Check("Earlier attempt", False, f"{words}{rb._still_unseen()}.", verdict=Verdict.CONNECTION))
            return out
    st = await rb.session.call(server_status(conn), t, "the server status query")
    rb.server = dict(vars(st))
    major = st.server_major
    out.append(Check("Connection", True, f"PostgreSQL {st.server_version} at {st.host}:{st.port}, "
                     f"database {st.dbname}, user {st.user}"))
    if st.in_recovery:
        out.append(Check("Not a standby", False, "the server is a read-only standby (in recovery); "
                         "run the migration on the primary."))
    elif st.read_only_source:  # ALTER DATABASE/ROLE … SET default_transaction_read_only = on: statement 1 would fail
        out.append(Check("Read-write", False, f"transactions on {st.dbname} are read-only by default "
                         f"({read_only_words(st.read_only_source, st.dbname, st.user)})"))
    else:
        out.append(Check("Not a standby", True, "primary (not in recovery)"))
    out.append(await _privileges_check(rb, conn, st))
    sync = await _sync_standbys_check(rb, conn)
    if sync is not None:
        out.append(sync)
    holder = await rb.session.try_lock(t)
    if holder is None:
        rb.lock_holder = None
        out.append(Check("One operator", True, "migration lock taken (no other console on this database)" if keep_lock
                         else "no other console or apply holds the migration lock (pre-flight takes it)"))
    else:
        since = holder.get("since")
        rb.lock_holder = {**holder, "since": since.isoformat() if hasattr(since, "isoformat") else None}
        # in a thread: it may read a few earlier reports (only when the lock is held)
        out.append(Check("One operator", False, await asyncio.to_thread(rb.held_by, holder), verdict=Verdict.LOCKED))
    if rb.opt.dev:
        cur = await rb.session.call(conn.execute(sql("user_relations")), t, "the user relations query")
        rb.db_empty = not await cur.fetchall()
    why = rb.backup_skipped_why()
    if why:
        out.append(Check("pg_dump", True, f"backup skipped ({why})", blocking=False))
    else:
        try:
            # find_tool runs `--version` subprocesses: keep them off the event loop (the UI stays live)
            rb.dump_tool = await asyncio.to_thread(pgtools.find_tool, "pg_dump", major)
            rb.restore_tool = await asyncio.to_thread(pgtools.find_tool, "pg_restore", major)
            out.append(Check("pg_dump", True, f"{rb.dump_tool.describe()}; pg_restore {rb.restore_tool.version}"))
        except pgtools.ToolError as exc:
            out.append(Check("pg_dump", False, str(exc)))
        try:
            d = pgtools.ensure_private_dir(rb.opt.backup_dir)
            free = shutil.disk_usage(d).free
            need = st.db_size_bytes
            ok = files.room_for(free, need)
            out.append(Check("Disk for backup", ok, f"{size_words(free)} free in "
                             f"{d.resolve()}, database is {size_words(need)}"
                             + ("" if ok else "; not enough room for the backup")))
        except pgtools.ToolError as exc:
            out.append(Check("Backup directory", False, str(exc)))
    obstacles = await rb.session.call(objects_in_the_way(conn), t, "the objects-in-the-way query")
    for o in obstacles:
        out.append(Check("In the way", False, o.message))
    if not obstacles:
        out.append(Check("Nothing in the way", True, "no view, type or search_path entry stands in for a required "
                         "table; the tables go to public"))
    if rb.migration is not None:
        res = await rb.session.call(schema.validate(conn, rb.migration.tables, extra_limit=None), t,
                                    "the schema query")  # every extra name: the extras check lists and counts them
        for tbl in res.locked:  # another session's exclusive lock: pg_dump and the apply would wait for it
            out.append(Check("Locks on required tables", False, tbl.lock_sentence()))
        if res.drifted:
            names = ", ".join(res.drifted)
            out.append(Check("Schema drift", False, f"tables {names} exist with columns that differ from "
                             f"{rb.migration.name} (built by the archived migrations?); IF NOT EXISTS "
                             "never repairs them, so the migration would fail or leave them wrong; "
                             "`aami-tui plan` writes the repair."))
        else:
            out.append(Check("Current schema", True, f"{res.summary()}"))
            if res.ok and "alert_templates" in res.present and plan is None:  # a plan's work is not tables
                cur = await rb.session.call(conn.execute(sql("alert_templates_count")), t, "the templates query")
                if (await cur.fetchone())[0] == 6:
                    out.append(Check(NOTHING_TO_DO, True, "all ten required tables exist as the file creates them "
                                     "and the 6 default alert templates are there: the migration would change "
                                     "nothing" + (" (n: pre-flight records it and ends the run; d or q leaves)"
                                                 if rb.interactive else ""),
                                     blocking=False))
        if res.extra:
            out.append(await _extras_check(rb, conn, res.extra))
        out.append(await _lint_check(rb, conn))
    if rb.opt.rehearsal_report is not None:
        from aami_tui.core import rehearse

        good, words = rehearse.evidence(rb.opt.rehearsal_report, rb.migration, rb.settings.dbname)
        out.append(Check("Tested on staging", good, words, blocking=False))
        if good and "staging" in rb.answers:
            # the checklist item, with the report as its evidence (recorded with the checks, and as who answered)
            rb.tick("staging", by=f"rehearsal report {Path(rb.opt.rehearsal_report).name}")
    return out


async def _privileges_check(rb: Runbook, conn, st) -> Check:
    """What the file actually needs: CREATE on schema public (its tables), and CREATE on the database only when
    it creates an extension that is not installed yet (`psql -1 -f` with such a role works, so must we)."""
    from shlex import quote

    from psycopg import sql as q

    wanted = rb.file_facts.extensions if rb.migration is not None else ("?",)
    cur = await rb.session.call(conn.execute(sql("installed_extensions")), rb.opt.query_timeout,
                                "the extensions query")
    installed = {r[0] for r in await cur.fetchall()}
    to_install = [e for e in wanted if e not in installed]
    needs = [("schema public", st.can_create_in_public, "its tables",
              q.SQL("GRANT ALL ON SCHEMA public TO {};").format(q.Identifier(st.user)))]
    if to_install:
        needs.insert(0, ("the database", st.can_create_in_db,
                         "CREATE EXTENSION " + ", ".join(e for e in to_install if e != "?") if to_install != ["?"]
                         else "the extensions of a file that could not be read",
                         q.SQL("GRANT ALL PRIVILEGES ON DATABASE {} TO {};").format(q.Identifier(st.dbname),
                                                                                  q.Identifier(st.user))))
    missing = [n for n in needs if not n[1]]
    if not missing:
        where = " and ".join(n[0] for n in needs)
        why = "" if to_install else f" (extensions {', '.join(wanted)} already installed)" if wanted else ""
        return Check("Privileges", True, f"{st.user} may CREATE in {where}, all the file needs{why}")
    grant = " ".join(n[3].as_string(conn) for n in missing)
    return Check("Privileges", False, f"user {st.user} may not CREATE in "
                 + " and ".join(f"{n[0]} ({n[2]})" for n in missing)
                 + f"; as an administrator, connected to database {st.dbname} (psql -d {quote(st.dbname)}), "
                 f"run: {grant}")


def standbys_needed(names: str) -> int:
    """How many synchronous standbys a COMMIT waits for: 'FIRST 2 (a, b, c)' / 'ANY 2 (…)' / '2 (…)' say it, a
    plain list ('a, b' or '*') means one."""
    import re

    m = re.match(r"\s*(?:(?:first|any)\s+)?(\d+)\s*\(", names, re.IGNORECASE)
    return int(m.group(1)) if m else 1


async def _sync_standbys_check(rb: Runbook, conn) -> Check | None:
    """fresh7 N1: synchronous_standby_names names standbys that are not connected, so COMMIT will wait for them
    (wait_event SyncRep) until --commit-timeout ends the wait (the console asks first), leaving the migration committed
    on the primary only.
    A warning before BEGIN, not a gate (the DBA may connect the standby meanwhile). None: no synchronous standby."""
    cur = await rb.session.call(conn.execute(sql("sync_standbys")), rb.opt.query_timeout, "the replication query")
    return sync_standbys_check(await cur.fetchone(), standby_until(rb))


def standby_until(rb: Runbook) -> str:
    """What ends a COMMIT's wait for a synchronous standby in this run (``sync_standbys_check``'s ``until``)."""
    return (f"; at --commit-timeout ({rb.opt.commit_timeout:g}s) you are asked: keep waiting, or end the wait, "
            "leaving" if rb.interactive else f" until --commit-timeout ({rb.opt.commit_timeout:g}s) ends the wait, "
            "leaving")


def sync_standbys_check(row: tuple, until: str, what: str = "the migration", before: str = "BEGIN",
                        commit: str = "COMMIT") -> Check | None:
    """The words of the ``sync_standbys`` query's row (apply's pre-flight, the restore's confirmation: fresh8 R1):
    None without a synchronous standby; a warning, never a gate, when COMMIT will wait for standbys not connected.
    ``until``: what ends that wait, then "leaving"; ``what`` is committed; ``before``: when to connect the standby."""
    commit_mode, names, connected, unseen = row
    if not names.strip() or commit_mode in ("off", "local"):
        return None
    need = standbys_needed(names)
    waits = f"COMMIT waits for {plural(need, 'synchronous standby', 'synchronous standbys')} " \
            f"(synchronous_standby_names = '{names}', synchronous_commit = {commit_mode})"
    if connected >= need:
        return Check("Synchronous standby", True, f"{waits}: {connected} connected as synchronous "
                     "(pg_stat_replication)", blocking=False)
    if connected + unseen >= need:
        return Check("Synchronous standby", False, f"{waits}; this user may not see whether the standbys are "
                     f"synchronous (pg_stat_replication needs pg_read_all_stats): if none is, {commit} will wait",
                     blocking=False)
    return Check("Synchronous standby", False, f"{waits}, and {connected} {'is' if connected == 1 else 'are'} "
                 f"connected as synchronous (pg_stat_replication): {commit} will hang waiting for it (wait_event "
                 f"SyncRep){until} {what} committed on the primary only, NOT on the standby. Connect the "
                 f"standby before {before}, or (the DBA's decision) ALTER DATABASE … SET synchronous_commit = local",
                 blocking=False)


async def _extras_check(rb: Runbook, conn, extra) -> Check:
    """Tables in public the Config Server does not need: reported, or a gate with --exact."""
    cur = await rb.session.call(conn.execute(sql("table_facts"), {"names": list(extra)}), rb.opt.query_timeout,
                                "the table sizes query")
    facts = {name: (rows, size) for name, rows, size in await cur.fetchall()}
    names = ", ".join(f"{n} ({describe_size(*facts.get(n, (None, None)))})" for n in extra[:10])
    more = f" and {len(extra) - 10} more" if len(extra) > 10 else ""
    if rb.opt.exact:
        return Check("Exactly ten tables in public", False, f"public also holds {names}{more}; --exact requires "
                     "exactly the ten required tables (the guide's CI check), so verify would block COMMIT")
    return Check("Other tables in public", False, f"{names}{more}: not the Config Server's; the migration leaves "
                 "them alone and verify reports them without blocking (--exact makes this a gate)", blocking=False)


async def _lint_check(rb: Runbook, conn) -> Check:
    """squawk's findings mapped to this runbook (core/lint.py), with the live table sizes."""
    try:
        names = rb.file_facts.names if rb.file_facts is not None else None
        tables, indexes = await rb.session.call(lint.live_facts(conn, rb.migration_path, names or frozenset()),
                                                rb.opt.query_timeout, "the lint facts query")
        version = f"{conn.info.server_version // 10000}.0"
        # pglast and squawk in another process: the console stays responsive on a 10,000-statement file
        res = await offload.call(lint.lint, rb.migration_path, tables, version, None, indexes,
                                 timeout=PARSE_TIMEOUT + lint.SQUAWK_TIMEOUT)
    except (OSError, ValueError, offload.OffloadError) as exc:
        return Check("Lint", False, f"lint could not run ({exc}); the rest of the pre-flight is unaffected",
                     blocking=False)
    rb.lint_result = res
    tool = res.squawk or "squawk not run"
    summary = f"{plural(len(res.errors), 'error')}, {plural(len(res.warnings), 'warning')} ({tool})"
    if res.errors:
        first = res.errors[0]
        return Check("Lint", False, f"{summary}; line {first.line}: {first.message}")
    if res.warnings:
        first = res.warnings[0]
        return Check("Lint", False, f"{summary}; line {first.line}: {first.message} (aami-tui lint "
                     f"{rb.migration_path.name} lists them all)", blocking=False)
    return Check("Lint", True, f"{summary}")


