//! The scheduled jobs' runs, as rows: claiming a period, renewing a run's lease, finishing,
//! and taking over a run whose replica stopped renewing (see [`crate::jobs`]).
//!
//! Exclusion comes from two things written in one transaction: a period's attempt is a row
//! unique per (job, period, attempt), and a run holds the lease `job:{name}` (see
//! [`crate::lease`]) under the holder `{replica}/{run id}`, so at most one run of a job goes at
//! a time. The run id is the fencing token: a run whose lease was taken over can neither renew
//! nor record its end.

use diesel::prelude::*;

use crate::{db::DbConnection, lease};

/// Diesel's view of the table (see `migrations/…_job_runs`).
pub mod schema {
    diesel::table! {
        job_runs (id) {
            id -> BigInt,
            job -> Text,
            scheduled_at -> BigInt,
            attempt -> Integer,
            cause -> Text,
            runner -> Text,
            started_at -> BigInt,
            finished_at -> Nullable<BigInt>,
            outcome -> Text,
            detail -> Nullable<Text>,
        }
    }
}

use schema::job_runs;

/// Outcomes as stored.
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
/// Its replica stopped renewing; the period was handed to the next attempt.
pub const ABANDONED: &str = "abandoned";
/// An earlier run of the job was still going when the period came.
pub const SKIPPED: &str = "skipped";

/// Most attempts of one period (a run that kills its process is not retried forever).
pub const MAX_ATTEMPTS: i32 = 3;

/// One run as stored.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = job_runs)]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    pub scheduled_at: i64,
    pub attempt: i32,
    pub cause: String,
    pub runner: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// What claiming a period gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This replica runs it: the run id and the lease holder it renews as.
    Run { id: i64, holder: String },
    /// Another replica claimed this period already.
    Taken,
    /// A run of the job is still going (recorded as skipped with `record_skip`, else nothing
    /// is kept).
    Busy,
}

/// The lease a job's runs hold.
pub fn lease_name(job: &str) -> String {
    format!("job:{job}")
}

fn holder_of(runner: &str, id: i64) -> String {
    format!("{runner}/{id}")
}

