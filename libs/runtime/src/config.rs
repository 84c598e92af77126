//! Typed configuration from `PORTICO_*` environment variables.
//!
//! Every process reads its settings once at start through [`Vars`]; a bad value stops the
//! process with a message naming the variable. Secrets are wrapped in [`Secret`] so they
//! never reach a log line.

use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// A configuration value that failed to parse, naming its variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads variables from the process environment or, in tests, from a map.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    overrides: Option<HashMap<String, String>>,
}

impl Vars {
    /// The process environment.
    pub fn from_env() -> Self {
        Vars { overrides: None }
    }

    /// A fixed set of variables (tests, embedded stacks); the environment is not read.
    pub fn from_map<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Vars {
            overrides: Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect()),
        }
    }

    /// Adds or replaces one variable (turns an environment reader into a map reader seeded from it).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let map = self.overrides.get_or_insert_with(|| std::env::vars().collect());
        map.insert(key.into(), value.into());
        self
    }

    /// The raw value, if set and not empty.
    pub fn raw(&self, var: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(var).cloned(),
            None => std::env::var(var).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// A parsed value, or `default` when unset.
    pub fn get<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(var) {
            Some(raw) => parse(var, &raw),
            None => Ok(default),
        }
    }

    /// A parsed value, or `None` when unset.
    pub fn opt<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.raw(var).map(|raw| parse(var, &raw)).transpose()
    }

    /// A string, or `default`.
    pub fn string(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_string())
    }

    /// A boolean (`true/false/1/0/yes/no/on/off`), or `default`.
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(err(var, format!("`{v}` is not a boolean (use true or false)"))),
            },
        }
    }

    /// A duration in whole seconds, or `default`.
    pub fn secs(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self.opt::<u64>(var)?.map(Duration::from_secs).unwrap_or(default))
    }

    /// A duration in milliseconds, or `default`.
    pub fn millis(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self.opt::<u64>(var)?.map(Duration::from_millis).unwrap_or(default))
    }

    /// A comma-separated list (empty items dropped).
    pub fn list(&self, var: &str) -> Vec<String> {
        self.raw(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A positive integer, or `default`.
    pub fn positive(&self, var: &str, default: u32) -> Result<u32, ConfigError> {
        let value = self.get(var, default)?;
        if value == 0 {
            return Err(err(var, "must be greater than 0"));
        }
        Ok(value)
    }
}

fn parse<T>(var: &str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    raw.trim()
        .parse()
        .map_err(|e| err(var, format!("`{raw}` is invalid: {e}")))
}

fn err(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_string(),
        message: message.into(),
    }
}

/// Where the process runs: the embedded developer stack or production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// Embedded defaults: SQLite, in-memory cache, demo data, development secrets allowed.
    Dev,
    /// No demo data and no development secrets.
    Production,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (default; what log pipelines want).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// The development internal token; refused when `PORTICO_ENV=production`.
pub const DEV_INTERNAL_TOKEN: &str = "portico-dev-internal-token";

/// Settings every Portico process shares.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// `PORTICO_ENV`: `dev` (default) or `production`.
    pub environment: Environment,
    /// `PORTICO_PUBLIC_URL` (default `http://<PORTICO_HTTP_ADDR>`, itself defaulting to
    /// `127.0.0.1:8080`): where clients reach Portico; links in mail and provider redirects.
    pub public_url: String,
    /// `PORTICO_DATA_DIR` (default `./data`): SQLite files, mail, media.
    pub data_dir: PathBuf,
    /// `PORTICO_REDIS_URL`: shared cache and rate-limit state; in-memory when unset.
    pub redis_url: Option<Secret<String>>,
    /// `PORTICO_REDIS_KEY_PREFIX` (default `portico:`): namespace of every Redis key.
    pub redis_prefix: String,
    /// `PORTICO_INTERNAL_TOKEN`: the token the gateway presents to services.
    pub internal_token: Secret<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/gRPC collector for traces; none when unset.
    pub otlp_endpoint: Option<String>,
    /// `PORTICO_TRACE_SAMPLE_RATIO` (default 1.0): share of new traces exported (callers'
    /// sampling decisions are followed).
    pub trace_sample_ratio: f64,
    /// `PORTICO_LOG` (default `info`): an env-filter directive.
    pub log_filter: String,
    /// `PORTICO_LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `PORTICO_CACHE_L1_TTL_MS` (default 2000): how long a process trusts its in-memory copy.
    pub cache_l1_ttl: Duration,
    /// `PORTICO_CACHE_TTL_SECS` (default 300): lifetime of shared cache entries.
    pub cache_ttl: Duration,
    /// `PORTICO_SHUTDOWN_GRACE_SECS` (default 20): drain time for in-flight requests.
    pub shutdown_grace: Duration,
    /// `PORTICO_RETENTION_SCHEDULE` (default `0 2 * * *`, UTC): when every process's
    /// `retention_cleanup` job runs (a cron expression, `every 6h`, or `off`).
    pub retention_schedule: crate::jobs::Schedule,
    /// `PORTICO_CACHE_WARM_SCHEDULE` (default `every 5m`): when the `cache_warmer` job of a
    /// service with hot caches reloads them.
    pub cache_warm_schedule: crate::jobs::Schedule,
}

