-- A probed service's memory as a percentage of what it may use (memory_percent rules).
ALTER TABLE probe_samples ADD COLUMN memory_percent DOUBLE PRECISION;
