//! AI effects on photos, run at an outside provider: `provider` is the one interface (with a
//! circuit breaker and metrics) over `runninghub` (RunningHub's HTTP API behind a client that
//! repeats only what is safe to repeat) and `local` (simple effects in process); `store` holds
//! the catalogue, the runs and the per-user allowance; `runs` is the job that drives each run
//! through the provider, resuming after a restart from the database; `service` serves the
//! catalogue and the runs over gRPC. The rules (definitions, params, the run lifecycle, the call
//! policy, the breaker) are `portico-effects`.

pub mod local;
pub mod provider;
pub mod runninghub;
pub mod runs;
pub mod service;
pub mod store;

use std::time::Duration;

use portico_effects::breaker;
use portico_runtime::config::{ConfigError, Secret, Vars};

pub use provider::{Backend, Provider};
pub use service::EffectsApp;

/// Runs a plan tier may have unfinished and may start per hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Unfinished at once.
    pub concurrent: u32,
    /// Started per hour.
    pub per_hour: u32,
}

/// Which provider, and how to reach it.
#[derive(Clone, Debug)]
pub enum ProviderConfig {
    /// `PORTICO_EFFECTS_PROVIDER=runninghub`.
    RunningHub(runninghub::RunningHubConfig),
    /// `PORTICO_EFFECTS_PROVIDER=local` (the default): tasks take `delay`.
    Local { delay: Duration },
}

/// The effects settings.
#[derive(Clone, Debug)]
pub struct EffectsConfig {
    /// `PORTICO_EFFECTS_PROVIDER` (`local` or `runninghub`), with `PORTICO_RUNNINGHUB_API_BASE`
    /// (default `https://www.runninghub.ai`), `PORTICO_RUNNINGHUB_API_KEY` (required for
    /// RunningHub), `PORTICO_EFFECTS_TIMEOUT_SECS` (45, each call) and
    /// `PORTICO_EFFECTS_LOCAL_DELAY_MS` (1,500).
    pub provider: ProviderConfig,
    /// Free, pro and enterprise: `PORTICO_EFFECTS_{FREE,PRO,ENTERPRISE}_CONCURRENT` (2, 5, 20)
    /// and `…_PER_HOUR` (20, 200, 2,000).
    pub allowances: [Allowance; 3],
    /// `PORTICO_EFFECTS_WEBHOOK_BASE`: the public URL the provider calls back on (the
    /// gateway's, e.g. `https://api.example.com`); unset, runs are only polled.
    pub webhook_base: Option<String>,
    /// `PORTICO_EFFECTS_BREAKER_FAILURES` (5) and `PORTICO_EFFECTS_BREAKER_COOLDOWN_SECS` (30).
    pub breaker: breaker::Settings,
    /// `PORTICO_EFFECTS_RUN_ATTEMPTS` (6): failed steps a run survives (each after the
    /// client's own repeats); the next one fails it with the reason.
    pub run_attempts: u32,
    /// `PORTICO_EFFECTS_RUN_DEADLINE_SECS` (1,800): a run not over by then fails.
    pub run_deadline: Duration,
    /// The first status poll after a task starts (1 s; 20 s when a webhook is expected), and
    /// the longest gap between polls (15 s; 60 s with a webhook).
    pub poll_first: Duration,
    pub poll_cap: Duration,
    /// The first and largest delay before a failed step is tried again (1 s, 30 s; full
    /// jitter).
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How long a start whose answer was lost waits for the provider's webhook to name its
    /// task before the run fails (60 s).
    pub reconcile_grace: Duration,
    /// How often the run job looks for due runs when nothing wakes it (250 ms).
    pub tick: Duration,
}

