-- \dx in the inspection pane: installed extensions.
SELECT e.extname AS "Name", e.extversion AS "Version", n.nspname AS "Schema",
       pg_catalog.obj_description(e.oid, 'pg_extension') AS "Description"
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
ORDER BY 1
