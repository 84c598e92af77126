-- The transactional outbox every process that must not lose a side effect writes to (mail,
-- erasure requests): a row is inserted in the same transaction as the change that calls for
-- it, and a worker delivers it until it succeeds. Claims are leases, so a worker that dies
-- mid-delivery hands its rows over when the lease runs out.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (topic, delivered_at, next_attempt_at);
