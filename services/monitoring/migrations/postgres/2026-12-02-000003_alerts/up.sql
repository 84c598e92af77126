-- Alert rules as admins write them (`notify` is a JSON array of e-mail addresses and webhook
-- URLs). The defaults are seeded once (see `seeds`): a deleted default stays deleted.
CREATE TABLE alert_rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    metric TEXT NOT NULL,
    vital TEXT,
    project_id BIGINT,
    route TEXT,
    condition TEXT NOT NULL CHECK (condition IN ('gt', 'lt')),
    threshold DOUBLE PRECISION NOT NULL,
    window_seconds BIGINT NOT NULL,
    for_seconds BIGINT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
    repeat_interval_seconds BIGINT NOT NULL,
    notify TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What has been seeded once per database.
CREATE TABLE seeds (
    name TEXT PRIMARY KEY,
    seeded_at BIGINT NOT NULL
);

-- Alerts: from rules (`rule_id`), from Alertmanager, or reported by clients. At most one open
-- (not resolved) alert per fingerprint, which the partial unique index enforces, so two
-- evaluators that race open one alert and send one notice.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    rule_id TEXT,
    source TEXT NOT NULL CHECK (source IN ('rule', 'alertmanager', 'client')),
    fingerprint TEXT NOT NULL,
    name TEXT NOT NULL,
    severity TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'firing', 'acknowledged', 'resolved')),
    value DOUBLE PRECISION,
    notify TEXT NOT NULL,
    pending_since BIGINT NOT NULL,
    fired_at BIGINT,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    resolved_at BIGINT,
    resolved_by TEXT,
    last_notified_at BIGINT,
    notifications INTEGER NOT NULL DEFAULT 0,
    expires_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX alerts_open_fingerprint ON alerts (fingerprint) WHERE status <> 'resolved';
CREATE INDEX alerts_status ON alerts (status, updated_at, id);
CREATE INDEX alerts_updated ON alerts (updated_at, id);

-- Health probes of every service and its dependencies, one row per target and probe, kept a
-- day: the latest row says up or down, the cache counters' growth over a window the hit rate.
CREATE TABLE probe_samples (
    target TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    healthy BOOLEAN NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    version TEXT,
    detail TEXT,
    cache_hits BIGINT NOT NULL,
    cache_lookups BIGINT NOT NULL,
    PRIMARY KEY (target, checked_at)
);
CREATE INDEX probe_samples_checked_at ON probe_samples (checked_at);

-- Secrets the service makes for itself on first start (the alert-link signing key), shared by
-- every replica on the database.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
