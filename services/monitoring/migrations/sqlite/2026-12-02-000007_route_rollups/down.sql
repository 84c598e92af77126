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
SELECT start, route, method, requests, server_errors, client_errors FROM route_count_rollups
WHERE span = 3600000;
DROP TABLE route_count_rollups;

CREATE TABLE route_bucket_hours (
    hour BIGINT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, route, method, bucket)
);
INSERT INTO route_bucket_hours (hour, route, method, bucket, count)
SELECT start, route, method, bucket, count FROM route_bucket_rollups WHERE span = 3600000;
DROP TABLE route_bucket_rollups;
