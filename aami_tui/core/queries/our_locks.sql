-- Locks held by sessions of this tool on the current database (for safety checks).
SELECT l.locktype, l.mode, l.pid, a.application_name
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE a.application_name = 'aami-tui' AND a.pid <> pg_backend_pid()
  AND a.datname = current_database()
