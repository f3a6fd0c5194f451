"""The one-operator advisory lock: session-level, per database, shared by the runbook and restore."""

from __future__ import annotations

import asyncio

from aami_tui.core.queries import sql

# classid 'AAMI' as int4, objid 1. Advisory locks live per database already (pg_locks.database).
KEY = {"classid": 0x41414D49, "objid": 1}


async def try_lock(conn, settle: float = 1.0) -> dict | None:
    """Take the lock on ``conn``'s session. Returns None when taken, else who holds it.

    A holder that has just disconnected keeps the lock until its backend has exited, so a refusal is
    only given after trying for ``settle`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    holder: dict = {}
    while True:
        cur = await conn.execute(sql("advisory_try_lock"), KEY)
        if (await cur.fetchone())[0]:
            return None
        cur = await conn.execute(sql("advisory_holder"), KEY)
        row = await cur.fetchone()
        if row:
            pid, user, client, port, app, since, state, _xact, wait_event = row
            holder = {"pid": pid, "user": user, "client": client, "client_port": port, "application_name": app,
                      "since": since, "state": state, "wait_event": wait_event}
        if loop.time() >= deadline:
            return holder
        await asyncio.sleep(0.05)


async def migration_in_progress(conn, statement_ms: int = 2000) -> dict | None:
    """Who runs the runbook (or a restore) on this database now: the session holding the one-operator lock, with
    its state and its transaction's start (None before BEGIN). None when nobody does. Only reads pg_locks and
    pg_stat_activity, bounded by ``statement_ms`` (`check` says it beside the server's lines)."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL statement_timeout = {int(statement_ms)}")
        cur = await conn.execute(sql("advisory_holder"), KEY)
        row = await cur.fetchone()
    if row is None:
        return None
    pid, user, client, port, app, since, state, xact, wait_event = row
    return {"pid": pid, "user": user, "client": client, "client_port": port, "application_name": app,
            "since": since, "state": state, "transaction_since": xact, "wait_event": wait_event}


def in_progress_words(h: dict, dbname: str) -> str:
    """'a migration is in progress on rt (pid 11428, user …, transaction open since …, idle in transaction)': the
    holder of the one-operator lock (``migration_in_progress``), in the same words for check's NOTE and the console's
    dashboard. A COMMIT waiting on SyncRep is said as such (fresh7 N2: committed locally, no standby confirmed)."""
    def when(t) -> str:
        return t.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip() if hasattr(t, "strftime") else "?"

    tx = (f"transaction open since {when(h['transaction_since'])}" if h.get("transaction_since")
          else "no transaction open yet (pre-flight or backup)")
    doing = h.get("state")
    if h.get("wait_event") == "SyncRep":
        doing = ("in COMMIT, waiting on synchronous replication (wait_event SyncRep): committed locally, a "
                 "synchronous standby has not confirmed it")
    return (f"a migration is in progress on {dbname} (pid {h['pid']}, user {h['user']}, "
            f"{client_words(h['client'], h.get('client_port'))}, "
            f"application '{h['application_name']}', connected since {when(h['since'])}, {tx}, {doing})")


async def unlock(conn) -> None:
    await conn.execute(sql("advisory_unlock"), KEY)


# System catalogs (and their indexes) by their fixed oids: a lock on one is named without reading pg_class, which is
# the catalog most often locked (VACUUM FULL pg_class) when a session waits behind one.
CATALOGS = {1259: "pg_class", 1249: "pg_attribute", 1247: "pg_type", 1255: "pg_proc", 2615: "pg_namespace",
            2610: "pg_index", 2606: "pg_constraint", 2608: "pg_depend", 2604: "pg_attrdef", 2611: "pg_inherits",
            2620: "pg_trigger", 2618: "pg_rewrite", 2619: "pg_statistic", 1262: "pg_database", 1260: "pg_authid",
            2662: "pg_class_oid_index", 2663: "pg_class_relname_nsp_index", 2659: "pg_attribute_relid_attnum_index"}


def catalog_words(oid: int) -> str:
    """'the system catalog pg_class', or 'a system catalog (oid 2612)': a relation below FirstNormalObjectId."""
    return f"the system catalog {CATALOGS[oid]}" if oid in CATALOGS else f"a system catalog (oid {oid})"


def client_words(addr, port=None) -> str:
    """Where a session connects from, the same words in every sentence naming a lock's holder: 'host 127.0.0.1'
    (pg_stat_activity's client_addr, as psycopg's ipaddress or as text, without the /32 or /128 of a host),
    'local Unix socket' (client_port -1: no address), 'host unknown' (no client_addr nor client_port: a server
    process, or a session this role may not see without pg_read_all_stats)."""
    if addr is None or addr == "":
        return "local Unix socket" if port == -1 else "host unknown"
    import ipaddress

    try:
        net = ipaddress.ip_interface(str(addr))
    except ValueError:
        return f"host {addr}"
    return f"host {net.ip if net.network.prefixlen == net.max_prefixlen else net.with_prefixlen}"


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another session"
    since = holder.get("since")
    when = since.strftime("%Y-%m-%d %H:%M:%S") if hasattr(since, "strftime") else "?"
    return (f"pid {holder['pid']}, user {holder['user']}, {client_words(holder.get('client'), holder.get('client_port'))}"
            f", application '{holder['application_name']}', connected since {when}")


def describe_blockers(blockers) -> str:
    """'pid 123 (user bob, application 'psql', host 10.0.0.5, idle in transaction) and pid 456 (…)': the sessions
    another one waits for (objects with pid, user, application_name, client, client_port, state), the same words
    wherever a wait is said (apply, BEGIN, backup, restore)."""
    blockers = list(blockers)
    return (" and ".join(f"pid {b.pid} (user {b.user}, application '{b.application_name or '-'}', "
                         f"{client_words(b.client, b.client_port)}, {b.state})" for b in blockers[:3])
            + (f" and {len(blockers) - 3} more" if len(blockers) > 3 else ""))
