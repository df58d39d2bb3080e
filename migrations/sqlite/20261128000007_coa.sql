-- Dynamic authorization (RFC 5176): every Disconnect-Request and CoA-Request sent, and what
-- the NAS answered.

CREATE TABLE coa_requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id       INTEGER,                 -- sessions.id
    acct_session_id  TEXT NOT NULL,
    nas              TEXT NOT NULL,           -- client name from the config
    nas_addr         TEXT NOT NULL,           -- where it was sent, ip:port
    device_id        BLOB,
    kind             TEXT NOT NULL CHECK (kind IN ('disconnect', 'coa')),
    reason           TEXT NOT NULL,           -- what triggered it, e.g. `device.revoke by ict`
    actor            TEXT NOT NULL,
    sent_at          TEXT NOT NULL,
    answered_at      TEXT,
    result           TEXT NOT NULL CHECK (result IN ('ack', 'nak', 'timeout', 'error')),
    error_cause      INTEGER,                 -- RFC 5176 §3.5, on a NAK
    attempts         INTEGER NOT NULL
) STRICT;
CREATE INDEX coa_requests_session ON coa_requests (session_id, id);
CREATE INDEX coa_requests_device ON coa_requests (device_id, id);
