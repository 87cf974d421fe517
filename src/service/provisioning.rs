//! Putting changes into effect on providers, now or later.
//!
//! Every mutation that needs a provider opens an [`Operation`] and records it once, with one
//! provisioning job per number, in its own transaction. A synchronous provider is called at once and its job
//! recorded as done. An asynchronous provider (one in another process, which may be slow or
//! down) is never called inside a request: its job waits, the number shows a pending activation
//! state, and the worker ([`Service::run_provisioning`]) drives the job to an end. The worker
//! claims due jobs with leases, calls the provider with the job's id as the idempotency key,
//! polls pending changes, retries transient failures with bounded exponential backoff and
//! jitter, and writes the outcome, the number's state, the user's enterprise voice flag, the
//! operation's state and an audit event in one transaction, while it still holds the lease.

use std::future::Future;
use std::time::{Duration, SystemTime};

use numbers_provider::{
    ActivationMode, EmergencyAddress, ErrorKind, Progress, Provider, ProviderError, Provisioning,
};

use super::{Actor, RequestOptions, Service};
use crate::domain::{
    ActivationState, AuditAction, EmergencyLocation, Identity, Job, Operation, OperationState,
    PhoneNumber, ProvisioningAction, TenantId, backoff, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::routing::provider_error;
use crate::store::{Changes, JobOutcome, NewOperation, Queue};

/// How the provisioning worker paces itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSettings {
    /// How long a claimed job is the worker's; another replica takes it over after that.
    pub lease: Duration,
    /// How often to look for due jobs when nothing wakes the worker.
    pub idle_poll: Duration,
    /// Most jobs claimed at once.
    pub batch: usize,
    /// Items of a bulk operation run side by side.
    pub bulk_concurrency: usize,
    /// The first retry delay after a transient failure.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// Consecutive transient failures after which a job fails for good.
    pub max_failures: i64,
    /// How long a change may stay pending at a provider before it fails for good.
    pub max_pending: Duration,
    /// How long a request id is remembered: a retry within it gets the first answer; after it
    /// the request runs again and the id may be used for another request.
    pub request_id_retention: Duration,
    /// How long a finished operation (and its jobs) is kept after its last change; GetOperation
    /// answers NOT_FOUND after it.
    pub operation_retention: Duration,
    /// How long an email that is done with (sent, failed or skipped) is kept after it was
    /// queued.
    pub notification_retention: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            batch: 16,
            bulk_concurrency: 16,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_failures: 10,
            max_pending: Duration::from_secs(24 * 3600),
            request_id_retention: Duration::from_secs(24 * 3600),
            operation_retention: Duration::from_secs(30 * 24 * 3600),
            notification_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The slowest and the quickest a provider may ask to be polled.
const POLL_BOUNDS: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(60));

/// The operation a mutation opens, while its jobs are gathered.
#[derive(Debug)]
pub(super) struct OperationDraft {
    /// The operation's id, which its numbers and jobs carry.
    pub(super) id: String,
    kind: AuditAction,
    jobs: Vec<Job>,
}

impl Service {
    /// Opens the operation of a mutation; none when the request only validates.
    pub(super) fn open_operation(
        &self,
        options: &RequestOptions,
        kind: AuditAction,
    ) -> Option<OperationDraft> {
        (!options.validate_only).then(|| OperationDraft {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            jobs: Vec::new(),
        })
    }

