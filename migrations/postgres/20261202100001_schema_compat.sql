-- The schema's compatibility mark (src/registry/schema.rs). A later migration that breaks
-- binaries older than itself (the contract step of expand-then-contract) inserts
-- (its version, the oldest migration a binary must know); a binary that ends before the
-- largest min_binary_migration refuses to work on the schema, naming it.
CREATE TABLE schema_compat (
    migration            bigint PRIMARY KEY,
    min_binary_migration bigint NOT NULL
);

-- Least privilege (deploy/postgres-setup.sql): the owner role migrates, the runtime role got
-- SELECT, INSERT, UPDATE, DELETE on every table the owner made (default privileges). Take
-- back what it must not have: the audit log is append-only for it, the migration history
-- and the compatibility mark are read-only. A single-role setup has no such grants: no-op.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT grantee FROM information_schema.role_table_grants
        WHERE table_schema = current_schema()
          AND table_name IN ('audit_log', '_sqlx_migrations', 'schema_compat')
          AND grantee <> current_user AND grantee <> 'PUBLIC'
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM %I', r.grantee);
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations, schema_compat FROM %I', r.grantee);
    END LOOP;
END
$$;
