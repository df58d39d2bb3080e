-- What the RADIUS server records: every access decision, and accounting sessions.

CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    nas        TEXT NOT NULL,              -- client name from the config
    nas_ip     TEXT,
    username   TEXT NOT NULL COLLATE NOCASE, -- User-Name as sent
    mac        TEXT,                       -- aa:bb:cc:dd:ee:ff
    ssid       TEXT,
    method     TEXT NOT NULL,
    device_id  BLOB,
    owner      TEXT COLLATE NOCASE,
    outcome    TEXT NOT NULL CHECK (outcome IN ('accept', 'reject')),
    vlan       INTEGER,
    reason     TEXT NOT NULL,
    message    TEXT NOT NULL,
    -- identical decisions for the same MAC folded into this row (log.decision_coalesce)
    repeats    INTEGER NOT NULL DEFAULT 0
) STRICT;
-- `why` reads one device's or owner's latest decisions
CREATE INDEX decisions_mac ON decisions (mac, at);
CREATE INDEX decisions_owner ON decisions (owner, at);
-- no index on `at`: ids grow with time, so the retention purge walks the oldest ids

CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    nas              TEXT NOT NULL,
    -- the access point within the client's network: NAS-Identifier, else NAS-IP-Address,
    -- else the source address (one client entry often covers many APs)
    nas_key          TEXT NOT NULL,
    acct_session_id  TEXT NOT NULL,
    nas_ip           TEXT,
    nas_port         INTEGER,
    username         TEXT,
    mac              TEXT,
    ssid             TEXT,
    device_id        BLOB,
    owner            TEXT COLLATE NOCASE,
    framed_ip        TEXT,
    class            TEXT,
    started_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    stopped_at       TEXT,
    session_time     INTEGER NOT NULL DEFAULT 0,
    input_octets     INTEGER NOT NULL DEFAULT 0,
    output_octets    INTEGER NOT NULL DEFAULT 0,
    input_packets    INTEGER NOT NULL DEFAULT 0,
    output_packets   INTEGER NOT NULL DEFAULT 0,
    terminate_cause  TEXT
) STRICT;
-- one open session per access point and Acct-Session-Id; an AP may reuse ids after a reboot
CREATE UNIQUE INDEX sessions_open ON sessions (nas, nas_key, acct_session_id) WHERE stopped_at IS NULL;
CREATE INDEX sessions_key ON sessions (nas, nas_key, acct_session_id, id);
CREATE INDEX sessions_mac ON sessions (mac, id);
CREATE INDEX sessions_active ON sessions (stopped_at, id);
