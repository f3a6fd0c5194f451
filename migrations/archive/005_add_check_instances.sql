-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 005_add_check_instances of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 005: check_instances, a template applied at global, namespace or group scope.

CREATE TABLE IF NOT EXISTS check_instances (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    template_id UUID NOT NULL REFERENCES check_templates (id) ON DELETE CASCADE,
    scope VARCHAR(20) NOT NULL CHECK (scope IN ('global', 'namespace', 'group')),
    namespace_id UUID REFERENCES namespaces (id) ON DELETE CASCADE,
    group_id UUID REFERENCES groups (id) ON DELETE CASCADE,
    config JSONB NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL DEFAULT 100,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP,
    CONSTRAINT check_instances_scope_ids CHECK (
        (scope = 'global' AND namespace_id IS NULL AND group_id IS NULL)
        OR (scope = 'namespace' AND namespace_id IS NOT NULL AND group_id IS NULL)
        OR (scope = 'group' AND group_id IS NOT NULL AND namespace_id IS NULL)
    )
);

CREATE INDEX IF NOT EXISTS idx_check_instances_deleted_at ON check_instances (deleted_at);
CREATE INDEX IF NOT EXISTS idx_check_instances_template ON check_instances (template_id) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_check_instances_scope ON check_instances (scope) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_check_instances_namespace ON check_instances (namespace_id) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_check_instances_group ON check_instances (group_id) WHERE deleted_at IS NULL;

-- One instance per template per scope.
CREATE UNIQUE INDEX IF NOT EXISTS idx_check_instances_unique_scope ON check_instances (
    template_id,
    scope,
    COALESCE(namespace_id, '00000000-0000-0000-0000-000000000000'::uuid),
    COALESCE(group_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE deleted_at IS NULL;
