//! The billing service: plans, checkout and portal through a payment provider (Stripe, or
//! the embedded local provider), webhooks verified and applied once and in any order,
//! entitlements for the gateway, receipts and payment-failure notices by mail.
//!
//! `domain` holds the rules (no I/O), `signature` the webhook signature, `provider` the
//! providers, `store` the tables, `app` the application, `service` the gRPC API.

pub mod app;
pub mod domain;
pub mod error;
pub mod provider;
pub mod service;
pub mod signature;
pub mod store;

use std::{sync::Arc, time::Duration};

use portico_mail::{MailConfig, Mailer};
use portico_proto::billing::v1::billing_service_server::BillingServiceServer;
use portico_runtime::{
    Problem,
    config::{ConfigError, Secret, Vars},
    db::Migrations,
    jobs::{Job, Schedule},
    service::{EraseUser, Foundation, Service, ServiceConfig},
};
use tokio_util::sync::CancellationToken;

pub use app::{Billing, PaidPlan, Settings};
use domain::Price;
use provider::{
    Provider,
    local::Local,
    stripe::{DEFAULT_API_VERSION, Stripe, StripeConfig},
};

/// The webhook secret of the local provider when none is configured (dev only: its events
/// never leave the process).
const LOCAL_WEBHOOK_SECRET: &str = "whsec_portico_local";

/// Which provider.
#[derive(Clone, Debug)]
pub enum ProviderConfig {
    /// Stripe.
    Stripe(StripeConfig),
    /// The embedded local provider.
    Local,
}

/// The billing service's settings.
#[derive(Clone, Debug)]
pub struct BillingConfig {
    /// `PORTICO_BILLING_GRPC_ADDR` (default `127.0.0.1:50054`), `PORTICO_BILLING_DATABASE_URL`
    /// (default SQLite `billing.db` in the data dir), `PORTICO_BILLING_DB_POOL` (default 16).
    pub service: ServiceConfig,
    /// `PORTICO_BILLING_PROVIDER=stripe|local` (default local).
    pub provider: ProviderConfig,
    /// Prices, grace, URLs and the webhook secret.
    pub settings: Settings,
    /// Where mail goes (`PORTICO_SMTP_URL`, `PORTICO_MAIL_FROM`).
    pub mail: MailConfig,
    /// `PORTICO_BILLING_RECONCILE_SECS` (default 3,600): how often subscriptions are
    /// re-fetched to repair what lost webhooks left behind.
    pub reconcile_every: Duration,
}

fn required(vars: &Vars, var: &str) -> Result<String, ConfigError> {
    vars.raw(var).filter(|v| !v.is_empty()).ok_or_else(|| ConfigError {
        var: var.into(),
        message: "is required when PORTICO_BILLING_PROVIDER=stripe".into(),
    })
}

fn paid_plan(vars: &Vars, plan: &str, price_id: String, amount: i64) -> Result<PaidPlan, ConfigError> {
    let upper = plan.to_ascii_uppercase();
    let amount_var = format!("PORTICO_BILLING_{upper}_AMOUNT");
    let amount: i64 = vars.get(&amount_var, amount)?;
    if amount <= 0 {
        return Err(ConfigError {
            var: amount_var,
            message: "must be a positive amount in minor units (cents)".into(),
        });
    }
    Ok(PaidPlan {
        price_id,
        price: Price {
            amount,
            currency: vars.string("PORTICO_BILLING_CURRENCY", "usd").to_ascii_lowercase(),
            interval: vars.string("PORTICO_BILLING_INTERVAL", "month"),
        },
    })
}

