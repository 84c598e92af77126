-- Web vitals as log-bucketed histograms (portico-sketch) per minute and dimension: one row
-- per (minute, vital, page, device, connection, rating, bucket), counted by upserts, so a
-- month of dashboards reads buckets, never raw values.
CREATE TABLE vital_buckets (
    minute BIGINT NOT NULL,
    name TEXT NOT NULL,
    page TEXT NOT NULL,
    device TEXT NOT NULL,
    connection TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('good', 'needs-improvement', 'poor')),
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (minute, name, page, device, connection, rating, bucket)
);

-- Funnel steps: a session reaches a step once (the key), however often it repeats it.
CREATE TABLE funnel_steps (
    session_id TEXT NOT NULL,
    step TEXT NOT NULL,
    user_id TEXT,
    occurred_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, step)
);
CREATE INDEX funnel_steps_occurred_at ON funnel_steps (occurred_at);

-- Product events as the clients sent them.
CREATE TABLE analytics_events (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    session_id TEXT,
    user_id TEXT,
    properties TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX analytics_events_occurred_at ON analytics_events (occurred_at);
