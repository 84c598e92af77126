DROP TABLE local_subscriptions;
DROP TABLE local_checkouts;
DROP TABLE notices;
DROP TABLE events;
DROP TABLE subscriptions;
DROP TABLE customers;
