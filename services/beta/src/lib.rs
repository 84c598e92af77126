//! The beta program service: access levels, invitation codes, feature flags and usage analytics.
//!
//! `domain` holds the rules (no I/O), `store` the tables and queries, `service` the gRPC API.

pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use portico_proto::beta::v1::beta_service_server::BetaServiceServer;
use portico_runtime::{
    Problem,
    config::{ConfigError, Environment, Vars},
    db::Migrations,
    jobs,
    service::{EraseUser, Foundation, Service, ServiceConfig},
};

pub use portico_runtime::grpc::Running;
pub use service::Beta;

/// The beta service's settings.
#[derive(Clone, Debug)]
pub struct BetaConfig {
    /// `PORTICO_BETA_GRPC_ADDR` (default `127.0.0.1:50051`), `PORTICO_BETA_DATABASE_URL`
    /// (default SQLite `beta.db` in the data dir), `PORTICO_BETA_DB_POOL` (default 16).
    pub service: ServiceConfig,
    /// `PORTICO_BETA_SEED_DEMO`: the demo invitation codes; default on in dev, off in production.
    pub seed_demo: bool,
}

impl BetaConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_vars(vars, "beta", 50051)?;
        let seed_demo = vars.flag("PORTICO_BETA_SEED_DEMO", service.common.environment == Environment::Dev)?;
        Ok(BetaConfig { service, seed_demo })
    }
}

impl Service for BetaConfig {
    const NAME: &'static str = "beta";
    const GRPC_NAME: &'static str = service::SERVICE_NAME;
    const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();
    type App = Beta;

    /// Seeds the demo invitation codes where configured.
    async fn build(self, foundation: &Foundation) -> Result<(Beta, tonic::service::Routes), String> {
        let beta = Beta::new(foundation.db.clone(), &foundation.caches, &foundation.registry);
        if self.seed_demo {
            if self.service.common.environment == Environment::Production {
                tracing::warn!("PORTICO_BETA_SEED_DEMO is on in production: demo invitation codes are being created");
            }
            beta.seed_demo_codes()
                .await
                .map_err(|e| format!("seeding demo codes: {e}"))?;
        }
        let warmed = beta.clone();
        foundation.warm(
            "feature table",
            jobs::task(move || {
                let beta = warmed.clone();
                async move {
                    let n = beta.warm().await.map_err(|e| e.to_string())?;
                    Ok(format!("{n} features loaded"))
                }
            }),
        );
        let routes = tonic::service::Routes::new(BetaServiceServer::with_interceptor(beta.clone(), foundation.guard()));
        Ok((beta, routes))
    }

    fn service_config(&self) -> &ServiceConfig {
        &self.service
    }
}

impl EraseUser for Beta {
    async fn erase_user_data(&self, user_id: String) -> Result<u64, Problem> {
        self.erase_user(&user_id).await.map_err(Problem::from)
    }
}
