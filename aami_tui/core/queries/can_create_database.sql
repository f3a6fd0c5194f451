-- May the current role create a database (for a scratch reference or rehearsal copy on the same server)?
SELECT r.rolcreatedb OR r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
