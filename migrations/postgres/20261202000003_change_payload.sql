-- Change notifications name what changed (`target_type:target_id` of the audit entry), so
-- that a node drops only the cached entries a change touches and keeps the rest as
-- last-known-good data. One notification per row; PostgreSQL folds identical payloads of one
-- transaction. Listeners of an older version ignore the payload.

DROP TRIGGER audit_log_notify ON audit_log;
CREATE OR REPLACE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('poortwachter_registry', NEW.target_type || ':' || left(NEW.target_id, 200));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_log_notify AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION registry_changed();
