-- A token scope for SCIM 2.0 provisioning (`token create --scope scim`): such a token reaches
-- only /scim/v2. Expand only: an older binary keeps working (it cannot read a scim token's
-- scope, so it refuses that one token). SQLite cannot change a CHECK: the table is rebuilt.
CREATE TABLE api_tokens_new (
    name          TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    scope         TEXT NOT NULL CHECK (scope IN ('admin', 'helpdesk', 'posture', 'scim')),
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    revoked_at    TEXT,
    last_used_at  TEXT
) STRICT;
INSERT INTO api_tokens_new (name, scope, token_hash, created_at, created_by, revoked_at, last_used_at)
    SELECT name, scope, token_hash, created_at, created_by, revoked_at, last_used_at FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
