//! Operations: the state of a change as its providers put it into effect, number by number.
//!
//! A mutation that provisions on a provider records an operation with one provisioning job per
//! number, in the mutation's transaction. Synchronous providers finish their job at once;
//! asynchronous ones leave it to the provisioning worker, which drives it to an end.

use std::time::{Duration, SystemTime};

use numbers_provider::spelled_enum;
use serde::{Deserialize, Serialize};

use super::{ActivationState, AuditAction};

spelled_enum! {
    /// How far an operation (or one of its jobs) has come.
    OperationState, "operation state" {
        /// Accepted; no provider has been called yet.
        Pending = "PENDING",
        /// A provider is working on it.
        Running = "RUNNING",
        /// Every provider confirmed.
        Succeeded = "SUCCEEDED",
        /// A provider refused or failed for good.
        Failed = "FAILED",
    }
}

impl OperationState {
    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, OperationState::Succeeded | OperationState::Failed)
    }

    /// The state of an operation whose jobs are in `jobs`: failed once every job ended and one
    /// failed, succeeded once all succeeded, pending until one started.
    pub fn of(jobs: impl IntoIterator<Item = OperationState>) -> OperationState {
        let jobs: Vec<OperationState> = jobs.into_iter().collect();
        if jobs.iter().all(|s| s.is_final()) {
            if jobs.contains(&OperationState::Failed) {
                OperationState::Failed
            } else {
                OperationState::Succeeded
            }
        } else if jobs.iter().all(|s| *s == OperationState::Pending) {
            OperationState::Pending
        } else {
            OperationState::Running
        }
    }
}

spelled_enum! {
    /// What a provisioning job asks a provider.
    ProvisioningAction, "provisioning action" {
        /// Put an assigned number into service.
        Activate = "ACTIVATE",
        /// Take an unassigned number out of service.
        Deactivate = "DEACTIVATE",
        /// Register a number's new emergency location.
        UpdateLocation = "UPDATE_LOCATION",
    }
}

impl ProvisioningAction {
    /// The number's activation state while the provider works on it.
    pub fn pending_state(self) -> ActivationState {
        match self {
            ProvisioningAction::Activate => ActivationState::AssignmentPending,
            _ => ActivationState::UpdatePending,
        }
    }

    /// The number's activation state when the provider refused or failed.
    pub fn failed_state(self) -> ActivationState {
        match self {
            ProvisioningAction::Activate => ActivationState::AssignmentFailed,
            _ => ActivationState::UpdateFailed,
        }
    }
}

/// One provider call of an operation: its number and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStep {
    /// The number.
    pub phone_number: String,
    /// What the provider is asked.
    pub action: ProvisioningAction,
    /// The provider asked.
    pub provider_id: String,
    /// How far it has come.
    pub state: OperationState,
    /// Why it failed, or the last transient error while it is retried.
    pub reason: Option<String>,
    /// How many calls were made to the provider.
    pub attempts: i64,
}

/// A change, as its providers put it into effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Time-ordered id.
    pub id: String,
    /// The request that started it.
    pub kind: AuditAction,
    /// How far it has come.
    pub state: OperationState,
    /// The first failure, once failed.
    pub error: Option<String>,
    /// One step per number.
    pub steps: Vec<OperationStep>,
    /// When it was accepted.
    pub create_time: SystemTime,
    /// When it last changed.
    pub update_time: SystemTime,
    /// How far a bulk operation has come; none for other operations.
    #[serde(default)]
    pub progress: Option<BulkProgress>,
}

/// How far a bulk operation has come: its items, and how many of them ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkProgress {
    /// Items in the call.
    pub total: i64,
    /// Items that ran and succeeded.
    pub succeeded: i64,
    /// Items that ran and failed.
    pub failed: i64,
    /// Whether the call is a plan, changing nothing.
    pub validate_only: bool,
}

impl BulkProgress {
    /// Items that ran.
    pub fn done(&self) -> i64 {
        self.succeeded + self.failed
    }

    /// The state of a bulk operation so far, given whether a worker has started on it: it
    /// ends once every item ran, failed if one of them failed.
    pub fn state(&self, started: bool) -> OperationState {
        if self.done() < self.total {
            if started || self.done() > 0 {
                OperationState::Running
            } else {
                OperationState::Pending
            }
        } else if self.failed > 0 {
            OperationState::Failed
        } else {
            OperationState::Succeeded
        }
    }

    /// The error of a bulk operation that ended with failed items.
    pub fn error(&self) -> Option<String> {
        (self.done() == self.total && self.failed > 0).then(|| {
            format!(
                "{} of {} items failed; GetOperation with failed_only lists them",
                self.failed, self.total
            )
        })
    }
}

/// What one item of a bulk operation came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The item's position in the call, from 0.
    pub index: u32,
    /// The item's own request id, if the caller gave one.
    pub request_id: Option<String>,
    /// How it went.
    pub outcome: ItemOutcome,
}

/// How one item of a bulk operation went: as the single call would have answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemOutcome {
    /// The single call answered OK (a plan: would have).
    Succeeded {
        /// The operation the item started on its provider, if any.
        operation_id: Option<String>,
    },
    /// The single call refused, with this error.
    Failed(ItemFailure),
}

