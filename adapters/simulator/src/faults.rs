//! The faults the simulator can be told to show, and the counts of what it saw.
//!
//! Every adapter request passes through [`Faults::before`] first: it is counted, delayed by the
//! configured latency, and perhaps answered with an injected failure instead of reaching the
//! simulated operator. Faults are the simulator's settings, not the carrier's state: they are
//! never persisted and Reset keeps them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// The reason of an injected FAILED_PRECONDITION when none is given.
pub const NUMBER_NOT_PROVISIONED: &str = "NUMBER_NOT_PROVISIONED";

/// An RPC of the adapter protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Rpc {
    /// Describe.
    Describe,
    /// CheckAssignment.
    CheckAssignment,
    /// CheckLocationUpdate.
    CheckLocationUpdate,
    /// Activate.
    Activate,
    /// Deactivate.
    Deactivate,
    /// UpdateLocation.
    UpdateLocation,
    /// Poll.
    Poll,
    /// Search.
    Search,
    /// Acquire.
    Acquire,
    /// Release.
    Release,
    /// ListNumbers.
    ListNumbers,
}

impl Rpc {
    /// The RPC's name in the protocol, such as `Activate`: the key of the statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Rpc::Describe => "Describe",
            Rpc::CheckAssignment => "CheckAssignment",
            Rpc::CheckLocationUpdate => "CheckLocationUpdate",
            Rpc::Activate => "Activate",
            Rpc::Deactivate => "Deactivate",
            Rpc::UpdateLocation => "UpdateLocation",
            Rpc::Poll => "Poll",
            Rpc::Search => "Search",
            Rpc::Acquire => "Acquire",
            Rpc::Release => "Release",
            Rpc::ListNumbers => "ListNumbers",
        }
    }
}

/// The status code an injected failure answers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FailureCode {
    /// UNAVAILABLE: transient.
    #[default]
    Unavailable,
    /// FAILED_PRECONDITION with an `ErrorInfo` reason: a permanent refusal.
    FailedPrecondition,
    /// DEADLINE_EXCEEDED: transient.
    DeadlineExceeded,
    /// RESOURCE_EXHAUSTED: transient, unless the reason is OUT_OF_STOCK.
    ResourceExhausted,
    /// ABORTED: transient.
    Aborted,
    /// NOT_FOUND.
    NotFound,
    /// INTERNAL: a failure a retry will not fix.
    Internal,
}

impl From<FailureCode> for Code {
    fn from(code: FailureCode) -> Self {
        match code {
            FailureCode::Unavailable => Code::Unavailable,
            FailureCode::FailedPrecondition => Code::FailedPrecondition,
            FailureCode::DeadlineExceeded => Code::DeadlineExceeded,
            FailureCode::ResourceExhausted => Code::ResourceExhausted,
            FailureCode::Aborted => Code::Aborted,
            FailureCode::NotFound => Code::NotFound,
            FailureCode::Internal => Code::Internal,
        }
    }
}

/// Which requests fail, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureRule {
    /// Only requests of this RPC fail; `None` for every RPC.
    pub rpc: Option<Rpc>,
    /// The code to answer with.
    pub code: FailureCode,
    /// The `ErrorInfo` reason; empty for the default (`NUMBER_NOT_PROVISIONED` for
    /// FAILED_PRECONDITION, none otherwise).
    pub reason: String,
    /// How many failures to inject before the rule expires; `None` for no limit.
    pub count: Option<u64>,
    /// The fraction of matching requests that fail, from 0 to 1.
    pub rate: f64,
    /// A `RetryInfo` delay to attach to the failure.
    pub retry_after: Option<Duration>,
}

impl FailureRule {
    /// Every matching request fails with `code`, until told otherwise.
    pub fn always(code: FailureCode) -> Self {
        Self {
            rpc: None,
            code,
            reason: String::new(),
            count: None,
            rate: 1.0,
            retry_after: None,
        }
    }

    /// The status of one injected failure of `rpc`, for the operator `domain`.
    fn status(&self, rpc: Rpc, domain: &str) -> Status {
        let code = Code::from(self.code);
        let reason = match (self.code, self.reason.as_str()) {
            (FailureCode::FailedPrecondition, "") => NUMBER_NOT_PROVISIONED,
            (_, reason) => reason,
        };
        let message = format!("simulated failure of {} ({code:?})", rpc.name());
        let mut details = ErrorDetails::new();
        if !reason.is_empty() {
            details.set_error_info(reason, domain, HashMap::new());
        }
        if self.retry_after.is_some() {
            details.set_retry_info(self.retry_after);
        }
        Status::with_error_details(code, message, details)
    }
}

