DROP TABLE funnel_hours;
DROP TABLE route_bucket_hours;
DROP TABLE route_count_hours;
DROP TABLE vital_hours;
