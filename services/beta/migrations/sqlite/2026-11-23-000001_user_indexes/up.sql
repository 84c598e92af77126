-- Account erasure deletes a user's analytics events by user id; without this index it would
-- scan the whole table inside a write transaction. (Redemptions are found through their
-- primary key, which starts with user_id.)
CREATE INDEX analytics_events_user_id ON analytics_events (user_id);
