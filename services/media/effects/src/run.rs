//! A run's life, `queued → running → succeeded | failed`, and the policy of the calls that
//! drive it: which failures may be retried for which call, backoff with full jitter, and how
//! long a provider's task status may be served from cache.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "api", schema(as = EffectRunStatus))]
pub enum RunStatus {
    /// Accepted, not yet taken by the provider.
    Queued,
    /// The provider is working on it.
    Running,
    /// Done: the result is the caller's media.
    Succeeded,
    /// Over without a result (`error` says why, `cancelled` when the caller cancelled it).
    Failed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether nothing can change it any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed)
    }

    /// Whether a run may go from `self` to `next` (staying where it is counts: a progress
    /// update). Terminal statuses never change, so a late webhook or poll cannot revive a
    /// cancelled or finished run.
    pub fn may_become(self, next: RunStatus) -> bool {
        match self {
            RunStatus::Queued => true,
            RunStatus::Running => next != RunStatus::Queued,
            RunStatus::Succeeded | RunStatus::Failed => false,
        }
    }

    /// The provider's task status (RunningHub: `QUEUED`, `RUNNING`, `SUCCESS`, `FAILED`).
    pub fn from_provider(s: &str) -> Option<RunStatus> {
        match s {
            "QUEUED" => Some(RunStatus::Queued),
            "RUNNING" => Some(RunStatus::Running),
            "SUCCESS" => Some(RunStatus::Succeeded),
            "FAILED" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// A call to the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Uploading the photo.
    Upload,
    /// Starting the task (`ai-app/run`).
    Run,
    /// Asking the task's status.
    Status,
    /// Asking the task's outputs.
    Outputs,
    /// Cancelling the task.
    Cancel,
    /// Downloading an output.
    Download,
}

impl Call {
    /// As a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Upload => "upload",
            Call::Run => "run",
            Call::Status => "status",
            Call::Outputs => "outputs",
            Call::Cancel => "cancel",
            Call::Download => "download",
        }
    }
}

/// How a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: the provider never saw the request.
    Connect,
    /// Sent, but the answer was lost (a timeout or a dropped connection): the provider may
    /// have acted on it.
    AnswerLost,
    /// The provider answered 429 or 5xx: it did not act on the request.
    Refused,
    /// The provider answered and said no (a 4xx, or a non-zero `code`): repeating changes
    /// nothing.
    Rejected,
    /// The provider's circuit breaker is open: nothing was sent.
    BreakerOpen,
}

impl Failure {
    /// As a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::AnswerLost => "answer_lost",
            Failure::Refused => "refused",
            Failure::Rejected => "rejected",
            Failure::BreakerOpen => "breaker_open",
        }
    }

    /// Whether it says the provider is unwell (what a circuit breaker counts): no connection,
    /// a lost answer, 429 or 5xx. A refusal of the request itself says the provider is up.
    pub fn is_unhealthy(self) -> bool {
        matches!(self, Failure::Connect | Failure::AnswerLost | Failure::Refused)
    }
}

/// Whether `call` may simply be sent again after `failure`. Every call but `Run` is safe to
/// repeat (reads, a cancel, an upload whose extra copy costs nothing); a `Run` whose answer
/// was lost may have made a task, so it is reconciled instead of resubmitted.
pub fn retryable(call: Call, failure: Failure) -> bool {
    match failure {
        Failure::Connect | Failure::Refused | Failure::BreakerOpen => true,
        Failure::AnswerLost => call != Call::Run,
        Failure::Rejected => false,
    }
}

/// Exponential backoff with full jitter: a delay drawn uniformly from zero to
/// `min(cap, base × 2^attempt)` (`attempt` counts from 0), given `unit` uniform in [0, 1).
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// How long a task status just read may be served from cache: briefly while the task can
/// still move (a queued task moves less often than a running one), and for good (`None`) once
/// it is over.
pub fn status_ttl(status: RunStatus) -> Option<Duration> {
    match status {
        RunStatus::Queued => Some(Duration::from_secs(5)),
        RunStatus::Running => Some(Duration::from_secs(2)),
        RunStatus::Succeeded | RunStatus::Failed => None,
    }
}

