//! A circuit breaker per provider: after a run of failed calls it opens and refuses calls for a
//! cool-down, then lets one probe through (half-open); the probe's outcome closes it or opens it
//! again. Time is passed in, so the rules are tested without sleeping.

use std::time::{Duration, Instant};

/// Where a breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused until the cool-down is over.
    Open,
    /// One probe is out; other calls are refused until it ends.
    HalfOpen,
}

impl State {
    /// As a metric label and gauge value (closed 0, half-open 1, open 2).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open => 2.0,
        }
    }
}

/// The breaker's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Consecutive failed calls that open it.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub cool_down: Duration,
}

impl Default for Settings {
    /// Five failures in a row; 30 seconds open.
    fn default() -> Self {
        Settings {
            failures: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// One provider's breaker.
#[derive(Clone, Debug)]
pub struct Breaker {
    settings: Settings,
    state: State,
    failures: u32,
    opened_at: Instant,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: Settings, now: Instant) -> Self {
        Breaker {
            settings,
            state: State::Closed,
            failures: 0,
            opened_at: now,
        }
    }

    /// Where it is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call may go out now: `Ok(true)` when it is the half-open probe, `Ok(false)`
    /// for an ordinary call, `Err(wait)` when refused (`wait` is how long until a probe may
    /// go; zero while a probe is out).
    pub fn permit(&mut self, now: Instant) -> Result<bool, Duration> {
        match self.state {
            State::Closed => Ok(false),
            State::HalfOpen => Err(Duration::ZERO),
            State::Open => {
                let reopens = self.opened_at + self.settings.cool_down;
                if now >= reopens {
                    self.state = State::HalfOpen;
                    Ok(true)
                } else {
                    Err(reopens - now)
                }
            }
        }
    }

    /// A permitted call succeeded (or failed in a way that says nothing about the provider's
    /// health, such as a refusal of bad input): the breaker closes.
    pub fn success(&mut self) {
        self.state = State::Closed;
        self.failures = 0;
    }

    /// A permitted call failed for want of the provider: counted while closed, and the probe's
    /// failure opens it again.
    pub fn failure(&mut self, now: Instant) {
        match self.state {
            State::Closed => {
                self.failures += 1;
                if self.failures >= self.settings.failures {
                    self.open(now);
                }
            }
            State::HalfOpen | State::Open => self.open(now),
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open;
        self.opened_at = now;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(now: Instant) -> Breaker {
        Breaker::new(
            Settings {
                failures: 3,
                cool_down: Duration::from_secs(10),
            },
            now,
        )
    }

    #[test]
    fn a_run_of_failures_opens_it_and_a_success_resets_the_count() {
        let t = Instant::now();
        let mut b = breaker(t);
        b.failure(t);
        b.failure(t);
        b.success();
        b.failure(t);
        b.failure(t);
        assert_eq!(b.state(), State::Closed, "the success broke the run");
        assert_eq!(b.permit(t), Ok(false));
        b.failure(t);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.permit(t + Duration::from_secs(4)), Err(Duration::from_secs(6)));
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_decides() {
        let t = Instant::now();
        let mut b = breaker(t);
        for _ in 0..3 {
            b.failure(t);
        }
        let later = t + Duration::from_secs(10);
        assert_eq!(b.permit(later), Ok(true), "the probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.permit(later), Err(Duration::ZERO), "one probe at a time");
        b.failure(later);
        assert_eq!(b.state(), State::Open, "a failed probe opens it again");
        assert_eq!(b.permit(later + Duration::from_secs(9)), Err(Duration::from_secs(1)));
        assert_eq!(b.permit(later + Duration::from_secs(10)), Ok(true));
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.permit(later + Duration::from_secs(10)), Ok(false));
    }

    #[test]
    fn gauge_values_order_the_states() {
        assert!(State::Closed.gauge() < State::HalfOpen.gauge());
        assert!(State::HalfOpen.gauge() < State::Open.gauge());
        assert_eq!(State::HalfOpen.as_str(), "half_open");
    }
}
