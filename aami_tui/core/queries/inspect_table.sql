-- \d TABLE in the inspection pane: the columns (type, nullability, default), then constraints and indexes.
-- %(schema)s may be NULL: then the table is looked up through search_path, as psql does.
WITH rel AS (
    SELECT c.oid
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname = %(table)s
      AND CASE WHEN %(schema)s::text IS NULL THEN pg_catalog.pg_table_is_visible(c.oid)
               ELSE n.nspname = %(schema)s::text END
    LIMIT 1
)
SELECT "Column", "Type", "Nullable", "Default" FROM (
    SELECT 1 AS part, a.attnum AS ord, a.attname::text AS "Column",
           pg_catalog.format_type(a.atttypid, a.atttypmod) AS "Type",
           CASE WHEN a.attnotnull THEN 'not null' ELSE '' END AS "Nullable",
           coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '') AS "Default"
    FROM rel
    JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    UNION ALL
    SELECT 2, 0, 'constraint ' || con.conname, pg_catalog.pg_get_constraintdef(con.oid), '', ''
    FROM rel JOIN pg_catalog.pg_constraint con ON con.conrelid = rel.oid AND con.contype <> 'n'
    UNION ALL
    SELECT 3, 0, 'index ' || ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid), '', ''
    FROM rel JOIN pg_catalog.pg_index i ON i.indrelid = rel.oid
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
) x
ORDER BY part, ord, "Column"
