//! The beta service over real gRPC, on SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod invites;

use portico_beta::{BetaConfig, Running};
use portico_proto::beta::v1::beta_service_client::BetaServiceClient;
use portico_runtime::{
    config::Vars,
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, TestDb};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub const TOKEN: &str = "test-internal-token-0123456789";

pub type Client = BetaServiceClient<InterceptedService<Channel, PresentInternalToken>>;

/// A beta service on an ephemeral port with its own fresh database.
pub struct Service {
    pub running: Running,
    pub client: Client,
    pub url: String,
    stop: CancellationToken,
    _db: TestDb,
}

impl Service {
    pub async fn start(backend: Backend) -> Service {
        let db = TestDb::new(backend, "beta");
        let vars = Vars::from_map([
            ("PORTICO_BETA_DATABASE_URL", db.url.as_str()),
            ("PORTICO_BETA_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
            ("PORTICO_BETA_SEED_DEMO", "false"),
        ]);
        let config = BetaConfig::from_vars(&vars).unwrap();
        let listener = tokio::net::TcpListener::bind(config.grpc_addr).await.unwrap();
        let stop = CancellationToken::new();
        let running = portico_beta::start_on(listener, config, stop.clone()).await.unwrap();
        let url = format!("http://{}", running.addr);
        let ch = channel(&url, std::time::Duration::from_secs(30)).unwrap();
        let client = BetaServiceClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service {
            running,
            client,
            url,
            stop,
            _db: db,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs `body` once per configured backend.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, |$svc:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            for backend in portico_testkit::backends() {
                let $svc = $crate::Service::start(backend).await;
                let run = async { $body };
                run.await;
                drop($svc);
                eprintln!("{} passed on {backend:?}", stringify!($name));
            }
        }
    };
}

#[allow(dead_code)]
fn _backend_is_used(_: Backend) {}
