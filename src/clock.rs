//! Where the service's time comes from: the system's clock, or one a test moves by hand.
//!
//! Everything that reads the time (records' times, blocks, token expiry, leases, retention)
//! asks the [`Clock`] the application was built with, so a test of expiry moves a
//! [`ManualClock`] forward instead of sleeping.
//!
//! The clock ticks in whole microseconds, the finest precision both databases keep, so an
//! answer built from memory says exactly what a later read of the same record says.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, in whole microseconds.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        to_micros(SystemTime::now())
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock standing at the system's current time.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A clock standing at `time`.
    pub fn at(time: SystemTime) -> Self {
        Self {
            now: Mutex::new(to_micros(time)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = to_micros(*now + by);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `time` cut to whole microseconds.
fn to_micros(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_ticks_in_microseconds() {
        let now = SystemClock.now();
        assert_eq!(
            now.duration_since(UNIX_EPOCH).unwrap().subsec_nanos() % 1000,
            0
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(UNIX_EPOCH + Duration::from_nanos(1_500));
        assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_micros(1));
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            clock.now(),
            UNIX_EPOCH + Duration::from_secs(30) + Duration::from_micros(1)
        );
    }
}
