//! Scheduled jobs that run on one replica at a time: each period of a job is claimed by one
//! replica in the database (a row unique per job, period and attempt, plus the job's lease with
//! the run id as fencing token, see [`crate::jobs_store`]), every run is recorded with its
//! start, end, outcome and error, and a run whose replica dies is handed to another replica
//! when its lease runs out, as the next attempt of the same period, never beside it.
//!
//! On SQLite the single process is the only claimant, so it runs everything. Schedules are
//! cron expressions (UTC, through `croner`) or fixed periods on a grid from the epoch.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Db, DbError, now_ms},
    jobs_store::{self as store, Claim, RunRow},
};

/// When a job runs.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every so many milliseconds, on a grid from the epoch (`every 30s`).
    Every(i64),
    /// A cron expression, UTC (`0 2 * * *`).
    Cron(Box<croner::Cron>),
    /// Never on its own (`off`); it can still be run by hand.
    Off,
}

impl FromStr for Schedule {
    type Err = String;

    /// `off`, `every 30s` / `every 5m` / `every 1h` / `every 1d`, or a cron expression of five
    /// fields (or six, seconds first).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Schedule::Off);
        }
        if let Some(period) = s.strip_prefix("every ") {
            let period = period.trim();
            let (n, unit) = period.split_at(period.find(|c: char| !c.is_ascii_digit()).unwrap_or(period.len()));
            let n: i64 = n.parse().map_err(|_| format!("{s:?}: expected e.g. `every 30s`"))?;
            let unit_ms = match unit.trim() {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
            };
            if n <= 0 {
                return Err(format!("{s:?}: the period must be positive"));
            }
            return Ok(Schedule::Every(n.saturating_mul(unit_ms)));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(s)
            .map_err(|e| format!("{s:?} is not a cron expression: {e}"))?;
        Ok(Schedule::Cron(Box::new(cron)))
    }
}

