-- The catalog of schema public, for comparing a database with a reference built from the migration file:
-- one row per table, column, constraint, index and extension (kind, table, name, detail as jsonb).
-- Definitions come from the server's own deparsers (pg_get_*def), never from SQL text. Run with
-- search_path = public so that both sides deparse names the same way.
WITH t AS (
    SELECT c.oid, c.relname::text AS name
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
)
SELECT 'table' AS kind, t.name AS tbl, t.name AS name, '{}'::jsonb AS detail
FROM t
UNION ALL
SELECT 'column', t.name, a.attname::text,
       jsonb_build_object('type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                          'not_null', a.attnotnull,
                          'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                          'num', a.attnum)
FROM t
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
UNION ALL
SELECT 'constraint', t.name, con.conname::text,
       jsonb_build_object('type', con.contype::text,
                          'def', pg_catalog.pg_get_constraintdef(con.oid),
                          'cols', (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY k.ord), '[]')
                                   FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                                   JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num),
                          'ref_table', CASE WHEN con.confrelid <> 0 THEN
                                (SELECT c2.relname::text FROM pg_catalog.pg_class c2 WHERE c2.oid = con.confrelid) END,
                          'ref_cols', (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY k.ord), '[]')
                                       FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                                       JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid
                                                                     AND a.attnum = k.num))
FROM t
JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid
WHERE con.contype IN ('p', 'u', 'c', 'f', 'x')  -- not-null constraints (PostgreSQL 18) are compared as columns
UNION ALL
SELECT 'index', t.name, ic.relname::text,
       jsonb_build_object('def', pg_catalog.pg_get_indexdef(i.indexrelid),
                          'unique', i.indisunique,
                          'constraint', EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con
                                                WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')))
FROM t
JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
UNION ALL
SELECT 'extension', e.extname::text, e.extname::text, jsonb_build_object('version', e.extversion)
FROM pg_catalog.pg_extension e
WHERE e.extname <> 'plpgsql'
ORDER BY 1, 2, 3
