//! The monitoring service: errors reported by the official Sentry SDKs (or natively), grouped
//! the way Sentry groups them, counted per group, with a resolve / ignore / regression
//! lifecycle.
//!
//! Web vitals, funnel steps and product events feed the performance dashboard.
//!
//! Alert rules are evaluated on one replica at a time (a lease); alerts go pending, fire,
//! repeat, are acknowledged and resolve, with notices by mail and Alertmanager-shaped webhooks
//! through the outbox. Health probes of every service feed the `service_down` rules.
//!
//! `domain` holds the rules (no I/O: envelopes, events, grouping, vitals ratings, funnel math,
//! the alert lifecycle), `store`, `analytics_store` and `alerts_store` the tables, `app`,
//! `analytics` and `alerts` the application, `probes` and `webhooks` the outbound calls,
//! `service` the gRPC API.

pub mod alerts;
pub mod alerts_store;
pub mod analytics;
pub mod analytics_store;
pub mod app;
pub mod domain;
pub mod error;
pub mod probes;
pub mod rollup;
pub mod routes;
pub mod routes_store;
pub mod service;
pub mod store;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use portico_mail::{MailConfig, Mailer};
use portico_proto::monitoring::v1::monitoring_service_server::MonitoringServiceServer;
use portico_runtime::{
    Problem,
    config::{ConfigError, Secret, Vars},
    db::{Migrations, now_ms},
    jobs::{Job, Schedule},
    service::{EraseUser, Foundation, Service, ServiceConfig},
};
use tokio_util::sync::CancellationToken;

pub use alerts::AlertSettings;
pub use app::{Monitoring, Settings};

use crate::{domain::alert::Target, probes::Prober};

/// How often event payloads past retention are dropped (ms).
const PURGE_EVERY_MS: i64 = 3_600_000;

/// The monitoring service's settings.
#[derive(Clone, Debug)]
pub struct MonitoringConfig {
    /// `PORTICO_MONITORING_GRPC_ADDR` (default `127.0.0.1:50055`),
    /// `PORTICO_MONITORING_DATABASE_URL` (default SQLite `monitoring.db` in the data dir),
    /// `PORTICO_MONITORING_DB_POOL` (default 16).
    pub service: ServiceConfig,
    /// Public URL (DSNs), `PORTICO_MONITORING_RETENTION_DAYS` (default 30), alerting.
    pub settings: Settings,
    /// Where alert mail goes (`PORTICO_SMTP_URL`, `PORTICO_MAIL_FROM`).
    pub mail: MailConfig,
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
                alerts: alert_settings(vars)?,
            },
            mail: MailConfig::from_vars(vars, &service.common)?,
            service,
        })
    }
}

