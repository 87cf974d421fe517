//! Moving a number from its holder to another in one transaction (a leaver's number to a
//! successor): the number is never free in between.

use serde::{Deserialize, Serialize};

use super::assignment::{Lock, Plan, registered_location, unassigned};
use super::directory::user_not_found;
use super::inventory::number_not_found;
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AssignmentCategory, AuditAction, E164, Identity, Notification, Operation, PhoneNumber,
    ProvisioningAction, TenantId, User, check_held_by, check_not_pending, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::store::{Changes, Holder, Tx};

/// What TransferPhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// The number.
    pub number: E164,
    /// Its holder now.
    pub from: Identity,
    /// Its holder to be.
    pub to: Identity,
    /// The number's role for the new holder; `None` keeps the one it has.
    pub category: Option<AssignmentCategory>,
    /// Whether to email both users; `None` for the tenant's defaults.
    pub notify_user: Option<bool>,
}

/// The answer to a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    /// The number, held by its new holder.
    pub number: PhoneNumber,
    /// The previous holder.
    pub previous_user: User,
    /// The new holder.
    pub user: User,
    /// The operation putting it into effect; none when the request only validated.
    pub operation: Option<Operation>,
}

/// A transfer, checked: the previous holder and the assignment to the new one.
struct TransferPlan {
    from: Holder,
    /// The number as it is, held by `from`.
    number: PhoneNumber,
    /// The assignment to the new holder; its number is `number` as if it were free.
    to: Plan,
    category: AssignmentCategory,
}