impl CommonConfig {
    /// Reads the shared settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let environment = match vars.string("PORTICO_ENV", "dev").to_ascii_lowercase().as_str() {
            "dev" | "development" => Environment::Dev,
            "prod" | "production" => Environment::Production,
            other => return Err(err("PORTICO_ENV", format!("`{other}` is not dev or production"))),
        };
        let internal_token = match (vars.raw("PORTICO_INTERNAL_TOKEN"), environment) {
            (Some(token), _) if token.len() < 16 => {
                return Err(err("PORTICO_INTERNAL_TOKEN", "must be at least 16 characters"));
            }
            (Some(token), Environment::Production) if token == DEV_INTERNAL_TOKEN => {
                return Err(err(
                    "PORTICO_INTERNAL_TOKEN",
                    "the development token is refused in production",
                ));
            }
            (Some(token), _) => token,
            (None, Environment::Dev) => DEV_INTERNAL_TOKEN.to_string(),
            (None, Environment::Production) => {
                return Err(err("PORTICO_INTERNAL_TOKEN", "required when PORTICO_ENV=production"));
            }
        };
        let log_format = match vars.string("PORTICO_LOG_FORMAT", "json").to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "pretty" | "text" => LogFormat::Pretty,
            other => return Err(err("PORTICO_LOG_FORMAT", format!("`{other}` is not json or pretty"))),
        };
        let http_addr = vars.string("PORTICO_HTTP_ADDR", "127.0.0.1:8080");
        let public_url = vars
            .string("PORTICO_PUBLIC_URL", &format!("http://{http_addr}"))
            .trim_end_matches('/')
            .to_string();
        Ok(CommonConfig {
            environment,
            public_url,
            data_dir: PathBuf::from(vars.string("PORTICO_DATA_DIR", "./data")),
            redis_url: vars.raw("PORTICO_REDIS_URL").map(Secret::new),
            redis_prefix: vars.string("PORTICO_REDIS_KEY_PREFIX", "portico:"),
            internal_token: Secret::new(internal_token),
            otlp_endpoint: vars.raw("OTEL_EXPORTER_OTLP_ENDPOINT"),
            trace_sample_ratio: {
                let ratio: f64 = vars.get("PORTICO_TRACE_SAMPLE_RATIO", 1.0)?;
                if !(0.0..=1.0).contains(&ratio) {
                    return Err(err("PORTICO_TRACE_SAMPLE_RATIO", "must be between 0 and 1"));
                }
                ratio
            },
            log_filter: vars.string("PORTICO_LOG", "info"),
            log_format,
            cache_l1_ttl: vars.millis("PORTICO_CACHE_L1_TTL_MS", Duration::from_secs(2))?,
            cache_ttl: vars.secs("PORTICO_CACHE_TTL_SECS", Duration::from_secs(300))?,
            shutdown_grace: vars.secs("PORTICO_SHUTDOWN_GRACE_SECS", Duration::from_secs(20))?,
            retention_schedule: parse(
                "PORTICO_RETENTION_SCHEDULE",
                &vars.string("PORTICO_RETENTION_SCHEDULE", "0 2 * * *"),
            )?,
            cache_warm_schedule: parse(
                "PORTICO_CACHE_WARM_SCHEDULE",
                &vars.string("PORTICO_CACHE_WARM_SCHEDULE", "every 5m"),
            )?,
        })
    }

    /// The shared Redis pool, when `PORTICO_REDIS_URL` is set.
    pub fn redis(&self) -> Result<Option<crate::redis::SharedRedis>, ConfigError> {
        self.redis_url
            .as_ref()
            .map(|url| {
                crate::redis::SharedRedis::new(url.expose(), Duration::from_millis(200), &self.redis_prefix)
                    .map_err(|e| err("PORTICO_REDIS_URL", e))
            })
            .transpose()
    }

    /// The database URL of one service: `PORTICO_<NAME>_DATABASE_URL`, else a SQLite file in the data dir.
    pub fn database_url(&self, vars: &Vars, service: &str) -> String {
        let var = format!("PORTICO_{}_DATABASE_URL", service.to_ascii_uppercase());
        vars.raw(&var)
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join(format!("{service}.db")).display()))
    }
}

