-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 002_refactor_namespace_to_table of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 002: namespaces become a table; groups.namespace (text) is replaced by groups.namespace_id.

CREATE TABLE IF NOT EXISTS namespaces (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(50) NOT NULL UNIQUE,
    description TEXT,
    policy_priority INTEGER NOT NULL DEFAULT 100,
    merge_strategy VARCHAR(20) NOT NULL DEFAULT 'merge' CHECK (merge_strategy IN ('override', 'merge', 'append')),
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP NOT NULL DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_namespaces_policy_priority ON namespaces (policy_priority);

INSERT INTO namespaces (name, description, policy_priority, merge_strategy) VALUES
    ('infrastructure', 'Physical infrastructure hierarchy', 100, 'merge'),
    ('logical', 'Logical or organizational grouping', 50, 'merge'),
    ('environment', 'Deployment environment', 10, 'override')
ON CONFLICT (name) DO NOTHING;

ALTER TABLE groups ADD COLUMN IF NOT EXISTS namespace_id UUID;

UPDATE groups g
SET namespace_id = n.id
FROM namespaces n
WHERE n.name = g.namespace;

ALTER TABLE groups ALTER COLUMN namespace_id SET NOT NULL;

ALTER TABLE groups
    ADD CONSTRAINT fk_groups_namespace FOREIGN KEY (namespace_id) REFERENCES namespaces (id) ON DELETE RESTRICT;

DROP INDEX IF EXISTS idx_groups_namespace;

ALTER TABLE groups DROP COLUMN IF EXISTS namespace;

CREATE INDEX IF NOT EXISTS idx_groups_namespace_id ON groups (namespace_id);

CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS update_namespaces_updated_at ON namespaces;

CREATE TRIGGER update_namespaces_updated_at
    BEFORE UPDATE ON namespaces
    FOR EACH ROW
    EXECUTE FUNCTION update_updated_at_column();
