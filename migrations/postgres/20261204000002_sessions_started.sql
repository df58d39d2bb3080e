-- Sessions by start, for the console's occupancy (devices connected per hour and location):
-- the sessions overlapping a day or a week are found without reading the whole table.
-- Expand only: an index, harmless to older binaries.
CREATE INDEX sessions_started ON sessions (started_at);
