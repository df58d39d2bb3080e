-- Certificates the onboarding CA issued to devices. The device row holds the current one
-- (cert_fingerprint, cert_serial); this table keeps every one, so that `ca crl` can list those
-- superseded by a newer certificate or belonging to a lost or revoked device until they expire.
-- Serials and fingerprints are lowercase hex, times RFC 3339 TEXT in UTC.

CREATE TABLE certificates (
    -- 16 random bytes: unique per CA, and a re-initialized CA does not reuse them in practice
    serial         TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 of the DER certificate
    fingerprint    TEXT NOT NULL UNIQUE,
    device_id      BLOB NOT NULL REFERENCES devices (id) ON DELETE RESTRICT,
    not_before     TEXT NOT NULL,
    not_after      TEXT NOT NULL,
    issued_at      TEXT NOT NULL,
    issued_by      TEXT NOT NULL,
    -- set when the device got a newer certificate
    superseded_at  TEXT,
    CHECK (not_before < not_after)
) STRICT;
CREATE INDEX certificates_device ON certificates (device_id);
-- a device has at most one current certificate
CREATE UNIQUE INDEX certificates_current ON certificates (device_id) WHERE superseded_at IS NULL;
