DROP TABLE secrets;
DROP TABLE probe_samples;
DROP TABLE alerts;
DROP TABLE seeds;
DROP TABLE alert_rules;
