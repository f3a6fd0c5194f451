-- \di in the inspection pane: indexes outside the system schemas.
SELECT n.nspname AS "Schema", ic.relname AS "Name", c.relname AS "Table",
       pg_catalog.pg_get_indexdef(i.indexrelid) AS "Definition",
       pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(i.indexrelid)) AS "Size"
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 3, 2
