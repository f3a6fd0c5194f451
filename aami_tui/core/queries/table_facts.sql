-- Live facts for a list of tables in public: estimated rows (statistics, no scan) and on-disk size.
-- Used by lint (the tables each statement locks) and the drift plan (facts for a person).
-- The size of a table another session holds (or awaits) in ACCESS EXCLUSIVE mode is NULL: computing it would wait
-- for that session (pg_total_relation_size takes ACCESS SHARE); pre-flight names the session instead.
SELECT c.relname::text                                  AS name,
       CASE WHEN c.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(c.oid)
            ELSE c.reltuples::bigint END                AS est_rows,
       CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                         WHERE l.locktype = 'relation' AND l.relation = c.oid AND l.mode = 'AccessExclusiveLock'
                           AND l.pid <> pg_catalog.pg_backend_pid()
                           AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                             WHERE datname = current_database()))
            THEN NULL ELSE pg_catalog.pg_total_relation_size(c.oid) END AS size_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(names)s::text[])
ORDER BY c.relname
