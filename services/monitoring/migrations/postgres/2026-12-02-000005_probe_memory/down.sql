ALTER TABLE probe_samples DROP COLUMN memory_percent;
