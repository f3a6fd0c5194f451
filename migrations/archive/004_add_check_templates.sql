-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 004_add_check_templates of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 004: check_templates, versioned and content-hashed check scripts.

CREATE TABLE IF NOT EXISTS check_templates (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    check_type VARCHAR(100) NOT NULL,
    script_content TEXT NOT NULL,
    language VARCHAR(50) NOT NULL DEFAULT 'bash',
    default_config JSONB NOT NULL DEFAULT '{}',
    description TEXT,
    version VARCHAR(50) NOT NULL,
    hash VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_check_templates_deleted_at ON check_templates (deleted_at);
CREATE INDEX IF NOT EXISTS idx_check_templates_check_type ON check_templates (check_type) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_check_templates_type_version ON check_templates (check_type, version) WHERE deleted_at IS NULL;
