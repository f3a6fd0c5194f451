-- Sessions of pg_dump / psql (application_name aami-tui, started since %(since)s) in this database that wait for a
-- lock: how long, on what, and who holds it (pg_blocking_pids). Blocker columns as in blocking_sessions.sql.
SELECT w.pid AS waiter,
       extract(epoch FROM now() - w.query_start)::float8 AS waited_s,
       coalesce((SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation),
                l.locktype) AS what,
       b.pid, b.usename::text AS user, b.application_name, b.state, b.query_start, left(b.query, 200) AS query,
       b.client_addr AS client, b.client_port
FROM pg_catalog.pg_stat_activity w
JOIN pg_catalog.pg_locks l ON l.pid = w.pid AND NOT l.granted
CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
WHERE w.datname = pg_catalog.current_database() AND w.application_name = 'aami-tui'
  AND w.backend_start >= %(since)s AND w.pid <> pg_catalog.pg_backend_pid() AND w.wait_event_type = 'Lock'
ORDER BY w.pid, b.pid
