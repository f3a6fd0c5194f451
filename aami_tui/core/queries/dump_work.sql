-- What a dump of this database copies: every user table's data (heap + TOAST size, row estimate), and with
-- %(indexes)s also the indexes a restore builds (their size). Sizes weigh the progress bar.
WITH t AS (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.reltuples
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%%'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
)
SELECT t.oid::bigint, t.schema, t.name, pg_catalog.pg_table_size(t.oid) AS bytes,
       CASE WHEN t.reltuples >= 0 THEN t.reltuples
            ELSE pg_catalog.pg_stat_get_live_tuples(t.oid) END::float8 AS rows,
       'table' AS kind
FROM t
UNION ALL
SELECT i.indexrelid::bigint, t.schema, ic.relname::text, pg_catalog.pg_relation_size(i.indexrelid), NULL, 'index'
FROM t
JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE %(indexes)s
ORDER BY 6 DESC, 4 DESC
