-- Sessions waiting on locks held by the given pid (who we are blocking), and for how long.
SELECT a.pid, a.usename::text AS user, a.application_name, a.state,
       now() - coalesce(a.state_change, a.query_start) AS waiting_for,
       left(a.query, 200) AS query
FROM pg_catalog.pg_stat_activity a
WHERE %(pid)s = ANY (pg_catalog.pg_blocking_pids(a.pid))
ORDER BY waiting_for DESC
