//! The analytics tables and the queries on them, written once for both backends: vitals as
//! histogram buckets counted by upserts, funnel steps once per session (primary key), events.

use diesel::{prelude::*, upsert::excluded};
use portico_runtime::{db::DbConnection, on_backend};

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        vital_buckets (minute, name, page, device, connection, rating, bucket) {
            minute -> BigInt,
            name -> Text,
            page -> Text,
            device -> Text,
            connection -> Text,
            rating -> Text,
            bucket -> Integer,
            count -> Integer,
        }
    }

    diesel::table! {
        vital_hours (hour, name, rating, bucket) {
            hour -> BigInt,
            name -> Text,
            rating -> Text,
            bucket -> Integer,
            count -> Integer,
        }
    }

    diesel::table! {
        funnel_hours (hour, step) {
            hour -> BigInt,
            step -> Text,
            sessions -> Integer,
        }
    }

    diesel::table! {
        funnel_steps (session_id, step) {
            session_id -> Text,
            step -> Text,
            user_id -> Nullable<Text>,
            occurred_at -> BigInt,
        }
    }

    diesel::table! {
        analytics_events (id) {
            id -> Text,
            name -> Text,
            session_id -> Nullable<Text>,
            user_id -> Nullable<Text>,
            properties -> Text,
            occurred_at -> BigInt,
            received_at -> BigInt,
        }
    }
}

use schema::{analytics_events, funnel_hours, funnel_steps, vital_buckets, vital_hours};

/// Vitals are kept per minute: a bucket's `minute` is its start, in milliseconds.
pub use crate::rollup::MINUTE_MS;
use crate::rollup::{self, HOUR_MS, hour_of};

/// One histogram bucket's count to add.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Insertable)]
#[diesel(table_name = vital_buckets)]
pub struct VitalBucket {
    pub minute: i64,
    pub name: String,
    pub page: String,
    pub device: String,
    pub connection: String,
    pub rating: String,
    pub bucket: i32,
    pub count: i32,
}

impl VitalBucket {
    /// The primary key: what makes two rows the same bucket.
    pub fn key(&self) -> (i64, &str, &str, &str, &str, &str, i32) {
        (
            self.minute,
            &self.name,
            &self.page,
            &self.device,
            &self.connection,
            &self.rating,
            self.bucket,
        )
    }
}

/// Adds the counts (one upsert per distinct bucket; callers merge equal keys first).
pub fn add_vitals(conn: &mut DbConnection, rows: &[VitalBucket]) -> QueryResult<()> {
    for row in rows {
        on_backend!(conn, |c| diesel::insert_into(vital_buckets::table)
            .values(row)
            .on_conflict((
                vital_buckets::minute,
                vital_buckets::name,
                vital_buckets::page,
                vital_buckets::device,
                vital_buckets::connection,
                vital_buckets::rating,
                vital_buckets::bucket,
            ))
            .do_update()
            .set(vital_buckets::count.eq(vital_buckets::count + excluded(vital_buckets::count)))
            .execute(c))?;
    }
    // The same counts, per hour, without the dimensions dashboards do not read.
    let mut hours: std::collections::BTreeMap<(i64, &str, &str, i32), i32> = std::collections::BTreeMap::new();
    for row in rows {
        *hours
            .entry((hour_of(row.minute), &row.name, &row.rating, row.bucket))
            .or_default() += row.count;
    }
    for ((hour, name, rating, bucket), count) in hours {
        on_backend!(conn, |c| diesel::insert_into(vital_hours::table)
            .values((
                vital_hours::hour.eq(hour),
                vital_hours::name.eq(name),
                vital_hours::rating.eq(rating),
                vital_hours::bucket.eq(bucket),
                vital_hours::count.eq(count),
            ))
            .on_conflict((
                vital_hours::hour,
                vital_hours::name,
                vital_hours::rating,
                vital_hours::bucket
            ))
            .do_update()
            .set(vital_hours::count.eq(vital_hours::count + excluded(vital_hours::count)))
            .execute(c))?;
    }
    Ok(())
}

