-- Decisions about requests that named no registered device (unknown_device, registration),
-- counted per client, access point, method, outcome, reason and minute instead of stored one
-- row each (server/aggregate.rs): a flood of never-seen MACs grows this table by a bounded
-- number of rows a minute. `why MAC` finds a refused MAC in the sample of the first 32.
CREATE TABLE decision_aggregates (
    id       bigserial PRIMARY KEY,
    minute   timestamptz NOT NULL,       -- the start of the minute counted
    nas      text NOT NULL,              -- client name from the config
    ap       text NOT NULL,              -- NAS-IP-Address, else source address; or `other`
    method   text NOT NULL,
    outcome  text NOT NULL CHECK (outcome IN ('accept', 'reject')),
    reason   text NOT NULL,
    count    bigint NOT NULL,            -- requests in that minute
    macs     text NOT NULL,              -- the first distinct MACs, aa:bb:cc:dd:ee:ff, comma-separated
    message  text NOT NULL               -- the first decision's message
);
-- the retention purge
CREATE INDEX decision_aggregates_minute ON decision_aggregates (minute);