    /// Asks the number's provider for `action` within `operation`, now if it is synchronous or
    /// later through the worker, and answers the number's activation state meanwhile.
    /// Without an operation (validate_only) the provider is not called.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn provision(
        &self,
        operation: Option<&mut OperationDraft>,
        tenant: &TenantId,
        number: &PhoneNumber,
        action: ProvisioningAction,
        target_id: &str,
        location: Option<&EmergencyLocation>,
        previous_location_id: Option<String>,
    ) -> Result<ActivationState> {
        let Some(operation) = operation else {
            return Ok(ActivationState::Activated);
        };
        let provider = self.providers.for_number(number)?;
        let mut job = Job {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.to_owned(),
            operation_id: operation.id.clone(),
            phone_number: number.number.canonical(),
            action,
            provider_id: provider.descriptor().id.clone(),
            target_id: target_id.to_owned(),
            emergency_location_id: location.map(|l| l.id.clone()),
            previous_location_id,
            state: OperationState::Pending,
            reason: None,
            ticket: None,
            attempts: 0,
            failures: 0,
            create_time: self.now(),
        };
        let state = if provider.descriptor().activation == ActivationMode::Asynchronous {
            action.pending_state()
        } else {
            let progress = call(provider, &job, &request_of(&job, location))
                .await
                .map_err(provider_error)?;
            job.attempts = 1;
            match progress {
                Progress::Done => {
                    job.state = OperationState::Succeeded;
                    ActivationState::Activated
                }
                Progress::Pending { ticket, .. } => {
                    job.ticket = Some(ticket);
                    job.state = OperationState::Running;
                    action.pending_state()
                }
            }
        };
        operation.jobs.push(job);
        Ok(state)
    }

    /// Records the operation with its jobs, in its state so far, among a mutation's changes,
    /// and answers it.
    pub(super) fn close_operation(
        &self,
        operation: Option<OperationDraft>,
        actor: &Actor,
        options: &RequestOptions,
        changes: &mut Changes,
    ) -> Option<Operation> {
        let draft = operation?;
        let operation = Operation::new(draft.id, draft.kind, &draft.jobs, self.now());
        changes.operations.push(NewOperation {
            operation: operation.clone(),
            jobs: draft.jobs,
            request_id: options.request_id.clone(),
            actor: actor.name.clone(),
        });
        Some(operation)
    }

    /// Runs the provisioning worker as `owner` until `shutdown` completes. Jobs in hand are
    /// finished first; jobs claimed by a worker that died are taken over when its lease ends.
    /// Between batches it waits until work is written (by any replica) or its poll interval
    /// passes (retries and leases of dead workers fall due without anyone writing).
    pub async fn run_provisioning(
        &self,
        owner: &str,
        settings: &WorkerSettings,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let handled = match self.provision_due(owner, settings).await {
                Ok(handled) => handled,
                Err(error) => {
                    tracing::warn!(%error, "provisioning worker could not claim jobs");
                    0
                }
            };
            if handled > 0 {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.store.work_written(Queue::Jobs) => {}
                () = tokio::time::sleep(settings.idle_poll) => {}
            }
        }
        tracing::info!(%owner, "provisioning worker stopped");
    }

    /// Claims the due jobs (up to a batch) and works on them; answers how many.
    pub async fn provision_due(&self, owner: &str, settings: &WorkerSettings) -> Result<usize> {
        let jobs = {
            let mut tx = self.store.write().await?;
            let jobs = tx
                .claim_jobs(owner, self.now(), settings.lease, settings.batch)
                .await?;
            tx.commit().await?;
            jobs
        };
        let count = jobs.len();
        let work = jobs.into_iter().map(|job| async move {
            let id = job.id.clone();
            if let Err(error) = self.work_on(owner, settings, job).await {
                tracing::warn!(job = %id, %error, "provisioning job not recorded; it will be retried");
            }
        });
        futures::future::join_all(work).await;
        Ok(count)
    }

    /// Calls the provider for one claimed job and records the outcome.
    async fn work_on(&self, owner: &str, settings: &WorkerSettings, job: Job) -> Result<()> {
        let provider = self.providers.by_id(&job.provider_id).ok_or_else(|| {
            Error::new(
                Reason::ProviderUnavailable,
                format!("provider {} is not configured", job.provider_id),
            )
        })?;
        let location = match &job.emergency_location_id {
            Some(id) => self.read().await?.get_location(&job.tenant_id, id).await?,
            None => None,
        };
        let result = match &job.ticket {
            Some(ticket) => provider.poll(ticket).await,
            None => call(provider, &job, &request_of(&job, location.as_ref())).await,
        };
        let outcome = outcome_of(&job, result, settings, self.now());
        match &outcome {
            JobOutcome::Succeeded => {
                tracing::info!(job = %job.id, number = %job.phone_number, action = %job.action, "provider confirmed")
            }
            JobOutcome::Failed { reason } => {
                tracing::warn!(job = %job.id, number = %job.phone_number, action = %job.action, %reason, "provider failed")
            }
            JobOutcome::Later {
                reason: Some(reason),
                ..
            } => {
                tracing::info!(job = %job.id, number = %job.phone_number, %reason, "provider call will be retried")
            }
            JobOutcome::Later { .. } => {}
        }
        self.record(owner, &job, &outcome).await
    }

    /// Writes a job's outcome and, once the job has ended, its effects, in one transaction.
    async fn record(&self, owner: &str, job: &Job, outcome: &JobOutcome) -> Result<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx.finish_job(job, owner, outcome, now).await? {
            tracing::warn!(job = %job.id, %owner, "lease lost before the outcome was recorded; another worker has the job");
            return Ok(());
        }
        let tenant = job.tenant_id.as_str();
        let succeeded = match outcome {
            JobOutcome::Later { .. } => {
                tx.commit().await?;
                return Ok(());
            }
            JobOutcome::Succeeded => true,
            JobOutcome::Failed { .. } => false,
        };
        // Lock in the order requests do (user, then number, then operation), so a request
        // changing the same user's numbers and this outcome wait for each other rather than
        // deadlock.
        let holder = if job.target_id.is_empty() {
            None
        } else {
            tx.lock_user(tenant, &Identity::Id(job.target_id.clone()))
                .await?
        };
        let mut changes = Changes::default();
        let mut settled_number = None;
        if let Some(number) = tx
            .lock_numbers(tenant, std::slice::from_ref(&job.phone_number))
            .await?
            .pop()
            && number.operation_id.as_deref() == Some(job.operation_id.as_str())
        {
            let mut settled = number.clone();
            if succeeded {
                settled.activation_state = ActivationState::Activated;
            } else {
                settled.activation_state = job.action.failed_state();
                if job.action == ProvisioningAction::UpdateLocation {
                    settled.emergency_location_id = job.previous_location_id.clone();
                }
            }
            let settled = settled.changed(now);
            let actor = Actor {
                tenant_id: tenant.to_owned(),
                name: format!("provider:{}", job.provider_id),
            };
            let action = if succeeded {
                AuditAction::ProvisioningSucceeded
            } else {
                AuditAction::ProvisioningFailed
            };
            changes.audit.push(self.audit(
                &actor,
                &RequestOptions::default(),
                action,
                Some(job.phone_number.clone()),
                Some(job.target_id.clone()).filter(|id| !id.is_empty()),
                Some(number_snapshot(&number)),
                Some(number_snapshot(&settled)),
            ));
            changes.numbers.push(settled.clone());
            settled_number = Some(settled);
        }
        if let Some(holder) = holder {
            let mut held: Vec<PhoneNumber> = holder
                .numbers
                .into_iter()
                .filter(|n| settled_number.as_ref().is_none_or(|s| s.number != n.number))
                .collect();
            held.extend(settled_number);
            let (user, user_changed) = holder.user.holding(&held, true, now);
            if user_changed {
                changes.users.push(user);
            }
        }
        if let Some(mut operation) = tx.lock_operation(tenant, &job.operation_id).await? {
            operation.settle(now);
            tx.update_operation(tenant, &operation).await?;
        }
        // The changes last: their events take their stream positions after every row lock
        // (see `store::Transaction::apply`).
        tx.apply(tenant, &changes).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The provider call a job stands for.
