-- The base tables in public right now (inside the migration transaction, just after BEGIN: what existed
-- before the migration), with estimated rows and size, for telling old extras from new ones at verify.
SELECT c.relname::text AS name,
       CASE WHEN c.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(c.oid)
            ELSE c.reltuples::bigint END AS est_rows,
       pg_catalog.pg_total_relation_size(c.oid) AS size_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY 1
