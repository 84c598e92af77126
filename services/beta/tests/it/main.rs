//! The beta service over real gRPC, on SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod erasure;
mod invites;
mod joins;

use portico_beta::{BetaConfig, Running};
use portico_proto::{beta::v1::beta_service_client::BetaServiceClient, ops::v1::ops_client::OpsClient};
use portico_runtime::{
    config::Vars,
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, TestDb};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub const TOKEN: &str = "test-internal-token-0123456789";

pub type Client = BetaServiceClient<InterceptedService<Channel, PresentInternalToken>>;

/// The Ops client the gateway uses (erasure, info), with the internal token.
pub type Ops = OpsClient<InterceptedService<Channel, PresentInternalToken>>;

/// A beta service on an ephemeral port with its own fresh database.
pub struct Service {
    pub running: Running,
    pub client: Client,
    pub ops: Ops,
    pub url: String,
    stop: CancellationToken,
    _db: Option<TestDb>,
}

impl Service {
    pub async fn start(backend: Backend) -> Service {
        let db = TestDb::new(backend, "beta");
        let url = db.url.clone();
        Service::start_with(&url, Some(db), &[]).await
    }

    /// A service on the database at `db_url` with extra settings; it drops `db` (if it owns
    /// the database) when it stops. Replicas share one URL, and the first owns it.
    pub async fn start_with(db_url: &str, db: Option<TestDb>, extra: &[(&str, &str)]) -> Service {
        let mut vars = vec![
            ("PORTICO_BETA_DATABASE_URL", db_url),
            ("PORTICO_BETA_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
            ("PORTICO_BETA_SEED_DEMO", "false"),
        ];
        vars.extend_from_slice(extra);
        let config = BetaConfig::from_vars(&Vars::from_map(vars)).unwrap();
        let listener = tokio::net::TcpListener::bind(config.service.grpc_addr).await.unwrap();
        let stop = CancellationToken::new();
        let running = portico_runtime::service::start_on(listener, config, stop.clone())
            .await
            .unwrap()
            .running;
        let url = format!("http://{}", running.addr);
        let ch = channel(&url, std::time::Duration::from_secs(30)).unwrap();
        let client = BetaServiceClient::with_interceptor(ch.clone(), PresentInternalToken::new(TOKEN).unwrap());
        let ops = OpsClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service {
            running,
            client,
            ops,
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
