-- The owner's life cycle: which feed manages an owner (added by hand, the HR CSV import, the
-- directory sync, SCIM), its id there, and why, when and by which feed it was disabled.
-- Expand only: older binaries keep working (the new columns have defaults or are nullable).

ALTER TABLE owners ADD COLUMN source TEXT NOT NULL DEFAULT 'manual'
    CHECK (source IN ('manual', 'import', 'directory', 'scim'));
ALTER TABLE owners ADD COLUMN external_id TEXT;
ALTER TABLE owners ADD COLUMN disabled_reason TEXT;
ALTER TABLE owners ADD COLUMN disabled_at TEXT;
ALTER TABLE owners ADD COLUMN disabled_by_source TEXT
    CHECK (disabled_by_source IS NULL OR disabled_by_source IN ('import', 'directory', 'scim'));

-- owners an import added are managed by the import
UPDATE owners SET source = 'import'
 WHERE username IN (SELECT target_id FROM audit_log
                     WHERE target_type = 'owner' AND action = 'owner.import.add');

CREATE INDEX owners_source ON owners (source);
