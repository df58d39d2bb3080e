-- The schema's compatibility mark (src/registry/schema.rs). A later migration that breaks
-- binaries older than itself (the contract step of expand-then-contract) inserts
-- (its version, the oldest migration a binary must know); a binary that ends before the
-- largest min_binary_migration refuses to work on the schema, naming it.
CREATE TABLE schema_compat (
    migration            INTEGER PRIMARY KEY,
    min_binary_migration INTEGER NOT NULL
);
