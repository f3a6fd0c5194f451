-- Names of the indexes in public (lint: CREATE INDEX IF NOT EXISTS on an existing index is a no-op).
SELECT c.relname::text AS name
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('i', 'I')
