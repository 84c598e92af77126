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
//! `domain` (the `portico-monitoring-domain` crate, which the gateway shares for the API's
//! enums) holds the rules (no I/O: envelopes, events, grouping, vitals ratings, funnel math,
//! the alert lifecycle), `store`, `analytics_store` and `alerts_store` the tables, `app`,
//! `analytics` and `alerts` the application, `probes` and `webhooks` the outbound calls,
//! `service` the gRPC API.

pub mod alerts;
pub mod alerts_store;
pub mod analytics;
pub mod analytics_store;
pub mod app;
pub use portico_monitoring_domain as domain;
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
    jobs::{self, Job, Schedule},
    service::{EraseUser, Foundation, Service, ServiceConfig},
};

pub use alerts::AlertSettings;
pub use app::{Monitoring, Settings};

use crate::{domain::alert::Target, probes::Prober};

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

    /// Seeds the default alert rules once, runs the outbox (mail, webhooks), and schedules the
    /// `health_probes` and `alert_evaluation` jobs and its part of `retention_cleanup`.
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
        let alerts = monitoring.alert_settings();
        foundation.schedule(probe_job(monitoring.clone(), prober, alerts.probe_interval));
        foundation.schedule(evaluation_job(monitoring.clone(), alerts.eval_interval));
        foundation.retain("monitoring", retention_task(monitoring.clone()));
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

/// A job's schedule from an interval setting: every so often, or off when it is zero.
fn every(interval: Duration) -> Schedule {
    match i64::try_from(interval.as_millis()) {
        Ok(0) => Schedule::Off,
        Ok(ms) => Schedule::Every(ms),
        Err(_) => Schedule::Off,
    }
}

/// `health_probes`: every service's Ops info, recorded as samples for `service_down` rules.
fn probe_job(monitoring: Monitoring, prober: Prober, interval: Duration) -> Job {
    let prober = Arc::new(prober);
    Job::new("health_probes", every(interval), move |_| {
        let (monitoring, prober) = (monitoring.clone(), prober.clone());
        async move {
            let samples = prober.probe(now_ms()).await;
            let down = samples.iter().filter(|s| !s.healthy).count();
            let n = samples.len();
            monitoring.record_samples(samples).await.map_err(|e| e.to_string())?;
            Ok(format!("{n} targets probed, {down} unhealthy"))
        }
    })
}

/// `alert_evaluation`: one pass of the evaluator over every enabled rule.
fn evaluation_job(monitoring: Monitoring, interval: Duration) -> Job {
    Job::new("alert_evaluation", every(interval), move |_| {
        let monitoring = monitoring.clone();
        async move {
            let pass = monitoring.evaluate_at(now_ms()).await.map_err(|e| e.to_string())?;
            if pass.fired + pass.resolved > 0 {
                tracing::info!(fired = pass.fired, resolved = pass.resolved, "alerts changed");
            }
            Ok(format!(
                "{} pending, {} fired, {} reminded, {} resolved",
                pass.pended, pass.fired, pass.repeated, pass.resolved
            ))
        }
    })
}

/// The monitoring part of `retention_cleanup`: events, samples and per-minute rows past
/// retention.
fn retention_task(monitoring: Monitoring) -> jobs::Task {
    jobs::task(move || {
        let monitoring = monitoring.clone();
        async move {
            let n = monitoring.purge().await.map_err(|e| e.to_string())?;
            Ok(format!("{n} rows past retention dropped"))
        }
    })
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
