-- aami-tui's temporary databases on this server (plan's reference aami_ref_<12 hex>, rehearse's copy
-- aami_rehearse_<12 hex>) that exist now: a run killed before it could drop its own (SIGKILL, a crash, a power
-- cut), or one running now. Size only where the role may connect (pg_database_size needs it); sessions connected.
SELECT d.datname,
       CASE WHEN pg_catalog.has_database_privilege(d.oid, 'CONNECT') THEN pg_catalog.pg_database_size(d.oid) END
           AS size_bytes,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity a WHERE a.datid = d.oid) AS sessions
FROM pg_catalog.pg_database d
WHERE d.datname ~ '^aami_(ref|rehearse)_[0-9a-f]{12}$'
ORDER BY d.datname
