//! The monitoring service: errors reported by the official Sentry SDKs (or natively), grouped
//! the way Sentry groups them, counted per group, with a resolve / ignore / regression
//! lifecycle.
//!
//! Web vitals, funnel steps and product events feed the performance dashboard.
//!
//! `domain` holds the rules (no I/O: envelopes, events, grouping, vitals ratings, funnel math),
//! `store` and `analytics_store` the tables, `app` and `analytics` the application, `service`
//! the gRPC API.

pub mod analytics;
pub mod analytics_store;
pub mod app;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::time::Duration;

use portico_proto::monitoring::v1::monitoring_service_server::MonitoringServiceServer;
use portico_runtime::{
    Problem,
    config::{ConfigError, Vars},
    db::Migrations,
    service::{EraseUser, Foundation, Service, ServiceConfig},
};
use tokio_util::sync::CancellationToken;

pub use app::{Monitoring, Settings};

/// How often event payloads past retention are dropped.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The monitoring service's settings.
#[derive(Clone, Debug)]
pub struct MonitoringConfig {
    /// `PORTICO_MONITORING_GRPC_ADDR` (default `127.0.0.1:50055`),
    /// `PORTICO_MONITORING_DATABASE_URL` (default SQLite `monitoring.db` in the data dir),
    /// `PORTICO_MONITORING_DB_POOL` (default 16).
    pub service: ServiceConfig,
    /// Public URL (DSNs) and `PORTICO_MONITORING_RETENTION_DAYS` (default 30).
    pub settings: Settings,
}

impl MonitoringConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_vars(vars, "monitoring", 50055)?;
        let days: u32 = vars.get("PORTICO_MONITORING_RETENTION_DAYS", 30)?;
        if days == 0 {
            return Err(ConfigError {
                var: "PORTICO_MONITORING_RETENTION_DAYS".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(MonitoringConfig {
            settings: Settings {
                public_url: service.common.public_url.clone(),
                retention_ms: i64::from(days) * 86_400_000,
            },
            service,
        })
    }
}

impl Service for MonitoringConfig {
    const NAME: &'static str = "monitoring";
    const GRPC_NAME: &'static str = service::SERVICE_NAME;
    const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();
    type App = Monitoring;

    /// Drops event payloads past retention every hour.
    async fn build(self, foundation: &Foundation) -> Result<(Monitoring, tonic::service::Routes), String> {
        let monitoring = Monitoring::new(
            foundation.db.clone(),
            self.settings,
            &foundation.caches,
            &foundation.registry,
        );
        spawn_retention(monitoring.clone(), foundation.shutdown.clone());
        let routes = tonic::service::Routes::new(MonitoringServiceServer::with_interceptor(
            monitoring.clone(),
            foundation.guard(),
        ));
        Ok((monitoring, routes))
    }

    fn service_config(&self) -> &ServiceConfig {
        &self.service
    }
}

impl EraseUser for Monitoring {
    /// The events whose user is the account's id (what Portico's own clients report).
    async fn erase_user_data(&self, user_id: String) -> Result<u64, Problem> {
        self.erase_user(&user_id).await.map_err(Problem::from)
    }
}

/// Drops event payloads past retention (every replica may run it: a delete by age is the
/// same however often it runs).
fn spawn_retention(monitoring: Monitoring, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while tokio::select! { _ = shutdown.cancelled() => false, _ = tick.tick() => true } {
            match monitoring.purge().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "error events past retention dropped"),
                Err(e) => tracing::warn!(error = %e, "error retention pass failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() -> Result<(), ConfigError> {
        let c = MonitoringConfig::from_vars(&Vars::from_map([("PORTICO_DATA_DIR", "/srv/p")]))?;
        assert_eq!(c.service.grpc_addr.to_string(), "127.0.0.1:50055");
        assert_eq!(c.service.database_url, "sqlite:///srv/p/monitoring.db");
        assert_eq!(c.settings.retention_ms, 30 * 86_400_000);
        let bad = MonitoringConfig::from_vars(&Vars::from_map([("PORTICO_MONITORING_RETENTION_DAYS", "0")]));
        assert_eq!(
            bad.err().map(|e| e.var).as_deref(),
            Some("PORTICO_MONITORING_RETENTION_DAYS")
        );
        Ok(())
    }
}
