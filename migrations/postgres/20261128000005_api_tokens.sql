-- Bearer tokens of the admin HTTP API. Only the SHA-256 of a token is kept (lowercase hex):
-- the token itself is shown once, when it is made. Tokens are revoked, never deleted, so that
-- the audit log's `api:<name>` actors keep meaning one token.
CREATE TABLE api_tokens (
    name          text PRIMARY KEY,
    scope         text NOT NULL CHECK (scope IN ('admin', 'helpdesk', 'posture')),
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
-- names are unique regardless of case, as usernames are
CREATE UNIQUE INDEX api_tokens_name_ci ON api_tokens (lower(name));
