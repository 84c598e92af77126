//! The gateway's per-route measurements: request and error counts and latency histograms per
//! minute, route template and method, added up by upserts (batches of several gateways, and
//! repeats of one, add).

use std::collections::BTreeMap;

use diesel::{prelude::*, sql_types::Bool, upsert::excluded};
use portico_runtime::{db::DbConnection, on_backend};

/// Diesel's view of the schema (see `migrations/…_routes` and `…_route_rollups`).
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
        route_buckets (minute, route, method, bucket) {
            minute -> BigInt,
            route -> Text,
            method -> Text,
            bucket -> Integer,
            count -> Integer,
        }
    }

    diesel::table! {
        /// The counts per hour and per day (`span`, milliseconds).
        route_count_rollups (span, start, route, method) {
            span -> BigInt,
            start -> BigInt,
            route -> Text,
            method -> Text,
            requests -> BigInt,
            server_errors -> BigInt,
            client_errors -> BigInt,
        }
    }

    diesel::table! {
        /// The histograms per hour and per day (`span`, milliseconds).
        route_bucket_rollups (span, start, route, method, bucket) {
            span -> BigInt,
            start -> BigInt,
            route -> Text,
            method -> Text,
            bucket -> Integer,
            count -> BigInt,
        }
    }
}

use schema::{route_bucket_rollups, route_buckets, route_count_rollups, route_counts};

use crate::rollup::{self, DAY_MS, HOUR_MS, MINUTE_MS, start_of};

/// The spans rolled up as minutes are written.
const ROLLUPS: [i64; 2] = [HOUR_MS, DAY_MS];

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

/// One route's counts over a minute, an hour or a day starting at `start`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Counted {
    pub start: i64,
    pub route: String,
    pub method: String,
    pub requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
}

/// One histogram bucket of one route over a minute, an hour or a day starting at `start`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Bucketed {
    pub start: i64,
    pub route: String,
    pub method: String,
    pub bucket: i32,
    pub count: i64,
}

/// Adds the counts and buckets to the minutes and their rollups (callers merge equal keys
/// first).
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
    for span in ROLLUPS {
        let mut rolled: BTreeMap<(i64, &str, &str), [i64; 3]> = BTreeMap::new();
        for row in counts {
            let r = rolled
                .entry((start_of(row.minute, span), &row.route, &row.method))
                .or_default();
            r[0] += i64::from(row.requests);
            r[1] += i64::from(row.server_errors);
            r[2] += i64::from(row.client_errors);
        }
        for ((start, route, method), [requests, server_errors, client_errors]) in rolled {
            on_backend!(conn, |c| diesel::insert_into(route_count_rollups::table)
                .values((
                    route_count_rollups::span.eq(span),
                    route_count_rollups::start.eq(start),
                    route_count_rollups::route.eq(route),
                    route_count_rollups::method.eq(method),
                    route_count_rollups::requests.eq(requests),
                    route_count_rollups::server_errors.eq(server_errors),
                    route_count_rollups::client_errors.eq(client_errors),
                ))
                .on_conflict((
                    route_count_rollups::span,
                    route_count_rollups::start,
                    route_count_rollups::route,
                    route_count_rollups::method,
                ))
                .do_update()
                .set((
                    route_count_rollups::requests
                        .eq(route_count_rollups::requests + excluded(route_count_rollups::requests)),
                    route_count_rollups::server_errors
                        .eq(route_count_rollups::server_errors + excluded(route_count_rollups::server_errors)),
                    route_count_rollups::client_errors
                        .eq(route_count_rollups::client_errors + excluded(route_count_rollups::client_errors)),
                ))
                .execute(c))?;
        }
        let mut rolled: BTreeMap<(i64, &str, &str, i32), i64> = BTreeMap::new();
        for row in buckets {
            *rolled
                .entry((start_of(row.minute, span), &row.route, &row.method, row.bucket))
                .or_default() += i64::from(row.count);
        }
        for ((start, route, method, bucket), count) in rolled {
            on_backend!(conn, |c| diesel::insert_into(route_bucket_rollups::table)
                .values((
                    route_bucket_rollups::span.eq(span),
                    route_bucket_rollups::start.eq(start),
                    route_bucket_rollups::route.eq(route),
                    route_bucket_rollups::method.eq(method),
                    route_bucket_rollups::bucket.eq(bucket),
                    route_bucket_rollups::count.eq(count),
                ))
                .on_conflict((
                    route_bucket_rollups::span,
                    route_bucket_rollups::start,
                    route_bucket_rollups::route,
                    route_bucket_rollups::method,
                    route_bucket_rollups::bucket,
                ))
                .do_update()
                .set(
                    route_bucket_rollups::count.eq(route_bucket_rollups::count + excluded(route_bucket_rollups::count))
                )
                .execute(c))?;
        }
    }
    Ok(())
}

