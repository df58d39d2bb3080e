-- The owner's life cycle: which feed manages an owner (added by hand, the HR CSV import, the
-- directory sync, SCIM), its id there, and why, when and by which feed it was disabled.
-- Expand only: older binaries keep working (the new columns have defaults or are nullable).

ALTER TABLE owners ADD COLUMN source text NOT NULL DEFAULT 'manual'
    CONSTRAINT owners_source CHECK (source IN ('manual', 'import', 'directory', 'scim'));
ALTER TABLE owners ADD COLUMN external_id text;
ALTER TABLE owners ADD COLUMN disabled_reason text;
ALTER TABLE owners ADD COLUMN disabled_at timestamptz;
ALTER TABLE owners ADD COLUMN disabled_by_source text
    CONSTRAINT owners_disabled_by_source
    CHECK (disabled_by_source IS NULL OR disabled_by_source IN ('import', 'directory', 'scim'));

-- owners an import added are managed by the import
UPDATE owners SET source = 'import'
 WHERE lower(username) IN (SELECT lower(target_id) FROM audit_log
                            WHERE target_type = 'owner' AND action = 'owner.import.add');

CREATE INDEX owners_source ON owners (source);
