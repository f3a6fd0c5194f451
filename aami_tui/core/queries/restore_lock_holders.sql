-- Other sessions holding a lock on a table of this database (what a restore that timed out waited for).
SELECT DISTINCT a.pid, a.usename::text AS user, a.application_name, a.state,
       coalesce(a.client_addr::text, 'local socket') AS client
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
  AND a.pid <> pg_catalog.pg_backend_pid()
  AND a.backend_type = 'client backend'
ORDER BY a.pid