impl BillingConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_vars(vars, "billing", 50054)?;
        let stripe = match vars.string("PORTICO_BILLING_PROVIDER", "local").as_str() {
            "local" => false,
            "stripe" => true,
            other => {
                return Err(ConfigError {
                    var: "PORTICO_BILLING_PROVIDER".into(),
                    message: format!("`{other}` is not a provider: use stripe or local"),
                });
            }
        };
        let (provider, webhook_secret, pro_price, enterprise_price) = if stripe {
            let secret = required(vars, "PORTICO_STRIPE_WEBHOOK_SECRET")?;
            let config = StripeConfig {
                api_base: vars.string("PORTICO_STRIPE_API_BASE", "https://api.stripe.com"),
                secret_key: Secret::new(required(vars, "PORTICO_STRIPE_SECRET_KEY")?),
                api_version: vars.string("PORTICO_STRIPE_API_VERSION", DEFAULT_API_VERSION),
                max_retries: vars.get("PORTICO_STRIPE_MAX_RETRIES", 3)?,
                retry_base: Duration::from_millis(vars.get("PORTICO_STRIPE_RETRY_BASE_MS", 500)?),
                timeout: vars.secs("PORTICO_STRIPE_TIMEOUT_SECS", Duration::from_secs(30))?,
            };
            (
                ProviderConfig::Stripe(config),
                secret,
                required(vars, "PORTICO_STRIPE_PRICE_PRO")?,
                required(vars, "PORTICO_STRIPE_PRICE_ENTERPRISE")?,
            )
        } else {
            (
                ProviderConfig::Local,
                vars.string("PORTICO_STRIPE_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET),
                "price_local_pro".to_string(),
                "price_local_enterprise".to_string(),
            )
        };
        let grace_days: u32 = vars.get("PORTICO_BILLING_GRACE_DAYS", 7)?;
        let settings = Settings {
            pro: paid_plan(vars, "pro", pro_price, 2_900)?,
            enterprise: paid_plan(vars, "enterprise", enterprise_price, 29_900)?,
            grace_ms: i64::from(grace_days) * 86_400_000,
            public_url: service.common.public_url.clone(),
            webhook_secret: Secret::new(webhook_secret),
        };
        let reconcile_every = vars.secs("PORTICO_BILLING_RECONCILE_SECS", Duration::from_secs(3600))?;
        if reconcile_every.is_zero() {
            return Err(ConfigError {
                var: "PORTICO_BILLING_RECONCILE_SECS".into(),
                message: "must be greater than 0".into(),
            });
        }
        Ok(BillingConfig {
            mail: MailConfig::from_vars(vars, &service.common)?,
            service,
            provider,
            settings,
            reconcile_every,
        })
    }
}

impl Service for BillingConfig {
    const NAME: &'static str = "billing";
    const GRPC_NAME: &'static str = service::SERVICE_NAME;
    const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();
    type App = Billing;

    /// Runs the outbox (events, then mail), the local provider's event pump and the
    /// reconciliation pass.
    async fn build(self, foundation: &Foundation) -> Result<(Billing, tonic::service::Routes), String> {
        let db = foundation.db.clone();
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (provider, local): (Arc<dyn Provider>, Option<Arc<Local>>) = match self.provider {
            ProviderConfig::Stripe(config) => (Arc::new(Stripe::new(config)?), None),
            ProviderConfig::Local => {
                let local = Arc::new(Local::new(db.clone(), self.settings.public_url.clone(), events_tx));
                (local.clone(), Some(local))
            }
        };
        let billing = Billing::new(
            db,
            provider,
            local,
            self.settings,
            &foundation.caches,
            &foundation.registry,
        );
        let shutdown = &foundation.shutdown;
        let mailer = Arc::new(Mailer::new(&self.mail)?);
        billing.outbox().spawn_with(
            app::EVENTS_TOPIC,
            billing.events_handler(),
            Some(Billing::mark_processed()),
            shutdown.clone(),
        );
        billing
            .outbox()
            .spawn(portico_mail::TOPIC, portico_mail::handler(mailer), shutdown.clone());
        spawn_local_events(billing.clone(), events_rx, shutdown.clone());
        foundation.schedule(reconciliation_job(billing.clone(), self.reconcile_every));
        let routes = tonic::service::Routes::new(BillingServiceServer::with_interceptor(
            billing.clone(),
            foundation.guard(),
        ));
        Ok((billing, routes))
    }

