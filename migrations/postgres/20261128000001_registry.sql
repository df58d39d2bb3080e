-- Device registry: owners, their devices and MAC addresses, and the audit trail.

CREATE TABLE owners (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    display_name  text NOT NULL,
    email         text,
    role          text NOT NULL CHECK (role IN ('staff', 'temp', 'intern', 'contractor')),
    department    text,
    valid_from    date,
    valid_until   date,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT owners_end_date_unless_staff CHECK (role = 'staff' OR valid_until IS NOT NULL),
    CONSTRAINT owners_valid_range CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from <= valid_until)
);
-- usernames are unique regardless of case, as in the directory
CREATE UNIQUE INDEX owners_username_ci ON owners (lower(username));

CREATE TABLE devices (
    id                     uuid PRIMARY KEY,
    owner_id               uuid NOT NULL REFERENCES owners (id),
    label                  text NOT NULL,
    kind                   text NOT NULL CHECK (kind IN ('laptop', 'tablet', 'phone', 'other')),
    status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'lost', 'revoked')),
    status_reason          text,
    status_changed_at      timestamptz,
    compliance             text NOT NULL DEFAULT 'unknown' CHECK (compliance IN ('unknown', 'compliant', 'noncompliant')),
    compliance_checked_at  timestamptz,
    compliance_note        text,
    -- SHA-256 of the device certificate, lowercase hex: identifies the device at EAP-TLS
    cert_fingerprint       text UNIQUE,
    -- serials are unique per issuing CA only: kept for CRLs and display, not as a key
    cert_serial            text,
    created_by             text NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    last_seen_at           timestamptz,
    last_seen_nas          text,
    last_seen_ssid         text
);
CREATE INDEX devices_owner ON devices (owner_id);

-- devices are never deleted (revoked instead); RESTRICT keeps a table rebuild in a later
-- migration from cascading into this table
-- a MAC belongs to at most one device in the whole registry
CREATE TABLE device_macs (
    mac        macaddr PRIMARY KEY,
    device_id  uuid NOT NULL REFERENCES devices (id) ON DELETE RESTRICT
);
CREATE INDEX device_macs_device ON device_macs (device_id);

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    before       jsonb,
    after        jsonb
);
-- `audit --target` looks up one owner or device, case-insensitively
CREATE INDEX audit_log_target ON audit_log (lower(target_id), id);

-- the audit trail is append-only
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
