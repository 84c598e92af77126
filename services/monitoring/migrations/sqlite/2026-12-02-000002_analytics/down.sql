DROP TABLE analytics_events;
DROP TABLE funnel_steps;
DROP TABLE vital_buckets;
