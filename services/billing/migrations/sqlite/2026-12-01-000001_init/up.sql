-- Timestamps are Unix milliseconds on both backends.

-- One provider customer per user, created once.
CREATE TABLE customers (
    user_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Subscriptions as the provider last reported them. `fetched_at` is when that view was asked
-- for: a view fetched earlier never overwrites one fetched later (out-of-order events).
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    plan TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    price TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')),
    current_period_end BIGINT,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_user ON subscriptions (user_id);

-- Every webhook event, recorded once: a redelivery finds its id taken.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    livemode BOOLEAN NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX events_received_at ON events (received_at);

-- One row per message the billing mails (receipt per invoice, notice per invoice attempt):
-- the key is taken in the transaction that queues the message, so it is queued once.
CREATE TABLE notices (
    key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    outbox_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The local provider's own objects (the embedded stand-in for Stripe).
CREATE TABLE local_checkouts (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    price TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'complete')),
    subscription_id TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE local_subscriptions (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    price TEXT NOT NULL,
    status TEXT NOT NULL,
    current_period_end BIGINT NOT NULL,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
