-- The base tables in public right now (inside the migration transaction, just after BEGIN: what existed
-- before the migration), with estimated rows and size, for telling old extras from new ones at verify.
-- Never waits for a lock: pg_total_relation_size takes ACCESS SHARE on the table and its indexes, which queues
-- behind another session's ACCESS EXCLUSIVE (held or awaited); for such a table the size is pg_class's own
-- figure (relpages of the table, its TOAST table and its indexes, as of the last VACUUM/ANALYZE), read lock-free.
WITH locked AS (
    SELECT l.relation
    FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
      AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
)
SELECT c.relname::text AS name,
       CASE WHEN c.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(c.oid)
            ELSE c.reltuples::bigint END AS est_rows,
       CASE WHEN c.oid IN (SELECT relation FROM locked)
                 OR c.reltoastrelid IN (SELECT relation FROM locked)
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                            WHERE i.indrelid = c.oid AND i.indexrelid IN (SELECT relation FROM locked))
            THEN (c.relpages::bigint
                  + coalesce((SELECT t.relpages FROM pg_catalog.pg_class t WHERE t.oid = c.reltoastrelid), 0)
                  + coalesce((SELECT sum(ic.relpages) FROM pg_catalog.pg_index i
                              JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                              WHERE i.indrelid = c.oid), 0))::bigint
                 * pg_catalog.current_setting('block_size')::bigint
            ELSE pg_catalog.pg_total_relation_size(c.oid) END AS size_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY 1
