-- The route tables' rollups at several spans in one table each: hours (as before) and days,
-- written in the same transaction as the minutes. A dashboard over a month reads 30 days per
-- key (plus the hours and minutes at its edges) instead of 720 hours. Counts are 64-bit: a
-- busy route passes 2^31 requests in a day.
CREATE TABLE route_count_rollups (
    span BIGINT NOT NULL,
    start BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    requests BIGINT NOT NULL,
    server_errors BIGINT NOT NULL,
    client_errors BIGINT NOT NULL,
    PRIMARY KEY (span, start, route, method)
);
INSERT INTO route_count_rollups (span, start, route, method, requests, server_errors, client_errors)
SELECT 3600000, hour, route, method, requests, server_errors, client_errors FROM route_count_hours;
INSERT INTO route_count_rollups (span, start, route, method, requests, server_errors, client_errors)
SELECT 86400000, (hour / 86400000) * 86400000, route, method, SUM(requests), SUM(server_errors),
       SUM(client_errors)
FROM route_count_hours GROUP BY (hour / 86400000) * 86400000, route, method;
DROP TABLE route_count_hours;

CREATE TABLE route_bucket_rollups (
    span BIGINT NOT NULL,
    start BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (span, start, route, method, bucket)
);
INSERT INTO route_bucket_rollups (span, start, route, method, bucket, count)
SELECT 3600000, hour, route, method, bucket, count FROM route_bucket_hours;
INSERT INTO route_bucket_rollups (span, start, route, method, bucket, count)
SELECT 86400000, (hour / 86400000) * 86400000, route, method, bucket, SUM(count)
FROM route_bucket_hours GROUP BY (hour / 86400000) * 86400000, route, method, bucket;
DROP TABLE route_bucket_hours;
