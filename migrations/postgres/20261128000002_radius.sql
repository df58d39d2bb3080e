-- What the RADIUS server records: every access decision, and accounting sessions; and a
-- notification on every registry change so that servers drop what they cached.

CREATE TABLE decisions (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    nas        text NOT NULL,              -- client name from the config
    nas_ip     text,
    username   text NOT NULL,              -- User-Name as sent
    mac        text,                       -- aa:bb:cc:dd:ee:ff
    ssid       text,
    method     text NOT NULL,
    device_id  uuid,
    owner      text,
    outcome    text NOT NULL CHECK (outcome IN ('accept', 'reject')),
    vlan       integer,
    reason     text NOT NULL,
    message    text NOT NULL,
    -- identical decisions for the same MAC folded into this row (log.decision_coalesce)
    repeats    integer NOT NULL DEFAULT 0
);
-- `why` reads one device's or owner's latest decisions
CREATE INDEX decisions_mac ON decisions (mac, at);
CREATE INDEX decisions_owner ON decisions (lower(owner), at);
-- no index on `at`: ids grow with time, so the retention purge walks the oldest ids

CREATE TABLE sessions (
    id               bigserial PRIMARY KEY,
    nas              text NOT NULL,
    -- the access point within the client's network: NAS-Identifier, else NAS-IP-Address,
    -- else the source address (one client entry often covers many APs)
    nas_key          text NOT NULL,
    acct_session_id  text NOT NULL,
    nas_ip           text,
    nas_port         bigint,
    username         text,
    mac              text,
    ssid             text,
    device_id        uuid,
    owner            text,
    framed_ip        text,
    class            text,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    stopped_at       timestamptz,
    session_time     bigint NOT NULL DEFAULT 0,
    input_octets     bigint NOT NULL DEFAULT 0,
    output_octets    bigint NOT NULL DEFAULT 0,
    input_packets    bigint NOT NULL DEFAULT 0,
    output_packets   bigint NOT NULL DEFAULT 0,
    terminate_cause  text
);
-- one open session per access point and Acct-Session-Id; an AP may reuse ids after a reboot
CREATE UNIQUE INDEX sessions_open ON sessions (nas, nas_key, acct_session_id) WHERE stopped_at IS NULL;
CREATE INDEX sessions_key ON sessions (nas, nas_key, acct_session_id, id);
CREATE INDEX sessions_mac ON sessions (mac, id);
CREATE INDEX sessions_active ON sessions (stopped_at, id);

-- every registry change writes an audit entry: tell listening servers (once per statement;
-- delivered at commit, so never before the change is visible)
CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('poortwachter_registry', '');
    RETURN NULL;
END $$;
CREATE TRIGGER audit_log_notify AFTER INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
