-- Certificates the onboarding CA issued to devices. The device row holds the current one
-- (cert_fingerprint, cert_serial); this table keeps every one, so that `ca crl` can list those
-- superseded by a newer certificate or belonging to a lost or revoked device until they expire.
-- Serials and fingerprints are lowercase hex.

CREATE TABLE certificates (
    -- 16 random bytes: unique per CA, and a re-initialized CA does not reuse them in practice
    serial         text PRIMARY KEY,
    -- SHA-256 of the DER certificate
    fingerprint    text NOT NULL UNIQUE,
    device_id      uuid NOT NULL REFERENCES devices (id) ON DELETE RESTRICT,
    not_before     timestamptz NOT NULL,
    not_after      timestamptz NOT NULL,
    issued_at      timestamptz NOT NULL,
    issued_by      text NOT NULL,
    -- set when the device got a newer certificate
    superseded_at  timestamptz,
    CONSTRAINT certificates_validity CHECK (not_before < not_after)
);
CREATE INDEX certificates_device ON certificates (device_id);
-- a device has at most one current certificate
CREATE UNIQUE INDEX certificates_current ON certificates (device_id) WHERE superseded_at IS NULL;
