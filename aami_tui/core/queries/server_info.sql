-- What the connection panel and the pre-flight checks show, in one round trip.
SELECT current_setting('server_version')                                    AS server_version,
       current_setting('server_version_num')::int                           AS server_version_num,
       current_database()                                                   AS dbname,
       current_user                                                         AS user,
       pg_catalog.pg_is_in_recovery()                                       AS in_recovery,
       pg_catalog.has_database_privilege(current_database(), 'CREATE')      AS can_create_in_db,
       pg_catalog.has_schema_privilege('public', 'CREATE')                  AS can_create_in_public,
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_catalog.pg_database_size(current_database())                      AS db_size_bytes,
       inet_server_addr()::text                                             AS server_addr,
       inet_server_port()                                                   AS server_port,
       pg_backend_pid()                                                     AS backend_pid,
       current_setting('max_locks_per_transaction')::int                    AS max_locks_per_transaction,
       -- where a default_transaction_read_only = on comes from (NULL when off): pre-flight names it and its fix
       (SELECT CASE WHEN s.setting = 'on' THEN s.source END FROM pg_catalog.pg_settings s
        WHERE s.name = 'default_transaction_read_only')                     AS read_only_source
