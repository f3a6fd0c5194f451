-- The guide's CI rule: public must hold exactly ten tables.
SELECT count(*) AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public'
