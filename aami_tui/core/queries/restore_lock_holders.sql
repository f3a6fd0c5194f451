-- Other sessions holding a lock on a table of this database, with the tables (and views, sequences) each holds a
-- lock on, by name. %(settled)s false: every such session (what a restore that timed out waited for). True: before
-- a restore (its confirmation says the restore will wait for them), only locks on user tables and without a
-- query's momentary ones (a session active for under 2 s).
SELECT a.pid, a.usename::text AS user, a.application_name, a.state,
       a.client_addr AS client, a.client_port,
       array_agg(DISTINCT l.mode ORDER BY l.mode) FILTER (WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')) AS modes,
       coalesce(array_agg(DISTINCT n.nspname || '.' || c.relname ORDER BY n.nspname || '.' || c.relname)
                FILTER (WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')), '{}') AS tables
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
LEFT JOIN pg_catalog.pg_class c ON c.oid = l.relation
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE l.granted AND l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
  AND a.pid <> pg_catalog.pg_backend_pid()
  AND a.backend_type = 'client backend'
  AND (NOT %(settled)s
       OR ((a.state <> 'active' OR a.xact_start < pg_catalog.now() - interval '2 seconds')
           AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')))
GROUP BY a.pid, a.usename, a.application_name, a.state, a.client_addr, a.client_port
ORDER BY a.pid
