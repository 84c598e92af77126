//! API performance from the gateway itself: the per-route counts and latency histograms it
//! ships every few seconds, recorded per minute, and read back as per-route percentiles,
//! request and error counts over time buckets, and the error rate (the dashboard and the
//! `api_p95_ms` / `api_error_rate` alert rules).

use std::collections::{BTreeMap, HashMap};

use portico_sketch::Histogram;

use crate::{
    Monitoring,
    error::MonitoringError,
    rollup::{self, DAY_MS, HOUR_MS, MINUTE_MS},
    routes_store::{self as store, RouteBucket, RouteCount},
};

/// Most entries per shipment.
pub const MAX_STATS: usize = 10_000;
/// Longest route template and method kept.
const MAX_ROUTE: usize = 256;
const MAX_METHOD: usize = 16;
/// Most time buckets a dashboard answers.
pub const MAX_TIME_BUCKETS: i64 = 1_000;
/// Time buckets a dashboard uses when not told: the smallest of these giving at most
/// [`DEFAULT_TIME_BUCKETS`] buckets (a month in days, a week in 3 hours, an hour in minutes).
const NICE_BUCKETS: [i64; 12] = [
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    DAY_MS,
    7 * DAY_MS,
];
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

/// A stored count as a histogram's (never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
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
/// most [`MAX_TIME_BUCKETS`] of them in the range), or when 0 a round size giving at most sixty
/// (whole days beyond that, as many as it takes).
pub fn time_bucket(from: i64, to: i64, asked: i64) -> Result<i64, MonitoringError> {
    let span = (to - from).max(MINUTE_MS);
    if asked == 0 {
        return Ok(NICE_BUCKETS
            .into_iter()
            .find(|b| ceil_div(span, *b) <= DEFAULT_TIME_BUCKETS)
            .unwrap_or_else(|| ceil_div(ceil_div(span, DEFAULT_TIME_BUCKETS), DAY_MS) * DAY_MS));
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
        let (counts, buckets) = self
            .db()
            .run(move |conn| {
                Ok::<_, MonitoringError>((
                    store::counts(conn, from, to, DAY_MS, route.as_deref())?,
                    store::buckets(conn, from, to, DAY_MS, route.as_deref())?,
                ))
            })
            .await?;
        let requests: i64 = counts.iter().map(|c| c.requests).sum();
        if requests == 0 {
            return Ok(None);
        }
        let errors: i64 = counts.iter().map(|c| c.server_errors).sum();
        let h = Histogram::new(buckets.iter().map(|b| (b.bucket, count(b.count))).collect());
        Ok(Some((Latency::of(&h).p95, error_rate(requests, errors))))
    }

    /// Per-route percentiles and counts over `[from, to)` in time buckets of `bucket_ms`.
    pub async fn api_dashboard(&self, from: i64, to: i64, bucket_ms: i64) -> Result<ApiDashboard, MonitoringError> {
        let first = from / MINUTE_MS * MINUTE_MS;
        // Time buckets sit on a grid from the epoch (a bucket of whole days starts on a day), so
        // each bucket is read from the coarsest rollup whose rows fall wholly inside it.
        let span = rollup::span_for_bucket(bucket_ms);
        let origin = first.div_euclid(bucket_ms) * bucket_ms;
        let (counts, buckets) = self
            .db()
            .run(move |conn| {
                Ok::<_, MonitoringError>((
                    store::counts(conn, first, to, span, None)?,
                    store::buckets(conn, first, to, span, None)?,
                ))
            })
            .await?;
        let slots = usize::try_from(ceil_div((to - origin).max(1), bucket_ms)).unwrap_or(0);
        let slot = |start: i64| {
            usize::try_from((start - origin) / bucket_ms)
                .ok()
                .filter(|i| *i < slots)
        };
        let empty = || -> Vec<Point> {
            (0..slots as i64)
                .map(|i| Point {
                    start: origin + i * bucket_ms,
                    ..Point::default()
                })
                .collect()
        };

        // All routes per time bucket, and each route's totals.
        let mut series = empty();
        let mut totals: HashMap<(&str, &str), [i64; 3]> = HashMap::new();
        for c in &counts {
            if let Some(p) = slot(c.start).and_then(|i| series.get_mut(i)) {
                p.requests += c.requests;
                p.errors += c.server_errors;
            }
            let t = totals.entry((&c.route, &c.method)).or_default();
            t[0] += c.requests;
            t[1] += c.server_errors;
            t[2] += c.client_errors;
        }
        let mut per_slot: Vec<Vec<(i32, u64)>> = vec![Vec::new(); slots];
        for b in &buckets {
            if let Some(v) = slot(b.start).and_then(|i| per_slot.get_mut(i)) {
                v.push((b.bucket, count(b.count)));
            }
        }
        for (p, buckets) in series.iter_mut().zip(per_slot) {
            p.latency = Latency::of(&Histogram::new(buckets));
        }

        // The busiest routes, each with its percentiles and series.
        let mut busiest: Vec<((&str, &str), [i64; 3])> = totals.into_iter().collect();
        busiest.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0)));
        busiest.truncate(MAX_ROUTES);
        let shown: HashMap<(&str, &str), usize> = busiest.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();
        let mut route_series = vec![empty(); busiest.len()];
        for c in &counts {
            if let (Some(r), Some(i)) = (shown.get(&(c.route.as_str(), c.method.as_str())), slot(c.start))
                && let Some(p) = route_series.get_mut(*r).and_then(|s| s.get_mut(i))
            {
                p.requests += c.requests;
                p.errors += c.server_errors;
            }
        }
        let mut route_buckets: Vec<Vec<(i32, u64)>> = vec![Vec::new(); busiest.len()];
        for b in &buckets {
            if let Some(r) = shown.get(&(b.route.as_str(), b.method.as_str())) {
                route_buckets[*r].push((b.bucket, count(b.count)));
            }
        }
        let routes = busiest
            .into_iter()
            .zip(route_series)
            .zip(route_buckets)
            .map(
                |((((route, method), [requests, server_errors, client_errors]), series), buckets)| RouteSummary {
                    route: route.to_string(),
                    method: method.to_string(),
                    requests,
                    server_errors,
                    client_errors,
                    latency: Latency::of(&Histogram::new(buckets)),
                    series,
                },
            )
            .collect();
        let all = Histogram::new(buckets.iter().map(|b| (b.bucket, count(b.count))).collect());
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
        assert_eq!(time_bucket(0, 30 * 86_400_000, 0).ok(), Some(DAY_MS), "a month: days");
        assert_eq!(time_bucket(0, 7 * 86_400_000, 0).ok(), Some(3 * hour), "a week");
        assert_eq!(time_bucket(0, 86_400_000, 0).ok(), Some(30 * MINUTE_MS), "a day");
        assert_eq!(
            time_bucket(0, 365 * 86_400_000, 0).ok(),
            Some(7 * DAY_MS),
            "a year: weeks"
        );
        assert_eq!(
            time_bucket(0, 3650 * 86_400_000, 0).ok(),
            Some(61 * DAY_MS),
            "ten years: whole days, at most sixty buckets"
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
