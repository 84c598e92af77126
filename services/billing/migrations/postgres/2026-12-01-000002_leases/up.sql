-- One holder at a time for periodic work (reconciliation): a replica runs a period's pass
-- only if it takes the lease with one conditional upsert.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    held_until BIGINT NOT NULL
);
