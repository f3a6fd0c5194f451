-- aami-tui shim of uuid-ossp for the embedded server only (see uuid-ossp.control).
\echo Use "CREATE EXTENSION uuid-ossp" to load this file. \quit
CREATE FUNCTION uuid_generate_v4() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE
    AS 'SELECT pg_catalog.gen_random_uuid()';
CREATE FUNCTION uuid_nil() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$SELECT '00000000-0000-0000-0000-000000000000'::uuid$$;
