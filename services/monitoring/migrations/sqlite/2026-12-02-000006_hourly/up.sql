-- Hourly rollups beside the per-minute rows, written in the same transaction as them, so a
-- dashboard over a month reads 720 hours (plus the minutes at its two edges) instead of
-- 43,200 minutes. The dimensions no dashboard reads (page, device, connection) are summed
-- away. Existing rows are rolled up here once.
CREATE TABLE vital_hours (
    hour BIGINT NOT NULL,
    name TEXT NOT NULL,
    rating TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, name, rating, bucket)
);
INSERT INTO vital_hours (hour, name, rating, bucket, count)
SELECT (minute / 3600000) * 3600000, name, rating, bucket, CAST(SUM(count) AS INTEGER)
FROM vital_buckets GROUP BY (minute / 3600000) * 3600000, name, rating, bucket;

CREATE TABLE route_count_hours (
    hour BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    requests INTEGER NOT NULL,
    server_errors INTEGER NOT NULL,
    client_errors INTEGER NOT NULL,
    PRIMARY KEY (hour, route, method)
);
INSERT INTO route_count_hours (hour, route, method, requests, server_errors, client_errors)
SELECT (minute / 3600000) * 3600000, route, method, CAST(SUM(requests) AS INTEGER),
       CAST(SUM(server_errors) AS INTEGER), CAST(SUM(client_errors) AS INTEGER)
FROM route_counts GROUP BY (minute / 3600000) * 3600000, route, method;

CREATE TABLE route_bucket_hours (
    hour BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, route, method, bucket)
);
INSERT INTO route_bucket_hours (hour, route, method, bucket, count)
SELECT (minute / 3600000) * 3600000, route, method, bucket, CAST(SUM(count) AS INTEGER)
FROM route_buckets GROUP BY (minute / 3600000) * 3600000, route, method, bucket;

-- Sessions that reached each step, per hour of reaching it (a session counts once per step,
-- so each new funnel_steps row adds one here).
CREATE TABLE funnel_hours (
    hour BIGINT NOT NULL,
    step TEXT NOT NULL,
    sessions INTEGER NOT NULL,
    PRIMARY KEY (hour, step)
);
INSERT INTO funnel_hours (hour, step, sessions)
SELECT (occurred_at / 3600000) * 3600000, step, CAST(COUNT(*) AS INTEGER)
FROM funnel_steps GROUP BY (occurred_at / 3600000) * 3600000, step;
