-- Our own transaction: age and how long it has been idle in transaction.
SELECT now() - xact_start AS xact_age,
       CASE WHEN state LIKE 'idle in transaction%%' THEN now() - state_change END AS idle_for,
       state
FROM pg_catalog.pg_stat_activity WHERE pid = %(pid)s
