-- Decisions about requests that named no registered device (unknown_device, registration),
-- counted per client, access point, method, outcome, reason and minute instead of stored one
-- row each (server/aggregate.rs): a flood of never-seen MACs grows this table by a bounded
-- number of rows a minute. `why MAC` finds a refused MAC in the sample of the first 32.
CREATE TABLE decision_aggregates (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    minute   TEXT NOT NULL,              -- the start of the minute counted
    nas      TEXT NOT NULL,              -- client name from the config
    ap       TEXT NOT NULL,              -- NAS-IP-Address, else source address; or `other`
    method   TEXT NOT NULL,
    outcome  TEXT NOT NULL CHECK (outcome IN ('accept', 'reject')),
    reason   TEXT NOT NULL,
    count    INTEGER NOT NULL,           -- requests in that minute
    macs     TEXT NOT NULL,              -- the first distinct MACs, aa:bb:cc:dd:ee:ff, comma-separated
    message  TEXT NOT NULL               -- the first decision's message
) STRICT;
-- the retention purge
CREATE INDEX decision_aggregates_minute ON decision_aggregates (minute);
