"""The one-operator advisory lock: session-level, per database, shared by the runbook and restore."""

from __future__ import annotations

from aami_tui.core.queries import sql

# classid 'AAMI' as int4, objid 1. Advisory locks live per database already (pg_locks.database).
KEY = {"classid": 0x41414D49, "objid": 1}


async def try_lock(conn) -> dict | None:
    """Take the lock on ``conn``'s session. Returns None when taken, else who holds it."""
    cur = await conn.execute(sql("advisory_try_lock"), KEY)
    if (await cur.fetchone())[0]:
        return None
    cur = await conn.execute(sql("advisory_holder"), KEY)
    row = await cur.fetchone()
    if not row:
        return {}
    pid, user, client, app, since, _state, _xact = row
    return {"pid": pid, "user": user, "client": client, "application_name": app, "since": since}


async def unlock(conn) -> None:
    await conn.execute(sql("advisory_unlock"), KEY)


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another session"
    since = holder.get("since")
    when = since.strftime("%Y-%m-%d %H:%M:%S") if hasattr(since, "strftime") else "?"
    return (f"pid {holder['pid']}, user {holder['user']}, host {holder['client']}, application "
            f"'{holder['application_name']}', connected since {when}")
