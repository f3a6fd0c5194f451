-- What our backend waits for while its COMMIT is out (wait_event SyncRep: committed locally, waiting for a
-- synchronous standby), and the standbys the server waits for.
SELECT wait_event, pg_catalog.current_setting('synchronous_standby_names')
FROM pg_catalog.pg_stat_activity WHERE pid = %(pid)s
