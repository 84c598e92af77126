//! The monitoring service over real gRPC, on SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod errors;

use std::time::Duration;

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
    stop: CancellationToken,
    _db: TestDb,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Service {
    pub async fn start(backend: Backend) -> Service {
        let db = TestDb::new(backend, "monitoring");
        let vars = vec![
            ("PORTICO_MONITORING_DATABASE_URL", db.url.as_str()),
            ("PORTICO_MONITORING_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
            ("PORTICO_PUBLIC_URL", "https://portico.test"),
        ];
        let config = MonitoringConfig::from_vars(&Vars::from_map(vars)).unwrap();
        let stop = CancellationToken::new();
        let started = portico_runtime::service::start(config, stop.clone()).await.unwrap();
        let url = format!("http://{}", started.running.addr);
        let ch = channel(&url, Duration::from_secs(30)).unwrap();
        let client = MonitoringServiceClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service {
            app: started.app,
            client,
            stop,
            _db: db,
        }
    }
}

pub use portico_testkit::each_backend;
