-- Sessions waiting for a lock in this database, how long, on what, and who is in the way (pg_blocking_pids: any
-- conflicting mode, held or queued ahead): either the tool's sessions (pg_dump / psql: application_name aami-tui,
-- started since %(since)s), or the one session %(pid)s (the migration session while BEGIN's own queries run).
-- Functions only, no catalog table or view: it answers while another session holds or awaits a lock on a catalog
-- such as pg_class (what BEGIN waits behind). `what` is a user relation's name (looked up only for one), else the
-- lock type; a system catalog comes as its oid in `relation` (locks.catalog_words names it). Blocker columns as in
-- blocking_sessions.sql. The one session %(pid)s may be asked about from another database (BEGIN's watch, when its
-- monitor is gone: a new connection to the migration's database cannot start behind a lock on one of its catalogs,
-- and pg_stat_get_activity and pg_lock_status show the whole server): a user relation of another database is then
-- said by its oid, never looked up in this one's catalog.
SELECT w.pid AS waiter,
       extract(epoch FROM now() - w.query_start)::float8 AS waited_s,
       CASE WHEN l.relation >= 16384 AND l.database = w.datid AND w.datid = (
                     SELECT a.datid FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a)
                THEN (pg_catalog.pg_identify_object(1259, l.relation, 0)).identity
            WHEN l.relation >= 16384 THEN 'relation ' || l.relation::text
            WHEN l.relation IS NULL THEN l.locktype END AS what,
       l.relation::bigint AS relation,
       b.pid, b.usesysid::regrole::text AS user, b.application_name, b.state, b.query_start,
       left(b.query, 200) AS query, b.client_addr AS client, b.client_port
FROM pg_catalog.pg_stat_get_activity(NULL) w
JOIN pg_catalog.pg_lock_status() l ON l.pid = w.pid AND NOT l.granted
CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
JOIN pg_catalog.pg_stat_get_activity(NULL) b ON b.pid = bp.pid
WHERE w.wait_event_type = 'Lock' AND w.pid <> pg_catalog.pg_backend_pid()
  AND (w.pid = %(pid)s::int
       OR (%(pid)s::int IS NULL AND w.application_name = 'aami-tui' AND w.backend_start >= %(since)s
           AND w.datid = (SELECT a.datid FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a)))
ORDER BY w.pid, b.pid
