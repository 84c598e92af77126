//! The gateway's per-route measurements: request and error counts and latency histograms per
//! minute, route template and method, added up by upserts (batches of several gateways, and
//! repeats of one, add).

use std::collections::BTreeMap;

use diesel::{prelude::*, sql_types::Bool, upsert::excluded};
use portico_runtime::{db::DbConnection, on_backend};

/// Diesel's view of the schema (see `migrations/…_routes`).
pub mod schema {
    diesel::table! {
        route_counts (minute, route, method) {
            minute -> BigInt,
            route -> Text,
            method -> Text,
            requests -> Integer,
            server_errors -> Integer,
            client_errors -> Integer,
        }
    }

    diesel::table! {
        route_count_hours (hour, route, method) {
            hour -> BigInt,
            route -> Text,
            method -> Text,
            requests -> Integer,
            server_errors -> Integer,
            client_errors -> Integer,
        }
    }

    diesel::table! {
        route_bucket_hours (hour, route, method, bucket) {
            hour -> BigInt,
            route -> Text,
            method -> Text,
            bucket -> Integer,
            count -> Integer,
        }
    }

    diesel::table! {
        route_buckets (minute, route, method, bucket) {
            minute -> BigInt,
            route -> Text,
            method -> Text,
            bucket -> Integer,
            count -> Integer,
        }
    }
}

use schema::{route_bucket_hours, route_buckets, route_count_hours, route_counts};

use crate::rollup::{self, hour_of};

/// One minute of one route's counts.
#[derive(Clone, Debug, PartialEq, Eq, Insertable)]
#[diesel(table_name = route_counts)]
pub struct RouteCount {
    pub minute: i64,
    pub route: String,
    pub method: String,
    pub requests: i32,
    pub server_errors: i32,
    pub client_errors: i32,
}

/// One histogram bucket of one minute of one route.
#[derive(Clone, Debug, PartialEq, Eq, Insertable)]
#[diesel(table_name = route_buckets)]
pub struct RouteBucket {
    pub minute: i64,
    pub route: String,
    pub method: String,
    pub bucket: i32,
    pub count: i32,
}

/// One route's counts over a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTotal {
    pub route: String,
    pub method: String,
    pub requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
}

/// One minute of one route: requests and server errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteCount {
    pub minute: i64,
    pub route: String,
    pub method: String,
    pub requests: i64,
    pub server_errors: i64,
}

type Summed = (String, String, Option<i64>, Option<i64>, Option<i64>);

/// Adds the counts and buckets (callers merge equal keys first).
pub fn add(conn: &mut DbConnection, counts: &[RouteCount], buckets: &[RouteBucket]) -> QueryResult<()> {
    for row in counts {
        on_backend!(conn, |c| diesel::insert_into(route_counts::table)
            .values(row)
            .on_conflict((route_counts::minute, route_counts::route, route_counts::method))
            .do_update()
            .set((
                route_counts::requests.eq(route_counts::requests + excluded(route_counts::requests)),
                route_counts::server_errors.eq(route_counts::server_errors + excluded(route_counts::server_errors)),
                route_counts::client_errors.eq(route_counts::client_errors + excluded(route_counts::client_errors)),
            ))
            .execute(c))?;
    }
    for row in buckets {
        on_backend!(conn, |c| diesel::insert_into(route_buckets::table)
            .values(row)
            .on_conflict((
                route_buckets::minute,
                route_buckets::route,
                route_buckets::method,
                route_buckets::bucket,
            ))
            .do_update()
            .set(route_buckets::count.eq(route_buckets::count + excluded(route_buckets::count)))
            .execute(c))?;
    }
    // The same, per hour.
    let mut hours: BTreeMap<(i64, &str, &str), (i32, i32, i32)> = BTreeMap::new();
    for row in counts {
        let h = hours.entry((hour_of(row.minute), &row.route, &row.method)).or_default();
        h.0 += row.requests;
        h.1 += row.server_errors;
        h.2 += row.client_errors;
    }
    for ((hour, route, method), (requests, server_errors, client_errors)) in hours {
        on_backend!(conn, |c| diesel::insert_into(route_count_hours::table)
            .values((
                route_count_hours::hour.eq(hour),
                route_count_hours::route.eq(route),
                route_count_hours::method.eq(method),
                route_count_hours::requests.eq(requests),
                route_count_hours::server_errors.eq(server_errors),
                route_count_hours::client_errors.eq(client_errors),
            ))
            .on_conflict((
                route_count_hours::hour,
                route_count_hours::route,
                route_count_hours::method
            ))
            .do_update()
            .set((
                route_count_hours::requests.eq(route_count_hours::requests + excluded(route_count_hours::requests)),
                route_count_hours::server_errors
                    .eq(route_count_hours::server_errors + excluded(route_count_hours::server_errors)),
                route_count_hours::client_errors
                    .eq(route_count_hours::client_errors + excluded(route_count_hours::client_errors)),
            ))
            .execute(c))?;
    }
    let mut hours: BTreeMap<(i64, &str, &str, i32), i32> = BTreeMap::new();
    for row in buckets {
        *hours
            .entry((hour_of(row.minute), &row.route, &row.method, row.bucket))
            .or_default() += row.count;
    }
    for ((hour, route, method, bucket), count) in hours {
        on_backend!(conn, |c| diesel::insert_into(route_bucket_hours::table)
            .values((
                route_bucket_hours::hour.eq(hour),
                route_bucket_hours::route.eq(route),
                route_bucket_hours::method.eq(method),
                route_bucket_hours::bucket.eq(bucket),
                route_bucket_hours::count.eq(count),
            ))
            .on_conflict((
                route_bucket_hours::hour,
                route_bucket_hours::route,
                route_bucket_hours::method,
                route_bucket_hours::bucket,
            ))
            .do_update()
            .set(route_bucket_hours::count.eq(route_bucket_hours::count + excluded(route_bucket_hours::count)))
            .execute(c))?;
    }
    Ok(())
}

