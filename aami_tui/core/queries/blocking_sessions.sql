-- Sessions that block the given pid (who we are waiting for).
SELECT a.pid, a.usename::text AS user, a.application_name, a.state,
       a.query_start, left(a.query, 200) AS query,
       a.client_addr AS client, a.client_port
FROM pg_catalog.pg_stat_activity a
WHERE a.pid = ANY (pg_catalog.pg_blocking_pids(%(pid)s))
ORDER BY a.pid
