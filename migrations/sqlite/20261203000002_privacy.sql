-- The AVG (GDPR): erasure after leaving, and an audit log that stays append-only while the
-- personal data in it can be erased.
--
-- audit_log keeps what happened, when, and who did it; the personal data of the person an
-- entry is about (username, names, e-mail address, MACs, labels, free-text reasons) goes to
-- audit_personal, one row per entry, tied to the owner it is about. Erasure deletes those
-- rows; audit_log is never updated. Owner entries name the owner by id, not by username.
-- chain is a SHA-256 hash chain over the audit_log rows (with a digest of the personal part,
-- salted so that it says nothing once the part is erased): `poortwachter audit verify`.

ALTER TABLE owners ADD COLUMN erased_at TEXT;

ALTER TABLE audit_log ADD COLUMN personal_digest TEXT;
ALTER TABLE audit_log ADD COLUMN chain TEXT;

CREATE TABLE audit_personal (
    audit_id  INTEGER PRIMARY KEY NOT NULL,    -- audit_log.id
    owner_id  BLOB,                            -- whose data (erasure deletes by it)
    salt      TEXT NOT NULL,
    target    TEXT,                            -- the target's name then (an owner's username)
    before    TEXT,
    after     TEXT
) STRICT;
CREATE INDEX audit_personal_owner ON audit_personal (owner_id);

-- the newest link of the chain: one row, updated with each entry (serializes appends)
CREATE TABLE audit_head (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq    INTEGER NOT NULL,
    chain  TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, chain)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- entries written before: their payloads move to audit_personal (whole, as they may hold
-- anything), tied to the owner they are about, and owner entries name the owner by id.
-- Once, here, the append-only trigger is lifted for it.
DROP TRIGGER audit_log_no_update;

INSERT INTO audit_personal (audit_id, owner_id, salt, target, before, after)
SELECT a.id, o.id, '', a.target_id, a.before, a.after
  FROM audit_log a JOIN owners o ON o.username = a.target_id
 WHERE a.target_type = 'owner';

INSERT INTO audit_personal (audit_id, owner_id, salt, target, before, after)
SELECT a.id, d.owner_id, '', NULL, a.before, a.after
  FROM audit_log a JOIN devices d ON lower(hex(d.id)) = lower(replace(a.target_id, '-', ''))
 WHERE a.target_type = 'device' AND (a.before IS NOT NULL OR a.after IS NOT NULL);

UPDATE audit_log SET before = NULL, after = NULL
 WHERE id IN (SELECT audit_id FROM audit_personal);

UPDATE audit_log
   SET target_id = (SELECT lower(substr(hex(o.id), 1, 8) || '-' || substr(hex(o.id), 9, 4) || '-'
                              || substr(hex(o.id), 13, 4) || '-' || substr(hex(o.id), 17, 4) || '-'
                              || substr(hex(o.id), 21))
                      FROM owners o WHERE o.username = audit_log.target_id)
 WHERE target_type = 'owner'
   AND EXISTS (SELECT 1 FROM owners o WHERE o.username = audit_log.target_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- binaries before this one write owner entries with the personal data in them and no link
-- of the chain: they must not write to this schema
INSERT INTO schema_compat (migration, min_binary_migration) VALUES (20261203000002, 20261203000002);