/// Per (route, method): requests, server errors, client errors over `[from, to)` (minutes'
/// starts), optionally of one route; whole hours are read from the hourly rollup.
pub fn totals(conn: &mut DbConnection, from: i64, to: i64, route: Option<&str>) -> QueryResult<Vec<RouteTotal>> {
    let split = rollup::split(from, to);
    let one = route.is_none().into_sql::<Bool>();
    let mut rows: Vec<Summed> = Vec::new();
    if let Some((a, b)) = split.hours {
        rows.extend(
            route_count_hours::table
                .filter(route_count_hours::hour.ge(a))
                .filter(route_count_hours::hour.lt(b))
                .filter(route_count_hours::route.eq(route.unwrap_or_default()).or(one))
                .group_by((route_count_hours::route, route_count_hours::method))
                .select((
                    route_count_hours::route,
                    route_count_hours::method,
                    diesel::dsl::sum(route_count_hours::requests),
                    diesel::dsl::sum(route_count_hours::server_errors),
                    diesel::dsl::sum(route_count_hours::client_errors),
                ))
                .load::<Summed>(conn)?,
        );
    }
    for (a, b) in split.minutes {
        rows.extend(
            route_counts::table
                .filter(route_counts::minute.ge(a))
                .filter(route_counts::minute.lt(b))
                .filter(route_counts::route.eq(route.unwrap_or_default()).or(one))
                .group_by((route_counts::route, route_counts::method))
                .select((
                    route_counts::route,
                    route_counts::method,
                    diesel::dsl::sum(route_counts::requests),
                    diesel::dsl::sum(route_counts::server_errors),
                    diesel::dsl::sum(route_counts::client_errors),
                ))
                .load::<Summed>(conn)?,
        );
    }
    let mut merged: BTreeMap<(String, String), (i64, i64, i64)> = BTreeMap::new();
    for (route, method, a, b, c) in rows {
        let m = merged.entry((route, method)).or_default();
        m.0 += a.unwrap_or(0);
        m.1 += b.unwrap_or(0);
        m.2 += c.unwrap_or(0);
    }
    Ok(merged
        .into_iter()
        .map(
            |((route, method), (requests, server_errors, client_errors))| RouteTotal {
                route,
                method,
                requests,
                server_errors,
                client_errors,
            },
        )
        .collect())
}

/// Per (route, method, bucket): counts over `[from, to)`, optionally of one route (a bucket
/// may come twice: from the hours and from the edges).
pub fn histograms(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
    route: Option<&str>,
) -> QueryResult<Vec<(String, String, i32, i64)>> {
    let split = rollup::split(from, to);
    let one = route.is_none().into_sql::<Bool>();
    let mut rows: Vec<(String, String, i32, Option<i64>)> = Vec::new();
    if let Some((a, b)) = split.hours {
        rows.extend(
            route_bucket_hours::table
                .filter(route_bucket_hours::hour.ge(a))
                .filter(route_bucket_hours::hour.lt(b))
                .filter(route_bucket_hours::route.eq(route.unwrap_or_default()).or(one))
                .group_by((
                    route_bucket_hours::route,
                    route_bucket_hours::method,
                    route_bucket_hours::bucket,
                ))
                .select((
                    route_bucket_hours::route,
                    route_bucket_hours::method,
                    route_bucket_hours::bucket,
                    diesel::dsl::sum(route_bucket_hours::count),
                ))
                .load::<(String, String, i32, Option<i64>)>(conn)?,
        );
    }
    for (a, b) in split.minutes {
        rows.extend(
            route_buckets::table
                .filter(route_buckets::minute.ge(a))
                .filter(route_buckets::minute.lt(b))
                .filter(route_buckets::route.eq(route.unwrap_or_default()).or(one))
                .group_by((route_buckets::route, route_buckets::method, route_buckets::bucket))
                .select((
                    route_buckets::route,
                    route_buckets::method,
                    route_buckets::bucket,
                    diesel::dsl::sum(route_buckets::count),
                ))
                .load::<(String, String, i32, Option<i64>)>(conn)?,
        );
    }
    Ok(rows.into_iter().map(|(r, m, b, c)| (r, m, b, c.unwrap_or(0))).collect())
}

