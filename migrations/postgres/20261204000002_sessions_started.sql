-- Sessions by start, for the console's occupancy (devices connected per hour and location):
-- the sessions overlapping a day or a week are found without reading the whole table; and the
-- open session of an address, for the portal (which device is asking).
-- Expand only: indexes, harmless to older binaries.
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_open_ip ON sessions (framed_ip) WHERE stopped_at IS NULL;