/// Every route's counts over `[from, to)` (minutes' starts), optionally of one route, as rows
/// of whole days, hours or minutes (each at its start), none coarser than `coarsest`.
pub fn counts(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
    coarsest: i64,
    route: Option<&str>,
) -> QueryResult<Vec<Counted>> {
    let any = route.is_none().into_sql::<Bool>();
    let one = route.unwrap_or_default();
    let mut rows = Vec::new();
    for part in rollup::split(from, to, coarsest) {
        if part.span == MINUTE_MS {
            let minutes: Vec<(i64, String, String, i32, i32, i32)> = route_counts::table
                .filter(route_counts::minute.ge(part.from))
                .filter(route_counts::minute.lt(part.to))
                .filter(route_counts::route.eq(one).or(any))
                .select((
                    route_counts::minute,
                    route_counts::route,
                    route_counts::method,
                    route_counts::requests,
                    route_counts::server_errors,
                    route_counts::client_errors,
                ))
                .load(conn)?;
            rows.extend(minutes.into_iter().map(|(start, route, method, a, b, c)| Counted {
                start,
                route,
                method,
                requests: i64::from(a),
                server_errors: i64::from(b),
                client_errors: i64::from(c),
            }));
        } else {
            rows.extend(
                route_count_rollups::table
                    .filter(route_count_rollups::span.eq(part.span))
                    .filter(route_count_rollups::start.ge(part.from))
                    .filter(route_count_rollups::start.lt(part.to))
                    .filter(route_count_rollups::route.eq(one).or(any))
                    .select((
                        route_count_rollups::start,
                        route_count_rollups::route,
                        route_count_rollups::method,
                        route_count_rollups::requests,
                        route_count_rollups::server_errors,
                        route_count_rollups::client_errors,
                    ))
                    .load::<Counted>(conn)?,
            );
        }
    }
    Ok(rows)
}

/// Every route's histogram buckets over `[from, to)`, as [`counts`] reads counts.
pub fn buckets(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
    coarsest: i64,
    route: Option<&str>,
) -> QueryResult<Vec<Bucketed>> {
    let any = route.is_none().into_sql::<Bool>();
    let one = route.unwrap_or_default();
    let mut rows = Vec::new();
    for part in rollup::split(from, to, coarsest) {
        if part.span == MINUTE_MS {
            let minutes: Vec<(i64, String, String, i32, i32)> = route_buckets::table
                .filter(route_buckets::minute.ge(part.from))
                .filter(route_buckets::minute.lt(part.to))
                .filter(route_buckets::route.eq(one).or(any))
                .select((
                    route_buckets::minute,
                    route_buckets::route,
                    route_buckets::method,
                    route_buckets::bucket,
                    route_buckets::count,
                ))
                .load(conn)?;
            rows.extend(
                minutes
                    .into_iter()
                    .map(|(start, route, method, bucket, count)| Bucketed {
                        start,
                        route,
                        method,
                        bucket,
                        count: i64::from(count),
                    }),
            );
        } else {
            rows.extend(
                route_bucket_rollups::table
                    .filter(route_bucket_rollups::span.eq(part.span))
                    .filter(route_bucket_rollups::start.ge(part.from))
                    .filter(route_bucket_rollups::start.lt(part.to))
                    .filter(route_bucket_rollups::route.eq(one).or(any))
                    .select((
                        route_bucket_rollups::start,
                        route_bucket_rollups::route,
                        route_bucket_rollups::method,
                        route_bucket_rollups::bucket,
                        route_bucket_rollups::count,
                    ))
                    .load::<Bucketed>(conn)?,
            );
        }
    }
    Ok(rows)
}

/// Drops minutes before `before` (the rollups stay: dashboards past retention read them).
pub fn purge(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    Ok(
        diesel::delete(route_counts::table.filter(route_counts::minute.lt(before))).execute(conn)?
            + diesel::delete(route_buckets::table.filter(route_buckets::minute.lt(before))).execute(conn)?,
    )
}
