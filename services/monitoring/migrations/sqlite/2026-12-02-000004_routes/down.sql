DROP TABLE route_buckets;
DROP TABLE route_counts;