/// How a series over `[from, to)` is read: whole hours from the rollup when `hourly`, else
/// every minute.
fn series_split(from: i64, to: i64, hourly: bool) -> rollup::Split {
    if hourly {
        rollup::split(from, to)
    } else {
        rollup::Split {
            hours: None,
            minutes: vec![(from, to)],
        }
    }
}

/// Per (minute, route, method): requests and server errors over `[from, to)`. With `hourly`
/// (time buckets of whole hours, aligned), whole hours come from the rollup as rows at the
/// hour's start.
pub fn minute_counts(conn: &mut DbConnection, from: i64, to: i64, hourly: bool) -> QueryResult<Vec<MinuteCount>> {
    let split = series_split(from, to, hourly);
    let mut rows: Vec<(i64, String, String, i32, i32)> = Vec::new();
    if let Some((a, b)) = split.hours {
        rows.extend(
            route_count_hours::table
                .filter(route_count_hours::hour.ge(a))
                .filter(route_count_hours::hour.lt(b))
                .select((
                    route_count_hours::hour,
                    route_count_hours::route,
                    route_count_hours::method,
                    route_count_hours::requests,
                    route_count_hours::server_errors,
                ))
                .load::<(i64, String, String, i32, i32)>(conn)?,
        );
    }
    for (a, b) in split.minutes {
        rows.extend(
            route_counts::table
                .filter(route_counts::minute.ge(a))
                .filter(route_counts::minute.lt(b))
                .select((
                    route_counts::minute,
                    route_counts::route,
                    route_counts::method,
                    route_counts::requests,
                    route_counts::server_errors,
                ))
                .load::<(i64, String, String, i32, i32)>(conn)?,
        );
    }
    Ok(rows
        .into_iter()
        .map(|(minute, route, method, a, b)| MinuteCount {
            minute,
            route,
            method,
            requests: i64::from(a),
            server_errors: i64::from(b),
        })
        .collect())
}

/// Per (minute, bucket), all routes together: counts over `[from, to)` (`hourly` as for
/// [`minute_counts`]).
pub fn minute_histograms(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
    hourly: bool,
) -> QueryResult<Vec<(i64, i32, i64)>> {
    let split = series_split(from, to, hourly);
    let mut rows: Vec<(i64, i32, Option<i64>)> = Vec::new();
    if let Some((a, b)) = split.hours {
        rows.extend(
            route_bucket_hours::table
                .filter(route_bucket_hours::hour.ge(a))
                .filter(route_bucket_hours::hour.lt(b))
                .group_by((route_bucket_hours::hour, route_bucket_hours::bucket))
                .select((
                    route_bucket_hours::hour,
                    route_bucket_hours::bucket,
                    diesel::dsl::sum(route_bucket_hours::count),
                ))
                .load::<(i64, i32, Option<i64>)>(conn)?,
        );
    }
    for (a, b) in split.minutes {
        rows.extend(
            route_buckets::table
                .filter(route_buckets::minute.ge(a))
                .filter(route_buckets::minute.lt(b))
                .group_by((route_buckets::minute, route_buckets::bucket))
                .select((
                    route_buckets::minute,
                    route_buckets::bucket,
                    diesel::dsl::sum(route_buckets::count),
                ))
                .load::<(i64, i32, Option<i64>)>(conn)?,
        );
    }
    Ok(rows.into_iter().map(|(m, b, c)| (m, b, c.unwrap_or(0))).collect())
}

/// Drops minutes before `before` (the hourly rollup stays: dashboards past retention read it).
pub fn purge(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    Ok(
        diesel::delete(route_counts::table.filter(route_counts::minute.lt(before))).execute(conn)?
            + diesel::delete(route_buckets::table.filter(route_buckets::minute.lt(before))).execute(conn)?,
    )
}
