-- Will a COMMIT wait for synchronous standbys, and are they connected? This session's synchronous_commit (the
-- database's and role's settings applied), the names, the standbys streaming as synchronous ones
-- (pg_stat_replication.sync_state 'sync' or 'quorum'), and those whose state this role may not see (NULL without
-- pg_read_all_stats).
SELECT pg_catalog.current_setting('synchronous_commit'),
       pg_catalog.current_setting('synchronous_standby_names'),
       (SELECT count(*) FROM pg_catalog.pg_stat_replication WHERE sync_state IN ('sync', 'quorum')),
       (SELECT count(*) FROM pg_catalog.pg_stat_replication WHERE sync_state IS NULL)
