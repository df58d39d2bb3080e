-- One-time PostgreSQL setup for poortwachter, least privilege. Run as a superuser:
--
--   sudo -u postgres psql -v owner_password='...' -v runtime_password='...' \
--        -f /usr/share/poortwachter/postgres-setup.sql
--
-- Two roles:
--   poortwachter_owner  owns the database and its schema; only `poortwachter migrate` logs in
--                       as it (POORTWACHTER_DATABASE__URL=postgres://poortwachter_owner@...).
--   poortwachter        the runtime role of `serve` and the ICT command line: reads and writes
--                       rows, cannot change the schema; the audit log is append-only for it
--                       (INSERT and SELECT; no UPDATE, DELETE or TRUNCATE, and it cannot
--                       disable the audit trigger: it does not own the table). Run `serve` with
--                       database.migrate_on_start = false.
-- Default privileges give the runtime role the same rights on every table a later migration
-- makes; the migration 20261202100001_schema_compat takes back its rights to change the audit
-- log and the migration history.
\set ON_ERROR_STOP on
CREATE ROLE poortwachter_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE poortwachter LOGIN PASSWORD :'runtime_password';
CREATE DATABASE poortwachter OWNER poortwachter_owner ENCODING 'UTF8';
REVOKE ALL ON DATABASE poortwachter FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE poortwachter TO poortwachter;

\connect poortwachter
-- only the owner creates objects (PostgreSQL 15 and later revoke CREATE from PUBLIC already)
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO poortwachter;
ALTER DEFAULT PRIVILEGES FOR ROLE poortwachter_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO poortwachter;
ALTER DEFAULT PRIVILEGES FOR ROLE poortwachter_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO poortwachter;
