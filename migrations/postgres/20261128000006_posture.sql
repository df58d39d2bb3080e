-- Compliance posture reports from MDMs and agents, with their evaluation against
-- [compliance]. The device row holds the outcome (compliance, compliance_checked_at =
-- collected_at, compliance_note); this table keeps every report and its failed checks.

CREATE TABLE posture_reports (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id     uuid NOT NULL REFERENCES devices (id) ON DELETE RESTRICT,
    received_at   timestamptz NOT NULL,
    -- when the agent measured: the device's compliance is dated from this
    collected_at  timestamptz NOT NULL,
    submitted_by  text NOT NULL,
    source        text,
    compliance    text NOT NULL CHECK (compliance IN ('compliant', 'noncompliant')),
    -- the report as received (trimmed), and the failed checks [{check, message}]
    report        jsonb NOT NULL,
    failed        jsonb NOT NULL
);
-- the latest report of a device
CREATE INDEX posture_reports_device ON posture_reports (device_id, id);
