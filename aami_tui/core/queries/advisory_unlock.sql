SELECT pg_catalog.pg_advisory_unlock(%(classid)s, %(objid)s) AS unlocked
