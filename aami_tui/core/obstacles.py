"""Objects in the way: what makes the migration fail half-way, or build the schema where the Config Server
does not look, although the ten names look fine. Pre-flight names them before any backup.

- a view (or sequence, materialized view...) in public named like a required table: ``CREATE TABLE IF NOT
  EXISTS`` skips it with a notice, then ``CREATE INDEX`` on it fails;
- a standalone type in public named like a required table: ``CREATE TABLE`` fails;
- a search_path whose first schema is not public (``ALTER DATABASE … SET search_path = other, public``, or a
  schema named after the user with the default ``"$user", public``): every table goes to that schema;
- a required table in a schema that comes before public in search_path: the Config Server's unqualified
  queries read that one, not public's.
"""

from __future__ import annotations

from dataclasses import dataclass

from aami_tui.core.queries import sql
from aami_tui.core.schema import REQUIRED_TABLES

RELKINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "S": "sequence",
            "f": "foreign table", "i": "index", "I": "partitioned index", "c": "composite type", "t": "TOAST table"}
TYPTYPES = {"e": "enum type", "c": "composite type", "d": "domain", "r": "range type", "m": "multirange type",
            "b": "base type", "p": "pseudo-type"}
SOURCES = {"database": "set on the database (ALTER DATABASE … SET search_path)",
           "user": "set on the role (ALTER ROLE … SET search_path)",
           "database user": "set on the role in this database (ALTER ROLE … IN DATABASE … SET search_path)",
           "configuration file": "set in postgresql.conf", "default": "the server default",
           "client": "set by the client (PGOPTIONS or the connection string)",
           "session": "set in this session"}


@dataclass(frozen=True)
class Obstacle:
    kind: str  # creation_schema | not_a_table | type_name | shadowed
    name: str | None  # the required table's name, when one
    message: str  # one sentence: what, where, why it matters, and the fix

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "message": self.message}


def _quote(name: str) -> str:
    from aami_tui.core.plan import ident

    return ident(name)


async def objects_in_the_way(conn) -> list[Obstacle]:
    """Everything in the way, each as one sentence (empty when nothing is). One round trip."""
    cur = await conn.execute(sql("objects_in_the_way"), {"required": list(REQUIRED_TABLES)})
    rows = await cur.fetchall()
    dbname = conn.info.dbname
    out: list[Obstacle] = []
    for kind, name, schema, detail, path, source in rows:
        where = SOURCES.get(source, f"source: {source}")
        if kind == "creation_schema":
            first = f"schema {schema}" if schema else "no existing schema"
            reset = (f"ALTER DATABASE {_quote(dbname)} RESET search_path" if source == "database"
                     else "ALTER ROLE … RESET search_path" if source in ("user", "database user")
                     else "set search_path to public")
            out.append(Obstacle(kind, None, f"search_path is '{path}' ({where}): the migration's unqualified "
                                f"CREATE TABLE statements would create the tables in {first}, not in public where "
                                f"the Config Server's check looks; fix it first ({reset}, then reconnect)."))
        elif kind == "not_a_table":
            what = RELKINDS.get(detail, f"relation of kind {detail}")
            out.append(Obstacle(kind, name, f"public.{name} is a {what}, not a table: CREATE TABLE IF NOT EXISTS "
                                f"{name} would skip it and a later statement on it would fail; rename or drop that "
                                f"{what} first."))
        elif kind == "type_name":
            what = TYPTYPES.get(detail, "type")
            out.append(Obstacle(kind, name, f"public has a {what} named {name}: CREATE TABLE {name} would fail "
                                f"with 'type \"{name}\" already exists'; rename or drop that type first."))
        elif kind == "shadowed":
            what = RELKINDS.get(detail, "relation")
            out.append(Obstacle(kind, name, f"{schema}.{name} (a {what}) comes before public in search_path "
                                f"'{path}' ({where}): the Config Server's unqualified queries would use it instead "
                                f"of public.{name}; take {schema} out of search_path or rename it."))
    return out
