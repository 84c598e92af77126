-- The gateway's own measurements, shipped every few seconds: per minute, route template and
-- method, the request and error counts and the latency histogram (portico-sketch buckets,
-- milliseconds). Counted by upserts, so batches from several gateways add up (a minute of
-- one route stays far below 2^31 requests; sums over minutes are BIGINT).
CREATE TABLE route_counts (
    minute BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    requests INTEGER NOT NULL,
    server_errors INTEGER NOT NULL,
    client_errors INTEGER NOT NULL,
    PRIMARY KEY (minute, route, method)
);

CREATE TABLE route_buckets (
    minute BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (minute, route, method, bucket)
);
