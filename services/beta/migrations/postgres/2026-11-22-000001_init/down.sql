DROP TABLE analytics_events;
DROP TABLE features;
DROP TABLE redemptions;
DROP TABLE beta_users;
DROP TABLE invite_codes;
