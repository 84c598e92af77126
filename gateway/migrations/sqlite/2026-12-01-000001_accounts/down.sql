DROP TABLE login_failures;
DROP TABLE email_tokens;
ALTER TABLE api_keys DROP COLUMN scopes;
ALTER TABLE users DROP COLUMN reset_sent_at;
ALTER TABLE users DROP COLUMN verification_sent_at;
ALTER TABLE users DROP COLUMN email_verified_at;
ALTER TABLE users DROP COLUMN role;