/// When to poll a task again after `polls` polls that found it unfinished: starting at
/// `first` and growing by half each time up to `cap`, so long tasks cost few calls; a
/// webhook, when the provider sends one, makes polling a fallback.
pub fn next_poll(polls: u32, first: Duration, cap: Duration) -> Duration {
    first
        .mul_f64(1.5f64.powi(i32::try_from(polls.min(64)).unwrap_or(64)))
        .min(cap)
}

/// When to ask a task's status again after a read found it `status` (`polls` reads so far):
/// not before the status read goes stale ([`status_ttl`]: the run row is the status cache, so
/// no reader makes the provider answer the same question twice within it), and on the
/// [`next_poll`] schedule after that. `None` once the task is over.
pub fn poll_after(status: RunStatus, polls: u32, first: Duration, cap: Duration) -> Option<Duration> {
    status_ttl(status).map(|ttl| ttl.max(next_poll(polls, first, cap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_never_change() {
        use RunStatus::*;
        let allowed = [
            (Queued, Queued),
            (Queued, Running),
            (Queued, Succeeded),
            (Queued, Failed),
            (Running, Running),
            (Running, Succeeded),
            (Running, Failed),
        ];
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            for next in RunStatus::ALL {
                assert_eq!(s.may_become(next), allowed.contains(&(s, next)), "{s:?} → {next:?}");
            }
        }
        assert_eq!(RunStatus::from_provider("SUCCESS"), Some(RunStatus::Succeeded));
        assert_eq!(RunStatus::from_provider("success"), None);
    }

    #[test]
    fn a_run_whose_answer_was_lost_is_never_resubmitted() {
        assert!(!retryable(Call::Run, Failure::AnswerLost));
        assert!(retryable(Call::Run, Failure::Refused), "429 and 5xx made no task");
        assert!(retryable(Call::Run, Failure::Connect));
        assert!(retryable(Call::Status, Failure::AnswerLost));
        assert!(retryable(Call::Upload, Failure::AnswerLost));
        for call in [
            Call::Upload,
            Call::Run,
            Call::Status,
            Call::Outputs,
            Call::Cancel,
            Call::Download,
        ] {
            assert!(!retryable(call, Failure::Rejected));
        }
    }

    #[test]
    fn backoff_is_fully_jittered_under_a_doubling_ceiling() {
        let (base, cap) = (Duration::from_millis(200), Duration::from_secs(10));
        assert_eq!(backoff(0, base, cap, 0.0), Duration::ZERO);
        assert_eq!(backoff(0, base, cap, 0.5), Duration::from_millis(100));
        assert_eq!(
            backoff(3, base, cap, 0.999_999),
            Duration::from_millis(1_600).mul_f64(0.999_999)
        );
        assert_eq!(backoff(40, base, cap, 1.0), cap, "capped, without overflow");
    }

    #[test]
    fn status_lives_in_cache_by_how_soon_it_can_move() {
        assert!(status_ttl(RunStatus::Running) < status_ttl(RunStatus::Queued));
        assert_eq!(status_ttl(RunStatus::Succeeded), None);
        assert_eq!(
            next_poll(0, Duration::from_secs(1), Duration::from_secs(15)),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_poll(2, Duration::from_secs(1), Duration::from_secs(15)),
            Duration::from_millis(2_250)
        );
        assert_eq!(
            next_poll(100, Duration::from_secs(1), Duration::from_secs(15)),
            Duration::from_secs(15)
        );
        let (first, cap) = (Duration::from_secs(1), Duration::from_secs(15));
        assert_eq!(
            poll_after(RunStatus::Running, 0, first, cap),
            Some(Duration::from_secs(2)),
            "not before the cached read goes stale"
        );
        assert_eq!(
            poll_after(RunStatus::Queued, 0, first, cap),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            poll_after(RunStatus::Running, 6, first, cap),
            Some(next_poll(6, first, cap)),
            "then the growing schedule"
        );
        assert_eq!(poll_after(RunStatus::Failed, 0, first, cap), None);
    }
}
