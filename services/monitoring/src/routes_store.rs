//! The gateway's per-route measurements: request and error counts and latency histograms per
//! minute, route template and method, added up by upserts (batches of several gateways, and
//! repeats of one, add).

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
        route_buckets (minute, route, method, bucket) {
            minute -> BigInt,
            route -> Text,
            method -> Text,
            bucket -> Integer,
            count -> Integer,
        }
    }
}

use schema::{route_buckets, route_counts};

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
    Ok(())
}

/// Per (route, method): requests, server errors, client errors over `[from, to)` (minutes'
/// starts), optionally of one route.
pub fn totals(conn: &mut DbConnection, from: i64, to: i64, route: Option<&str>) -> QueryResult<Vec<RouteTotal>> {
    // Every route, or the one asked for.
    let q = route_counts::table
        .filter(route_counts::minute.ge(from))
        .filter(route_counts::minute.lt(to))
        .filter(
            route_counts::route
                .eq(route.unwrap_or_default())
                .or(route.is_none().into_sql::<Bool>()),
        );
    let rows: Vec<Summed> = q
        .group_by((route_counts::route, route_counts::method))
        .select((
            route_counts::route,
            route_counts::method,
            diesel::dsl::sum(route_counts::requests),
            diesel::dsl::sum(route_counts::server_errors),
            diesel::dsl::sum(route_counts::client_errors),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(route, method, a, b, c)| RouteTotal {
            route,
            method,
            requests: a.unwrap_or(0),
            server_errors: b.unwrap_or(0),
            client_errors: c.unwrap_or(0),
        })
        .collect())
}

/// Per (route, method, bucket): counts over `[from, to)`, optionally of one route.
pub fn histograms(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
    route: Option<&str>,
) -> QueryResult<Vec<(String, String, i32, i64)>> {
    // Every route, or the one asked for.
    let q = route_buckets::table
        .filter(route_buckets::minute.ge(from))
        .filter(route_buckets::minute.lt(to))
        .filter(
            route_buckets::route
                .eq(route.unwrap_or_default())
                .or(route.is_none().into_sql::<Bool>()),
        );
    let rows: Vec<(String, String, i32, Option<i64>)> = q
        .group_by((route_buckets::route, route_buckets::method, route_buckets::bucket))
        .select((
            route_buckets::route,
            route_buckets::method,
            route_buckets::bucket,
            diesel::dsl::sum(route_buckets::count),
        ))
        .load(conn)?;
    Ok(rows.into_iter().map(|(r, m, b, c)| (r, m, b, c.unwrap_or(0))).collect())
}

/// Per (minute, route, method): requests and server errors over `[from, to)`.
pub fn minute_counts(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<Vec<MinuteCount>> {
    let rows: Vec<(i64, String, String, i32, i32)> = route_counts::table
        .filter(route_counts::minute.ge(from))
        .filter(route_counts::minute.lt(to))
        .select((
            route_counts::minute,
            route_counts::route,
            route_counts::method,
            route_counts::requests,
            route_counts::server_errors,
        ))
        .load(conn)?;
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

/// Per (minute, bucket), all routes together: counts over `[from, to)`.
pub fn minute_histograms(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<Vec<(i64, i32, i64)>> {
    let rows: Vec<(i64, i32, Option<i64>)> = route_buckets::table
        .filter(route_buckets::minute.ge(from))
        .filter(route_buckets::minute.lt(to))
        .group_by((route_buckets::minute, route_buckets::bucket))
        .select((
            route_buckets::minute,
            route_buckets::bucket,
            diesel::dsl::sum(route_buckets::count),
        ))
        .load(conn)?;
    Ok(rows.into_iter().map(|(m, b, c)| (m, b, c.unwrap_or(0))).collect())
}

/// Drops minutes before `before`.
pub fn purge(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    Ok(
        diesel::delete(route_counts::table.filter(route_counts::minute.lt(before))).execute(conn)?
            + diesel::delete(route_buckets::table.filter(route_buckets::minute.lt(before))).execute(conn)?,
    )
}
