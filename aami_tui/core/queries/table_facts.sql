-- Live facts for a list of tables in public: estimated rows (statistics, no scan) and on-disk size.
-- Used by lint (the tables each statement locks) and the drift plan (facts for a person).
SELECT c.relname::text                                  AS name,
       CASE WHEN c.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(c.oid)
            ELSE c.reltuples::bigint END                AS est_rows,
       pg_catalog.pg_total_relation_size(c.oid)         AS size_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(names)s::text[])
ORDER BY c.relname
