-- Local accounts of the web console (`poortwachter user`): ICT (admin) and the service desk
-- (helpdesk) can still sign in when the directory is down. The password is kept only as an
-- argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). Usernames are stored in lower
-- case (the owner username rule, folded), so the primary key is unique regardless of case.
-- Expand only: a new table that older binaries never read, so no schema_compat mark.
CREATE TABLE web_accounts (
    username             TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    display_name         TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'helpdesk')),
    password_hash        TEXT NOT NULL,
    disabled             INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at           TEXT NOT NULL,
    created_by           TEXT NOT NULL,
    password_changed_at  TEXT NOT NULL,
    last_login_at        TEXT
) STRICT;