async fn call(
    provider: &dyn Provider,
    job: &Job,
    change: &Provisioning,
) -> std::result::Result<Progress, ProviderError> {
    match job.action {
        ProvisioningAction::Activate => provider.activate(change).await,
        ProvisioningAction::Deactivate => provider.deactivate(change).await,
        ProvisioningAction::UpdateLocation => provider.update_location(change).await,
    }
}

/// The request a provider gets for a job: the job's id is its idempotency key, so a call
/// repeated after a crash or a timeout is the same request.
fn request_of(job: &Job, location: Option<&EmergencyLocation>) -> Provisioning {
    Provisioning {
        tenant_id: job.tenant_id.clone(),
        phone_number: job.phone_number.clone(),
        target_id: job.target_id.clone(),
        emergency_address: location.map(|l| EmergencyAddress {
            location_id: l.id.clone(),
            country: l.country.as_str().to_owned(),
            formatted: l.formatted(),
        }),
        idempotency_key: job.id.clone(),
    }
}

/// What a provider's answer means for a job.
fn outcome_of(
    job: &Job,
    result: std::result::Result<Progress, ProviderError>,
    settings: &WorkerSettings,
    now: SystemTime,
) -> JobOutcome {
    let age = now.duration_since(job.create_time).unwrap_or_default();
    match result {
        Ok(Progress::Done) => JobOutcome::Succeeded,
        Ok(Progress::Pending { .. }) if age > settings.max_pending => JobOutcome::Failed {
            reason: format!(
                "the provider had not finished after {}",
                humantime::format_duration(settings.max_pending)
            ),
        },
        Ok(Progress::Pending {
            ticket,
            retry_after,
        }) => JobOutcome::Later {
            at: now + retry_after.clamp(POLL_BOUNDS.0, POLL_BOUNDS.1),
            ticket: Some(ticket),
            failures: 0,
            reason: None,
        },
        // The provider forgot a change it had accepted (it lost its state): ask again, with the
        // same idempotency key.
        Err(error) if error.kind == ErrorKind::NotFound && job.ticket.is_some() => {
            JobOutcome::Later {
                at: now,
                ticket: None,
                failures: job.failures,
                reason: Some(format!("{}; asking again", error.message)),
            }
        }
        Err(error) if error.is_retryable() => {
            let failures = job.failures + 1;
            if failures >= settings.max_failures {
                JobOutcome::Failed {
                    reason: format!("{} (after {failures} attempts)", describe(&error)),
                }
            } else {
                let retry_after = match error.kind {
                    ErrorKind::Unavailable {
                        retry_after: Some(hint),
                    } => hint.min(settings.backoff_max),
                    _ => backoff(
                        failures,
                        settings.backoff_base,
                        settings.backoff_max,
                        rand::random(),
                    ),
                };
                JobOutcome::Later {
                    at: now + retry_after,
                    ticket: job.ticket.clone(),
                    failures,
                    reason: Some(error.message),
                }
            }
        }
        Err(error) => JobOutcome::Failed {
            reason: describe(&error),
        },
    }
}

