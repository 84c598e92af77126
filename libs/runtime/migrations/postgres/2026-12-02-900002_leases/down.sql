-- The table may predate this migration (billing's); it is kept.
SELECT 1;
