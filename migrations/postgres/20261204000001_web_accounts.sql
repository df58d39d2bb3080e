-- Local accounts of the web console (`poortwachter user`): ICT (admin) and the service desk
-- (helpdesk) can still sign in when the directory is down. The password is kept only as an
-- argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). Usernames are stored in lower
-- case (the owner username rule, folded), so the primary key is unique regardless of case.
-- Expand only: a new table that older binaries never read, so no schema_compat mark. The
-- runtime role gets SELECT, INSERT, UPDATE, DELETE on it through the default privileges
-- (deploy/postgres-setup.sql), as on every table.
CREATE TABLE web_accounts (
    username             text PRIMARY KEY CHECK (username = lower(username)),
    display_name         text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('admin', 'helpdesk')),
    password_hash        text NOT NULL,
    disabled             boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL,
    created_by           text NOT NULL,
    password_changed_at  timestamptz NOT NULL,
    last_login_at        timestamptz
);