impl Service {
    /// Moves a number from its holder to another user or resource account, with its category
    /// and emergency location, in one transaction.
    pub async fn transfer(
        &self,
        caller: &Caller,
        request: &TransferRequest,
        options: &RequestOptions,
    ) -> Result<Transferred> {
        const METHOD: &str = "TransferPhoneNumber";
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        // As for an assignment: a provider in another process is asked first, outside any lock.
        if self.providers.has_remote() {
            let checked = async {
                let mut read = self.read().await?;
                let plan = self
                    .plan_transfer(&mut read, tenant, request, Lock::No)
                    .await?;
                self.check_provider(tenant, &plan.to, plan.category).await
            };
            if let Err(refused) = checked.await {
                return self.replay_or(&actor, METHOD, options, refused).await;
            }
        }

        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let plan = self
            .plan_transfer(&mut tx, tenant, request, Lock::Yes)
            .await?;
        if !self.providers.has_remote() {
            self.check_provider(tenant, &plan.to, plan.category).await?;
        }
        let location = registered_location(&mut tx, tenant, &plan.number, None).await?;
        let now = self.now();
        let mut changes = Changes::default();
        // One job: the provider puts the number into service for its new holder, which
        // replaces the old one. With a provider that takes its time the number waits,
        // ASSIGNMENT_PENDING, with its new holder: never free, never with both.
        let mut operation = self.open_operation(options, AuditAction::TransferPhoneNumber);
        let mut moved = plan.to.assigned(plan.category);
        moved.activation_state = self
            .provision(
                operation.as_mut(),
                tenant,
                &moved,
                ProvisioningAction::Activate,
                &plan.to.user.id,
                location.as_ref(),
                None,
            )
            .await?;
        moved.operation_id = operation.as_ref().map(|o| o.id.clone());
        let moved = moved.changed(now);

        let left: Vec<PhoneNumber> = plan
            .from
            .numbers
            .iter()
            .filter(|n| n.number != moved.number)
            .cloned()
            .collect();
        let (previous_user, previous_changed) = plan.from.user.holding(&left, true, now);
        let mut held = plan.to.held.clone();
        held.push(moved.clone());
        let (user, user_changed) = plan.to.user.holding(&held, true, now);
        changes
            .users
            .extend(previous_changed.then(|| previous_user.clone()));
        changes.users.extend(user_changed.then(|| user.clone()));
        changes.numbers.push(moved.clone());
        // One event for each holder, so each user's trail shows the move.
        for holder in [&previous_user.id, &user.id] {
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::TransferPhoneNumber,
                Some(moved.number.canonical()),
                Some(holder.clone()),
                Some(number_snapshot(&plan.number)),
                Some(number_snapshot(&moved)),
            ));
        }
        let defaults = self
            .defaults(&mut tx, tenant, request.notify_user.is_none())
            .await?;
        if request
            .notify_user
            .unwrap_or(defaults.unassignment_email_enabled)
        {
            changes
                .notifications
                .extend(Notification::removed(&previous_user, &moved.number, now));
        }
        if request
            .notify_user
            .unwrap_or(defaults.assignment_email_enabled)
        {
            changes
                .notifications
                .extend(Notification::assigned(&user, &moved.number, now));
        }
        let operation = self.close_operation(operation, &actor, options, &mut changes);
        tracing::info!(%tenant, number = %moved.number, from = %previous_user.user_principal_name, to = %user.user_principal_name, "number transferred");
        self.finish(
            tx,
            &actor,
            options,
            changes,
            Transferred {
                number: moved,
                previous_user,
                user,
                operation,
            },
        )
        .await
    }

    /// Loads both users (locked in id order when `lock`, so two transfers between the same
    /// users in opposite directions wait for each other rather than deadlock) and the number
    /// with those on its base, and checks the rules.
    async fn plan_transfer(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        request: &TransferRequest,
        lock: Lock,
    ) -> Result<TransferPlan> {
        let from = find(tx, tenant, &request.from).await?;
        let to = find(tx, tenant, &request.to).await?;
        let (from, to) = match lock {
            Lock::No => (
                holder_unlocked(tx, tenant, from).await?,
                holder_unlocked(tx, tenant, to).await?,
            ),
            Lock::Yes if from.id <= to.id => {
                let from = lock_holder(tx, tenant, &from).await?;
                (from, lock_holder(tx, tenant, &to).await?)
            }
            Lock::Yes => {
                let to = lock_holder(tx, tenant, &to).await?;
                (lock_holder(tx, tenant, &from).await?, to)
            }
        };
        let near = match lock {
            Lock::Yes => {
                tx.lock_numbers_on_base(tenant, request.number.base(), None)
                    .await?
            }
            Lock::No => tx
                .get_number(tenant, &request.number.canonical())
                .await?
                .into_iter()
                .collect(),
        };
        let number = near
            .iter()
            .find(|n| n.number == request.number)
            .cloned()
            .ok_or_else(|| number_not_found(&request.number))?;
        check_held_by(&from.user, &number)?;
        if from.user.id == to.user.id {
            return Err(Error::new(
                Reason::NumberAlreadyAssigned,
                format!(
                    "{} is already assigned to {}",
                    number.number, to.user.user_principal_name
                ),
            )
            .with("phoneNumber", &number.number)
            .with("assignedTo", &to.user.user_principal_name));
        }
        check_not_pending(&number)?;
        let category = request
            .category
            .or_else(|| number.assignment.as_ref().map(|a| a.category))
            .unwrap_or(AssignmentCategory::Primary);
        // The new holder is checked as an assignment of the number, free; its block is the one
        // it has (a block cannot start while a number is held).
        let free = unassigned(&number, number.block);
        let near: Vec<PhoneNumber> = near
            .into_iter()
            .map(|n| {
                if n.number == number.number {
                    free.clone()
                } else {
                    n
                }
            })
            .collect();
        let to = Plan {
            user: to.user,
            held: to.numbers,
            number: free,
            created: false,
            location: None,
            unknown_location: None,
        };
        self.check_plan(&to, &near, None, category, None)?;
        Ok(TransferPlan {
            from,
            number,
            to,
            category,
        })
    }
}

/// The user an identity names.
async fn find(tx: &mut Tx, tenant: &TenantId, identity: &Identity) -> Result<User> {
    tx.find_user(tenant, identity)
        .await?
        .ok_or_else(|| user_not_found(identity))
}

/// The user, locked, with the numbers it holds.
async fn lock_holder(tx: &mut Tx, tenant: &TenantId, user: &User) -> Result<Holder> {
    let identity = Identity::Id(user.id.clone());
    tx.lock_user(tenant, &identity)
        .await?
        .ok_or_else(|| user_not_found(&identity))
}

/// The user with the numbers it holds, read without a lock.
async fn holder_unlocked(tx: &mut Tx, tenant: &TenantId, user: User) -> Result<Holder> {
    let numbers = tx.get_numbers(tenant, &user.phone_numbers).await?;
    Ok(Holder { user, numbers })
}
