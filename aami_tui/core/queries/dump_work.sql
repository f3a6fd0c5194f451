-- What a dump of this database copies: every user table's data (heap + TOAST size, row estimate), and with
-- %(indexes)s also the indexes a restore builds (their size). Sizes weigh the progress bar. With %(exact)s false
-- (or for a table another session holds exclusively) the sizes are the planner's page counts: no lock at all.
WITH t AS (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.reltuples, c.relpages, c.reltoastrelid
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
), locked AS (  -- held or awaited exclusively by another session: its size would wait, use the estimate
    SELECT DISTINCT l.relation FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_catalog.pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
)
SELECT t.oid::bigint, t.schema, t.name,
       CASE WHEN %(exact)s AND t.oid NOT IN (SELECT relation FROM locked) THEN pg_catalog.pg_table_size(t.oid)
            ELSE (t.relpages::bigint + coalesce((SELECT tc.relpages FROM pg_catalog.pg_class tc
                                                 WHERE tc.oid = t.reltoastrelid), 0))
                 * current_setting('block_size')::bigint END AS bytes,
       CASE WHEN t.reltuples >= 0 THEN t.reltuples
            ELSE pg_catalog.pg_stat_get_live_tuples(t.oid) END::float8 AS rows,
       'table' AS kind
FROM t
UNION ALL
SELECT i.indexrelid::bigint, t.schema, ic.relname::text,
       CASE WHEN %(exact)s AND t.oid NOT IN (SELECT relation FROM locked)
                 AND i.indexrelid NOT IN (SELECT relation FROM locked) THEN pg_catalog.pg_relation_size(i.indexrelid)
            ELSE ic.relpages::bigint * current_setting('block_size')::bigint END, NULL, 'index'
FROM t
JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE %(indexes)s
ORDER BY 6 DESC, 4 DESC
