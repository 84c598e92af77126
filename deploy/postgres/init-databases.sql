-- One database per service, each migrated by its own process at start.
-- Runs once, as POSTGRES_USER, when the postgres-data volume is first initialised;
-- to add a database to an existing volume, run the statement by hand (or drop the volume).
CREATE DATABASE gateway;
CREATE DATABASE beta;
CREATE DATABASE workflow;
CREATE DATABASE media;
CREATE DATABASE billing;
CREATE DATABASE monitoring;
