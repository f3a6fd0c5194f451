-- One round trip: every base table in public plus every required name, with presence and
-- estimated rows; on-disk size and column list (for drift detection) for the required tables only,
-- so that a catalog with thousands of other tables stays cheap to poll.
WITH required AS (
    SELECT name, ord FROM unnest(%(required)s::text[]) WITH ORDINALITY AS r(name, ord)
), public_tables AS (
    SELECT c.oid, c.relname::text AS name, c.reltuples, c.relpages
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
)
SELECT coalesce(r.name, t.name)                 AS name,
       r.name IS NOT NULL                       AS required,
       t.oid IS NOT NULL                        AS present,
       CASE WHEN t.oid IS NULL THEN NULL
            -- never analyzed (reltuples = -1): the statistics' live-tuple count instead, plus what this
            -- very transaction inserted (so the uncommitted preview of a migration shows its 6 templates)
            WHEN t.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(t.oid)
                 + pg_catalog.pg_stat_get_xact_tuples_inserted(t.oid)
                 - pg_catalog.pg_stat_get_xact_tuples_deleted(t.oid)
            ELSE t.reltuples::bigint END        AS est_rows,
       CASE WHEN t.oid IS NULL OR r.name IS NULL THEN NULL
            ELSE pg_catalog.pg_total_relation_size(t.oid) END AS size_bytes,
       CASE WHEN t.oid IS NULL OR r.name IS NULL THEN NULL ELSE (
            SELECT array_agg(a.attname::text ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) END AS columns
FROM required r
FULL JOIN public_tables t ON t.name = r.name
ORDER BY r.ord NULLS LAST, t.name