impl EffectsConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let timeout = vars.secs("PORTICO_EFFECTS_TIMEOUT_SECS", Duration::from_secs(45))?;
        if timeout.is_zero() {
            return Err(ConfigError {
                var: "PORTICO_EFFECTS_TIMEOUT_SECS".into(),
                message: "must be greater than 0".into(),
            });
        }
        let provider = match vars.string("PORTICO_EFFECTS_PROVIDER", "local").as_str() {
            "local" => ProviderConfig::Local {
                delay: Duration::from_millis(vars.get("PORTICO_EFFECTS_LOCAL_DELAY_MS", 1_500)?),
            },
            "runninghub" => {
                let Some(key) = vars.raw("PORTICO_RUNNINGHUB_API_KEY").filter(|k| !k.trim().is_empty()) else {
                    return Err(ConfigError {
                        var: "PORTICO_RUNNINGHUB_API_KEY".into(),
                        message: "is required when PORTICO_EFFECTS_PROVIDER=runninghub".into(),
                    });
                };
                let base = vars.string("PORTICO_RUNNINGHUB_API_BASE", runninghub::DEFAULT_API_BASE);
                let mut config = runninghub::RunningHubConfig::new(&base, Secret::new(key));
                config.timeout = timeout;
                ProviderConfig::RunningHub(config)
            }
            other => {
                return Err(ConfigError {
                    var: "PORTICO_EFFECTS_PROVIDER".into(),
                    message: format!("must be local or runninghub, not {other}"),
                });
            }
        };
        let allowance = |tier: &str, concurrent: u32, per_hour: u32| -> Result<Allowance, ConfigError> {
            Ok(Allowance {
                concurrent: vars.positive(&format!("PORTICO_EFFECTS_{tier}_CONCURRENT"), concurrent)?,
                per_hour: vars.positive(&format!("PORTICO_EFFECTS_{tier}_PER_HOUR"), per_hour)?,
            })
        };
        let webhook_base = vars
            .raw("PORTICO_EFFECTS_WEBHOOK_BASE")
            .map(|b| b.trim_end_matches('/').to_string())
            .filter(|b| !b.is_empty());
        if let Some(base) = &webhook_base
            && !url::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.has_host())
        {
            return Err(ConfigError {
                var: "PORTICO_EFFECTS_WEBHOOK_BASE".into(),
                message: "must be an http(s) URL".into(),
            });
        }
        let (poll_first, poll_cap) = if webhook_base.is_some() {
            (Duration::from_secs(20), Duration::from_secs(60))
        } else {
            (Duration::from_secs(1), Duration::from_secs(15))
        };
        Ok(EffectsConfig {
            provider,
            allowances: [
                allowance("FREE", 2, 20)?,
                allowance("PRO", 5, 200)?,
                allowance("ENTERPRISE", 20, 2_000)?,
            ],
            webhook_base,
            breaker: breaker::Settings {
                failures: vars.positive("PORTICO_EFFECTS_BREAKER_FAILURES", 5)?,
                cool_down: vars.secs("PORTICO_EFFECTS_BREAKER_COOLDOWN_SECS", Duration::from_secs(30))?,
            },
            run_attempts: vars.positive("PORTICO_EFFECTS_RUN_ATTEMPTS", 6)?,
            run_deadline: vars.secs("PORTICO_EFFECTS_RUN_DEADLINE_SECS", Duration::from_secs(1_800))?,
            poll_first,
            poll_cap,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(30),
            reconcile_grace: Duration::from_secs(60),
            tick: Duration::from_millis(250),
        })
    }

    /// The provider these settings name.
    pub fn open_provider(&self) -> Result<Provider, String> {
        let backend = match &self.provider {
            ProviderConfig::RunningHub(c) => Backend::RunningHub(runninghub::RunningHub::new(c.clone())?),
            ProviderConfig::Local { delay } => Backend::Local(local::Local::new(*delay)),
        };
        Ok(Provider::new(backend, self.breaker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<EffectsConfig, ConfigError> {
        EffectsConfig::from_vars(&Vars::from_map(vars.iter().copied()))
    }

    #[test]
    fn defaults_run_effects_locally_with_the_tier_allowances() -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert!(matches!(c.provider, ProviderConfig::Local { delay } if delay == Duration::from_millis(1_500)));
        assert_eq!(
            c.allowances.map(|a| (a.concurrent, a.per_hour)),
            [(2, 20), (5, 200), (20, 2_000)]
        );
        assert_eq!(c.webhook_base, None);
        assert_eq!(c.poll_first, Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn runninghub_needs_its_key_and_never_prints_it() -> Result<(), ConfigError> {
        let missing = config(&[("PORTICO_EFFECTS_PROVIDER", "runninghub")]);
        assert_eq!(
            missing.err().map(|e| e.var).as_deref(),
            Some("PORTICO_RUNNINGHUB_API_KEY")
        );
        let c = config(&[
            ("PORTICO_EFFECTS_PROVIDER", "runninghub"),
            ("PORTICO_RUNNINGHUB_API_KEY", "rh-secret-key"),
            ("PORTICO_EFFECTS_TIMEOUT_SECS", "20"),
            ("PORTICO_EFFECTS_WEBHOOK_BASE", "https://api.example.com/"),
        ])?;
        let ProviderConfig::RunningHub(rh) = &c.provider else {
            panic!("expected RunningHub");
        };
        assert_eq!(rh.api_base, "https://www.runninghub.ai");
        assert_eq!(rh.timeout, Duration::from_secs(20));
        assert_eq!(c.webhook_base.as_deref(), Some("https://api.example.com"));
        assert_eq!(
            c.poll_first,
            Duration::from_secs(20),
            "with a webhook, polling is the fallback"
        );
        assert!(!format!("{c:?}").contains("rh-secret-key"));
        Ok(())
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORTICO_EFFECTS_PROVIDER", "openai"),
            ("PORTICO_EFFECTS_FREE_CONCURRENT", "0"),
            ("PORTICO_EFFECTS_PRO_PER_HOUR", "lots"),
            ("PORTICO_EFFECTS_WEBHOOK_BASE", "ftp://x"),
            ("PORTICO_EFFECTS_TIMEOUT_SECS", "0"),
            ("PORTICO_EFFECTS_BREAKER_FAILURES", "0"),
        ] {
            assert_eq!(
                config(&[(var, value)]).err().map(|e| e.var).as_deref(),
                Some(var),
                "{var}={value}"
            );
        }
    }
}
