-- \dt in the inspection pane: tables outside the system schemas, with estimated rows and size.
SELECT n.nspname AS "Schema", c.relname AS "Name",
       CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END AS "Type",
       pg_catalog.pg_get_userbyid(c.relowner) AS "Owner",
       -- never analyzed: the statistics' live tuples plus this transaction's own inserts (the migration's)
       CASE WHEN c.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(c.oid)
                 + pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid)
                 - pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)
            ELSE c.reltuples::bigint END AS "Est. rows",
       pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid)) AS "Size"
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'
ORDER BY 1, 2
