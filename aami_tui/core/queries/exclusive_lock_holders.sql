-- Sessions holding or awaiting an ACCESS EXCLUSIVE lock on any relation of this database (named after a
-- validation that timed out), one JSON object each. Functions only, no catalog tables or views: this still
-- answers when someone holds a lock on a catalog such as pg_class.
SELECT jsonb_build_object('pid', a.pid, 'user', a.usesysid::regrole::text, 'application', a.application_name,
                          'state', a.state, 'client', host(a.client_addr), 'client_port', a.client_port,
                          'query_start', a.query_start, 'query', left(a.query, 200),
                          'granted', l.granted, 'relation', l.relation)
FROM pg_catalog.pg_lock_status() l
JOIN pg_catalog.pg_stat_get_activity(NULL) a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_catalog.pg_backend_pid()
  AND l.database = a.datid AND a.datid = (SELECT a2.datid FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a2)
ORDER BY l.granted DESC, a.pid
LIMIT 5
