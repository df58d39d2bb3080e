-- The AVG (GDPR): erasure after leaving, and an audit log that stays append-only while the
-- personal data in it can be erased.
--
-- audit_log keeps what happened, when, and who did it; the personal data of the person an
-- entry is about (username, names, e-mail address, MACs, labels, free-text reasons) goes to
-- audit_personal, one row per entry, tied to the owner it is about. Erasure deletes those
-- rows; audit_log is never updated. Owner entries name the owner by id, not by username.
-- chain is a SHA-256 hash chain over the audit_log rows (with a digest of the personal part,
-- salted so that it says nothing once the part is erased): `poortwachter audit verify`.

ALTER TABLE owners ADD COLUMN erased_at timestamptz;

ALTER TABLE audit_log ADD COLUMN personal_digest text;
ALTER TABLE audit_log ADD COLUMN chain text;

CREATE TABLE audit_personal (
    audit_id  bigint PRIMARY KEY,            -- audit_log.id
    owner_id  uuid,                          -- whose data (erasure deletes by it)
    salt      text NOT NULL,
    target    text,                          -- the target's name then (an owner's username)
    before    jsonb,
    after     jsonb
);
CREATE INDEX audit_personal_owner ON audit_personal (owner_id);

-- the newest link of the chain: one row, updated with each entry (serializes appends)
CREATE TABLE audit_head (
    id     integer PRIMARY KEY CHECK (id = 1),
    seq    bigint NOT NULL,
    chain  text NOT NULL
);
INSERT INTO audit_head (id, seq, chain)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- entries written before: their payloads move to audit_personal (whole, as they may hold
-- anything), tied to the owner they are about, and owner entries name the owner by id.
-- Once, here, the append-only trigger is lifted for it.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
ALTER TABLE audit_log DISABLE TRIGGER audit_log_notify;

INSERT INTO audit_personal (audit_id, owner_id, salt, target, before, after)
SELECT a.id, o.id, '', a.target_id, a.before, a.after
  FROM audit_log a JOIN owners o ON lower(o.username) = lower(a.target_id)
 WHERE a.target_type = 'owner';

INSERT INTO audit_personal (audit_id, owner_id, salt, target, before, after)
SELECT a.id, d.owner_id, '', NULL, a.before, a.after
  FROM audit_log a JOIN devices d ON d.id::text = lower(a.target_id)
 WHERE a.target_type = 'device' AND (a.before IS NOT NULL OR a.after IS NOT NULL);

UPDATE audit_log SET before = NULL, after = NULL
 WHERE id IN (SELECT audit_id FROM audit_personal);

UPDATE audit_log a SET target_id = o.id::text
  FROM owners o
 WHERE a.target_type = 'owner' AND lower(o.username) = lower(a.target_id);

ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_notify;

-- binaries before this one write owner entries with the personal data in them and no link
-- of the chain: they must not write to this schema
INSERT INTO schema_compat (migration, min_binary_migration) VALUES (20261203000002, 20261203000002);
