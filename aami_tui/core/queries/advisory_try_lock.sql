-- Session-level advisory lock keyed to the database: one operator at a time.
SELECT pg_catalog.pg_try_advisory_lock(%(classid)s, %(objid)s) AS locked
