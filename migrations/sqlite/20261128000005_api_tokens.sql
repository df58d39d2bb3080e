-- Bearer tokens of the admin HTTP API. Only the SHA-256 of a token is kept (lowercase hex):
-- the token itself is shown once, when it is made. Tokens are revoked, never deleted, so that
-- the audit log's `api:<name>` actors keep meaning one token.
CREATE TABLE api_tokens (
    name          TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    scope         TEXT NOT NULL CHECK (scope IN ('admin', 'helpdesk', 'posture')),
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    revoked_at    TEXT,
    last_used_at  TEXT
) STRICT;
