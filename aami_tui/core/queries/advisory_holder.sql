-- Who holds our advisory lock (pid, user, host and port as locks.client_words says them, application, since when,
-- what it does: state, transaction start, wait_event: SyncRep for a COMMIT waiting for a synchronous standby).
SELECT a.pid, a.usename::text AS user, host(a.client_addr) AS client, a.client_port,
       a.application_name, a.backend_start, a.state, a.xact_start, a.wait_event
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = %(classid)s::int::oid AND l.objid = %(objid)s::int::oid
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
LIMIT 1