fn to_datetime(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

impl Schedule {
    /// The latest occurrence at or before `now` (ms).
    pub fn latest(&self, now: i64) -> Option<i64> {
        match self {
            Schedule::Every(p) => Some(now.div_euclid(*p) * p),
            Schedule::Cron(c) => {
                // Occurrences are whole seconds: look back from `now`'s second, inclusive.
                let at = to_datetime(now.div_euclid(1000) * 1000)?;
                c.find_previous_occurrence(&at, true).ok().map(|t| t.timestamp() * 1000)
            }
            Schedule::Off => None,
        }
    }

    /// The first occurrence after `now` (ms).
    pub fn next(&self, now: i64) -> Option<i64> {
        match self {
            Schedule::Every(p) => Some((now.div_euclid(*p) + 1) * p),
            Schedule::Cron(c) => c
                .find_next_occurrence(&to_datetime(now)?, false)
                .ok()
                .map(|t| t.timestamp() * 1000),
            Schedule::Off => None,
        }
    }

    /// As written in listings.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(p) if p % 86_400_000 == 0 => format!("every {}d", p / 86_400_000),
            Schedule::Every(p) if p % 3_600_000 == 0 => format!("every {}h", p / 3_600_000),
            Schedule::Every(p) if p % 60_000 == 0 => format!("every {}m", p / 60_000),
            Schedule::Every(p) if p % 1_000 == 0 => format!("every {}s", p / 1_000),
            Schedule::Every(p) => format!("every {p}ms"),
            Schedule::Cron(c) => c.pattern.to_string(),
            Schedule::Off => "off".into(),
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a run is told.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The run id: the fencing token (larger for every later run of the job).
    pub run_id: i64,
    /// The period it runs for (ms; when it was asked for, for runs by hand).
    pub scheduled_at: i64,
    /// Cancelled when the process stops or the run was taken over: stop soon.
    pub cancel: CancellationToken,
}

type Work = Arc<dyn Fn(RunContext) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// One job: its name, schedule, lease and work. The work answers a one-line summary of what it
/// did, or why it failed.
#[derive(Clone)]
pub struct Job {
    name: String,
    schedule: Schedule,
    lease_ms: i64,
    work: Work,
}

impl Job {
    /// A job; its lease (how long a silent replica keeps it) is 30 s unless set.
    pub fn new<F, Fut>(name: impl Into<String>, schedule: Schedule, work: F) -> Job
    where
        F: Fn(RunContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        Job {
            name: name.into(),
            schedule,
            lease_ms: 30_000,
            work: Arc::new(move |ctx| Box::pin(work(ctx))),
        }
    }

    /// Sets the lease: a run renews it every third of it, and another replica takes over a run
    /// not renewed for that long.
    pub fn lease(mut self, lease: Duration) -> Job {
        self.lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(30);
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One part of a job made of several ([`Job::of_parts`]): its work, answering a summary.
pub type Task = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// Wraps an async closure as a [`Task`].
pub fn task<F, Fut>(work: F) -> Task
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    Arc::new(move || Box::pin(work()))
}

impl Job {
    /// A job that runs named `parts` in turn: its summary says what each did; a part that
    /// fails does not stop the others, and the run fails naming it. Stops between parts when
    /// the run is cancelled.
    pub fn of_parts(name: impl Into<String>, schedule: Schedule, parts: Vec<(String, Task)>) -> Job {
        let parts = Arc::new(parts);
        Job::new(name, schedule, move |ctx: RunContext| {
            let parts = parts.clone();
            async move {
                let (mut done, mut failed) = (Vec::new(), Vec::new());
                for (part, work) in parts.iter() {
                    if ctx.cancel.is_cancelled() {
                        failed.push(format!("{part}: not run, the run was stopped"));
                        continue;
                    }
                    match work().await {
                        Ok(summary) => done.push(format!("{part}: {summary}")),
                        Err(error) => failed.push(format!("{part}: {error}")),
                    }
                }
                if failed.is_empty() {
                    Ok(done.join("; "))
                } else {
                    Err(failed.into_iter().chain(done).collect::<Vec<_>>().join("; "))
                }
            }
        })
    }
}

/// The name of every process's daily cleanup job.
pub const RETENTION_CLEANUP: &str = "retention_cleanup";
/// The name of the job that reloads a service's hot caches.
pub const CACHE_WARMER: &str = "cache_warmer";

/// Days of finished job runs and delivered outbox rows a process keeps.
pub const RUNTIME_RETENTION_DAYS: i64 = 14;

/// A process's `retention_cleanup` job: its own `parts`, then the runtime's
/// ([`runtime_retention`]), on `schedule`.
pub fn retention_cleanup(db: &Db, schedule: Schedule, mut parts: Vec<(String, Task)>) -> Job {
    parts.push(runtime_retention(db.clone()));
    Job::of_parts(RETENTION_CLEANUP, schedule, parts).lease(Duration::from_secs(300))
}

/// The runtime's own part of every process's `retention_cleanup`: finished job runs and
/// delivered outbox rows older than [`RUNTIME_RETENTION_DAYS`].
pub fn runtime_retention(db: Db) -> (String, Task) {
    let work = task(move || {
        let db = db.clone();
        async move {
            let before = now_ms() - RUNTIME_RETENTION_DAYS * 86_400_000;
            let (runs, delivered) = db
                .write(move |c| {
                    let runs = store::purge(c, before)?;
                    Ok::<_, DbError>((runs, crate::outbox::purge_delivered(c, before)?))
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("{runs} job runs and {delivered} delivered messages removed"))
        }
    });
    ("runtime".to_string(), work)
}

/// A job as admins see it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStatus {
    pub name: String,
    pub schedule: String,
    /// When it next comes due (ms), unless off.
    pub next_run_at: Option<i64>,
    pub last_run: Option<RunRow>,
    pub last_success_at: Option<i64>,
}

impl From<RunRow> for portico_proto::ops::v1::JobRun {
    fn from(r: RunRow) -> Self {
        portico_proto::ops::v1::JobRun {
            id: r.id,
            scheduled_at_ms: r.scheduled_at,
            attempt: r.attempt,
            cause: r.cause,
            runner: r.runner,
            started_at_ms: r.started_at,
            finished_at_ms: r.finished_at,
            outcome: r.outcome,
            detail: r.detail.unwrap_or_default(),
        }
    }
}

impl From<JobStatus> for portico_proto::ops::v1::Job {
    fn from(j: JobStatus) -> Self {
        portico_proto::ops::v1::Job {
            name: j.name,
            schedule: j.schedule,
            next_run_at_ms: j.next_run_at,
            last_run: j.last_run.map(Into::into),
            last_success_at_ms: j.last_success_at,
        }
    }
}

/// Why a run by hand was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunNowError {
    #[error("no job is named {0:?}")]
    Unknown(String),
    #[error("{0} is running already")]
    Busy(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

type Asked = (String, oneshot::Sender<Result<i64, RunNowError>>);

/// Lists the jobs and runs them by hand (clones share the scheduler).
#[derive(Clone)]
pub struct Jobs {
    db: Db,
    jobs: Arc<Vec<Job>>,
    asks: mpsc::Sender<Asked>,
}

/// The scheduler of one process: [`Scheduler::run`] until stopped.
pub struct Scheduler {
    db: Db,
    replica: String,
    jobs: Arc<Vec<Job>>,
    asked: mpsc::Receiver<Asked>,
    tick: Duration,
}

/// A scheduler over `jobs` for this process (`replica` names it in the runs: host and pid
/// unless tests say otherwise), and its handle.
pub fn scheduler(db: Db, replica: impl Into<String>, jobs: Vec<Job>) -> (Scheduler, Jobs) {
    let jobs = Arc::new(jobs);
    let (asks, asked) = mpsc::channel(16);
    let tick = jobs
        .iter()
        .map(|j| match j.schedule {
            Schedule::Every(p) => Duration::from_millis(u64::try_from(p / 4).unwrap_or(1)),
            _ => Duration::from_secs(1),
        })
        .chain(
            jobs.iter()
                .map(|j| Duration::from_millis(u64::try_from(j.lease_ms / 3).unwrap_or(1))),
        )
        .min()
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    (
        Scheduler {
            db: db.clone(),
            replica: replica.into(),
            jobs: jobs.clone(),
            asked,
            tick,
        },
        Jobs { db, jobs, asks },
    )
}

/// This process as a runner: host name and process id.
pub fn this_replica() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{host}:{}", std::process::id())
}

impl Jobs {
    /// Every job with its schedule, next and last run.
    pub async fn list(&self) -> Result<Vec<JobStatus>, DbError> {
        let (last, succeeded) = self.db.run(|c| store::latest(c).map_err(DbError::from)).await?;
        let now = now_ms();
        Ok(self
            .jobs
            .iter()
            .map(|j| JobStatus {
                name: j.name.clone(),
                schedule: j.schedule.describe(),
                next_run_at: j.schedule.next(now),
                last_run: last.iter().find(|r| r.job == j.name).cloned(),
                last_success_at: succeeded.iter().find(|(n, _)| *n == j.name).and_then(|(_, t)| *t),
            })
            .collect())
    }

    /// A job's runs, newest first.
    pub async fn runs(&self, name: &str, limit: i64) -> Result<Vec<RunRow>, DbError> {
        let name = name.to_string();
        self.db
            .run(move |c| store::runs_of(c, &name, limit).map_err(DbError::from))
            .await
    }

    /// Whether a job of that name exists here.
    pub fn has(&self, name: &str) -> bool {
        self.jobs.iter().any(|j| j.name == name)
    }

    /// Starts a run of `name` now, on this replica: its run id.
    pub async fn run_now(&self, name: &str) -> Result<i64, RunNowError> {
        if !self.has(name) {
            return Err(RunNowError::Unknown(name.to_string()));
        }
        let (reply, answer) = oneshot::channel();
        self.asks
            .send((name.to_string(), reply))
            .await
            .map_err(|_| DbError::Stopped("the scheduler has stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Stopped("the scheduler stopped before answering".into()))?
    }
}

impl Scheduler {
    /// Claims and runs due periods, takes over runs whose replica died, and runs jobs asked for
    /// by hand, until `stop`; then cancels its runs and waits for them (at most 10 s). Dropping
    /// the future drops its runs with it (as a crash would: another replica takes them over).
    pub async fn run(mut self, stop: CancellationToken) {
        if self.jobs.is_empty() {
            return stop.cancelled().await;
        }
        let mut runs: JoinSet<()> = JoinSet::new();
        let cancel = stop.child_token();
        // The latest period each job was claimed for (by anyone) as far as this replica knows.
        // A job that never ran waits for its next period; one that did catches up on the
        // latest period if nobody ran it (the replicas were down at the time).
        let mut claimed: HashMap<String, i64> = HashMap::new();
        match self.db.run(|c| store::latest(c).map_err(DbError::from)).await {
            Ok((last, _)) => {
                let now = now_ms();
                for job in self.jobs.iter().filter(|j| !last.iter().any(|r| r.job == j.name)) {
                    if let Some(due) = job.schedule.latest(now) {
                        claimed.insert(job.name.clone(), due);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "the job scheduler could not read past runs"),
        }
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some((name, reply)) = self.asked.recv() => {
                    let answer = self.start_by_hand(&name, &mut runs, &cancel).await;
                    // The asker may have gone: nothing to tell.
                    let _ = reply.send(answer);
                }
                _ = ticker.tick() => {
                    if let Err(e) = self.pass(&mut claimed, &mut runs, &cancel).await {
                        tracing::warn!(error = %e, "the job scheduler could not reach its database");
                    }
                    while runs.try_join_next().is_some() {}
                }
            }
        }
        cancel.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while runs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("jobs still running at shutdown were dropped; another replica takes them over");
        }
    }

    async fn pass(
        &self,
        claimed: &mut HashMap<String, i64>,
        runs: &mut JoinSet<()>,
        cancel: &CancellationToken,
    ) -> Result<(), DbError> {
        let now = now_ms();
        for job in self.jobs.iter() {
            let Some(due) = job.schedule.latest(now) else {
                continue;
            };
            if claimed.get(&job.name).is_some_and(|c| *c >= due) {
                continue;
            }
            claimed.insert(job.name.clone(), due);
            let (name, runner, lease_ms) = (job.name.clone(), self.replica.clone(), job.lease_ms);
            let got = self
                .db
                .write(move |c| {
                    store::claim(c, &name, due, 1, "schedule", &runner, now, lease_ms, true).map_err(DbError::from)
                })
                .await?;
            match got {
                Claim::Run { id, holder } => self.start(job, id, holder, due, runs, cancel),
                Claim::Busy => {
                    tracing::info!(job = %job.name, "a period came while its previous run was still going: skipped");
                    metrics::counter!("portico_job_runs_total", "job" => job.name.clone(), "outcome" => store::SKIPPED)
                        .increment(1);
                }
                Claim::Taken => {}
            }
        }
        // Runs recorded as going whose replica stopped renewing: hand them over.
        let going = self
            .db
            .run(move |c| store::stale(c, now).map_err(DbError::from))
            .await?;
        for stale in going {
            let Some(job) = self.jobs.iter().find(|j| j.name == stale.job) else {
                continue;
            };
            let (runner, lease_ms) = (self.replica.clone(), job.lease_ms);
            let period = stale.scheduled_at;
            let taken = self
                .db
                .write(move |c| store::take_over(c, &stale, &runner, now_ms(), lease_ms).map_err(DbError::from))
                .await?;
            let Some(taken) = taken else {
                continue;
            };
            metrics::counter!("portico_job_runs_total", "job" => job.name.clone(), "outcome" => store::ABANDONED)
                .increment(1);
            match taken {
                Claim::Run { id, holder } => {
                    tracing::warn!(job = %job.name, run = id, "took over a run whose replica stopped renewing");
                    self.start(job, id, holder, period, runs, cancel);
                }
                _ => {
                    tracing::error!(job = %job.name, "a run was abandoned on its last attempt; the period is not retried")
                }
            }
        }
        Ok(())
    }

    async fn start_by_hand(
        &self,
        name: &str,
        runs: &mut JoinSet<()>,
        cancel: &CancellationToken,
    ) -> Result<i64, RunNowError> {
        let job = self
            .jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| RunNowError::Unknown(name.to_string()))?;
        let now = now_ms();
        let (n, runner, lease_ms) = (job.name.clone(), self.replica.clone(), job.lease_ms);
        let got = self
            .db
            .write(move |c| store::claim(c, &n, now, 1, "manual", &runner, now, lease_ms, false).map_err(DbError::from))
            .await?;
        match got {
            Claim::Run { id, holder } => {
                self.start(job, id, holder, now, runs, cancel);
                Ok(id)
            }
            Claim::Busy | Claim::Taken => Err(RunNowError::Busy(job.name.clone())),
        }
    }

    /// Runs `job` as run `id`, renewing its lease until it ends, then records the end.
    fn start(
        &self,
        job: &Job,
        id: i64,
        holder: String,
        scheduled_at: i64,
        runs: &mut JoinSet<()>,
        cancel: &CancellationToken,
    ) {
        let db = self.db.clone();
        let name = job.name.clone();
        let work = job.work.clone();
        let lease_ms = job.lease_ms;
        let cancel = cancel.child_token();
        runs.spawn(async move {
            let started = Instant::now();
            tracing::info!(job = %name, run = id, "job started");
            let ctx = RunContext {
                run_id: id,
                scheduled_at,
                cancel: cancel.clone(),
            };
            // The lease is renewed by a task of its own, not beside the work in one select:
            // a renewal awaited there would wait for SQLite's write turn while the work, not
            // polled meanwhile, holds it. It ends with the run (or with the run's task, when
            // the replica is stopped abruptly).
            let renewing = AbortOnDrop(tokio::spawn({
                let (db, name, holder, cancel) = (db.clone(), name.clone(), holder.clone(), cancel.clone());
                async move {
                    let mut renewal =
                        tokio::time::interval(Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1)));
                    renewal.tick().await;
                    loop {
                        renewal.tick().await;
                        let (n, h) = (name.clone(), holder.clone());
                        let kept = db
                            .write(move |c| store::renew(c, &n, &h, now_ms(), lease_ms).map_err(DbError::from))
                            .await;
                        match kept {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(job = %name, run = id, "the run was taken over by another replica: stopping it");
                                cancel.cancel();
                                return;
                            }
                            // Keep working: the lease lasts three renewals.
                            Err(e) => tracing::warn!(job = %name, run = id, error = %e, "could not renew the run's lease"),
                        }
                    }
                }
            }));
            let result = work(ctx).await;
            drop(renewing);
            let seconds = started.elapsed().as_secs_f64();
            let (outcome, detail) = match &result {
                Ok(summary) => (store::SUCCEEDED, summary.clone()),
                Err(error) => (store::FAILED, error.clone()),
            };
            let detail: String = detail.chars().take(500).collect();
            let (n, h, d) = (name.clone(), holder.clone(), detail.clone());
            let recorded = db
                .write(move |c| store::finish(c, id, &n, &h, outcome, Some(&d), now_ms()).map_err(DbError::from))
                .await;
            metrics::counter!("portico_job_runs_total", "job" => name.clone(), "outcome" => outcome).increment(1);
            metrics::histogram!("portico_job_duration_seconds", "job" => name.clone()).record(seconds);
            if result.is_ok() {
                metrics::gauge!("portico_job_last_success_timestamp_seconds", "job" => name.clone())
                    .set(now_ms() as f64 / 1000.0);
            }
            match recorded {
                Ok(true) if result.is_ok() => tracing::info!(job = %name, run = id, seconds, detail = %detail, "job succeeded"),
                Ok(true) => tracing::warn!(job = %name, run = id, seconds, error = %detail, "job failed"),
                Ok(false) => tracing::warn!(job = %name, run = id, "the run ended after it was taken over; its end is not recorded"),
                Err(e) => tracing::warn!(job = %name, run = id, error = %e, "could not record the run's end"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use diesel::{
        connection::SimpleConnection,
        prelude::*,
        sql_types::{BigInt, Text},
    };

    use super::*;
    use crate::db::DbConnection;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        period: i64,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    async fn database(backend: portico_testkit::Backend, label: &str) -> (portico_testkit::TestDb, Db) {
        let test_db = portico_testkit::TestDb::new(backend, label);
        let db = Db::connect(&test_db.url, crate::outbox::MIGRATIONS, 8).await.unwrap();
        db.run(|c| {
            c.batch_execute("CREATE TABLE effects (job TEXT NOT NULL, period BIGINT NOT NULL)")
                .map_err(DbError::from)
        })
        .await
        .unwrap();
        (test_db, db)
    }

    /// A job whose work waits `work_ms`, then records that it did its period.
    fn effect_job(db: &Db, name: &'static str, schedule: &str, work_ms: u64, lease_ms: u64) -> Job {
        let db = db.clone();
        Job::new(name, schedule.parse().unwrap(), move |ctx: RunContext| {
            let db = db.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(work_ms)).await;
                db.write(move |c: &mut DbConnection| {
                    diesel::sql_query("INSERT INTO effects (job, period) VALUES ($1, $2)")
                        .bind::<Text, _>(name)
                        .bind::<BigInt, _>(ctx.scheduled_at)
                        .execute(c)
                        .map_err(DbError::from)
                })
                .await
                .map_err(|e| e.to_string())?;
                Ok(format!("did {}", ctx.scheduled_at))
            }
        })
        .lease(Duration::from_millis(lease_ms))
    }

    async fn effects(db: &Db, job: &'static str) -> Vec<(i64, i64)> {
        db.run(move |c| {
            diesel::sql_query(
                "SELECT period, COUNT(*) AS n FROM effects WHERE job = $1 GROUP BY period ORDER BY period",
            )
            .bind::<Text, _>(job)
            .load::<Row>(c)
            .map_err(DbError::from)
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.period, r.n))
        .collect()
    }

    async fn runs(db: &Db, job: &'static str) -> Vec<RunRow> {
        let mut runs = db
            .run(move |c| store::runs_of(c, job, 1000).map_err(DbError::from))
            .await
            .unwrap();
        runs.reverse();
        runs
    }

    #[tokio::test]
    async fn two_replicas_run_each_period_once() {
        for backend in portico_testkit::backends() {
            let (_t, db) = database(backend, "jobs_once").await;
            let stop = CancellationToken::new();
            let mut handles = Vec::new();
            for replica in ["a", "b"] {
                // Each replica with its own pool, as two processes would be.
                let own = Db::connect(&_t.url, crate::outbox::MIGRATIONS, 4).await.unwrap();
                let (s, _) = scheduler(
                    own.clone(),
                    replica,
                    vec![effect_job(&own, "tick", "every 1s", 20, 3_000)],
                );
                handles.push(tokio::spawn(s.run(stop.clone())));
            }
            tokio::time::sleep(Duration::from_millis(3_500)).await;
            stop.cancel();
            for h in handles {
                h.await.unwrap();
            }
            let done = effects(&db, "tick").await;
            assert!(done.len() >= 3, "{backend:?}: {done:?}");
            assert!(
                done.iter().all(|(_, n)| *n == 1),
                "{backend:?}: each period once: {done:?}"
            );
            assert!(
                done.windows(2).all(|w| w[1].0 - w[0].0 == 1_000),
                "{backend:?}: no period missed: {done:?}"
            );
            let runs = runs(&db, "tick").await;
            assert_eq!(runs.len(), done.len(), "{backend:?}: one run recorded per period");
            assert!(
                runs.iter().all(|r| r.outcome == store::SUCCEEDED && r.attempt == 1),
                "{backend:?}: {runs:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_run_whose_replica_dies_is_handed_over_without_a_double_run() {
        for backend in portico_testkit::backends() {
            let (t, db) = database(backend, "jobs_takeover").await;
            let stop = CancellationToken::new();
            let replica = |name: &'static str| {
                let url = t.url.clone();
                async move {
                    let own = Db::connect(&url, crate::outbox::MIGRATIONS, 4).await.unwrap();
                    scheduler(own.clone(), name, vec![effect_job(&own, "slow", "off", 800, 300)])
                }
            };
            let (a, jobs_a) = replica("a").await;
            let (b, _) = replica("b").await;
            let a = tokio::spawn(a.run(stop.clone()));
            let b = tokio::spawn(b.run(stop.clone()));
            let first = jobs_a.run_now("slow").await.unwrap();
            assert!(
                matches!(jobs_a.run_now("slow").await, Err(RunNowError::Busy(_))),
                "{backend:?}: one run at a time"
            );
            assert!(matches!(jobs_a.run_now("nope").await, Err(RunNowError::Unknown(_))));
            // Replica a dies mid-run (its runs and their renewals go with it).
            tokio::time::sleep(Duration::from_millis(200)).await;
            a.abort();
            let _ = a.await;
            // b takes over once the lease runs out and does the period once.
            let mut waited = 0;
            while runs(&db, "slow").await.iter().all(|r| r.outcome != store::SUCCEEDED) && waited < 100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                waited += 1;
            }
            stop.cancel();
            b.await.unwrap();
            let runs = runs(&db, "slow").await;
            let seen: Vec<(i64, i32, &str, &str, &str)> = runs
                .iter()
                .map(|r| {
                    (
                        r.scheduled_at,
                        r.attempt,
                        r.cause.as_str(),
                        r.runner.as_str(),
                        r.outcome.as_str(),
                    )
                })
                .collect();
            let period = runs[0].scheduled_at;
            assert_eq!(runs[0].id, first);
            assert_eq!(
                seen,
                [
                    (period, 1, "manual", "a", store::ABANDONED),
                    (period, 2, "retry", "b", store::SUCCEEDED)
                ],
                "{backend:?}"
            );
            assert_eq!(effects(&db, "slow").await, [(period, 1)], "{backend:?}: done once");
            let listed = jobs_a.list().await.unwrap();
            assert_eq!(listed[0].last_run.as_ref().map(|r| r.attempt), Some(2));
            assert!(listed[0].last_success_at.is_some() && listed[0].next_run_at.is_none());
        }
    }

    #[tokio::test]
    async fn a_run_that_holds_the_write_turn_across_a_renewal_still_ends() {
        // On SQLite writes take turns: the work holds the turn longer than a renewal period
        // (200 ms), within its lease (600 ms).
        let (_t, db) = database(portico_testkit::Backend::Sqlite, "jobs_turns").await;
        let work_db = db.clone();
        let job = Job::new("long_write", Schedule::Off, move |_| {
            let db = work_db.clone();
            async move {
                db.write(|_c: &mut DbConnection| {
                    std::thread::sleep(Duration::from_millis(350));
                    Ok::<_, DbError>(())
                })
                .await
                .map_err(|e| e.to_string())?;
                Ok("wrote".to_string())
            }
        })
        .lease(Duration::from_millis(600));
        let (scheduler, jobs) = scheduler(db.clone(), "r", vec![job]);
        let stop = CancellationToken::new();
        let running = tokio::spawn(scheduler.run(stop.clone()));
        let id = jobs.run_now("long_write").await.unwrap();
        let mut outcome = String::new();
        for _ in 0..100 {
            outcome = runs(&db, "long_write").await[0].outcome.clone();
            if outcome != store::RUNNING {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(outcome, store::SUCCEEDED, "run {id} ended");
        stop.cancel();
        running.await.unwrap();
    }

    #[tokio::test]
    async fn a_job_of_parts_runs_every_part_and_names_the_one_that_failed() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let part = |outcome: Result<&'static str, &'static str>| {
            let ran = ran.clone();
            task(move || {
                let ran = ran.clone();
                async move {
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    outcome.map(str::to_string).map_err(str::to_string)
                }
            })
        };
        let ctx = || RunContext {
            run_id: 1,
            scheduled_at: 0,
            cancel: CancellationToken::new(),
        };
        let fine = Job::of_parts(
            "cleanup",
            Schedule::Off,
            vec![("a".into(), part(Ok("1 row"))), ("b".into(), part(Ok("2 rows")))],
        );
        assert_eq!((fine.work)(ctx()).await, Ok("a: 1 row; b: 2 rows".to_string()));
        let failing = Job::of_parts(
            "cleanup",
            Schedule::Off,
            vec![
                ("a".into(), part(Err("database gone"))),
                ("b".into(), part(Ok("2 rows"))),
            ],
        );
        assert_eq!(
            (failing.work)(ctx()).await,
            Err("a: database gone; b: 2 rows".to_string()),
            "the failure first, and the other part still ran"
        );
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 4);
        let stopped = ctx();
        stopped.cancel.cancel();
        assert_eq!(
            (fine.work)(stopped).await,
            Err("a: not run, the run was stopped; b: not run, the run was stopped".to_string())
        );
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[test]
    fn schedules() {
        let every: Schedule = "every 30s".parse().unwrap_or(Schedule::Off);
        assert_eq!(every.latest(95_000), Some(90_000));
        assert_eq!(every.next(95_000), Some(120_000));
        assert_eq!(every.describe(), "every 30s");
        let daily: Schedule = "0 2 * * *".parse().unwrap_or(Schedule::Off);
        let day = 86_400_000;
        assert_eq!(daily.latest(10 * day + 3 * 3_600_000), Some(10 * day + 2 * 3_600_000));
        assert_eq!(
            daily.latest(10 * day + 2 * 3_600_000),
            Some(10 * day + 2 * 3_600_000),
            "at its time"
        );
        assert_eq!(daily.next(10 * day + 3 * 3_600_000), Some(11 * day + 2 * 3_600_000));
        assert!(matches!("off".parse::<Schedule>(), Ok(Schedule::Off)));
        for bad in ["every", "every 0s", "every 5x", "61 * * * *", "hourly please"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