    fn service_config(&self) -> &ServiceConfig {
        &self.service
    }
}

impl EraseUser for Billing {
    async fn erase_user_data(&self, user_id: String) -> Result<u64, Problem> {
        self.erase_user(&user_id).await.map_err(Problem::from)
    }
}

/// The local provider's events, signed as Stripe signs them and handed to the webhook
/// handler: the dev stack runs the same verification, recording and processing as Stripe's.
fn spawn_local_events(
    billing: Billing,
    mut events: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        while let Some(event) = tokio::select! { _ = shutdown.cancelled() => None, e = events.recv() => e } {
            let payload = event.to_string().into_bytes();
            let header = signature::sign(&payload, billing.webhook_secret(), portico_runtime::db::now_ms() / 1000);
            if let Err(e) = billing.receive_webhook(&payload, &header).await {
                tracing::warn!(error = %e, "local provider event refused");
            }
        }
    });
}

/// Re-fetches live subscriptions every `every`, as a scheduled job: of replicas sharing the
/// database one runs each period, and a pass cut short by a dying replica is retried by another.
fn reconciliation_job(billing: Billing, every: Duration) -> Job {
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    Job::new("billing_reconciliation", Schedule::Every(every), move |_| {
        let billing = billing.clone();
        async move {
            let n = billing.reconcile().await.map_err(|e| e.to_string())?;
            Ok(format!("{n} subscriptions re-fetched"))
        }
    })
    .lease(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<BillingConfig, ConfigError> {
        BillingConfig::from_vars(&Vars::from_map(vars.iter().copied()))
    }

    #[test]
    fn the_local_provider_is_the_default() -> Result<(), ConfigError> {
        let c = config(&[("PORTICO_DATA_DIR", "/srv/portico")])?;
        assert!(matches!(c.provider, ProviderConfig::Local));
        assert_eq!(c.service.grpc_addr.to_string(), "127.0.0.1:50054");
        assert_eq!(c.service.database_url, "sqlite:///srv/portico/billing.db");
        assert_eq!(c.settings.pro.price.amount, 2_900);
        assert_eq!(c.settings.grace_ms, 7 * 86_400_000);
        Ok(())
    }

    #[test]
    fn stripe_needs_its_keys_and_hides_them() -> Result<(), ConfigError> {
        let e = config(&[("PORTICO_BILLING_PROVIDER", "stripe")]).err().map(|e| e.var);
        assert_eq!(e.as_deref(), Some("PORTICO_STRIPE_WEBHOOK_SECRET"));
        let c = config(&[
            ("PORTICO_BILLING_PROVIDER", "stripe"),
            ("PORTICO_STRIPE_WEBHOOK_SECRET", "whsec_topsecret"),
            ("PORTICO_STRIPE_SECRET_KEY", "sk_test_topsecret"),
            ("PORTICO_STRIPE_PRICE_PRO", "price_p"),
            ("PORTICO_STRIPE_PRICE_ENTERPRISE", "price_e"),
        ])?;
        let ProviderConfig::Stripe(s) = &c.provider else {
            panic!("expected stripe");
        };
        assert_eq!(s.api_version, "2026-10-28.endive");
        assert_eq!(s.api_base, "https://api.stripe.com");
        let printed = format!("{c:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        Ok(())
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORTICO_BILLING_PROVIDER", "paypal"),
            ("PORTICO_BILLING_PRO_AMOUNT", "0"),
            ("PORTICO_BILLING_GRACE_DAYS", "soon"),
            ("PORTICO_BILLING_RECONCILE_SECS", "0"),
        ] {
            assert_eq!(
                config(&[(var, value)]).err().map(|e| e.var).as_deref(),
                Some(var),
                "{var}={value}"
            );
        }
    }
}
