//! A circuit breaker, so that a carrier that stopped answering costs the service one fast
//! error per call instead of a deadline and its retries.
//!
//! Closed, it lets every call through and counts consecutive failures (the retryable ones:
//! a refusal proves the carrier is alive). At the threshold it opens: calls fail at once for a
//! cool-down. Then it is half-open: one trial call goes through, the others still fail fast;
//! the trial's success closes it, its failure opens it for another cool-down.
//!
//! The clock is a parameter so the state machine is tested without sleeping.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The values of [`crate::CIRCUIT_STATE_METRIC`].
const CLOSED: f64 = 0.0;
const HALF_OPEN: f64 = 1.0;
const OPEN: f64 = 2.0;

/// The breaker of one remote provider; shared by all its concurrent calls.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    /// Consecutive failures that open the circuit; 0 disables the breaker.
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
    /// The state as a metric: 0 closed, 1 half-open, 2 open.
    gauge: metrics::Gauge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial call went out at `since` and has not reported yet.
    HalfOpen {
        since: Instant,
    },
}

/// A call the breaker refused: the circuit is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Open {
    /// When the next trial call may go out.
    pub(crate) retry_after: Duration,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` consecutive failures (never, when 0) for
    /// `cooldown`.
    #[cfg(test)]
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self::with_gauge(threshold, cooldown, metrics::Gauge::noop())
    }

    /// The same, reporting its state to `gauge`.
    pub(crate) fn with_gauge(threshold: u32, cooldown: Duration, gauge: metrics::Gauge) -> Self {
        gauge.set(CLOSED);
        Self {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
            gauge,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a plain value, valid whatever a panicking holder was doing.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a call may go out at `now`.
    pub(crate) fn admit(&self, now: Instant) -> Result<(), Open> {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { since: now };
                self.gauge.set(HALF_OPEN);
                Ok(())
            }
            State::Open { until } => Err(Open {
                retry_after: until - now,
            }),
            // A trial whose caller gave up never reports: after a cool-down, try another.
            State::HalfOpen { since } if now >= since + self.cooldown => {
                *state = State::HalfOpen { since: now };
                Ok(())
            }
            State::HalfOpen { since } => Err(Open {
                retry_after: since + self.cooldown - now,
            }),
        }
    }

    /// The carrier answered (a refusal counts: it is alive); closes the circuit.
    pub(crate) fn record_success(&self) {
        *self.state() = State::Closed { failures: 0 };
        self.gauge.set(CLOSED);
    }

    /// A call failed in a way that says the carrier is unwell. Returns whether this failure
    /// opened the circuit.
    pub(crate) fn record_failure(&self, now: Instant) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let mut state = self.state();
        let opens = match *state {
            State::Closed { failures } => failures + 1 >= self.threshold,
            State::HalfOpen { .. } => true,
            // A call let through before the circuit opened, failing late: already counted.
            State::Open { .. } => false,
        };
        *state = match *state {
            _ if opens => State::Open {
                until: now + self.cooldown,
            },
            State::Closed { failures } => State::Closed {
                failures: failures + 1,
            },
            other => other,
        };
        if opens {
            self.gauge.set(OPEN);
        }
        opens
    }

    /// Whether calls fail fast at `now`.
    pub(crate) fn is_open(&self, now: Instant) -> bool {
        match *self.state() {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::HalfOpen { since } => now < since + self.cooldown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(10);

    fn after(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn the_gauge_follows_the_state() {
        let value = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(f64::NAN.to_bits()));
        let read = || f64::from_bits(value.load(std::sync::atomic::Ordering::Relaxed));
        let breaker =
            CircuitBreaker::with_gauge(1, COOLDOWN, metrics::Gauge::from_arc(value.clone()));
        assert_eq!(read(), CLOSED);
        let now = Instant::now();
        assert!(breaker.record_failure(now));
        assert_eq!(read(), OPEN);
        assert!(breaker.admit(after(now, 11)).is_ok());
        assert_eq!(read(), HALF_OPEN);
        breaker.record_success();
        assert_eq!(read(), CLOSED);
    }

    #[test]
    fn stays_closed_below_the_threshold_and_a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(3, COOLDOWN);
        let now = Instant::now();
        assert!(!breaker.record_failure(now));
        assert!(!breaker.record_failure(now));
        breaker.record_success();
        assert!(!breaker.record_failure(now));
        assert!(!breaker.record_failure(now));
        assert_eq!(breaker.admit(now), Ok(()));
        assert!(!breaker.is_open(now));
    }

    #[test]
    fn opens_at_the_threshold_and_fails_fast_during_the_cooldown() {
        let breaker = CircuitBreaker::new(2, COOLDOWN);
        let start = Instant::now();
        assert!(!breaker.record_failure(start));
        assert!(breaker.record_failure(start));
        assert!(breaker.is_open(start));
        assert_eq!(
            breaker.admit(after(start, 4)),
            Err(Open {
                retry_after: Duration::from_secs(6)
            })
        );
        // A call let through before the circuit opened, failing late, does not extend it.
        assert!(!breaker.record_failure(after(start, 5)));
        assert!(breaker.admit(after(start, 10)).is_ok());
    }

    #[test]
    fn after_the_cooldown_one_trial_goes_and_its_success_closes() {
        let breaker = CircuitBreaker::new(1, COOLDOWN);
        let start = Instant::now();
        breaker.record_failure(start);
        let later = after(start, 10);
        assert_eq!(breaker.admit(later), Ok(()), "the trial");
        assert!(
            breaker.admit(later).is_err(),
            "a second call during the trial"
        );
        breaker.record_success();
        assert_eq!(breaker.admit(later), Ok(()));
        assert_eq!(breaker.admit(later), Ok(()));
        assert!(!breaker.is_open(later));
    }

    #[test]
    fn a_failed_trial_opens_for_another_cooldown() {
        let breaker = CircuitBreaker::new(5, COOLDOWN);
        let start = Instant::now();
        for _ in 0..5 {
            breaker.record_failure(start);
        }
        let trial = after(start, 11);
        assert_eq!(breaker.admit(trial), Ok(()));
        assert!(breaker.record_failure(trial), "one failed trial reopens");
        assert_eq!(
            breaker.admit(after(start, 12)),
            Err(Open {
                retry_after: Duration::from_secs(9)
            })
        );
        assert_eq!(breaker.admit(after(start, 21)), Ok(()));
    }

    #[test]
    fn a_trial_that_never_reports_is_replaced_after_a_cooldown() {
        let breaker = CircuitBreaker::new(1, COOLDOWN);
        let start = Instant::now();
        breaker.record_failure(start);
        assert_eq!(breaker.admit(after(start, 10)), Ok(()));
        assert!(breaker.admit(after(start, 15)).is_err());
        assert_eq!(breaker.admit(after(start, 20)), Ok(()));
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let breaker = CircuitBreaker::new(0, COOLDOWN);
        let now = Instant::now();
        for _ in 0..100 {
            assert!(!breaker.record_failure(now));
        }
        assert_eq!(breaker.admit(now), Ok(()));
    }
}
