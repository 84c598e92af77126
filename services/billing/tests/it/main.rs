//! The billing service over real gRPC with a fake Stripe over HTTP, a real SMTP listener, on
//! SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_stripe;
mod local;
mod stripe;
mod webhooks;

use std::time::{Duration, Instant};

use portico_billing::{Billing, BillingConfig, signature};
use portico_proto::billing::v1::billing_service_client::BillingServiceClient;
use portico_runtime::{
    config::Vars,
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, SmtpSink, TestDb};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub const TOKEN: &str = "test-internal-token-0123456789";
pub const SECRET: &str = "whsec_test_endpoint_secret";

pub type Client = BillingServiceClient<InterceptedService<Channel, PresentInternalToken>>;

/// A billing service on an ephemeral port with its own database and mail going to `smtp`.
pub struct Service {
    pub app: Billing,
    pub jobs: portico_runtime::jobs::Jobs,
    pub client: Client,
    pub smtp: SmtpSink,
    stop: CancellationToken,
    _db: TestDb,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Service {
    /// On the local provider.
    pub async fn local(backend: Backend) -> Service {
        Service::start(backend, &[]).await
    }

    /// On Stripe at `stripe_url` (the fake).
    pub async fn stripe(backend: Backend, stripe_url: &str) -> Service {
        Service::start(
            backend,
            &[
                ("PORTICO_BILLING_PROVIDER", "stripe"),
                ("PORTICO_STRIPE_API_BASE", stripe_url),
                ("PORTICO_STRIPE_SECRET_KEY", "sk_test_fake"),
                ("PORTICO_STRIPE_WEBHOOK_SECRET", SECRET),
                ("PORTICO_STRIPE_PRICE_PRO", "price_pro"),
                ("PORTICO_STRIPE_PRICE_ENTERPRISE", "price_enterprise"),
                ("PORTICO_STRIPE_RETRY_BASE_MS", "10"),
            ],
        )
        .await
    }

    async fn start(backend: Backend, extra: &[(&str, &str)]) -> Service {
        let db = TestDb::new(backend, "billing");
        let smtp = SmtpSink::start();
        let smtp_url = smtp.url();
        let mut vars = vec![
            ("PORTICO_BILLING_DATABASE_URL", db.url.as_str()),
            ("PORTICO_BILLING_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
            ("PORTICO_PUBLIC_URL", "https://portico.test"),
            ("PORTICO_SMTP_URL", smtp_url.as_str()),
        ];
        vars.extend_from_slice(extra);
        let config = BillingConfig::from_vars(&Vars::from_map(vars)).unwrap();
        let stop = CancellationToken::new();
        let started = portico_runtime::service::start(config, stop.clone()).await.unwrap();
        let url = format!("http://{}", started.running.addr);
        let ch = channel(&url, Duration::from_secs(30)).unwrap();
        let client = BillingServiceClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service {
            app: started.app,
            jobs: started.jobs,
            client,
            smtp,
            stop,
            _db: db,
        }
    }

    /// Delivers `event` signed now with `secret`, as Stripe would.
    pub async fn deliver(
        &self,
        event: &serde_json::Value,
    ) -> Result<(String, bool), portico_billing::error::BillingError> {
        let payload = event.to_string().into_bytes();
        let header = signature::sign(&payload, SECRET, chrono::Utc::now().timestamp());
        self.app.receive_webhook(&payload, &header).await
    }

    /// Waits until every received event is processed.
    pub async fn settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let b = self
                .app
                .outbox()
                .backlog(portico_billing::app::EVENTS_TOPIC)
                .await
                .unwrap();
            if b.pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "events still pending: {b:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub use portico_testkit::each_backend;