/// What the simulator saw, by RPC name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestStats {
    /// Adapter requests received, failed or not.
    pub(crate) requests: BTreeMap<&'static str, u64>,
    /// Failures injected.
    pub(crate) failures_injected: BTreeMap<&'static str, u64>,
}

/// The simulator's faults and request counts, shared by its services.
#[derive(Debug)]
pub(crate) struct Faults {
    domain: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    latency: Duration,
    rule: Option<FailureRule>,
    stats: RequestStats,
}

impl Faults {
    /// Faults of the operator `domain` (its id, the `ErrorInfo.domain` of its failures).
    pub(crate) fn new(domain: String, latency: Duration, rule: Option<FailureRule>) -> Self {
        Self {
            domain,
            state: Mutex::new(State {
                latency,
                rule,
                stats: RequestStats::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request of `rpc`, waits the latency, and answers the failure to inject, if any.
    pub(crate) async fn before(&self, rpc: Rpc) -> Result<(), Status> {
        let (latency, failure) = {
            let mut state = self.state();
            *state.stats.requests.entry(rpc.name()).or_default() += 1;
            let failure = state.inject(rpc, &self.domain);
            if failure.is_some() {
                *state.stats.failures_injected.entry(rpc.name()).or_default() += 1;
            }
            (state.latency, failure)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        failure.map_or(Ok(()), Err)
    }

    /// Replaces the failure rule; `None` stops injecting.
    pub(crate) fn set_rule(&self, rule: Option<FailureRule>) {
        self.state().rule = rule;
    }

    /// Sets the latency added to every request.
    pub(crate) fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> RequestStats {
        self.state().stats.clone()
    }
}

impl State {
    /// Whether the rule fails this request of `rpc`; uses up one of its failures when it does.
    fn inject(&mut self, rpc: Rpc, domain: &str) -> Option<Status> {
        let rule = self.rule.as_mut()?;
        if rule.rpc.is_some_and(|only| only != rpc) || rule.count == Some(0) {
            return None;
        }
        if rule.rate < 1.0 && rand::random::<f64>() >= rule.rate {
            return None;
        }
        let status = rule.status(rpc, domain);
        if let Some(count) = &mut rule.count {
            *count -= 1;
            if *count == 0 {
                self.rule = None;
            }
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_counted_rule_fails_that_many_matching_requests_then_expires() {
        let faults = Faults::new(
            "op".into(),
            Duration::ZERO,
            Some(FailureRule {
                rpc: Some(Rpc::Activate),
                count: Some(2),
                ..FailureRule::always(FailureCode::Unavailable)
            }),
        );
        assert!(faults.before(Rpc::Poll).await.is_ok());
        assert_eq!(
            faults.before(Rpc::Activate).await.unwrap_err().code(),
            Code::Unavailable
        );
        assert!(faults.before(Rpc::Activate).await.is_err());
        assert!(faults.before(Rpc::Activate).await.is_ok());
        let stats = faults.stats();
        assert_eq!(stats.requests["Activate"], 3);
        assert_eq!(stats.requests["Poll"], 1);
        assert_eq!(stats.failures_injected["Activate"], 2);
    }

    #[tokio::test]
    async fn refusals_carry_a_reason() {
        let faults = Faults::new(
            "op".into(),
            Duration::ZERO,
            Some(FailureRule::always(FailureCode::FailedPrecondition)),
        );
        let status = faults.before(Rpc::Activate).await.unwrap_err();
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, NUMBER_NOT_PROVISIONED);
        assert_eq!(info.domain, "op");
    }

    #[tokio::test]
    async fn a_zero_rate_never_fails() {
        let faults = Faults::new(
            "op".into(),
            Duration::ZERO,
            Some(FailureRule {
                rate: 0.0,
                ..FailureRule::always(FailureCode::Unavailable)
            }),
        );
        for _ in 0..20 {
            assert!(faults.before(Rpc::Activate).await.is_ok());
        }
    }
}