/// Summed counts per (vital, rating, bucket) of the minutes in `[from, to)`.
/// (A bucket may come twice: from the hours and from the minutes at the edges.)
pub fn vital_histograms(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<Vec<(String, String, i32, i64)>> {
    let mut rows: Vec<(String, String, i32, Option<i64>)> = Vec::new();
    for part in rollup::split(from, to, HOUR_MS) {
        let (a, b) = (part.from, part.to);
        rows.extend(if part.span == HOUR_MS {
            vital_hours::table
                .filter(vital_hours::hour.ge(a))
                .filter(vital_hours::hour.lt(b))
                .group_by((vital_hours::name, vital_hours::rating, vital_hours::bucket))
                .select((
                    vital_hours::name,
                    vital_hours::rating,
                    vital_hours::bucket,
                    diesel::dsl::sum(vital_hours::count),
                ))
                .load::<(String, String, i32, Option<i64>)>(conn)?
        } else {
            vital_buckets::table
                .filter(vital_buckets::minute.ge(a))
                .filter(vital_buckets::minute.lt(b))
                .group_by((vital_buckets::name, vital_buckets::rating, vital_buckets::bucket))
                .select((
                    vital_buckets::name,
                    vital_buckets::rating,
                    vital_buckets::bucket,
                    diesel::dsl::sum(vital_buckets::count),
                ))
                .load::<(String, String, i32, Option<i64>)>(conn)?
        });
    }
    Ok(rows.into_iter().map(|(n, r, b, c)| (n, r, b, c.unwrap_or(0))).collect())
}

/// Records that a session reached a step: true the first time.
pub fn record_step(
    conn: &mut DbConnection,
    session_id: &str,
    step: &str,
    user_id: Option<&str>,
    at: i64,
) -> QueryResult<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(funnel_steps::table)
        .values((
            funnel_steps::session_id.eq(session_id),
            funnel_steps::step.eq(step),
            funnel_steps::user_id.eq(user_id),
            funnel_steps::occurred_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    if n == 1 {
        on_backend!(conn, |c| diesel::insert_into(funnel_hours::table)
            .values((
                funnel_hours::hour.eq(hour_of(at)),
                funnel_hours::step.eq(step),
                funnel_hours::sessions.eq(1),
            ))
            .on_conflict((funnel_hours::hour, funnel_hours::step))
            .do_update()
            .set(funnel_hours::sessions.eq(funnel_hours::sessions + 1))
            .execute(c))?;
    }
    Ok(n == 1)
}

/// Sessions per step reached in `[from, to)`: whole hours from the hourly counts, the edges
/// from the steps themselves.
pub fn step_counts(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<Vec<(String, i64)>> {
    let mut counts: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for part in rollup::split(from, to, HOUR_MS) {
        let (a, b) = (part.from, part.to);
        let rows: Vec<(String, i64)> = if part.span == HOUR_MS {
            funnel_hours::table
                .filter(funnel_hours::hour.ge(a))
                .filter(funnel_hours::hour.lt(b))
                .group_by(funnel_hours::step)
                .select((funnel_hours::step, diesel::dsl::sum(funnel_hours::sessions)))
                .load::<(String, Option<i64>)>(conn)?
                .into_iter()
                .map(|(step, n)| (step, n.unwrap_or(0)))
                .collect()
        } else {
            funnel_steps::table
                .filter(funnel_steps::occurred_at.ge(a))
                .filter(funnel_steps::occurred_at.lt(b))
                .group_by(funnel_steps::step)
                .select((funnel_steps::step, diesel::dsl::count_star()))
                .load(conn)?
        };
        for (step, n) in rows {
            *counts.entry(step).or_default() += n;
        }
    }
    Ok(counts.into_iter().collect())
}

/// A product event to keep.
#[derive(Clone, Debug, PartialEq, Eq, Insertable)]
#[diesel(table_name = analytics_events)]
pub struct EventRow {
    pub id: String,
    pub name: String,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub properties: String,
    pub occurred_at: i64,
    pub received_at: i64,
}

/// Keeps the events.
pub fn add_events(conn: &mut DbConnection, rows: &[EventRow]) -> QueryResult<usize> {
    on_backend!(conn, |c| diesel::insert_into(analytics_events::table)
        .values(rows)
        .execute(c))
}

/// Erases one user's funnel steps and events.
pub fn erase_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    let steps = diesel::delete(funnel_steps::table.filter(funnel_steps::user_id.eq(user_id))).execute(conn)?;
    let events = diesel::delete(analytics_events::table.filter(analytics_events::user_id.eq(user_id))).execute(conn)?;
    Ok(steps + events)
}

/// Drops what is older than `before` (retention): raw events and funnel steps; vital
/// buckets and the hourly counts are kept (they hold no personal data and are what
/// dashboards read).
pub fn purge(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    let events =
        diesel::delete(analytics_events::table.filter(analytics_events::occurred_at.lt(before))).execute(conn)?;
    let steps = diesel::delete(funnel_steps::table.filter(funnel_steps::occurred_at.lt(before))).execute(conn)?;
    Ok(events + steps)
}
