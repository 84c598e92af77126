//! The gateway's settings, from `PORTICO_*` variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use portico_mail::MailConfig;
use portico_runtime::config::{CommonConfig, ConfigError, Environment, Secret, Vars, listen_addr};

use crate::{auth::Links, client_ip::TrustedProxies};

/// Requests per minute for each caller class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateTiers {
    /// `PORTICO_RATE_ANON_PER_MIN` (default 10), per client IP.
    pub anonymous: u32,
    /// `PORTICO_RATE_FREE_PER_MIN` (default 20).
    pub free: u32,
    /// `PORTICO_RATE_PRO_PER_MIN` (default 100).
    pub pro: u32,
    /// `PORTICO_RATE_ENTERPRISE_PER_MIN` (default 500).
    pub enterprise: u32,
    /// `PORTICO_RATE_UPLOAD_CHUNKS_PER_MIN` (default 600): resumable-upload chunks per user,
    /// a budget of their own (25 MiB in 64 KiB chunks on a slow network is 400 requests).
    pub upload_chunks: u32,
    /// `PORTICO_RATE_WEBHOOKS_PER_MIN` (default 6,000), per client IP on `/webhooks/*`:
    /// payment providers send bursts, and a webhook has no other tier.
    pub webhooks: u32,
    /// `PORTICO_RATE_INGEST_PER_MIN` (default 60,000), per client IP on `/sentry/api/*`:
    /// an app's servers report from few addresses; each project has its own budget too.
    pub ingest: u32,
}

/// The Sentry-compatible ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentryIngest {
    /// `PORTICO_SENTRY_EVENTS_PER_MIN` (default 6,000): each project's budget of envelopes
    /// and events; over it the SDKs get 429 with `X-Sentry-Rate-Limits` and back off.
    pub events_per_min: u32,
    /// `PORTICO_SENTRY_MAX_BYTES` (default 1 MiB): the largest body once decompressed.
    pub max_bytes: usize,
}

