-- Compliance posture reports from MDMs and agents, with their evaluation against
-- [compliance]. The device row holds the outcome (compliance, compliance_checked_at =
-- collected_at, compliance_note); this table keeps every report and its failed checks.
-- Times RFC 3339 TEXT in UTC; report and failed are JSON text.

CREATE TABLE posture_reports (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id     BLOB NOT NULL REFERENCES devices (id) ON DELETE RESTRICT,
    received_at   TEXT NOT NULL,
    -- when the agent measured: the device's compliance is dated from this
    collected_at  TEXT NOT NULL,
    submitted_by  TEXT NOT NULL,
    source        TEXT,
    compliance    TEXT NOT NULL CHECK (compliance IN ('compliant', 'noncompliant')),
    -- the report as received (trimmed), and the failed checks [{check, message}]
    report        TEXT NOT NULL,
    failed        TEXT NOT NULL
) STRICT;
-- the latest report of a device
CREATE INDEX posture_reports_device ON posture_reports (device_id, id);
