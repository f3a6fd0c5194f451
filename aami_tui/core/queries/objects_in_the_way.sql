-- What stands in the way of the migration creating the required tables in public (pre-flight):
--   creation_schema: unqualified CREATE TABLE goes to the first schema of search_path, which is not public;
--   not_a_table:     a relation in public with a required name that is not a table (view, sequence...);
--   type_name:       a standalone type in public with a required name (CREATE TABLE would fail);
--   shadowed:        a relation with a required name in a schema that comes before public in search_path
--                    (the Config Server's unqualified queries would read it instead of public's).
-- Columns: kind, name, schema, relkind/detail, search_path, the setting's source.
WITH path AS (
    SELECT s.nspname, s.ord
    FROM unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS s(nspname, ord)
), public_pos AS (
    SELECT coalesce((SELECT ord FROM path WHERE nspname = 'public'), 2147483647) AS ord
), setting AS (
    SELECT pg_catalog.current_setting('search_path') AS value,
           (SELECT source FROM pg_catalog.pg_settings WHERE name = 'search_path') AS source
)
SELECT 'creation_schema' AS kind, NULL::text AS name, p.nspname::text AS schema, NULL::text AS detail,
       st.value, st.source
FROM path p, setting st
WHERE p.ord = 1 AND p.nspname <> 'public'
UNION ALL
SELECT 'creation_schema', NULL, NULL, 'no schema', st.value, st.source
FROM setting st
WHERE NOT EXISTS (SELECT 1 FROM path)
UNION ALL
SELECT 'not_a_table', c.relname::text, 'public', c.relkind::text, st.value, st.source
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, setting st
WHERE n.nspname = 'public' AND c.relname = ANY(%(required)s::text[]) AND c.relkind NOT IN ('r', 'p')
UNION ALL
SELECT 'type_name', t.typname::text, 'public', t.typtype::text, st.value, st.source
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace, setting st
WHERE n.nspname = 'public' AND t.typname = ANY(%(required)s::text[]) AND t.typrelid = 0
UNION ALL
SELECT 'shadowed', c.relname::text, p.nspname::text, c.relkind::text, st.value, st.source
FROM path p
JOIN pg_catalog.pg_namespace n ON n.nspname = p.nspname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid, public_pos pp, setting st
WHERE p.ord < pp.ord AND p.nspname <> 'public' AND c.relname = ANY(%(required)s::text[])
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY 1, 2, 3