/// Everything the gateway reads at start.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Shared settings.
    pub common: CommonConfig,
    /// `PORTICO_HTTP_ADDR` (default `127.0.0.1:8080`).
    pub http_addr: SocketAddr,
    /// `PORTICO_GATEWAY_DATABASE_URL` (default SQLite `gateway.db` in the data dir).
    pub database_url: String,
    /// `PORTICO_GATEWAY_DB_POOL` (default 16).
    pub db_pool: usize,
    /// `PORTICO_BETA_URL` (default `http://127.0.0.1:50051`).
    pub beta_url: String,
    /// `PORTICO_WORKFLOW_URL` (default `http://127.0.0.1:50053`).
    pub workflow_url: String,
    /// `PORTICO_GRPC_TIMEOUT_MS` (default 5000): deadline of each service call.
    pub grpc_timeout: Duration,
    /// `PORTICO_GRPC_CONNECTIONS` (default 4): HTTP/2 connections to each service.
    pub grpc_connections: usize,
    /// `PORTICO_ADMIN_ADDR` (default `127.0.0.1:9090`; `off` for none): the operators'
    /// listener for `/metrics`, `/health/detailed` and `/internal/*`, without authentication
    /// (keep it off the public network). On the API port those answer to admins only.
    pub admin_addr: Option<SocketAddr>,
    /// `PORTICO_KEY_ENCRYPTION_KEY`: 32 bytes, base64; seals the signing keys in the database.
    /// Required in production; the dev stack makes one in the data directory.
    pub key_encryption_key: Option<Secret<String>>,
    /// `PORTICO_FRESH_LOGIN_SECS` (default 300): how recent a password sign-in must be for
    /// account deletion, API-key creation and password change.
    pub fresh_login: Duration,
    /// `PORTICO_PUBLIC_URL` (default `http://<PORTICO_HTTP_ADDR>`): where clients reach Portico.
    pub public_url: String,
    /// Mailed links (`PORTICO_VERIFY_EMAIL_URL`, `PORTICO_RESET_PASSWORD_URL`).
    pub links: Links,
    /// Mail (`PORTICO_SMTP_URL`, `PORTICO_MAIL_FROM`).
    pub mail: MailConfig,
    /// `PORTICO_JWT_ISSUER` (default `portico`).
    pub jwt_issuer: String,
    /// `PORTICO_JWT_AUDIENCE` (default `portico-api`).
    pub jwt_audience: String,
    /// `PORTICO_ACCESS_TOKEN_TTL_SECS` (default 900).
    pub access_ttl: Duration,
    /// `PORTICO_REFRESH_TOKEN_TTL_SECS` (default 30 days).
    pub refresh_ttl: Duration,
    /// `PORTICO_JWT_ROTATION_SECS` (default 1 day): how long a signing key signs.
    pub key_rotation: Duration,
    /// Rate tiers.
    pub rates: RateTiers,
    /// `PORTICO_CORS_ORIGINS`: comma-separated origins allowed to call from browsers.
    pub cors_origins: Vec<String>,
    /// `PORTICO_JSON_LIMIT_BYTES` (default 1 MiB).
    pub json_limit: usize,
    /// `PORTICO_MEDIA_MAX_BYTES` (default 25 MiB): the upload cap, checked here before
    /// anything reaches the media service (which applies the same cap).
    pub upload_limit: usize,
    /// `PORTICO_MEDIA_MAX_CHUNK_BYTES` (default 8 MiB, or `PORTICO_MEDIA_MAX_BYTES` when
    /// smaller; 1 to `PORTICO_MEDIA_MAX_BYTES`): the largest tus PATCH body, refused here with
    /// 413 before it is read (the media service applies the same cap).
    pub chunk_limit: usize,
    /// `PORTICO_MEDIA_PROCESS_TIMEOUT_MS` (default 60000): deadline of the calls that run the
    /// image pipeline (an upload, the last chunk of a resumable upload), instead of
    /// `PORTICO_GRPC_TIMEOUT_MS`.
    pub media_process_timeout: Duration,
    /// `PORTICO_MEDIA_URL` (default `http://127.0.0.1:50052`).
    pub media_url: String,
    /// `PORTICO_BILLING_URL` (default `http://127.0.0.1:50054`).
    pub billing_url: String,
    /// `PORTICO_MONITORING_URL` (default `http://127.0.0.1:50055`).
    pub monitoring_url: String,
    /// The Sentry-compatible ingest's budget and cap.
    pub sentry: SentryIngest,
    /// `PORTICO_ENTITLEMENT_TTL_SECS` (default 5, at most 60): how long a replica trusts an
    /// entitlement it loaded from billing. With Redis, billing's changes drop it at once.
    pub entitlement_ttl: Duration,
    /// Analyses per hour of free, pro and enterprise (the workflow service's quotas, shown
    /// with the plans).
    pub analyses_per_hour: [u32; 3],
    /// `PORTICO_TLS_CERT` and `PORTICO_TLS_KEY`: PEM files; HTTPS when both are set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `PORTICO_TRUSTED_PROXIES`: CIDRs of the proxies in front of the gateway; the client is
    /// the right-most `X-Forwarded-For` address that is not one of them. Empty: the peer is
    /// the client and `X-Forwarded-For` is ignored.
    pub trusted_proxies: TrustedProxies,
    /// `PORTICO_SHUTDOWN_DELAY_SECS` (default 0 in dev, 5 in production): after SIGTERM,
    /// `/ready` fails this long before the gateway stops accepting, so load balancers stop
    /// sending first.
    pub shutdown_delay: Duration,
    /// `PORTICO_ROUTE_STATS_FLUSH_SECS` (default 5; 0: off): how often per-route response
    /// times and status counts go to the monitoring service.
    pub route_stats_every: Duration,
    /// `PORTICO_API_SUNSET` (default `2027-06-30T00:00:00Z`): when `/api/*` stops answering.
    pub api_sunset: chrono::DateTime<chrono::Utc>,
    /// `PORTICO_API_DEPRECATED_AT` (default `2026-01-01T00:00:00Z`).
    pub api_deprecated_at: chrono::DateTime<chrono::Utc>,
    /// `PORTICO_HTTP_WORKERS` (default: one per core).
    pub workers: usize,
}

