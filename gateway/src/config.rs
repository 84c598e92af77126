//! The gateway's settings, from `PORTICO_*` variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use portico_runtime::config::{CommonConfig, ConfigError, Vars, listen_addr};

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
    /// `PORTICO_ADMIN_EMAILS`: comma-separated; these users get the admin role.
    pub admin_emails: Vec<String>,
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
    /// `PORTICO_MEDIA_URL` (default `http://127.0.0.1:50052`).
    pub media_url: String,
    /// `PORTICO_TLS_CERT` and `PORTICO_TLS_KEY`: PEM files; HTTPS when both are set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `PORTICO_TRUST_FORWARDED`: take the client IP from `X-Forwarded-For` (behind a proxy).
    pub trust_forwarded: bool,
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
        Ok(GatewayConfig {
            http_addr: listen_addr(vars, "PORTICO_HTTP_ADDR", "127.0.0.1:8080")?,
            database_url: common.database_url(vars, "gateway"),
            db_pool: vars.positive("PORTICO_GATEWAY_DB_POOL", 16)? as usize,
            beta_url: vars.string("PORTICO_BETA_URL", "http://127.0.0.1:50051"),
            workflow_url: vars.string("PORTICO_WORKFLOW_URL", "http://127.0.0.1:50053"),
            grpc_timeout: vars.millis("PORTICO_GRPC_TIMEOUT_MS", Duration::from_secs(5))?,
            grpc_connections: vars.positive("PORTICO_GRPC_CONNECTIONS", 4)? as usize,
            admin_emails: vars
                .list("PORTICO_ADMIN_EMAILS")
                .into_iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
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
            },
            cors_origins: vars.list("PORTICO_CORS_ORIGINS"),
            json_limit: vars.positive("PORTICO_JSON_LIMIT_BYTES", 1024 * 1024)? as usize,
            upload_limit: vars.positive("PORTICO_MEDIA_MAX_BYTES", 25 * 1024 * 1024)? as usize,
            media_url: vars.string("PORTICO_MEDIA_URL", "http://127.0.0.1:50052"),
            tls,
            trust_forwarded: vars.flag("PORTICO_TRUST_FORWARDED", false)?,
            api_sunset: date("PORTICO_API_SUNSET", "2027-06-30T00:00:00Z")?,
            api_deprecated_at: date("PORTICO_API_DEPRECATED_AT", "2026-01-01T00:00:00Z")?,
            workers: vars.positive("PORTICO_HTTP_WORKERS", u32::try_from(cores).unwrap_or(2))? as usize,
            common,
        })
    }
}
