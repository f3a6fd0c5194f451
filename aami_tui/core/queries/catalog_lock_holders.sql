-- Sessions holding an ACCESS EXCLUSIVE lock on a system catalog or its index (oid below 16384: VACUUM FULL
-- pg_class, LOCK TABLE pg_catalog.…, REINDEX SYSTEM) of this database or a shared one: whom BEGIN's own queries
-- waited for past lock_timeout. Functions only, no catalog tables or views (as exclusive_lock_holders.sql): it
-- answers while that lock is held. Columns as in blocking_sessions.sql, then the catalog's oid.
SELECT a.pid, a.usesysid::regrole::text AS user, a.application_name, a.state, a.query_start,
       left(a.query, 200) AS query, a.client_addr AS client, a.client_port, l.relation::bigint
FROM pg_catalog.pg_lock_status() l
JOIN pg_catalog.pg_stat_get_activity(NULL) a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.relation < 16384
  AND l.pid <> pg_catalog.pg_backend_pid()
  AND l.database IN (0, (SELECT a2.datid FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a2))
ORDER BY a.pid, l.relation
LIMIT 10
