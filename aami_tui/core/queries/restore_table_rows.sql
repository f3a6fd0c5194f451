-- Rows of the tables a restore would drop (created after the backup), estimated without a scan and without a lock:
-- reltuples from the last VACUUM or ANALYZE, else the statistics' live-row count (a table never analyzed).
-- The confirmation then counts the small ones exactly (restore.py: count(*) under a short lock_timeout).
SELECT n.nspname::text AS schema, c.relname::text AS name,
       CASE WHEN c.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(c.oid)
            ELSE c.reltuples::bigint END AS est_rows
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN unnest(%(schemas)s::text[], %(names)s::text[]) AS t(schema, name)
  ON t.schema = n.nspname AND t.name = c.relname
WHERE c.relkind IN ('r', 'p')
