//! Per-route response times and status counts for the monitoring service: every answer adds
//! to a latency histogram (portico-sketch buckets) and counts per minute, route template and
//! method, in one of several shards (a worker thread keeps to its own, so the lock on the
//! request path is uncontended); a background task ships and empties them every
//! `PORTICO_ROUTE_STATS_FLUSH_SECS`, off the request path. A shipment that fails is kept and
//! sent with the next one, up to a bound.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use portico_proto::monitoring::v1 as pb;
use portico_runtime::grpc::outgoing;
use tokio_util::sync::CancellationToken;

use crate::AppState;

const SHARDS: usize = 16;
const MINUTE_MS: i64 = 60_000;
/// Most entries kept waiting when the monitoring service cannot be reached.
const MAX_PENDING: usize = 50_000;

/// One minute of one route.
#[derive(Default)]
struct Acc {
    requests: i64,
    server_errors: i64,
    client_errors: i64,
    buckets: HashMap<i32, i64>,
}

/// Route template → method → minute → counts.
type Window = HashMap<Box<str>, HashMap<Box<str>, Vec<(i64, Acc)>>>;

/// The collector.
pub struct RouteStats {
    shards: Vec<Mutex<Window>>,
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            shards: (0..SHARDS).map(|_| Mutex::new(Window::new())).collect(),
        }
    }
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    MINE.with(|i| *i)
}

impl RouteStats {
    /// Adds one answer: its route template, method, status and time taken.
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed_ms: f64, now_ms: i64) {
        let minute = now_ms / MINUTE_MS * MINUTE_MS;
        let Ok(mut window) = self.shards[shard_index()].lock() else {
            return;
        };
        let methods = match window.get_mut(route) {
            Some(m) => m,
            None => window.entry(route.into()).or_default(),
        };
        let minutes = match methods.get_mut(method) {
            Some(m) => m,
            None => methods.entry(method.into()).or_default(),
        };
        let acc = match minutes.iter().position(|(m, _)| *m == minute) {
            Some(i) => &mut minutes[i].1,
            None => {
                minutes.push((minute, Acc::default()));
                let last = minutes.len() - 1;
                &mut minutes[last].1
            }
        };
        acc.requests += 1;
        match status {
            500.. => acc.server_errors += 1,
            400..=499 => acc.client_errors += 1,
            _ => {}
        }
        *acc.buckets.entry(portico_sketch::bucket_of(elapsed_ms)).or_default() += 1;
    }

    /// Empties every shard into one shipment.
    pub fn drain(&self) -> Vec<pb::RouteStat> {
        let mut merged: HashMap<(i64, Box<str>, Box<str>), Acc> = HashMap::new();
        for shard in &self.shards {
            let window = match shard.lock() {
                Ok(mut w) => std::mem::take(&mut *w),
                Err(_) => continue,
            };
            for (route, methods) in window {
                for (method, minutes) in methods {
                    for (minute, acc) in minutes {
                        let into = merged.entry((minute, route.clone(), method.clone())).or_default();
                        into.requests += acc.requests;
                        into.server_errors += acc.server_errors;
                        into.client_errors += acc.client_errors;
                        for (b, n) in acc.buckets {
                            *into.buckets.entry(b).or_default() += n;
                        }
                    }
                }
            }
        }
        merged
            .into_iter()
            .map(|((minute, route, method), acc)| pb::RouteStat {
                minute_ms: minute,
                route: route.into(),
                method: method.into(),
                requests: acc.requests,
                server_errors: acc.server_errors,
                client_errors: acc.client_errors,
                buckets: acc
                    .buckets
                    .into_iter()
                    .map(|(bucket, count)| pb::HistogramBucket { bucket, count })
                    .collect(),
            })
            .collect()
    }
}

/// Ships the collected statistics every `every` until `shutdown` (and once more then).
pub fn spawn_shipping(state: Arc<AppState>, every: Duration, shutdown: CancellationToken) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut pending: Vec<pb::RouteStat> = Vec::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let last = tokio::select! { _ = shutdown.cancelled() => true, _ = tick.tick() => false };
            pending.extend(state.route_stats.drain());
            if !pending.is_empty() {
                pending = ship(&state, pending).await;
            }
            if last {
                break;
            }
        }
    });
}

/// Sends `stats` (in shipments of at most the service's cap); answers what could not be sent,
/// bounded.
async fn ship(state: &AppState, mut stats: Vec<pb::RouteStat>) -> Vec<pb::RouteStat> {
    let Ok(mut client) = state.monitoring() else {
        return stats;
    };
    while !stats.is_empty() {
        let rest = stats.split_off(stats.len().min(5_000));
        let sent = client
            .record_route_stats(outgoing(pb::RecordRouteStatsRequest { stats: stats.clone() }, ""))
            .await;
        match sent {
            Ok(_) => stats = rest,
            Err(e) => {
                tracing::debug!(error = %e, "route statistics not shipped; kept for the next try");
                stats.extend(rest);
                if stats.len() > MAX_PENDING {
                    let dropped = stats.len() - MAX_PENDING;
                    stats.drain(..dropped);
                    metrics::counter!("portico_route_stats_dropped_total").increment(dropped as u64);
                }
                return stats;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_add_up_per_minute_route_and_method() {
        let stats = RouteStats::default();
        stats.record("/v1/a", "GET", 200, 10.0, 60_000);
        stats.record("/v1/a", "GET", 503, 12.0, 61_000);
        stats.record("/v1/a", "GET", 404, 10.0, 119_999);
        stats.record("/v1/a", "POST", 201, 10.0, 120_000);
        std::thread::scope(|s| {
            s.spawn(|| stats.record("/v1/a", "GET", 200, 10.0, 60_500));
        });
        let mut shipped = stats.drain();
        shipped.sort_by_key(|s| (s.minute_ms, s.method.clone()));
        let counts: Vec<(i64, &str, i64, i64, i64)> = shipped
            .iter()
            .map(|s| {
                (
                    s.minute_ms,
                    s.method.as_str(),
                    s.requests,
                    s.server_errors,
                    s.client_errors,
                )
            })
            .collect();
        assert_eq!(counts, [(60_000, "GET", 4, 1, 1), (120_000, "POST", 1, 0, 0)]);
        let in_buckets: i64 = shipped[0].buckets.iter().map(|b| b.count).sum();
        assert_eq!(in_buckets, 4);
        assert!(stats.drain().is_empty(), "drained");
    }
}