impl ItemOutcome {
    /// Whether the item failed.
    pub fn failed(&self) -> bool {
        matches!(self, ItemOutcome::Failed(_))
    }
}

/// The error of a failed item, as kept until its operation is purged: what the API turns
/// into the same status the single call would have answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    /// The reason, UPPER_SNAKE (which fixes the status code).
    pub reason: String,
    /// The message.
    pub message: String,
    /// The values the message names.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// The bad fields and what is wrong with each.
    #[serde(default)]
    pub violations: Vec<(String, String)>,
}

/// A provisioning job as the worker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The job's id, also the idempotency key sent to the provider.
    pub id: String,
    /// The tenant of the number.
    pub tenant_id: String,
    /// The operation the job belongs to.
    pub operation_id: String,
    /// The number.
    pub phone_number: String,
    /// What to ask.
    pub action: ProvisioningAction,
    /// Whom to ask.
    pub provider_id: String,
    /// The user concerned (empty when none).
    pub target_id: String,
    /// The emergency location to register.
    pub emergency_location_id: Option<String>,
    /// The location to restore if an update fails.
    pub previous_location_id: Option<String>,
    /// How far it has come.
    pub state: OperationState,
    /// Why it failed, or the last transient error while it is retried.
    pub reason: Option<String>,
    /// The provider's ticket of a pending call.
    pub ticket: Option<String>,
    /// Provider calls made so far.
    pub attempts: i64,
    /// Consecutive retryable failures.
    pub failures: i64,
    /// When the job was created.
    pub create_time: SystemTime,
}

impl Job {
    /// The job as its operation shows it.
    pub fn step(&self) -> OperationStep {
        OperationStep {
            phone_number: self.phone_number.clone(),
            action: self.action,
            provider_id: self.provider_id.clone(),
            state: self.state,
            reason: self.reason.clone(),
            attempts: self.attempts,
        }
    }
}

impl Operation {
    /// A new operation of the request `kind` whose jobs are `jobs`, in their state so far.
    pub fn new(id: String, kind: AuditAction, jobs: &[Job], now: SystemTime) -> Self {
        let mut operation = Self {
            id,
            kind,
            state: OperationState::Pending,
            error: None,
            steps: jobs.iter().map(Job::step).collect(),
            create_time: now,
            update_time: now,
            progress: None,
        };
        operation.settle(now);
        operation
    }

    /// Brings the operation's state in line with its steps', with the first failure as its
    /// error.
    pub fn settle(&mut self, now: SystemTime) {
        self.steps
            .sort_by(|a, b| a.phone_number.cmp(&b.phone_number));
        self.state = OperationState::of(self.steps.iter().map(|s| s.state));
        self.error = self
            .steps
            .iter()
            .find(|s| s.state == OperationState::Failed)
            .map(|s| {
                format!(
                    "{} {}: {}",
                    s.action,
                    s.phone_number,
                    s.reason.as_deref().unwrap_or("failed")
                )
            });
        self.update_time = now;
    }
}

/// Filters of an operation listing; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Only operations in this state.
    pub state: Option<OperationState>,
    /// Only operations of this kind.
    pub kind: Option<AuditAction>,
    /// Only operations with a step for this number (canonical).
    pub phone_number: Option<String>,
    /// Only operations created at or after this time.
    pub start_time: Option<SystemTime>,
    /// Only operations created before this time.
    pub end_time: Option<SystemTime>,
}

/// The exponential backoff of a job's retries: `base * 2^(failures - 1)`, capped at `max`,
/// with full jitter (a uniformly random delay up to that bound), so replicas retrying one
/// flaky provider spread out.
pub fn backoff(failures: i64, base: Duration, max: Duration, random: f64) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(30);
    let bound = base.saturating_mul(1 << exponent).min(max);
    bound
        .mul_f64(random.clamp(0.0, 1.0))
        .max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_end_when_every_job_ended() {
        use OperationState::*;
        assert_eq!(OperationState::of([Pending, Pending]), Pending);
        assert_eq!(OperationState::of([Succeeded, Pending]), Running);
        assert_eq!(OperationState::of([Running]), Running);
        assert_eq!(OperationState::of([Succeeded, Succeeded]), Succeeded);
        assert_eq!(OperationState::of([Failed, Running]), Running);
        assert_eq!(OperationState::of([Failed, Succeeded]), Failed);
        assert_eq!(OperationState::of([]), Succeeded);
    }

    #[test]
    fn a_bulk_operation_ends_when_every_item_ran() {
        use OperationState::*;
        let progress = |succeeded, failed| BulkProgress {
            total: 3,
            succeeded,
            failed,
            validate_only: false,
        };
        assert_eq!(progress(0, 0).state(false), Pending);
        assert_eq!(progress(0, 0).state(true), Running);
        assert_eq!(progress(0, 1).state(false), Running);
        assert_eq!(progress(3, 0).state(true), Succeeded);
        assert_eq!(progress(2, 1).state(true), Failed);
        assert_eq!(progress(2, 0).error(), None);
        assert_eq!(
            progress(2, 1).error().as_deref(),
            Some("1 of 3 items failed; GetOperation with failed_only lists them")
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(20, base, max, 1.0), max);
        assert_eq!(backoff(3, base, max, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(10));
    }
}
