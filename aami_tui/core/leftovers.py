"""Temporary databases an earlier ``plan`` or ``rehearse`` left on the server.

Each run drops the database it creates, also on SIGINT, SIGTERM and SIGHUP; only a run killed outright (SIGKILL,
a crash, a power cut) leaves one. A later plan or rehearse names them, with their size and who is connected, and
the DROP DATABASE line for each one nobody uses. It never drops them itself: a name that looks like its own may be
a colleague's run in progress (between its CREATE DATABASE and its first connection nothing shows that it is in
use), and a DBA decides what goes from the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from aami_tui.core.queries import sql
from aami_tui.core.words import plural
from aami_tui.core.words import size as size_words


@dataclass(frozen=True)
class Leftover:
    name: str
    size_bytes: int | None
    sessions: int

    def words(self) -> str:
        size = "size unknown" if self.size_bytes is None else size_words(self.size_bytes)
        who = ("nobody connected" if not self.sessions else
               f"{plural(self.sessions, 'session')} connected: a plan or rehearse running now?")
        return f"{self.name} ({size}, {who})"


async def find(conn) -> list[Leftover]:
    """The temporary databases of aami-tui on ``conn``'s server now; best effort: [] if the question fails."""
    try:
        cur = await conn.execute(sql("scratch_leftovers"))
        return [Leftover(n, None if b is None else int(b), int(s)) for n, b, s in await cur.fetchall()]
    except psycopg.Error:
        return []


def note(found: list[Leftover]) -> str | None:
    """One sentence naming them and how to drop them, or None when there are none."""
    if not found:
        return None
    idle = [x.name for x in found if not x.sessions]
    drop = (f" When no plan or rehearse is running, drop {'it' if len(idle) == 1 else 'them'}: "
            + " ".join(f"DROP DATABASE {n};" for n in idle)) if idle else ""
    return (f"Note: {plural(len(found), 'temporary database')} of aami-tui on this server, left by a plan or "
            f"rehearse killed before it could drop {'it' if len(found) == 1 else 'them'} (or running now): "
            f"{', '.join(x.words() for x in found)}. aami-tui drops only the ones it creates in the same run."
            + drop)
