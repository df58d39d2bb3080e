-- Dynamic authorization (RFC 5176): every Disconnect-Request and CoA-Request sent, and what
-- the NAS answered.

CREATE TABLE coa_requests (
    id               bigserial PRIMARY KEY,
    session_id       bigint,                  -- sessions.id
    acct_session_id  text NOT NULL,
    nas              text NOT NULL,           -- client name from the config
    nas_addr         text NOT NULL,           -- where it was sent, ip:port
    device_id        uuid,
    kind             text NOT NULL CHECK (kind IN ('disconnect', 'coa')),
    reason           text NOT NULL,           -- what triggered it, e.g. `device.revoke by ict`
    actor            text NOT NULL,
    sent_at          timestamptz NOT NULL,
    answered_at      timestamptz,
    result           text NOT NULL CHECK (result IN ('ack', 'nak', 'timeout', 'error')),
    error_cause      integer,                 -- RFC 5176 §3.5, on a NAK
    attempts         integer NOT NULL
);
CREATE INDEX coa_requests_session ON coa_requests (session_id, id);
CREATE INDEX coa_requests_device ON coa_requests (device_id, id);
