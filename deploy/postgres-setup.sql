-- One-time PostgreSQL setup for poortwachter (run as a superuser, e.g. `sudo -u postgres psql -f`).
-- poortwachter applies its own schema migrations at start and with `poortwachter migrate`.
CREATE ROLE poortwachter LOGIN PASSWORD 'change-me';
CREATE DATABASE poortwachter OWNER poortwachter ENCODING 'UTF8';
