-- Timestamps are Unix milliseconds on both backends.

-- Projects an SDK reports into: the numeric id and the public key make its DSN.
CREATE TABLE projects (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

-- One row per group of events that are "the same error" (see domain::grouping): counted
-- with conditional UPDATEs, so concurrent events never lose a count.
CREATE TABLE error_groups (
    id TEXT PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    hash TEXT NOT NULL,
    title TEXT NOT NULL,
    culprit TEXT,
    level TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved', 'ignored')),
    regressed BOOLEAN NOT NULL DEFAULT FALSE,
    times_seen BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    first_release TEXT,
    last_release TEXT,
    last_event_id TEXT,
    UNIQUE (project_id, hash)
);
CREATE INDEX error_groups_last_seen ON error_groups (last_seen, id);

-- Who a group affected, once each: the count of rows is "users affected".
CREATE TABLE error_group_users (
    group_id TEXT NOT NULL REFERENCES error_groups (id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    PRIMARY KEY (group_id, user_key)
);

-- Events as received, kept for the retention period (a group's counts outlive them). The
-- id is the SDK's event_id: an SDK that retries a send is counted once.
CREATE TABLE error_events (
    project_id BIGINT NOT NULL,
    id TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES error_groups (id) ON DELETE CASCADE,
    received_at BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    level TEXT NOT NULL,
    release TEXT,
    environment TEXT,
    user_key TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX error_events_group ON error_events (group_id, received_at);
CREATE INDEX error_events_received_at ON error_events (received_at);
