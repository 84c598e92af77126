//! API performance from the gateway itself: the per-route counts and latency histograms it
//! ships every few seconds, recorded per minute, and read back as per-route percentiles,
//! request and error counts over time buckets, and the error rate (the dashboard and the
//! `api_p95_ms` / `api_error_rate` alert rules).

use std::collections::BTreeMap;

use portico_sketch::Histogram;

use crate::{
    Monitoring,
    analytics_store::MINUTE_MS,
    error::MonitoringError,
    rollup::HOUR_MS,
    routes_store::{self as store, RouteBucket, RouteCount},
};

/// Most entries per shipment.
pub const MAX_STATS: usize = 10_000;
/// Longest route template and method kept.
const MAX_ROUTE: usize = 256;
const MAX_METHOD: usize = 16;
/// Most time buckets a dashboard answers.
pub const MAX_TIME_BUCKETS: i64 = 1_000;
/// Time buckets a dashboard uses when not told.
const DEFAULT_TIME_BUCKETS: i64 = 60;
/// Routes with their own series in a dashboard (the busiest).
const MAX_ROUTES: usize = 50;

/// One minute of one route, as a gateway measured it.
#[derive(Clone, Debug, Default)]
pub struct RouteStat {
    pub minute_ms: i64,
    pub route: String,
    pub method: String,
    pub requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
    /// Latency histogram, milliseconds (portico-sketch buckets).
    pub buckets: Vec<(i32, i64)>,
}

/// Percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Latency {
    fn of(h: &Histogram) -> Latency {
        if h.count() == 0 {
            return Latency::default();
        }
        Latency {
            p50: h.quantile(0.5),
            p95: h.quantile(0.95),
            p99: h.quantile(0.99),
        }
    }
}

/// Requests and server errors in one time bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// The bucket's start, milliseconds.
    pub start: i64,
    pub requests: i64,
    pub errors: i64,
    /// Percentiles of the bucket (all routes together; zero for a route's own series).
    pub latency: Latency,
}

/// One route over the range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteSummary {
    pub route: String,
    pub method: String,
    pub requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
    pub latency: Latency,
    pub series: Vec<Point>,
}

/// API performance over a range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiDashboard {
    pub bucket_ms: i64,
    pub requests: i64,
    pub server_errors: i64,
    pub latency: Latency,
    /// The busiest routes first.
    pub routes: Vec<RouteSummary>,
    /// All routes together, per time bucket.
    pub series: Vec<Point>,
}

