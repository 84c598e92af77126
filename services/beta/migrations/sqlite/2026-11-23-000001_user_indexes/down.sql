DROP INDEX analytics_events_user_id;
