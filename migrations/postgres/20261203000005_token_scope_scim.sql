-- A token scope for SCIM 2.0 provisioning (`token create --scope scim`): such a token reaches
-- only /scim/v2. Expand only: an older binary keeps working (it cannot read a scim token's
-- scope, so it refuses that one token).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check
    CHECK (scope IN ('admin', 'helpdesk', 'posture', 'scim'));