/// Workflow analyses per hour of the free, pro and enterprise plans:
/// `PORTICO_QUOTA_ANALYSES_{FREE,PRO,ENTERPRISE}_PER_HOUR` (10, 100, 1,000). Read here for the
/// workflow service, which enforces them, and the gateway, which shows them with the plans.
pub fn analyses_per_hour(vars: &Vars) -> Result<[u32; 3], ConfigError> {
    Ok([
        vars.positive("PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR", 10)?,
        vars.positive("PORTICO_QUOTA_ANALYSES_PRO_PER_HOUR", 100)?,
        vars.positive("PORTICO_QUOTA_ANALYSES_ENTERPRISE_PER_HOUR", 1000)?,
    ])
}

/// The services behind the gateway: name, the variable holding the URL others call it on, and
/// the default (each service's default gRPC port on loopback). The gateway forwards to them and
/// the monitoring service probes them.
pub const SERVICES: [(&str, &str, &str); 5] = [
    ("beta", "PORTICO_BETA_URL", "http://127.0.0.1:50051"),
    ("media", "PORTICO_MEDIA_URL", "http://127.0.0.1:50052"),
    ("workflow", "PORTICO_WORKFLOW_URL", "http://127.0.0.1:50053"),
    ("billing", "PORTICO_BILLING_URL", "http://127.0.0.1:50054"),
    ("monitoring", "PORTICO_MONITORING_URL", "http://127.0.0.1:50055"),
];

/// The URL `service` (a name of [`SERVICES`]) is called on.
pub fn service_url(vars: &Vars, service: &str) -> String {
    SERVICES
        .iter()
        .find(|(name, ..)| *name == service)
        .map_or_else(String::new, |(_, var, default)| vars.string(var, default))
}

/// A listen address from `var`, or `default`.
pub fn listen_addr(vars: &Vars, var: &str, default: &str) -> Result<SocketAddr, ConfigError> {
    parse(var, &vars.string(var, default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_variable() {
        let vars = Vars::from_map([("PORTICO_CACHE_TTL_SECS", "soon")]);
        let e = CommonConfig::from_vars(&vars).err().map(|e| e.var);
        assert_eq!(e.as_deref(), Some("PORTICO_CACHE_TTL_SECS"));
    }

    #[test]
    fn production_requires_a_real_internal_token() {
        let vars = Vars::from_map([("PORTICO_ENV", "production")]);
        assert_eq!(
            CommonConfig::from_vars(&vars).err().map(|e| e.var).as_deref(),
            Some("PORTICO_INTERNAL_TOKEN")
        );
        let vars = Vars::from_map([
            ("PORTICO_ENV", "production"),
            ("PORTICO_INTERNAL_TOKEN", DEV_INTERNAL_TOKEN),
        ]);
        assert!(CommonConfig::from_vars(&vars).is_err());
    }

    #[test]
    fn defaults_run_the_embedded_stack() -> Result<(), ConfigError> {
        let c = CommonConfig::from_vars(&Vars::from_map::<[(&str, &str); 0], _, _>([]))?;
        assert_eq!(c.environment, Environment::Dev);
        assert!(c.redis_url.is_none());
        assert_eq!(c.database_url(&Vars::default(), "beta"), "sqlite://./data/beta.db");
        Ok(())
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
