-- Roles live with the account (never derived from the e-mail address), and addresses are
-- verified by a mailed link.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
-- When the last verification / reset mail was queued: the resend cooldown is one conditional
-- UPDATE on these.
ALTER TABLE users ADD COLUMN verification_sent_at BIGINT;
ALTER TABLE users ADD COLUMN reset_sent_at BIGINT;

-- API keys carry scopes: a comma-separated subset of read, write, admin.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read,write';

-- Single-use mailed tokens (only their SHA-256 is stored).
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Failed sign-ins per address (known or not, so both answer alike), keyed by the SHA-256
-- of the normalised address.
CREATE TABLE login_failures (
    email_hash TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
