//! `/v1/admin/jobs`: every process's scheduled jobs (the gateway's own and each service's,
//! through `Ops/ListJobs`) and a run by hand (`Ops/RunJob`). Jobs are named
//! `<process>.<job>`, e.g. `media.retention_cleanup`.

use actix_web::web;
use chrono::{DateTime, Utc};
use portico_proto::ops::v1 as ops;
use portico_runtime::{ErrorCode, Problem, db::now_ms, grpc::outgoing, jobs::RunNowError};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Admin, Rid, at};
use crate::{AppState, contract::Reply, envelope::ApiError};

/// The gateway's own name in job names.
const GATEWAY: &str = "gateway";

/// One run of a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// Run id (larger for every later run of the job).
    id: i64,
    /// `running`, `succeeded`, `failed`, `abandoned` (its replica stopped renewing; taken over
    /// as the next attempt) or `skipped` (the previous run was still going).
    #[schema(example = "succeeded")]
    outcome: String,
    /// `schedule` or `manual`.
    #[schema(example = "schedule")]
    cause: String,
    /// Attempt of its period (1, or more after a take-over).
    attempt: i32,
    /// The replica that ran it (host:pid).
    runner: String,
    /// The period it ran for.
    scheduled_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// What it did, or why it failed.
    detail: String,
}

impl From<ops::JobRun> for JobRun {
    fn from(r: ops::JobRun) -> Self {
        JobRun {
            id: r.id,
            outcome: r.outcome,
            cause: r.cause,
            attempt: r.attempt,
            runner: r.runner,
            scheduled_at: at(r.scheduled_at_ms),
            started_at: at(r.started_at_ms),
            finished_at: r.finished_at_ms.and_then(at),
            detail: r.detail,
        }
    }
}

/// A scheduled job of one process.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// `<process>.<job>`: what `POST /v1/admin/jobs/{name}/run` takes.
    #[schema(example = "media.retention_cleanup")]
    name: String,
    /// The process that runs it: `gateway` or a service.
    #[schema(example = "media")]
    process: String,
    /// `every 30s`, a cron expression (UTC) or `off`.
    #[schema(example = "0 2 * * *")]
    schedule: String,
    /// When it next comes due (absent when off).
    next_run_at: Option<DateTime<Utc>>,
    /// Its latest run (absent before the first).
    last_run: Option<JobRun>,
    /// When a run last succeeded.
    last_success_at: Option<DateTime<Utc>>,
    /// Seconds since then (absent before the first success).
    seconds_since_success: Option<i64>,
}

fn view(process: &str, j: ops::Job, now: i64) -> JobView {
    JobView {
        name: format!("{process}.{}", j.name),
        process: process.to_string(),
        schedule: j.schedule,
        next_run_at: j.next_run_at_ms.and_then(at),
        last_run: j.last_run.map(JobRun::from),
        last_success_at: j.last_success_at_ms.and_then(at),
        seconds_since_success: j.last_success_at_ms.map(|t| (now - t).max(0) / 1000),
    }
}

/// A process whose jobs could not be listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unavailable {
    /// The service.
    #[schema(example = "billing")]
    process: String,
    /// Why.
    error: String,
}

/// Every process's jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// By process (gateway first, then the services), then name.
    jobs: Vec<JobView>,
    /// Services that did not answer (their jobs are missing from `jobs`).
    unavailable: Vec<Unavailable>,
}

/// GET /admin/jobs
pub async fn list(state: web::Data<AppState>, rid: Rid, _admin: Admin) -> Result<Reply<JobList>, ApiError> {
    let own = state.jobs.list().await?;
    let remote = futures_util::future::join_all(state.services.iter().map(|(name, client)| {
        let mut client = client.clone();
        let rid = rid.0.clone();
        async move { (*name, client.list_jobs(outgoing(ops::ListJobsRequest {}, &rid)).await) }
    }))
    .await;
    let now = now_ms();
    let mut jobs: Vec<JobView> = own.into_iter().map(|j| view(GATEWAY, j.into(), now)).collect();
    let mut unavailable = Vec::new();
    for (process, answer) in remote {
        match answer {
            Ok(list) => jobs.extend(list.into_inner().jobs.into_iter().map(|j| view(process, j, now))),
            Err(status) => unavailable.push(Unavailable {
                process: process.to_string(),
                error: Problem::from_status(&status).message,
            }),
        }
    }
    Ok(Reply(JobList { jobs, unavailable }))
}

/// A run started by hand.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    /// The job.
    #[schema(example = "media.retention_cleanup")]
    name: String,
    /// Its run's id: follow it in `GET /v1/admin/jobs` (`lastRun`).
    run_id: i64,
}

/// POST /admin/jobs/{name}/run
pub async fn run(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    name: web::Path<String>,
) -> Result<Reply<RunStarted, 202>, ApiError> {
    let name = name.into_inner();
    let not_found = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no job is named {name:?} (names are `<process>.<job>`, as GET /v1/admin/jobs lists them)"),
        )
    };
    let (process, job) = name.split_once('.').ok_or_else(not_found)?;
    let run_id = if process == GATEWAY {
        state.jobs.run_now(job).await.map_err(|e| match e {
            RunNowError::Unknown(_) => not_found(),
            RunNowError::Busy(_) => ApiError::new(ErrorCode::Conflict, format!("{name} is running already")),
            RunNowError::Db(e) => ApiError::from(e),
        })?
    } else {
        let (_, client) = state
            .services
            .iter()
            .find(|(service, _)| *service == process)
            .ok_or_else(not_found)?;
        let answer = client
            .clone()
            .run_job(outgoing(ops::RunJobRequest { name: job.to_string() }, &rid.0))
            .await;
        match answer {
            Ok(r) => r.into_inner().run_id,
            Err(status) if status.code() == tonic::Code::NotFound => return Err(not_found()),
            Err(status) => return Err(status.into()),
        }
    };
    Ok(Reply(RunStarted { name, run_id }))
}
