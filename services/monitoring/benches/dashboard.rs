//! The performance dashboard over a month of one-minute data (in its default day buckets, and
//! in 12-hour buckets), beside the same dashboard over one hour (the baseline, in the same run): vitals, the funnel and the API's per-route
//! figures, on SQLite (and PostgreSQL when `PORTICO_TEST_PG_URL` is set, each on a fresh database).
//!
//! `cargo bench -p portico-monitoring --bench dashboard` (BENCHMARKS.md has the figures).
//! The month: 30 days × 1,440 minutes, each with 10 routes (5 latency buckets each), the five
//! vitals (3 buckets each) and funnel sessions through the nine steps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use portico_monitoring::{
    MonitoringConfig,
    analytics::Metric,
    routes::{RouteStat, time_bucket},
};
use portico_runtime::config::Vars;
use portico_testkit::{Backend, TestDb};
use tokio_util::sync::CancellationToken;

const MINUTE: i64 = 60_000;
const DAYS: i64 = 30;

async fn filled(backend: Backend, t0: i64) -> (portico_monitoring::Monitoring, Arc<TestDb>, CancellationToken) {
    let db = Arc::new(TestDb::new(backend, "dashboard_bench"));
    let vars = vec![
        ("PORTICO_MONITORING_DATABASE_URL", db.url.clone()),
        ("PORTICO_MONITORING_GRPC_ADDR", "127.0.0.1:0".to_string()),
        ("PORTICO_ALERT_EVAL_INTERVAL_SECS", "0".to_string()),
        ("PORTICO_MONITORING_PROBE_INTERVAL_SECS", "0".to_string()),
        ("PORTICO_MONITORING_RETENTION_DAYS", "90".to_string()),
    ];
    let stop = CancellationToken::new();
    let started = portico_runtime::service::start(
        MonitoringConfig::from_vars(&Vars::from_map(vars)).unwrap(),
        stop.clone(),
    )
    .await
    .unwrap();
    let app = started.app;
    let minutes = DAYS * 1_440;
    let mut stats = Vec::new();
    for m in 0..minutes {
        for r in 0..10 {
            stats.push(RouteStat {
                minute_ms: t0 + m * MINUTE,
                route: format!("/v1/route/{r}"),
                method: "GET".into(),
                requests: 50,
                server_errors: i64::from(m % 97 == 0),
                client_errors: 1,
                buckets: (0..5)
                    .map(|b| (portico_sketch::bucket_of(2.0 + f64::from(b) * 3.0 + r as f64), 10))
                    .collect(),
            });
        }
        if stats.len() >= 10_000 {
            app.record_route_stats(std::mem::take(&mut stats)).await.unwrap();
        }
    }
    app.record_route_stats(stats).await.unwrap();
    let vitals = [
        ("LCP", 2_000.0),
        ("INP", 150.0),
        ("CLS", 0.05),
        ("FCP", 1_500.0),
        ("TTFB", 600.0),
    ];
    let mut batch = Vec::new();
    for m in 0..minutes {
        for (name, value) in vitals {
            for k in 0..3 {
                batch.push(Metric {
                    name: name.into(),
                    value: value * (1.0 + f64::from(k)),
                    occurred_at_ms: t0 + m * MINUTE,
                    ..Metric::default()
                });
            }
        }
        if batch.len() >= 90 {
            app.record_metrics(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    if !batch.is_empty() {
        app.record_metrics(batch).await.unwrap();
    }
    // A session every 10 minutes, reaching fewer steps the further along.
    for m in (0..minutes).step_by(10) {
        for (i, step) in portico_monitoring::domain::analytics::FUNNEL.iter().enumerate() {
            if (m / 10) % 9 >= i as i64 {
                app.record_step(&format!("s{m}"), step, None, t0 + m * MINUTE)
                    .await
                    .unwrap();
            }
        }
    }
    (app, db, stop)
}

fn dashboard(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let now = portico_runtime::db::now_ms();
    let t0 = (now - (DAYS + 1) * 86_400_000) / MINUTE * MINUTE;
    let month_end = t0 + DAYS * 86_400_000;
    for backend in portico_testkit::backends() {
        let started = std::time::Instant::now();
        let (app, _db, stop) = rt.block_on(filled(backend, t0));
        eprintln!(
            "{backend:?}: a month filled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut group = c.benchmark_group(format!("dashboard_{backend:?}").to_lowercase());
        group.sample_size(20).measurement_time(Duration::from_secs(10));
        // The default time buckets (a month: days), and a month in 12-hour buckets, which
        // reads hours instead of days.
        for (name, from, to, asked) in [
            ("one_hour", month_end - 3_600_000, month_end, 0),
            ("one_month", t0, month_end, 0),
            ("one_month_in_12h", t0, month_end, 12 * 3_600_000),
        ] {
            let bucket = time_bucket(from, to, asked).unwrap();
            group.bench_function(name, |b| {
                b.to_async(&rt).iter(|| async {
                    let d = app.dashboard(from, to).await.unwrap();
                    let api = app.api_dashboard(from, to, bucket).await.unwrap();
                    assert!(api.requests > 0 && !d.vitals.is_empty());
                    (d, api)
                })
            });
        }
        // The month's two halves: vitals and the funnel; the API's per-route figures.
        let bucket = time_bucket(t0, month_end, 0).unwrap();
        group.bench_function("one_month/vitals_funnel", |b| {
            b.to_async(&rt)
                .iter(|| async { app.dashboard(t0, month_end).await.unwrap() })
        });
        group.bench_function("one_month/api", |b| {
            b.to_async(&rt)
                .iter(|| async { app.api_dashboard(t0, month_end, bucket).await.unwrap() })
        });
        group.finish();
        stop.cancel();
    }
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
