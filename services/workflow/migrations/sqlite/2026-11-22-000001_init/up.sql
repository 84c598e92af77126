-- Timestamps are Unix milliseconds on both backends.
-- Ids are UUIDv7 text: ordering by id is ordering by creation time.
CREATE TABLE analyses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT,
    content_hash TEXT NOT NULL,
    health_score INTEGER NOT NULL CHECK (health_score BETWEEN 0 AND 100),
    grade TEXT NOT NULL,
    issue_count INTEGER NOT NULL CHECK (issue_count >= 0),
    steps INTEGER NOT NULL CHECK (steps >= 0),
    -- The full result (every finding and the stats) as JSON; tiers are applied on read.
    result TEXT NOT NULL,
    cached BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX analyses_user_id ON analyses (user_id, id);

-- Analyses used per user in one clock hour; rows of past hours are removed as users return.
CREATE TABLE analysis_quota (
    user_id TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, window_start)
);
