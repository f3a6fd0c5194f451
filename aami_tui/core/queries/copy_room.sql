-- What a rehearsal copy costs on this server: the database's size, whether the role may create a database (the
-- copy goes there, else into the embedded PostgreSQL), and the data directory where the copy's files would go
-- (NULL when the role may not read it: superuser or pg_read_all_settings only).
SELECT pg_catalog.pg_database_size(pg_catalog.current_database()) AS db_size_bytes,
       (SELECT r.rolcreatedb OR r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) AS can_create,
       (SELECT s.setting FROM pg_catalog.pg_settings s WHERE s.name = 'data_directory') AS data_directory
