-- Other sessions holding a lock on the given tables (names as pg_dump's LOCK TABLE wrote them): whom a backup that
-- gave up waiting waited for. Columns as in blocking_sessions.sql.
SELECT DISTINCT a.pid, a.usename::text AS user, a.application_name, a.state, a.query_start,
       left(a.query, 200) AS query, a.client_addr AS client, a.client_port
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
  AND l.relation = ANY (SELECT pg_catalog.to_regclass(n)::oid FROM unnest(%(names)s::text[]) AS n)
  AND a.pid <> pg_catalog.pg_backend_pid()
ORDER BY a.pid
