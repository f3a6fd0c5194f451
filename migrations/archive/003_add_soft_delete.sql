-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 003_add_soft_delete of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 003: soft delete. Adds deleted_at (plus an index) to eight tables and turns the unique
-- keys on namespaces.name, targets.hostname and bootstrap_tokens.token into partial unique
-- indexes that ignore soft-deleted rows.

ALTER TABLE namespaces ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE groups ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE targets ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE exporters ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE alert_templates ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE check_settings ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;
ALTER TABLE bootstrap_tokens ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMP;

CREATE INDEX IF NOT EXISTS idx_namespaces_deleted_at ON namespaces (deleted_at);
CREATE INDEX IF NOT EXISTS idx_groups_deleted_at ON groups (deleted_at);
CREATE INDEX IF NOT EXISTS idx_targets_deleted_at ON targets (deleted_at);
CREATE INDEX IF NOT EXISTS idx_exporters_deleted_at ON exporters (deleted_at);
CREATE INDEX IF NOT EXISTS idx_alert_templates_deleted_at ON alert_templates (deleted_at);
CREATE INDEX IF NOT EXISTS idx_alert_rules_deleted_at ON alert_rules (deleted_at);
CREATE INDEX IF NOT EXISTS idx_check_settings_deleted_at ON check_settings (deleted_at);
CREATE INDEX IF NOT EXISTS idx_bootstrap_tokens_deleted_at ON bootstrap_tokens (deleted_at);

ALTER TABLE namespaces DROP CONSTRAINT IF EXISTS namespaces_name_key;
CREATE UNIQUE INDEX IF NOT EXISTS idx_namespaces_name_unique ON namespaces (name) WHERE deleted_at IS NULL;

ALTER TABLE targets DROP CONSTRAINT IF EXISTS targets_hostname_key;
CREATE UNIQUE INDEX IF NOT EXISTS idx_targets_hostname_unique ON targets (hostname) WHERE deleted_at IS NULL;

ALTER TABLE bootstrap_tokens DROP CONSTRAINT IF EXISTS bootstrap_tokens_token_key;
CREATE UNIQUE INDEX IF NOT EXISTS idx_bootstrap_tokens_token_unique ON bootstrap_tokens (token) WHERE deleted_at IS NULL;
