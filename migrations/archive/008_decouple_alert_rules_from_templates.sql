-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 008_decouple_alert_rules_from_templates of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 008: alert_rules keep their own copy of the template fields, remember where they came from
-- (created_from_template_id/name), gain soft delete, and no longer reference alert_templates.

ALTER TABLE alert_rules
    ADD COLUMN IF NOT EXISTS name VARCHAR(255),
    ADD COLUMN IF NOT EXISTS description TEXT,
    ADD COLUMN IF NOT EXISTS severity VARCHAR(20),
    ADD COLUMN IF NOT EXISTS query_template TEXT,
    ADD COLUMN IF NOT EXISTS default_config JSONB DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS created_from_template_id VARCHAR(100),
    ADD COLUMN IF NOT EXISTS created_from_template_name VARCHAR(255),
    ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;

UPDATE alert_rules ar
SET name = at.name,
    description = at.description,
    severity = at.severity,
    query_template = at.query_template,
    default_config = at.default_config,
    created_from_template_id = at.id,
    created_from_template_name = at.name
FROM alert_templates at
WHERE at.id = ar.template_id;

ALTER TABLE alert_rules
    ALTER COLUMN name SET NOT NULL,
    ALTER COLUMN severity SET NOT NULL,
    ALTER COLUMN query_template SET NOT NULL;

DROP INDEX IF EXISTS idx_alert_rules_template;

ALTER TABLE alert_rules DROP COLUMN IF EXISTS template_id CASCADE;

ALTER TABLE alert_rules
    ADD CONSTRAINT alert_rules_severity_check CHECK (severity IN ('critical', 'warning', 'info'));

CREATE INDEX IF NOT EXISTS idx_alert_rules_deleted_at ON alert_rules (deleted_at);
CREATE INDEX IF NOT EXISTS idx_alert_rules_created_from_template ON alert_rules (created_from_template_id) WHERE deleted_at IS NULL;
