//! Operations that can be managed: listed, a failed one retried, one no provider has taken up
//! yet cancelled. A number stuck in a pending or failed state is never a dead end.

use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    ActivationState, AuditAction, Identity, Operation, OperationFilter, OperationState,
    PhoneNumber, ProvisioningAction, TenantId, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::store::{Changes, Tx};

impl Service {
    /// Lists the tenant's operations matching `filter`, newest first.
    pub async fn list_operations(
        &self,
        caller: &Caller,
        filter: &OperationFilter,
        page: &PageRequest,
    ) -> Result<Page<Operation>> {
        let mut tx = self.read().await?;
        let operations = tx
            .list_operations(
                &caller.tenant_id,
                filter,
                page.after.as_deref(),
                page.size + 1,
            )
            .await?;
        Ok(Page::from_overfetch(operations, page.size, |o| {
            o.id.clone()
        }))
    }

    /// Re-drives the failed steps of a FAILED operation: each is tried again, its consecutive
    /// failures forgotten, and its number waits for the provider again.
    pub async fn retry_operation(
        &self,
        caller: &Caller,
        id: &str,
        options: &RequestOptions,
    ) -> Result<Operation> {
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let now = self.now();
        let mut tx = match self.begin(&actor, "RetryOperation", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let operation = find_operation(&mut tx, tenant, id).await?;
        if operation.state != OperationState::Failed || is_bulk(&operation) {
            return Err(not_retryable(
                id,
                format!(
                    "operation {id} is {}; only a FAILED operation of single changes is retried",
                    operation.state
                ),
            ));
        }
        let failed: Vec<String> = operation
            .steps
            .iter()
            .filter(|s| s.state == OperationState::Failed)
            .map(|s| s.phone_number.clone())
            .collect();
        let numbers = tx.lock_numbers(tenant, &failed).await?;
        for step in operation
            .steps
            .iter()
            .filter(|s| s.state == OperationState::Failed)
        {
            let as_left = numbers.iter().find(|n| {
                n.number.canonical() == step.phone_number
                    && n.operation_id.as_deref() == Some(id)
                    && n.activation_state == step.action.failed_state()
            });
            if as_left.is_none() {
                return Err(not_retryable(
                    id,
                    format!(
                        "{} changed since operation {id} failed (or left the inventory); \
                         make the change again instead",
                        step.phone_number
                    ),
                ));
            }
        }
        let jobs = tx.retry_jobs(tenant, id, now).await?;
        let mut changes = Changes::default();
        for job in &jobs {
            let Some(number) = numbers
                .iter()
                .find(|n| n.number.canonical() == job.phone_number)
            else {
                continue;
            };
            let mut retried = PhoneNumber {
                activation_state: job.action.pending_state(),
                ..number.clone()
            };
            if job.action == ProvisioningAction::UpdateLocation {
                // The failure put the previous location back; the retry asks for the new one.
                retried.emergency_location_id = job.emergency_location_id.clone();
            }
            let retried = retried.changed(now);
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::RetryOperation,
                Some(job.phone_number.clone()),
                retried.assignment.as_ref().map(|a| a.target_id.clone()),
                Some(number_snapshot(number)),
                Some(number_snapshot(&retried)),
            ));
            changes.numbers.push(retried);
        }
        let mut retried = find_operation(&mut tx, tenant, id).await?;
        retried.settle(now);
        tx.update_operation(tenant, &retried).await?;
        tracing::info!(%tenant, operation = %id, steps = jobs.len(), "operation retried");
        self.finish(tx, &actor, options, changes, retried).await
    }

    /// Cancels an operation that no provider has taken up (each unfinished step is waiting for
    /// its first call, or being retried after transient failures, and no worker is calling the
    /// provider now): its steps fail as cancelled, and each number returns to where it was
    /// before the change (an assignment's number free again, an update's location back).
    pub async fn cancel_operation(
        &self,
        caller: &Caller,
        id: &str,
        options: &RequestOptions,
    ) -> Result<Operation> {
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let now = self.now();
        let mut tx = match self.begin(&actor, "CancelOperation", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let operation = find_operation(&mut tx, tenant, id).await?;
        if operation.state.is_final() || is_bulk(&operation) {
            return Err(not_cancellable(
                id,
                format!(
                    "operation {id} is {}; only an operation of single changes that has not \
                     ended is cancelled",
                    operation.state
                ),
            ));
        }
        // In the order the worker records an outcome (jobs, users, numbers, the operation), so
        // the two wait for each other rather than deadlock.
        let reason = format!("cancelled by {}", actor.name);
        let jobs = tx
            .cancel_jobs(tenant, id, &reason, now)
            .await?
            .ok_or_else(|| {
                not_cancellable(
                    id,
                    format!(
                        "a provider is working on operation {id} (or a worker is calling it \
                         now); wait for it to end, then retry or change the number again"
                    ),
                )
            })?;
        let mut changes = Changes::default();
        for job in &jobs {
            let holder = match job.action {
                ProvisioningAction::Activate if !job.target_id.is_empty() => {
                    tx.lock_user(tenant, &Identity::Id(job.target_id.clone()))
                        .await?
                }
                _ => None,
            };
            let Some(number) = tx
                .lock_numbers(tenant, std::slice::from_ref(&job.phone_number))
                .await?
                .pop()
                .filter(|n| n.operation_id.as_deref() == Some(id))
            else {
                continue;
            };
            let mut back = PhoneNumber {
                activation_state: ActivationState::Activated,
                ..number.clone()
            };
            match job.action {
                ProvisioningAction::Activate => back.assignment = None,
                ProvisioningAction::UpdateLocation => {
                    back.emergency_location_id = job.previous_location_id.clone();
                }
                ProvisioningAction::Deactivate => {}
            }
            let back = back.changed(now);
            if let Some(holder) = holder {
                let held: Vec<PhoneNumber> = holder
                    .numbers
                    .into_iter()
                    .filter(|n| n.number != back.number)
                    .collect();
                let (user, changed) = holder.user.holding(&held, true, now);
                if changed {
                    changes.users.push(user);
                }
            }
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::CancelOperation,
                Some(job.phone_number.clone()),
                number.assignment.as_ref().map(|a| a.target_id.clone()),
                Some(number_snapshot(&number)),
                Some(number_snapshot(&back)),
            ));
            changes.numbers.push(back);
        }
        let mut cancelled = tx
            .lock_operation(tenant, id)
            .await?
            .ok_or_else(|| operation_not_found(id))?;
        cancelled.settle(now);
        tx.update_operation(tenant, &cancelled).await?;
        tracing::info!(%tenant, operation = %id, steps = jobs.len(), "operation cancelled");
        self.finish(tx, &actor, options, changes, cancelled).await
    }
}

/// The operation, which must be the tenant's.
async fn find_operation(tx: &mut Tx, tenant: &TenantId, id: &str) -> Result<Operation> {
    let mut operation = tx
        .get_operation(tenant, id)
        .await?
        .ok_or_else(|| operation_not_found(id))?;
    operation.progress = tx.bulk_progress(tenant, id).await?;
    Ok(operation)
}

/// Whether the operation is a bulk call's (whose items are not provisioning steps).
fn is_bulk(operation: &Operation) -> bool {
    operation.progress.is_some()
}

/// The error for an operation id that names nothing in the caller's tenant.
pub(crate) fn operation_not_found(id: &str) -> Error {
    Error::new(
        Reason::OperationNotFound,
        format!("no operation {id} in this tenant"),
    )
    .with("operationId", id)
}

fn not_retryable(id: &str, message: String) -> Error {
    Error::new(Reason::OperationNotRetryable, message).with("operationId", id)
}

fn not_cancellable(id: &str, message: String) -> Error {
    Error::new(Reason::OperationNotCancellable, message).with("operationId", id)
}