/// A provider's error as the operation reports it: a refusal leads with the provider's reason
/// code, as the synchronous path reports it in `ErrorInfo`.
fn describe(error: &ProviderError) -> String {
    match &error.kind {
        ErrorKind::Refused { reason } => format!("{reason}: {}", error.message),
        _ => error.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ticket: Option<&str>, failures: i64, age: Duration) -> Job {
        Job {
            id: "j".into(),
            tenant_id: "t".into(),
            operation_id: "o".into(),
            phone_number: "+14255550101".into(),
            action: ProvisioningAction::Activate,
            provider_id: "p".into(),
            target_id: "u".into(),
            emergency_location_id: None,
            previous_location_id: None,
            state: OperationState::Running,
            reason: None,
            ticket: ticket.map(str::to_owned),
            attempts: 0,
            failures,
            create_time: SystemTime::now() - age,
        }
    }

    fn error(kind: ErrorKind) -> ProviderError {
        ProviderError::new("p", kind, "boom")
    }

    #[test]
    fn transient_failures_back_off_then_fail() {
        let settings = WorkerSettings::default();
        let now = SystemTime::now();
        let unavailable = || Err(error(ErrorKind::Unavailable { retry_after: None }));
        match outcome_of(&job(None, 0, Duration::ZERO), unavailable(), &settings, now) {
            JobOutcome::Later { at, failures, .. } => {
                assert_eq!(failures, 1);
                assert!(at > now && at <= now + settings.backoff_base);
            }
            other => panic!("{other:?}"),
        }
        let last = job(None, settings.max_failures - 1, Duration::ZERO);
        assert!(matches!(
            outcome_of(&last, unavailable(), &settings, now),
            JobOutcome::Failed { .. }
        ));
    }

    #[test]
    fn refusals_fail_at_once() {
        let refused = Err(error(ErrorKind::Refused {
            reason: "NUMBER_NOT_PROVISIONED".into(),
        }));
        assert_eq!(
            outcome_of(
                &job(None, 0, Duration::ZERO),
                refused,
                &WorkerSettings::default(),
                SystemTime::now()
            ),
            JobOutcome::Failed {
                reason: "NUMBER_NOT_PROVISIONED: boom".into()
            }
        );
    }

    #[test]
    fn pending_changes_are_polled_until_they_take_too_long() {
        let settings = WorkerSettings::default();
        let now = SystemTime::now();
        let pending = || {
            Ok(Progress::Pending {
                ticket: "t1".into(),
                retry_after: Duration::from_secs(5),
            })
        };
        assert_eq!(
            outcome_of(&job(None, 0, Duration::ZERO), pending(), &settings, now),
            JobOutcome::Later {
                at: now + Duration::from_secs(5),
                ticket: Some("t1".into()),
                failures: 0,
                reason: None
            }
        );
        let old = job(Some("t1"), 0, settings.max_pending + Duration::from_secs(1));
        assert!(matches!(
            outcome_of(&old, pending(), &settings, now),
            JobOutcome::Failed { .. }
        ));
    }

    #[test]
    fn a_forgotten_ticket_is_asked_for_again() {
        let forgotten = Err(error(ErrorKind::NotFound));
        match outcome_of(
            &job(Some("t1"), 0, Duration::ZERO),
            forgotten,
            &WorkerSettings::default(),
            SystemTime::now(),
        ) {
            JobOutcome::Later { ticket: None, .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
