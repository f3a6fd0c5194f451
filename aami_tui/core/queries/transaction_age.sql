-- Our own transaction: age, how long it has been idle in transaction, and which statement of a batch runs.
SELECT now() - xact_start AS xact_age,
       CASE WHEN state LIKE 'idle in transaction%%' THEN now() - state_change END AS idle_for,
       state,
       application_name  -- "aami-tui: statement N / M" while a framed statement of a batch runs (apply.run_batch)
FROM pg_catalog.pg_stat_activity WHERE pid = %(pid)s
