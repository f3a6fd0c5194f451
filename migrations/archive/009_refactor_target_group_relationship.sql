-- ARCHIVED: kept for reference only. Do NOT run this file.
-- This is historical migration 009_refactor_target_group_relationship of the old 001..009 chain. It has been replaced by
-- the unified, idempotent migrations/001_initial_schema.sql, which replaces the chain.
--
-- 009: targets belong to groups through the target_groups junction table; the group a target
-- owns by default is flagged with is_default_own. A trigger stops a live target from losing
-- its last group. target_secondary_groups and targets.primary_group_id are dropped.

ALTER TABLE groups ADD COLUMN IF NOT EXISTS is_default_own BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX IF NOT EXISTS idx_groups_is_default_own ON groups (is_default_own) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS target_groups (
    target_id UUID NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    is_default_own BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY (target_id, group_id)
);

CREATE INDEX IF NOT EXISTS idx_target_groups_target ON target_groups (target_id);
CREATE INDEX IF NOT EXISTS idx_target_groups_group ON target_groups (group_id);

INSERT INTO target_groups (target_id, group_id, is_default_own, created_at)
SELECT t.id, t.primary_group_id, true, t.created_at
FROM targets t
WHERE t.primary_group_id IS NOT NULL
ON CONFLICT (target_id, group_id) DO NOTHING;

INSERT INTO target_groups (target_id, group_id, is_default_own, created_at)
SELECT tsg.target_id, tsg.group_id, false, tsg.created_at
FROM target_secondary_groups tsg
ON CONFLICT (target_id, group_id) DO NOTHING;

CREATE OR REPLACE FUNCTION prevent_target_orphan()
RETURNS TRIGGER AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM targets t WHERE t.id = OLD.target_id AND t.deleted_at IS NULL)
       AND NOT EXISTS (
           SELECT 1 FROM target_groups tg
           WHERE tg.target_id = OLD.target_id AND tg.group_id <> OLD.group_id
       ) THEN
        RAISE EXCEPTION 'Cannot remove the last group of target %', OLD.target_id;
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS prevent_target_orphan_trigger ON target_groups;

CREATE TRIGGER prevent_target_orphan_trigger
    BEFORE DELETE ON target_groups
    FOR EACH ROW
    EXECUTE FUNCTION prevent_target_orphan();

DROP TABLE IF EXISTS target_secondary_groups;

DROP INDEX IF EXISTS idx_targets_primary_group;

ALTER TABLE targets DROP COLUMN IF EXISTS primary_group_id;