/// A count as stored (a minute of one route never nears 2^31).
fn clamp(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `a / b` rounded up, for positive `a` and `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// The error rate in percent (0 without requests).
pub fn error_rate(requests: i64, errors: i64) -> f64 {
    if requests <= 0 {
        0.0
    } else {
        errors as f64 * 100.0 / requests as f64
    }
}

/// The time bucket of a dashboard over `[from, to)`: `asked` (a whole number of minutes, at
/// most [`MAX_TIME_BUCKETS`] of them in the range), or about sixty when 0.
pub fn time_bucket(from: i64, to: i64, asked: i64) -> Result<i64, MonitoringError> {
    let span = (to - from).max(MINUTE_MS);
    if asked == 0 {
        let per = ceil_div(span, DEFAULT_TIME_BUCKETS);
        return Ok(ceil_div(per, MINUTE_MS).max(1) * MINUTE_MS);
    }
    if asked < MINUTE_MS || asked % MINUTE_MS != 0 || ceil_div(span, asked) > MAX_TIME_BUCKETS {
        return Err(MonitoringError::Invalid(vec![(
            "bucket".into(),
            "must be a whole number of minutes (in seconds: 60, 300, 3600 …), at most 1000 buckets in the range".into(),
        )]));
    }
    Ok(asked)
}

impl Monitoring {
    /// Records a gateway's shipment (entries with the same minute, route and method add up).
    pub async fn record_route_stats(&self, stats: Vec<RouteStat>) -> Result<usize, MonitoringError> {
        if stats.len() > MAX_STATS {
            return Err(MonitoringError::Invalid(vec![(
                "stats".into(),
                "at most 10000 entries".into(),
            )]));
        }
        let mut bad = Vec::new();
        let mut counts: BTreeMap<(i64, String, String), (i64, i64, i64)> = BTreeMap::new();
        let mut buckets: BTreeMap<(i64, String, String, i32), i64> = BTreeMap::new();
        for (i, s) in stats.iter().enumerate() {
            if s.route.is_empty() || s.route.len() > MAX_ROUTE {
                bad.push((format!("stats[{i}].route"), "must be 1 to 256 characters".to_string()));
            }
            if s.method.is_empty() || s.method.len() > MAX_METHOD {
                bad.push((format!("stats[{i}].method"), "must be 1 to 16 characters".to_string()));
            }
            if s.requests < 0 || s.server_errors < 0 || s.client_errors < 0 || s.buckets.iter().any(|(_, n)| *n < 0) {
                bad.push((format!("stats[{i}]"), "counts cannot be negative".to_string()));
            }
            let minute = s.minute_ms / MINUTE_MS * MINUTE_MS;
            let c = counts.entry((minute, s.route.clone(), s.method.clone())).or_default();
            c.0 += s.requests;
            c.1 += s.server_errors;
            c.2 += s.client_errors;
            for (b, n) in &s.buckets {
                *buckets
                    .entry((minute, s.route.clone(), s.method.clone(), *b))
                    .or_default() += n;
            }
        }
        if !bad.is_empty() {
            return Err(MonitoringError::Invalid(bad));
        }
        let counts: Vec<RouteCount> = counts
            .into_iter()
            .map(
                |((minute, route, method), (requests, server_errors, client_errors))| RouteCount {
                    minute,
                    route,
                    method,
                    requests: clamp(requests),
                    server_errors: clamp(server_errors),
                    client_errors: clamp(client_errors),
                },
            )
            .collect();
        let buckets: Vec<RouteBucket> = buckets
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((minute, route, method, bucket), count)| RouteBucket {
                minute,
                route,
                method,
                bucket,
                count: clamp(count),
            })
            .collect();
        let n = counts.len();
        self.db()
            .write(move |conn| Ok::<_, MonitoringError>(store::add(conn, &counts, &buckets)?))
            .await?;
        Ok(n)
    }

    /// The p95 (ms) and error rate (%) over `[from, to)`, of one route or all together; `None`
    /// without requests.
    pub async fn api_health(
        &self,
        from: i64,
        to: i64,
        route: Option<String>,
    ) -> Result<Option<(f64, f64)>, MonitoringError> {
        let (from, to) = (from / MINUTE_MS * MINUTE_MS, to);
        let (totals, hist) = self
            .db()
            .run(move |conn| {
                Ok::<_, MonitoringError>((
                    store::totals(conn, from, to, route.as_deref())?,
                    store::histograms(conn, from, to, route.as_deref())?,
                ))
            })
            .await?;
        let requests: i64 = totals.iter().map(|t| t.requests).sum();
        if requests == 0 {
            return Ok(None);
        }
        let errors: i64 = totals.iter().map(|t| t.server_errors).sum();
        let h = Histogram::new(hist.iter().map(|(_, _, b, c)| (*b, (*c).max(0) as u64)).collect());
        Ok(Some((Latency::of(&h).p95, error_rate(requests, errors))))
    }

    /// Per-route percentiles and counts over `[from, to)` in time buckets of `bucket_ms`.
    pub async fn api_dashboard(&self, from: i64, to: i64, bucket_ms: i64) -> Result<ApiDashboard, MonitoringError> {
        let first = from / MINUTE_MS * MINUTE_MS;
        // Time buckets sit on a grid from the epoch (a bucket of whole hours starts on an hour),
        // so whole-hour buckets can be read from the hourly rollup.
        let hourly = bucket_ms % HOUR_MS == 0;
        let origin = first.div_euclid(bucket_ms) * bucket_ms;
        let (totals, hist, minutes, minute_hist) = self
            .db()
            .run(move |conn| {
                Ok::<_, MonitoringError>((
                    store::totals(conn, first, to, None)?,
                    store::histograms(conn, first, to, None)?,
                    store::minute_counts(conn, first, to, hourly)?,
                    store::minute_histograms(conn, first, to, hourly)?,
                ))
            })
            .await?;
        let slots = ceil_div((to - origin).max(1), bucket_ms);
        let empty = || -> Vec<Point> {
            (0..slots)
                .map(|i| Point {
                    start: origin + i * bucket_ms,
                    ..Point::default()
                })
                .collect()
        };
        let index = |minute: i64| usize::try_from((minute - origin) / bucket_ms).unwrap_or(0);

        let mut routes: Vec<RouteSummary> = totals
            .into_iter()
            .map(|t| {
                let h = Histogram::new(
                    hist.iter()
                        .filter(|(r, m, ..)| *r == t.route && *m == t.method)
                        .map(|(_, _, b, c)| (*b, (*c).max(0) as u64))
                        .collect(),
                );
                RouteSummary {
                    latency: Latency::of(&h),
                    route: t.route,
                    method: t.method,
                    requests: t.requests,
                    server_errors: t.server_errors,
                    client_errors: t.client_errors,
                    series: Vec::new(),
                }
            })
            .collect();
        routes.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.route.cmp(&b.route)));
        routes.truncate(MAX_ROUTES);
        for r in &mut routes {
            let mut series = empty();
            for m in minutes.iter().filter(|m| m.route == r.route && m.method == r.method) {
                if let Some(p) = series.get_mut(index(m.minute)) {
                    p.requests += m.requests;
                    p.errors += m.server_errors;
                }
            }
            r.series = series;
        }

        let mut series = empty();
        for m in &minutes {
            if let Some(p) = series.get_mut(index(m.minute)) {
                p.requests += m.requests;
                p.errors += m.server_errors;
            }
        }
        let mut per_slot: Vec<Vec<(i32, u64)>> = vec![Vec::new(); series.len()];
        for (minute, b, c) in &minute_hist {
            if let Some(v) = per_slot.get_mut(index(*minute)) {
                v.push((*b, (*c).max(0) as u64));
            }
        }
        for (p, buckets) in series.iter_mut().zip(per_slot) {
            p.latency = Latency::of(&Histogram::new(buckets));
        }
        let all = Histogram::new(hist.iter().map(|(_, _, b, c)| (*b, (*c).max(0) as u64)).collect());
        Ok(ApiDashboard {
            bucket_ms,
            requests: series.iter().map(|p| p.requests).sum(),
            server_errors: series.iter().map(|p| p.errors).sum(),
            latency: Latency::of(&all),
            routes,
            series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_buckets_are_whole_minutes_and_bounded() {
        let hour = 3_600_000;
        assert_eq!(time_bucket(0, hour, 0).ok(), Some(MINUTE_MS), "an hour: minutes");
        assert_eq!(
            time_bucket(0, 30 * 86_400_000, 0).ok(),
            Some(12 * hour),
            "a month: half days"
        );
        assert_eq!(time_bucket(0, hour, 300_000).ok(), Some(300_000));
        assert!(time_bucket(0, hour, 90_000).is_err(), "not whole minutes");
        assert!(time_bucket(0, 30 * 86_400_000, MINUTE_MS).is_err(), "43200 buckets");
        assert!(time_bucket(0, hour, 30_000).is_err());
    }

    #[test]
    fn error_rates() {
        assert_eq!(error_rate(0, 0), 0.0);
        assert_eq!(error_rate(200, 10), 5.0);
    }
}