/// Claims attempt `attempt` of `job`'s period `scheduled_at` for `runner`, holding the job's
/// lease until `now + lease_ms`. Call inside a write transaction.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    conn: &mut DbConnection,
    job: &str,
    scheduled_at: i64,
    attempt: i32,
    cause: &str,
    runner: &str,
    now: i64,
    lease_ms: i64,
    record_skip: bool,
) -> QueryResult<Claim> {
    let inserted = crate::on_backend!(conn, |c| diesel::insert_into(job_runs::table)
        .values((
            job_runs::job.eq(job),
            job_runs::scheduled_at.eq(scheduled_at),
            job_runs::attempt.eq(attempt),
            job_runs::cause.eq(cause),
            job_runs::runner.eq(runner),
            job_runs::started_at.eq(now),
            job_runs::outcome.eq(RUNNING),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 0 {
        return Ok(Claim::Taken);
    }
    let id: i64 = job_runs::table
        .filter(job_runs::job.eq(job))
        .filter(job_runs::scheduled_at.eq(scheduled_at))
        .filter(job_runs::attempt.eq(attempt))
        .select(job_runs::id)
        .first(conn)?;
    let holder = holder_of(runner, id);
    if lease::take(conn, &lease_name(job), &holder, now, now + lease_ms)? {
        return Ok(Claim::Run { id, holder });
    }
    if record_skip {
        diesel::update(job_runs::table.find(id))
            .set((
                job_runs::outcome.eq(SKIPPED),
                job_runs::finished_at.eq(now),
                job_runs::detail.eq("an earlier run was still going"),
            ))
            .execute(conn)?;
    } else {
        diesel::delete(job_runs::table.find(id)).execute(conn)?;
    }
    Ok(Claim::Busy)
}

/// Renews a run's lease: false when it was taken over (the run must stop).
pub fn renew(conn: &mut DbConnection, job: &str, holder: &str, now: i64, lease_ms: i64) -> QueryResult<bool> {
    lease::hold(conn, &lease_name(job), holder, now, now + lease_ms)
}

/// Records a run's end and frees the job: false when the run was taken over meanwhile (its end
/// is not recorded).
pub fn finish(
    conn: &mut DbConnection,
    id: i64,
    job: &str,
    holder: &str,
    outcome: &str,
    detail: Option<&str>,
    now: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        job_runs::table
            .filter(job_runs::id.eq(id))
            .filter(job_runs::outcome.eq(RUNNING)),
    )
    .set((
        job_runs::outcome.eq(outcome),
        job_runs::finished_at.eq(now),
        job_runs::detail.eq(detail),
    ))
    .execute(conn)?;
    lease::release(conn, &lease_name(job), holder)?;
    Ok(n == 1)
}

/// Runs recorded as going whose lease ran out at `now` or went to someone else: their replica
/// died or stalled (a read: [`take_over`] decides).
pub fn stale(conn: &mut DbConnection, now: i64) -> QueryResult<Vec<RunRow>> {
    let going: Vec<RunRow> = job_runs::table
        .filter(job_runs::outcome.eq(RUNNING))
        .order(job_runs::id.asc())
        .select(RunRow::as_select())
        .load(conn)?;
    let mut stale = Vec::new();
    for run in going {
        let renewed = lease::holder(conn, &lease_name(&run.job))?
            .is_some_and(|(holder, until)| holder == holder_of(&run.runner, run.id) && until > now);
        if !renewed {
            stale.push(run);
        }
    }
    Ok(stale)
}

/// Takes over `stale` (a run recorded as going whose replica may have died) for `runner`: when
/// the job's lease has run out, the run is marked abandoned and, below [`MAX_ATTEMPTS`], its
/// period's next attempt is claimed, all in the caller's write transaction. `None` when the run
/// is still renewed or someone else took it over first.
pub fn take_over(
    conn: &mut DbConnection,
    stale: &RunRow,
    runner: &str,
    now: i64,
    lease_ms: i64,
) -> QueryResult<Option<Claim>> {
    let abandon = |conn: &mut DbConnection| {
        diesel::update(
            job_runs::table
                .filter(job_runs::id.eq(stale.id))
                .filter(job_runs::outcome.eq(RUNNING)),
        )
        .set((
            job_runs::outcome.eq(ABANDONED),
            job_runs::finished_at.eq(now),
            job_runs::detail.eq("its replica stopped renewing the run"),
        ))
        .execute(conn)
    };
    if stale.attempt >= MAX_ATTEMPTS {
        // Last attempt: free the period without another, once the lease has run out.
        let probe = holder_of(runner, -stale.id);
        if !lease::take(conn, &lease_name(&stale.job), &probe, now, now)? {
            return Ok(None);
        }
        return Ok((abandon(conn)? == 1).then_some(Claim::Taken));
    }
    let claimed = claim(
        conn,
        &stale.job,
        stale.scheduled_at,
        stale.attempt + 1,
        "retry",
        runner,
        now,
        lease_ms,
        false,
    )?;
    let Claim::Run { id, holder } = claimed else {
        return Ok(None);
    };
    if abandon(conn)? == 1 {
        return Ok(Some(Claim::Run { id, holder }));
    }
    // It ended meanwhile: nothing to retry.
    diesel::delete(job_runs::table.find(id)).execute(conn)?;
    lease::release(conn, &lease_name(&stale.job), &holder)?;
    Ok(None)
}

/// When each job last succeeded.
pub type LastSuccess = (String, Option<i64>);

/// The latest run of each job, and when each last succeeded.
pub fn latest(conn: &mut DbConnection) -> QueryResult<(Vec<RunRow>, Vec<LastSuccess>)> {
    let last_ids: Vec<Option<i64>> = job_runs::table
        .group_by(job_runs::job)
        .select(diesel::dsl::max(job_runs::id))
        .load(conn)?;
    let ids: Vec<i64> = last_ids.into_iter().flatten().collect();
    let last = job_runs::table
        .filter(job_runs::id.eq_any(ids))
        .select(RunRow::as_select())
        .load(conn)?;
    let succeeded = job_runs::table
        .filter(job_runs::outcome.eq(SUCCEEDED))
        .group_by(job_runs::job)
        .select((job_runs::job, diesel::dsl::max(job_runs::finished_at)))
        .load(conn)?;
    Ok((last, succeeded))
}

/// A job's runs, newest first.
pub fn runs_of(conn: &mut DbConnection, job: &str, limit: i64) -> QueryResult<Vec<RunRow>> {
    job_runs::table
        .filter(job_runs::job.eq(job))
        .order(job_runs::id.desc())
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)
}

/// Forgets finished runs that ended before `before`.
pub fn purge(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(
        job_runs::table
            .filter(job_runs::outcome.ne(RUNNING))
            .filter(job_runs::finished_at.lt(before)),
    )
    .execute(conn)
}
