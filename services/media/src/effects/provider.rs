//! The provider a run talks to, whichever it is (RunningHub, or the in-process `local` one),
//! behind one interface, with a circuit breaker over its calls and their metrics: latency and
//! outcome per call, and the breaker's state.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use portico_effects::{
    breaker::{Breaker, Settings, State},
    params::NodeValue,
    run::{Call, Failure, RunStatus},
};

use super::{local::Local, runninghub::RunningHub};

/// A failed call: which, how, and what the provider said (never a key).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("provider {}: {message}", call.as_str())]
pub struct ProviderError {
    /// The call.
    pub call: Call,
    /// How it failed, which decides whether it may be repeated.
    pub failure: Failure,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
    /// When the breaker refused the call: how long until it lets a probe through.
    pub retry_in: Option<Duration>,
}

impl ProviderError {
    /// A failure of `call`.
    pub fn new(call: Call, failure: Failure, status: Option<u16>, message: impl Into<String>) -> Self {
        ProviderError {
            call,
            failure,
            status,
            message: message.into(),
            retry_in: None,
        }
    }
}

/// A task the provider made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Its id.
    pub task_id: String,
    /// Its status when made, when the provider said.
    pub status: Option<RunStatus>,
}

/// One output of a finished task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Where to download it.
    pub file_url: String,
    /// What it is (`png`, `jpg`, …).
    pub file_type: String,
}

/// Which provider runs effects.
pub enum Backend {
    /// RunningHub's HTTP API.
    RunningHub(RunningHub),
    /// Simple effects run in process, for development and demos.
    Local(Local),
}

impl Backend {
    /// Its name, as `PORTICO_EFFECTS_PROVIDER` spells it and metrics label it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::RunningHub(_) => "runninghub",
            Backend::Local(_) => "local",
        }
    }
}

/// The provider with its breaker. Clone it freely; clones share the breaker.
#[derive(Clone)]
pub struct Provider {
    backend: Arc<Backend>,
    breaker: Arc<Mutex<Breaker>>,
}

impl Provider {
    /// `backend` behind a breaker with `settings`.
    pub fn new(backend: Backend, settings: Settings) -> Self {
        let provider = Provider {
            backend: Arc::new(backend),
            breaker: Arc::new(Mutex::new(Breaker::new(settings, Instant::now()))),
        };
        provider.report(State::Closed);
        provider
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.backend.name()
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> State {
        self.with_breaker(|b| b.state())
    }

    fn with_breaker<T>(&self, f: impl FnOnce(&mut Breaker) -> T) -> T {
        match self.breaker.lock() {
            Ok(mut b) => f(&mut b),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn report(&self, state: State) {
        metrics::gauge!("portico_effects_breaker_state", "provider" => self.name()).set(state.gauge());
    }

    /// Runs one call through the breaker, recording its latency and outcome.
    async fn guarded<T>(
        &self,
        call: Call,
        work: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let before = self.breaker_state();
        if let Err(wait) = self.with_breaker(|b| b.permit(Instant::now())) {
            metrics::counter!("portico_effects_provider_calls_total", "provider" => self.name(), "call" => call.as_str(), "outcome" => Failure::BreakerOpen.as_str()).increment(1);
            let mut e = ProviderError::new(
                call,
                Failure::BreakerOpen,
                None,
                "the provider is failing; its circuit breaker is open",
            );
            e.retry_in = Some(wait.max(Duration::from_millis(100)));
            return Err(e);
        }
        let started = Instant::now();
        let result = work.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.failure.as_str(),
        };
        metrics::histogram!("portico_effects_provider_seconds", "provider" => self.name(), "call" => call.as_str(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("portico_effects_provider_calls_total", "provider" => self.name(), "call" => call.as_str(), "outcome" => outcome).increment(1);
        let after = self.with_breaker(|b| {
            match &result {
                Err(e) if e.failure.is_unhealthy() => b.failure(Instant::now()),
                _ => b.success(),
            }
            b.state()
        });
        if after != before {
            metrics::counter!("portico_effects_breaker_transitions_total", "provider" => self.name(), "to" => after.as_str()).increment(1);
            tracing::warn!(
                provider = self.name(),
                from = before.as_str(),
                to = after.as_str(),
                "effects provider circuit breaker"
            );
        }
        self.report(after);
        result
    }

    /// Uploads the photo; the name the provider gives it goes in the image node.
    pub async fn upload(&self, bytes: &[u8], file_name: &str, content_type: &str) -> Result<String, ProviderError> {
        self.guarded(Call::Upload, async {
            match &*self.backend {
                Backend::RunningHub(p) => p.upload(bytes, file_name, content_type).await,
                Backend::Local(p) => p.upload(bytes),
            }
        })
        .await
    }

    /// Starts the app with `nodes`; the provider calls `webhook_url` when done, if it can.
    pub async fn start(
        &self,
        webapp_id: &str,
        nodes: &[NodeValue],
        webhook_url: Option<&str>,
    ) -> Result<Task, ProviderError> {
        self.guarded(Call::Run, async {
            match &*self.backend {
                Backend::RunningHub(p) => p.start(webapp_id, nodes, webhook_url).await,
                Backend::Local(p) => p.start(webapp_id, nodes),
            }
        })
        .await
    }

    /// The task's status.
    pub async fn status(&self, task_id: &str) -> Result<RunStatus, ProviderError> {
        self.guarded(Call::Status, async {
            match &*self.backend {
                Backend::RunningHub(p) => p.status(task_id).await,
                Backend::Local(p) => p.status(task_id),
            }
        })
        .await
    }

    /// A finished task's outputs.
    pub async fn outputs(&self, task_id: &str) -> Result<Vec<Output>, ProviderError> {
        self.guarded(Call::Outputs, async {
            match &*self.backend {
                Backend::RunningHub(p) => p.outputs(task_id).await,
                Backend::Local(p) => p.outputs(task_id),
            }
        })
        .await
    }

    /// Cancels the task.
    pub async fn cancel(&self, task_id: &str) -> Result<(), ProviderError> {
        self.guarded(Call::Cancel, async {
            match &*self.backend {
                Backend::RunningHub(p) => p.cancel(task_id).await,
                Backend::Local(p) => p.cancel(task_id),
            }
        })
        .await
    }

    /// Whether an output at `url` may be downloaded (no SSRF through `fileUrl`).
    pub fn may_download(&self, url: &str) -> bool {
        match &*self.backend {
            Backend::RunningHub(p) => p.may_download(url),
            Backend::Local(p) => p.may_download(url),
        }
    }

    /// Downloads an output (refused unless [`Self::may_download`] allows it).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        self.guarded(Call::Download, async {
            match &*self.backend {
                Backend::RunningHub(p) => p.download(url).await,
                Backend::Local(p) => p.download(url),
            }
        })
        .await
    }
}
