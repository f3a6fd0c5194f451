-- What became of the restore's transaction (psql's, its xid said at BEGIN): committed, aborted or in progress.
-- Asked after a cancel, or after psql failed once it had been given COMMIT: never assumed.
SELECT pg_catalog.txid_status(%(txid)s)
