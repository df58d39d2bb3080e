-- Device registry: owners, their devices and MAC addresses, and the audit trail.
-- uuids are 16-byte BLOBs, times RFC 3339 TEXT in UTC, dates YYYY-MM-DD TEXT.

CREATE TABLE owners (
    id            BLOB PRIMARY KEY NOT NULL,
    -- usernames are unique regardless of case, as in the directory (ASCII, as validated)
    username      TEXT NOT NULL COLLATE NOCASE UNIQUE,
    display_name  TEXT NOT NULL,
    email         TEXT,
    role          TEXT NOT NULL CHECK (role IN ('staff', 'temp', 'intern', 'contractor')),
    department    TEXT,
    valid_from    TEXT,
    valid_until   TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CHECK (role = 'staff' OR valid_until IS NOT NULL),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from <= valid_until)
) STRICT;

CREATE TABLE devices (
    id                     BLOB PRIMARY KEY NOT NULL,
    owner_id               BLOB NOT NULL REFERENCES owners (id),
    label                  TEXT NOT NULL,
    kind                   TEXT NOT NULL CHECK (kind IN ('laptop', 'tablet', 'phone', 'other')),
    status                 TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'lost', 'revoked')),
    status_reason          TEXT,
    status_changed_at      TEXT,
    compliance             TEXT NOT NULL DEFAULT 'unknown' CHECK (compliance IN ('unknown', 'compliant', 'noncompliant')),
    compliance_checked_at  TEXT,
    compliance_note        TEXT,
    -- SHA-256 of the device certificate, lowercase hex: identifies the device at EAP-TLS
    cert_fingerprint       TEXT UNIQUE,
    -- serials are unique per issuing CA only: kept for CRLs and display, not as a key
    cert_serial            TEXT,
    created_by             TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    last_seen_at           TEXT,
    last_seen_nas          TEXT,
    last_seen_ssid         TEXT
) STRICT;
CREATE INDEX devices_owner ON devices (owner_id);

-- devices are never deleted (revoked instead); RESTRICT keeps a table rebuild in a later
-- migration from cascading into this table
-- a MAC (normal form aa:bb:cc:dd:ee:ff) belongs to at most one device in the whole registry
CREATE TABLE device_macs (
    mac        TEXT PRIMARY KEY NOT NULL,
    device_id  BLOB NOT NULL REFERENCES devices (id) ON DELETE RESTRICT
) STRICT;
CREATE INDEX device_macs_device ON device_macs (device_id);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL COLLATE NOCASE,
    before       TEXT,
    after        TEXT
);
-- `audit --target` looks up one owner or device (target_id is COLLATE NOCASE)
CREATE INDEX audit_log_target ON audit_log (target_id, id);

-- the audit trail is append-only
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
