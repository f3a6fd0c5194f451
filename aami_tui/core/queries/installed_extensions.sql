-- Extensions installed in this database (a file's CREATE EXTENSION IF NOT EXISTS of one of them needs no privilege).
SELECT extname::text FROM pg_catalog.pg_extension
