-- The relation locks a backend holds on tables in public (rehearsal: what the migration held until COMMIT).
SELECT c.relname::text AS "table", l.mode
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = %(pid)s AND l.locktype = 'relation' AND l.granted
  AND n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY 1, 2