fn alert_settings(vars: &Vars) -> Result<AlertSettings, ConfigError> {
    let eval: u64 = vars.get("PORTICO_ALERT_EVAL_INTERVAL_SECS", 15)?;
    let probe: u64 = vars.get("PORTICO_MONITORING_PROBE_INTERVAL_SECS", 30)?;
    let allow_private_webhooks = vars.flag("PORTICO_ALERT_WEBHOOKS_ALLOW_PRIVATE", false)?;
    let notify = vars
        .list("PORTICO_ALERT_NOTIFY")
        .iter()
        .map(|t| {
            Target::parse(t, allow_private_webhooks).map_err(|why| ConfigError {
                var: "PORTICO_ALERT_NOTIFY".into(),
                message: format!("`{t}` {why}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let link_secret = match vars.raw("PORTICO_ALERT_LINK_SECRET") {
        Some(s) if s.len() < 32 => {
            return Err(ConfigError {
                var: "PORTICO_ALERT_LINK_SECRET".into(),
                message: "must be at least 32 characters".into(),
            });
        }
        other => other.map(Secret::new),
    };
    let known: Vec<&str> = portico_runtime::config::SERVICES
        .iter()
        .map(|(name, ..)| *name)
        .filter(|name| *name != "monitoring")
        .collect();
    let chosen = match vars.raw("PORTICO_MONITORING_PROBE_SERVICES") {
        None => known.iter().map(|s| s.to_string()).collect(),
        Some(_) => vars.list("PORTICO_MONITORING_PROBE_SERVICES"),
    };
    if let Some(unknown) = chosen.iter().find(|c| !known.contains(&c.as_str())) {
        return Err(ConfigError {
            var: "PORTICO_MONITORING_PROBE_SERVICES".into(),
            message: format!("`{unknown}` is not one of {}", known.join(", ")),
        });
    }
    let probes = chosen
        .into_iter()
        .map(|name| {
            let url = portico_runtime::config::service_url(vars, &name);
            (name, url)
        })
        .collect();
    Ok(AlertSettings {
        eval_interval: Duration::from_secs(eval),
        probe_interval: Duration::from_secs(probe),
        notify,
        allow_private_webhooks,
        link_secret,
        probes,
    })
}

impl Service for MonitoringConfig {
    const NAME: &'static str = "monitoring";
    const GRPC_NAME: &'static str = service::SERVICE_NAME;
    const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();
    type App = Monitoring;

    /// Seeds the default alert rules once, runs the outbox (mail, webhooks), the evaluator and
    /// probes under their lease, and drops event payloads past retention every hour.
    async fn build(self, foundation: &Foundation) -> Result<(Monitoring, tonic::service::Routes), String> {
        let prober = Prober::new(
            &self.settings.alerts.probes,
            self.service.common.internal_token.expose(),
        )?;
        let monitoring = Monitoring::new(
            foundation.db.clone(),
            self.settings,
            &foundation.caches,
            &foundation.registry,
        );
        monitoring
            .seed_default_rules()
            .await
            .map_err(|e| format!("seeding the default alert rules: {e}"))?;
        let shutdown = &foundation.shutdown;
        let mailer = Arc::new(Mailer::new(&self.mail)?);
        monitoring
            .outbox()
            .spawn(portico_mail::TOPIC, portico_mail::handler(mailer), shutdown.clone());
        monitoring.outbox().spawn(
            alerts::WEBHOOK_TOPIC,
            webhooks::handler(monitoring.alert_settings().allow_private_webhooks)?,
            shutdown.clone(),
        );
        spawn_alerting(monitoring.clone(), prober, shutdown.clone());
        foundation.schedule(retention_job(monitoring.clone()));
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

/// The evaluator and the probes, on whichever replica holds the lease: each replica asks every
/// interval, the holder renews it for three intervals, and when it dies (or stops: it gives
/// the lease up) another replica leads within that time.
fn spawn_alerting(monitoring: Monitoring, prober: Prober, shutdown: CancellationToken) {
    let settings = monitoring.alert_settings().clone();
    let (eval, probe) = (settings.eval_interval, settings.probe_interval);
    let every = match (eval.is_zero(), probe.is_zero()) {
        (true, true) => return,
        (false, true) => eval,
        (true, false) => probe,
        (false, false) => eval.min(probe),
    };
    let hold_ms = i64::try_from(every.as_millis() * 3).unwrap_or(i64::MAX);
    let holder = uuid::Uuid::new_v4().to_string();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut last_eval, mut last_probe) = (i64::MIN, i64::MIN);
        let due = |last: i64, now: i64, d: Duration| {
            !d.is_zero() && now.saturating_sub(last) >= i64::try_from(d.as_millis()).unwrap_or(i64::MAX) - 100
        };
        while tokio::select! { _ = shutdown.cancelled() => false, _ = tick.tick() => true } {
            let now = now_ms();
            match monitoring.lead(&holder, now, hold_ms).await {
                Ok(true) => metrics::gauge!("portico_alert_evaluator_leader").set(1.0),
                Ok(false) => {
                    metrics::gauge!("portico_alert_evaluator_leader").set(0.0);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the alert evaluator's lease could not be taken");
                    continue;
                }
            }
            if due(last_probe, now, probe) {
                last_probe = now;
                let samples = prober.probe(now).await;
                if let Err(e) = monitoring.record_samples(samples).await {
                    tracing::warn!(error = %e, "health probe samples not recorded");
                }
            }
            if due(last_eval, now, eval) {
                last_eval = now;
                match monitoring.evaluate_at(now_ms()).await {
                    Ok(pass) if pass.fired + pass.resolved > 0 => {
                        tracing::info!(fired = pass.fired, resolved = pass.resolved, "alerts changed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
                }
            }
        }
        if let Err(e) = monitoring.step_down(&holder).await {
            tracing::debug!(error = %e, "the alert evaluator's lease was not given up");
        }
    });
}

/// Drops events and per-minute rows past retention, hourly, as a scheduled job.
fn retention_job(monitoring: Monitoring) -> Job {
    Job::new("monitoring_retention", Schedule::Every(PURGE_EVERY_MS), move |_| {
        let monitoring = monitoring.clone();
        async move {
            let n = monitoring.purge().await.map_err(|e| e.to_string())?;
            Ok(format!("{n} rows past retention dropped"))
        }
    })
    .lease(Duration::from_secs(300))
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
