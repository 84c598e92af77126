-- Access levels are stored by rank: 1 NONE, 2 BASIC, 3 PREMIUM, 4 ADVANCED, 5 DEVELOPER.
-- Timestamps are Unix milliseconds on both backends.
CREATE TABLE invite_codes (
    code TEXT PRIMARY KEY,
    access_level INTEGER NOT NULL CHECK (access_level BETWEEN 2 AND 5),
    max_uses INTEGER NOT NULL CHECK (max_uses >= 0),
    uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at BIGINT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX invite_codes_created_at ON invite_codes (created_at);

CREATE TABLE beta_users (
    user_id TEXT PRIMARY KEY,
    access_level INTEGER NOT NULL CHECK (access_level BETWEEN 1 AND 5),
    invite_code TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX beta_users_joined_at ON beta_users (joined_at);

-- One row per (user, code): makes joining twice with one code idempotent.
CREATE TABLE redemptions (
    user_id TEXT NOT NULL,
    code TEXT NOT NULL REFERENCES invite_codes (code),
    redeemed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code)
);

CREATE TABLE features (
    name TEXT PRIMARY KEY,
    min_level INTEGER NOT NULL CHECK (min_level BETWEEN 1 AND 5),
    description TEXT NOT NULL DEFAULT ''
);

INSERT INTO features (name, min_level, description) VALUES
    ('early_effects', 2, 'New effects before general release'),
    ('hd_export', 3, 'Export results in full resolution'),
    ('batch_processing', 3, 'Process several images at once'),
    ('advanced_filters', 4, 'Fine-grained effect parameters'),
    ('api_access', 5, 'Programmatic access to the effects API'),
    ('debug_overlay', 5, 'Timing and pipeline overlay in the app');

CREATE TABLE analytics_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    access_level INTEGER NOT NULL,
    feature TEXT NOT NULL,
    action TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX analytics_events_occurred_at ON analytics_events (occurred_at);
