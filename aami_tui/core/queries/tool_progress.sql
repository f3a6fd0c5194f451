-- Progress of pg_dump / pg_restore sessions (application_name aami-tui, started since %(since)s) in this
-- database: COPY (PostgreSQL 14+) and index builds (12+). Nine columns either way, the eighth the qualified name
-- of the table copied or the index built (a restore's objects have new oids: it matches them by name). A restore
-- creates them in its own open transaction, invisible to this session's catalog: then the name comes from the
-- statement the session runs (pg_restore writes `COPY schema.table (...) FROM stdin`, `CREATE INDEX name ON ...`
-- and `ALTER TABLE ... ADD CONSTRAINT name PRIMARY KEY ...`).
SELECT 'copy' AS kind, p.relid::bigint, p.tuples_processed, p.bytes_processed,
       NULL::bigint, NULL::bigint, NULL::bigint,
       (SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p.relid) AS name,
       pg_catalog.replace(pg_catalog.substring(a.query, '(?i)^\s*COPY\s+([^\s(]+)'), '"', '') AS running
FROM pg_catalog.pg_stat_progress_copy p
JOIN pg_catalog.pg_stat_activity a ON a.pid = p.pid
WHERE p.datname = current_database() AND a.application_name = 'aami-tui' AND a.backend_start >= %(since)s
  AND p.pid <> pg_catalog.pg_backend_pid()
UNION ALL
SELECT 'index', p.index_relid::bigint, p.relid::bigint, p.blocks_total, p.blocks_done, p.tuples_total,
       p.tuples_done,
       (SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p.index_relid),
       pg_catalog.replace(coalesce(
           pg_catalog.substring(a.query, '(?i)INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)\s+ON\s'),
           pg_catalog.substring(a.query, '(?i)ADD\s+CONSTRAINT\s+(\S+)')), '"', '')
FROM pg_catalog.pg_stat_progress_create_index p
JOIN pg_catalog.pg_stat_activity a ON a.pid = p.pid
WHERE p.datname = current_database() AND a.application_name = 'aami-tui' AND a.backend_start >= %(since)s
  AND p.pid <> pg_catalog.pg_backend_pid()
