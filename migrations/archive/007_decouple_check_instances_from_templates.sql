-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 007_decouple_check_instances_from_templates of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 007: check_instances keep their own copy of the template fields, remember where they came
-- from (created_from_template_id/name, template_version) and no longer reference check_templates.

ALTER TABLE check_instances
    ADD COLUMN IF NOT EXISTS name VARCHAR(255),
    ADD COLUMN IF NOT EXISTS check_type VARCHAR(100),
    ADD COLUMN IF NOT EXISTS script_content TEXT,
    ADD COLUMN IF NOT EXISTS language VARCHAR(50) DEFAULT 'bash',
    ADD COLUMN IF NOT EXISTS default_config JSONB DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS description TEXT,
    ADD COLUMN IF NOT EXISTS version VARCHAR(50),
    ADD COLUMN IF NOT EXISTS hash VARCHAR(64),
    ADD COLUMN IF NOT EXISTS created_from_template_id UUID,
    ADD COLUMN IF NOT EXISTS created_from_template_name VARCHAR(255),
    ADD COLUMN IF NOT EXISTS template_version VARCHAR(50);

UPDATE check_instances ci
SET name = ct.name,
    check_type = ct.check_type,
    script_content = ct.script_content,
    language = ct.language,
    default_config = ct.default_config,
    description = ct.description,
    version = ct.version,
    hash = ct.hash,
    created_from_template_id = ct.id,
    created_from_template_name = ct.name,
    template_version = ct.version
FROM check_templates ct
WHERE ct.id = ci.template_id;

ALTER TABLE check_instances
    ALTER COLUMN name SET NOT NULL,
    ALTER COLUMN check_type SET NOT NULL,
    ALTER COLUMN script_content SET NOT NULL,
    ALTER COLUMN language SET NOT NULL;

DROP INDEX IF EXISTS idx_check_instances_unique_scope;
DROP INDEX IF EXISTS idx_check_instances_template;

ALTER TABLE check_instances DROP COLUMN IF EXISTS template_id CASCADE;

CREATE INDEX IF NOT EXISTS idx_check_instances_check_type ON check_instances (check_type) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_check_instances_created_from_template ON check_instances (created_from_template_id) WHERE deleted_at IS NULL;
