-- Every run of a scheduled job: who ran which period, how it ended. A period is claimed by
-- inserting its first attempt (unique per job, period and attempt), so replicas never run one
-- twice; a run whose replica died is marked abandoned and retried as the next attempt.
CREATE TABLE job_runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    cause TEXT NOT NULL,
    runner TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT NOT NULL,
    detail TEXT,
    UNIQUE (job, scheduled_at, attempt)
);
CREATE INDEX job_runs_by_outcome ON job_runs (outcome, job);
CREATE INDEX job_runs_by_job ON job_runs (job, id);
