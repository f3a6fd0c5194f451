-- The schema validation in one round trip, whatever the size of the catalog:
--   * one row per required table (in order): presence, estimated rows, and for present tables the columns
--     (drift detection), the on-disk size and the sessions holding or awaiting an ACCESS EXCLUSIVE lock on it;
--   * then at most extra_limit other base tables of public (by name; a NULL limit means all of them), with
--     extra_count on every row: the server counts them, the client never receives 10,000 names.
-- Nothing here waits for a lock on a user table: presence and columns come from the catalog, and the size
-- (pg_total_relation_size takes ACCESS SHARE) is skipped for a table another session has locked exclusively.
WITH required AS (
    SELECT name, ord FROM unnest(%(required)s::text[]) WITH ORDINALITY AS r(name, ord)
), ns AS (
    SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'
), req AS (
    SELECT r.name, r.ord, c.oid, c.reltuples
    FROM required r
    LEFT JOIN pg_catalog.pg_class c
           ON c.relname = r.name AND c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p')
), locks AS (
    SELECT l.relation,
           jsonb_agg(jsonb_build_object(
               'pid', a.pid, 'user', a.usename, 'application', a.application_name, 'state', a.state,
               'client', host(a.client_addr), 'client_port', a.client_port,
               'query_start', a.query_start, 'query', left(a.query, 200), 'granted', l.granted)
               ORDER BY l.granted DESC, a.pid) AS holders
    FROM pg_catalog.pg_locks l
    JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_catalog.pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND l.relation IN (SELECT oid FROM req WHERE oid IS NOT NULL)
    GROUP BY l.relation
), extra AS (
    SELECT c.relname::text AS name, c.oid, c.reltuples
    FROM pg_catalog.pg_class c
    WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p')
      AND c.relname::text <> ALL (%(required)s::text[])
    ORDER BY c.relname
    LIMIT %(extra_limit)s
), extra_count AS (
    SELECT count(*) AS n
    FROM pg_catalog.pg_class c
    WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p')
      AND c.relname::text <> ALL (%(required)s::text[])
), rows AS (
    SELECT req.name, true AS required, req.ord, req.oid, req.reltuples, lk.holders
    FROM req LEFT JOIN locks lk ON lk.relation = req.oid
    UNION ALL
    SELECT e.name, false, NULL, e.oid, e.reltuples, NULL FROM extra e
)
SELECT t.name,
       t.required,
       t.oid IS NOT NULL                        AS present,
       CASE WHEN t.oid IS NULL THEN NULL
            -- never analyzed (reltuples = -1): the statistics' live-tuple count instead, plus what this
            -- very transaction inserted (so the uncommitted preview of a migration shows its 6 templates)
            WHEN t.reltuples < 0 THEN pg_catalog.pg_stat_get_live_tuples(t.oid)
                 + pg_catalog.pg_stat_get_xact_tuples_inserted(t.oid)
                 - pg_catalog.pg_stat_get_xact_tuples_deleted(t.oid)
            ELSE t.reltuples::bigint END        AS est_rows,
       CASE WHEN t.oid IS NULL OR NOT t.required OR NOT %(sizes)s OR t.holders IS NOT NULL THEN NULL
            ELSE pg_catalog.pg_total_relation_size(t.oid) END AS size_bytes,
       CASE WHEN t.oid IS NULL OR NOT t.required THEN NULL ELSE (
            SELECT array_agg(a.attname::text ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) END AS columns,
       t.holders                                AS locked_by,
       (SELECT n FROM extra_count)              AS extra_count
FROM rows t
ORDER BY t.required DESC, t.ord, t.name
