-- One holder at a time for periodic work (billing's reconciliation, the alert evaluator): a
-- replica works only while it holds the named lease, taken or renewed with one conditional
-- upsert. `IF NOT EXISTS`: billing made the same table before it moved here.
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    held_until BIGINT NOT NULL
);