impl GatewayConfig {
    /// Reads and checks the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let tls = match (vars.raw("PORTICO_TLS_CERT"), vars.raw("PORTICO_TLS_KEY")) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError {
                    var: "PORTICO_TLS_KEY".into(),
                    message: "required when PORTICO_TLS_CERT is set".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError {
                    var: "PORTICO_TLS_CERT".into(),
                    message: "required when PORTICO_TLS_KEY is set".into(),
                });
            }
        };
        let date = |var: &str, default: &str| -> Result<chrono::DateTime<chrono::Utc>, ConfigError> {
            let raw = vars.string(var, default);
            chrono::DateTime::parse_from_rfc3339(&raw)
                .map(|d| d.with_timezone(&chrono::Utc))
                .map_err(|e| ConfigError {
                    var: var.into(),
                    message: format!("`{raw}` is not an RFC 3339 date: {e}"),
                })
        };
        let access_ttl = vars.secs("PORTICO_ACCESS_TOKEN_TTL_SECS", Duration::from_secs(900))?;
        if access_ttl.is_zero() {
            return Err(ConfigError {
                var: "PORTICO_ACCESS_TOKEN_TTL_SECS".into(),
                message: "must be greater than 0".into(),
            });
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        for (removed, instead) in [
            (
                "PORTICO_ADMIN_EMAILS",
                "roles are stored with the account: run `portico admin grant EMAIL` for the first admin",
            ),
            (
                "PORTICO_TRUST_FORWARDED",
                "list the proxies' addresses in PORTICO_TRUSTED_PROXIES",
            ),
        ] {
            if vars.raw(removed).is_some() {
                return Err(ConfigError {
                    var: removed.into(),
                    message: format!("is no longer read; {instead}"),
                });
            }
        }
        let key_encryption_key = vars.raw("PORTICO_KEY_ENCRYPTION_KEY").map(Secret::new);
        if let Some(kek) = &key_encryption_key {
            crate::auth::sealing::Kek::from_base64(kek.expose()).map_err(|e| ConfigError {
                var: "PORTICO_KEY_ENCRYPTION_KEY".into(),
                message: e,
            })?;
        } else if common.environment == Environment::Production {
            return Err(ConfigError {
                var: "PORTICO_KEY_ENCRYPTION_KEY".into(),
                message: "required when PORTICO_ENV=production (32 random bytes, base64: `openssl rand -base64 32`)"
                    .into(),
            });
        }
        let trusted_proxies =
            TrustedProxies::parse(&vars.list("PORTICO_TRUSTED_PROXIES")).map_err(|message| ConfigError {
                var: "PORTICO_TRUSTED_PROXIES".into(),
                message,
            })?;
        let admin_addr = match vars.string("PORTICO_ADMIN_ADDR", "127.0.0.1:9090").as_str() {
            "off" | "none" => None,
            _ => Some(listen_addr(vars, "PORTICO_ADMIN_ADDR", "127.0.0.1:9090")?),
        };
        let http_addr = listen_addr(vars, "PORTICO_HTTP_ADDR", "127.0.0.1:8080")?;
        let public_url = common.public_url.clone();
        let links = Links {
            verify: vars.string(
                "PORTICO_VERIFY_EMAIL_URL",
                &format!("{public_url}/verify-email?token={{token}}"),
            ),
            reset: vars.string(
                "PORTICO_RESET_PASSWORD_URL",
                &format!("{public_url}/reset-password?token={{token}}"),
            ),
        };
        for (var, template) in [
            ("PORTICO_VERIFY_EMAIL_URL", &links.verify),
            ("PORTICO_RESET_PASSWORD_URL", &links.reset),
        ] {
            if !template.contains("{token}") {
                return Err(ConfigError {
                    var: var.into(),
                    message: "must contain `{token}`".into(),
                });
            }
        }
        let production = common.environment == Environment::Production;
        let upload_limit = vars.positive("PORTICO_MEDIA_MAX_BYTES", 25 * 1024 * 1024)? as usize;
        let chunk_limit: usize = vars.get("PORTICO_MEDIA_MAX_CHUNK_BYTES", (8 * 1024 * 1024).min(upload_limit))?;
        if chunk_limit == 0 || chunk_limit > upload_limit {
            return Err(ConfigError {
                var: "PORTICO_MEDIA_MAX_CHUNK_BYTES".into(),
                message: format!("must be between 1 and PORTICO_MEDIA_MAX_BYTES ({upload_limit})"),
            });
        }
        Ok(GatewayConfig {
            http_addr,
            database_url: common.database_url(vars, "gateway"),
            db_pool: vars.positive("PORTICO_GATEWAY_DB_POOL", 16)? as usize,
            beta_url: portico_runtime::config::service_url(vars, "beta"),
            workflow_url: portico_runtime::config::service_url(vars, "workflow"),
            grpc_timeout: vars.millis("PORTICO_GRPC_TIMEOUT_MS", Duration::from_secs(5))?,
            grpc_connections: vars.positive("PORTICO_GRPC_CONNECTIONS", 4)? as usize,
            admin_addr,
            key_encryption_key,
            fresh_login: vars.secs("PORTICO_FRESH_LOGIN_SECS", Duration::from_secs(300))?,
            public_url,
            links,
            mail: MailConfig::from_vars(vars, &common)?,
            jwt_issuer: vars.string("PORTICO_JWT_ISSUER", "portico"),
            jwt_audience: vars.string("PORTICO_JWT_AUDIENCE", "portico-api"),
            access_ttl,
            refresh_ttl: vars.secs("PORTICO_REFRESH_TOKEN_TTL_SECS", Duration::from_secs(30 * 24 * 3600))?,
            key_rotation: vars.secs("PORTICO_JWT_ROTATION_SECS", Duration::from_secs(24 * 3600))?,
            rates: RateTiers {
                anonymous: vars.positive("PORTICO_RATE_ANON_PER_MIN", 10)?,
                free: vars.positive("PORTICO_RATE_FREE_PER_MIN", 20)?,
                pro: vars.positive("PORTICO_RATE_PRO_PER_MIN", 100)?,
                enterprise: vars.positive("PORTICO_RATE_ENTERPRISE_PER_MIN", 500)?,
                upload_chunks: vars.positive("PORTICO_RATE_UPLOAD_CHUNKS_PER_MIN", 600)?,
                webhooks: vars.positive("PORTICO_RATE_WEBHOOKS_PER_MIN", 6000)?,
                ingest: vars.positive("PORTICO_RATE_INGEST_PER_MIN", 60_000)?,
            },
            cors_origins: vars.list("PORTICO_CORS_ORIGINS"),
            json_limit: vars.positive("PORTICO_JSON_LIMIT_BYTES", 1024 * 1024)? as usize,
            upload_limit,
            chunk_limit,
            media_process_timeout: vars.millis("PORTICO_MEDIA_PROCESS_TIMEOUT_MS", Duration::from_secs(60))?,
            media_url: portico_runtime::config::service_url(vars, "media"),
            billing_url: portico_runtime::config::service_url(vars, "billing"),
            monitoring_url: portico_runtime::config::service_url(vars, "monitoring"),
            sentry: SentryIngest {
                events_per_min: vars.positive("PORTICO_SENTRY_EVENTS_PER_MIN", 6000)?,
                max_bytes: vars.positive("PORTICO_SENTRY_MAX_BYTES", 1024 * 1024)? as usize,
            },
            entitlement_ttl: {
                let ttl = vars.secs("PORTICO_ENTITLEMENT_TTL_SECS", Duration::from_secs(5))?;
                if ttl.is_zero() || ttl > Duration::from_secs(60) {
                    return Err(ConfigError {
                        var: "PORTICO_ENTITLEMENT_TTL_SECS".into(),
                        message: "must be between 1 and 60 seconds".into(),
                    });
                }
                ttl
            },
            analyses_per_hour: portico_runtime::config::analyses_per_hour(vars)?,
            tls,
            trusted_proxies,
            shutdown_delay: vars.secs(
                "PORTICO_SHUTDOWN_DELAY_SECS",
                Duration::from_secs(if production { 5 } else { 0 }),
            )?,
            route_stats_every: vars.secs("PORTICO_ROUTE_STATS_FLUSH_SECS", Duration::from_secs(5))?,
            api_sunset: date("PORTICO_API_SUNSET", "2027-06-30T00:00:00Z")?,
            api_deprecated_at: date("PORTICO_API_DEPRECATED_AT", "2026-01-01T00:00:00Z")?,
            workers: vars.positive("PORTICO_HTTP_WORKERS", u32::try_from(cores).unwrap_or(2))? as usize,
            common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(vars: &[(&str, &str)]) -> String {
        match GatewayConfig::from_vars(&Vars::from_map(vars.iter().copied())) {
            Ok(_) => panic!("accepted {vars:?}"),
            Err(e) => e.var,
        }
    }

    #[test]
    fn production_refuses_to_start_without_a_key_encryption_key() {
        let production = [
            ("PORTICO_ENV", "production"),
            ("PORTICO_INTERNAL_TOKEN", "0123456789abcdef0123"),
        ];
        assert_eq!(refused(&production), "PORTICO_KEY_ENCRYPTION_KEY");
        let mut bad = production.to_vec();
        bad.push(("PORTICO_KEY_ENCRYPTION_KEY", "dG9vIHNob3J0"));
        assert_eq!(refused(&bad), "PORTICO_KEY_ENCRYPTION_KEY");
        let mut good = production.to_vec();
        good.push((
            "PORTICO_KEY_ENCRYPTION_KEY",
            "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
        ));
        let config = GatewayConfig::from_vars(&Vars::from_map(good)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{config:?}").contains("KioqKioq"), "the key never prints");
        assert_eq!(config.shutdown_delay, Duration::from_secs(5));
    }

    #[test]
    fn removed_and_malformed_edge_settings_are_named() {
        assert_eq!(
            refused(&[("PORTICO_TRUST_FORWARDED", "true")]),
            "PORTICO_TRUST_FORWARDED"
        );
        assert_eq!(refused(&[("PORTICO_ADMIN_EMAILS", "a@b.c")]), "PORTICO_ADMIN_EMAILS");
        assert_eq!(
            refused(&[("PORTICO_TRUSTED_PROXIES", "10.0.0.0/8, proxy")]),
            "PORTICO_TRUSTED_PROXIES"
        );
        assert_eq!(
            refused(&[
                ("PORTICO_MEDIA_MAX_BYTES", "1000"),
                ("PORTICO_MEDIA_MAX_CHUNK_BYTES", "2000")
            ]),
            "PORTICO_MEDIA_MAX_CHUNK_BYTES"
        );
        assert_eq!(
            refused(&[("PORTICO_VERIFY_EMAIL_URL", "https://app/verify")]),
            "PORTICO_VERIFY_EMAIL_URL"
        );
        assert_eq!(
            refused(&[("PORTICO_SMTP_URL", "mail.example.com:25")]),
            "PORTICO_SMTP_URL"
        );
    }

    #[test]
    fn the_operators_listener_can_be_turned_off() {
        let config = GatewayConfig::from_vars(&Vars::from_map([("PORTICO_ADMIN_ADDR", "off")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.admin_addr, None);
        let config =
            GatewayConfig::from_vars(&Vars::from_map::<[(&str, &str); 0], _, _>([])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.admin_addr.map(|a| a.port()), Some(9090));
    }
}
