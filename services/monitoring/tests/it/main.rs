//! The monitoring service over real gRPC, on SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod analytics;
mod api;
mod errors;

use std::{sync::Arc, time::Duration};

use portico_monitoring::{Monitoring, MonitoringConfig};
use portico_proto::monitoring::v1::monitoring_service_client::MonitoringServiceClient;
use portico_runtime::{
    config::Vars,
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, TestDb};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub const TOKEN: &str = "test-internal-token-0123456789";

pub type Client = MonitoringServiceClient<InterceptedService<Channel, PresentInternalToken>>;

/// A monitoring service on an ephemeral port with its own database.
pub struct Service {
    pub app: Monitoring,
    pub client: Client,
    pub addr: std::net::SocketAddr,
    pub db: Arc<TestDb>,
    stop: CancellationToken,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Service {
    /// A service on its own new database, evaluator and probes off.
    pub async fn start(backend: Backend) -> Service {
        Service::start_with(Arc::new(TestDb::new(backend, "monitoring")), &[]).await
    }

    /// A service on `db` (two services on one database are two replicas); `extra` variables
    /// override the defaults (the evaluator and the probes are off unless `extra` sets them).
    pub async fn start_with(db: Arc<TestDb>, extra: &[(&str, &str)]) -> Service {
        let mut vars = vec![
            ("PORTICO_MONITORING_DATABASE_URL", db.url.as_str()),
            ("PORTICO_MONITORING_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
            ("PORTICO_PUBLIC_URL", "https://portico.test"),
            ("PORTICO_ALERT_EVAL_INTERVAL_SECS", "0"),
            ("PORTICO_MONITORING_PROBE_INTERVAL_SECS", "0"),
            ("PORTICO_ALERT_WEBHOOKS_ALLOW_PRIVATE", "true"),
        ];
        vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        vars.extend_from_slice(extra);
        let config = MonitoringConfig::from_vars(&Vars::from_map(vars)).unwrap();
        let stop = CancellationToken::new();
        let started = portico_runtime::service::start(config, stop.clone()).await.unwrap();
        let url = format!("http://{}", started.running.addr);
        let ch = channel(&url, Duration::from_secs(30)).unwrap();
        let client = MonitoringServiceClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service {
            app: started.app,
            client,
            addr: started.running.addr,
            stop,
            db,
        }
    }
}

pub use portico_testkit::each_backend;
