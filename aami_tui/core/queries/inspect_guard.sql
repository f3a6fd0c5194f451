-- After each query in the inspection pane: does this session still hold the run's one-operator advisory lock,
-- and are the run's timeouts (in ms, as BEGIN set them) still in force? Plus the tables in public now.
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted AND l.pid = pg_catalog.pg_backend_pid()
                 AND l.classid = %(classid)s::int::oid AND l.objid = %(objid)s::int::oid
                 AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
         AS locked,
       (SELECT pg_catalog.array_agg(name || '=' || setting) FROM pg_catalog.pg_settings
        WHERE name IN ('lock_timeout', 'statement_timeout', 'idle_in_transaction_session_timeout',
                       'client_connection_check_interval')) AS timeouts,
       (SELECT pg_catalog.array_agg(c.relname::text) FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')) AS tables
