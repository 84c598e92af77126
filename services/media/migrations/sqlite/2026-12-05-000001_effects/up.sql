-- AI effects: the catalogue, the runs, and each user's run allowance.

-- An effect an admin defined: the provider's app, the node that takes the photo, the typed
-- parameters (a JSON array, checked by portico-effects before it is stored), the least beta
-- level that sees it, and the region whose app configuration it belongs to (none: all).
CREATE TABLE effects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    webapp_id TEXT NOT NULL,
    image_node_id TEXT NOT NULL,
    image_field_name TEXT NOT NULL,
    parameters TEXT NOT NULL,
    min_level TEXT NOT NULL CHECK (min_level IN ('NONE', 'BASIC', 'PREMIUM', 'ADVANCED', 'DEVELOPER')),
    enabled BOOLEAN NOT NULL,
    region TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One run of an effect on one of the user's photos. A run keeps what it sends (the app and
-- the node values), so editing or deleting the effect later does not change it. `step` is
-- where the run job is: uploading the photo, starting the task, polling it, fetching the
-- result. `start_sent` counts task starts sent: once one was sent and its answer lost, the
-- run is never started again (the task may exist). Status moves only by conditional UPDATEs
-- from a non-terminal status, so a late poll, webhook or cancel cannot revive a finished run;
-- `claimed_until` is the lease of the replica driving it. A run's webhook token is not
-- stored: it is an HMAC of the run id under the service's key, checked without a lookup.
CREATE TABLE effect_runs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    effect_id TEXT NOT NULL,
    effect_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    webapp_id TEXT NOT NULL,
    image_node TEXT NOT NULL,
    nodes TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    step TEXT NOT NULL CHECK (step IN ('upload', 'start', 'poll', 'fetch', 'done')),
    progress INTEGER CHECK (progress BETWEEN 0 AND 100),
    error TEXT,
    result_media_id TEXT,
    provider_file TEXT,
    task_id TEXT,
    start_sent INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    polls INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    deadline_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX effect_runs_user ON effect_runs (user_id, id);
CREATE INDEX effect_runs_due ON effect_runs (next_at) WHERE status IN ('queued', 'running');

-- Each user's allowance: runs started in the current hour and runs not yet finished. Both are
-- taken by one conditional UPDATE (WHERE active < concurrent limit AND used < hourly limit, or
-- a new hour), and `active` is given back in the transaction that finishes the run.
CREATE TABLE effect_allowance (
    user_id TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    used INTEGER NOT NULL CHECK (used >= 0),
    active INTEGER NOT NULL CHECK (active >= 0)
);
