//! Prometheus metrics: one recorder per process, rendered at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets (seconds) fit for request handling: 0.25 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder (idempotent) and returns the handle that renders it.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// The metrics text in Prometheus exposition format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

/// Publishes a database pool's usage as gauges.
pub fn record_pool(service: &'static str, status: crate::db::PoolStatus) {
    metrics::gauge!("portico_db_pool_connections", "service" => service, "state" => "open").set(status.size as f64);
    metrics::gauge!("portico_db_pool_connections", "service" => service, "state" => "idle")
        .set(status.available as f64);
    metrics::gauge!("portico_db_pool_connections", "service" => service, "state" => "max").set(status.max_size as f64);
    metrics::gauge!("portico_db_pool_waiting", "service" => service).set(status.waiting as f64);
}
