//! Assigning, changing and removing numbers: the three operations of the seeds.
//!
//! Each is one write transaction: claim the request id, lock the user and the numbers that
//! change, check every rule against what is there, provision on the provider, and write the
//! change with its operation, audit events and notifications in one go at the end.
//!
//! A provider's own rules are asked inside the transaction when the provider runs in this
//! process, where asking costs nothing. A provider in another process may be slow, so when the
//! number may be one of its numbers, the rules (the provider's included) are first checked on
//! a plain read, outside any lock, and the transaction checks the service's rules again.

use std::collections::HashMap;
use std::time::SystemTime;

use numbers_provider::AssignmentCheck;
use serde::{Deserialize, Serialize};

use super::directory::user_not_found;
use super::inventory::{number_in_another_tenant, number_not_found};
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    ActivationState, Assignment, AssignmentCandidate, AssignmentCategory, AuditAction, Block, E164,
    EmergencyLocation, Identity, LocationChoice, Notification, NumberType, Operation, PhoneNumber,
    ProvisioningAction, TenantConfiguration, TenantId, User, block_for, check_assignment,
    check_held_by, check_not_pending, check_number_type, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::routing::provider_error;
use crate::store::{Changes, Holder, Tx};

/// What AssignPhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignRequest {
    /// The target.
    pub identity: Identity,
    /// The number.
    pub number: E164,
    /// The type the caller says the number has.
    pub number_type: Option<NumberType>,
    /// The emergency location to register.
    pub emergency_location_id: Option<String>,
    /// The number's role for the target.
    pub category: AssignmentCategory,
    /// Whether to email the user; `None` for the tenant's default.
    pub notify_user: Option<bool>,
}

/// What ChangePhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// The target.
    pub identity: Identity,
    /// The new number.
    pub number: E164,
    /// The type the caller says the new number has.
    pub number_type: Option<NumberType>,
    /// The emergency location to register with the new number.
    pub emergency_location_id: Option<String>,
    /// Whether to email the user; `None` for the tenant's default.
    pub notify_user: Option<bool>,
}

/// What RemovePhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// The target.
    pub identity: Identity,
    /// The number to remove, or `None` for all of them.
    pub number: Option<E164>,
    /// The type the caller says the number has.
    pub number_type: Option<NumberType>,
    /// Days to block the removed numbers for (0: no block); `None`, with `block_forever`
    /// false, for the tenant's default.
    pub block_days: Option<i32>,
    /// Whether to block them until the block is lifted.
    pub block_forever: bool,
    /// Whether to email the user; `None` for the tenant's default.
    pub notify_user: Option<bool>,
}

/// The answer to an assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    /// The number, assigned.
    pub number: PhoneNumber,
    /// The user.
    pub user: User,
    /// The operation putting it into effect; none when the request only validated.
    pub operation: Option<Operation>,
}

/// The answer to a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// The previous primary number, now unassigned.
    pub previous: PhoneNumber,
    /// The new primary number.
    pub number: PhoneNumber,
    /// The user.
    pub user: User,
    /// The operation putting it into effect; none when the request only validated.
    pub operation: Option<Operation>,
}

/// The answer to a removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The numbers removed.
    pub numbers: Vec<PhoneNumber>,
    /// The user.
    pub user: User,
    /// The operation putting it into effect; none when nothing was removed or the request
    /// only validated.
    pub operation: Option<Operation>,
}

/// Whether loading takes row locks (in the write transaction) or not (in the first look).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lock {
    No,
    Yes,
}

/// What a batch of bulk assignments loaded and locked for one of its items.
#[derive(Clone, Copy)]
pub(super) struct Locked<'a> {
    /// The user the item names, with the numbers it holds; none when the tenant has no such
    /// user.
    pub holder: Option<&'a Holder>,
    /// The numbers on the item's number's base number.
    pub near: &'a [PhoneNumber],
    /// The tenant's emergency locations that the batch names, by id.
    pub locations: &'a HashMap<String, EmergencyLocation>,
    /// The tenant's defaults, for what the item leaves unsaid.
    pub defaults: &'a TenantConfiguration,
}

/// Everything an assignment of one number to one user is checked against.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) user: User,
    pub(super) held: Vec<PhoneNumber>,
    pub(super) number: PhoneNumber,
    /// Whether the number enters the inventory with this assignment (Direct Routing).
    pub(super) created: bool,
    pub(super) location: Option<EmergencyLocation>,
    /// An emergency location id the request names that the tenant does not have; refused in
    /// the rules' order, after the rules about the user and the number.
    pub(super) unknown_location: Option<String>,
}

impl Plan {
    /// The number as it will be once assigned.
    pub(super) fn assigned(&self, category: AssignmentCategory) -> PhoneNumber {
        let mut number = self.number.clone();
        number.assignment = Some(Assignment {
            target_id: self.user.id.clone(),
            target_user_principal_name: self.user.user_principal_name.clone(),
            target_kind: self.user.kind,
            category,
        });
        if let Some(location) = &self.location {
            number.emergency_location_id = Some(location.id.clone());
        }
        number.activation_state = ActivationState::Activated;
        number
    }

    /// What the provider is asked before the assignment.
    fn check(&self, tenant: &TenantId, category: AssignmentCategory) -> AssignmentCheck {
        let new_location = self.location.as_ref().map(|l| l.id.as_str());
        AssignmentCheck {
            tenant_id: tenant.to_owned(),
            phone_number: self.number.number.canonical(),
            country: self.number.country().as_str().to_owned(),
            target_kind: self.user.kind,
            usage_location: self
                .user
                .usage_location
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            category,
            changes_emergency_location: new_location
                .is_some_and(|id| Some(id) != self.number.emergency_location_id.as_deref()),
            has_emergency_location: new_location.is_some()
                || self.number.emergency_location_id.is_some(),
            location_update_supported: self.number.location_update_supported,
        }
    }
}

impl Service {
    /// Assigns a number to a user or resource account.
    pub async fn assign(
        &self,
        caller: &Caller,
        request: &AssignRequest,
        options: &RequestOptions,
    ) -> Result<Assigned> {
        const METHOD: &str = "AssignPhoneNumber";
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        if self.may_ask_over_network(request.number_type) {
            let checked = async {
                let mut read = self.read().await?;
                let plan = self
                    .plan_assignment(&mut read, tenant, request, Lock::No)
                    .await?;
                self.check_provider(tenant, &plan, request.category).await
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
            .plan_assignment(&mut tx, tenant, request, Lock::Yes)
            .await?;
        if !self.may_ask_over_network(request.number_type) {
            self.check_provider(tenant, &plan, request.category).await?;
        }
        let location =
            registered_location(&mut tx, tenant, &plan.number, plan.location.as_ref()).await?;
        let notify = match request.notify_user {
            Some(notify) => notify,
            None => {
                self.defaults(&mut tx, tenant, true)
                    .await?
                    .assignment_email_enabled
            }
        };
        let mut changes = Changes::default();
        let assigned = self
            .assign_planned(
                &actor,
                options,
                request,
                notify,
                &plan,
                location.as_ref(),
                &mut changes,
            )
            .await?;
        self.finish(tx, &actor, options, changes, assigned).await
    }

    /// Puts a checked assignment into effect: provisions the number (registering `location`,
    /// the emergency location it will have), and adds the number and the user as they will
    /// be, the operation, the audit event and the email (when `notify`) to `changes`.
    #[allow(clippy::too_many_arguments)]
    async fn assign_planned(
        &self,
        actor: &Actor,
        options: &RequestOptions,
        request: &AssignRequest,
        notify: bool,
        plan: &Plan,
        location: Option<&EmergencyLocation>,
        changes: &mut Changes,
    ) -> Result<Assigned> {
        let tenant = actor.tenant_id.as_str();
        let now = self.now();
        let mut operation = self.open_operation(options, AuditAction::AssignPhoneNumber);
        let mut assigned = plan.assigned(request.category);
        assigned.activation_state = self
            .provision(
                operation.as_mut(),
                tenant,
                &assigned,
                ProvisioningAction::Activate,
                &plan.user.id,
                location,
                None,
            )
            .await?;
        assigned.operation_id = operation.as_ref().map(|o| o.id.clone());
        let number = assigned.changed(now);
        let mut held = plan.held.clone();
        held.push(number.clone());
        let (user, user_changed) = plan.user.holding(&held, true, now);
        if user_changed {
            changes.users.push(user.clone());
        }
        changes.numbers.push(number.clone());
        let before = (!plan.created).then(|| number_snapshot(&plan.number));
        changes.audit.push(self.audit(
            actor,
            options,
            AuditAction::AssignPhoneNumber,
            Some(number.number.canonical()),
            Some(user.id.clone()),
            before,
            Some(number_snapshot(&number)),
        ));
        if notify {
            changes
                .notifications
                .extend(Notification::assigned(&user, &number.number, now));
        }
        let operation = self.close_operation(operation, actor, options, changes);
        tracing::info!(%tenant, number = %number.number, user = %user.user_principal_name, state = %number.activation_state, "number assigned");
        Ok(Assigned {
            number,
            user,
            operation,
        })
    }

    /// Checks and puts into effect, among `changes`, an assignment of a batch of bulk items
    /// whose records the batch loaded and locked. The same rules as [`Service::assign`], in the same order. Answers the
    /// assignment, and the number's record as it enters the inventory when it is a Direct
    /// Routing number new to it (for the batch to insert before writing the changes).
    pub(super) async fn assign_locked(
        &self,
        actor: &Actor,
        options: &RequestOptions,
        request: &AssignRequest,
        locked: &Locked<'_>,
        changes: &mut Changes,
    ) -> Result<(Assigned, Option<PhoneNumber>)> {
        let Locked {
            holder,
            near,
            locations,
            defaults,
        } = *locked;
        let tenant = actor.tenant_id.as_str();
        let holder = holder.ok_or_else(|| user_not_found(&request.identity))?;
        let (number, created) = match near.iter().find(|n| n.number == request.number) {
            Some(found) => (found.clone(), false),
            None if request.number_type == Some(NumberType::DirectRouting) => (
                PhoneNumber::direct_routing(request.number.clone(), self.now()),
                true,
            ),
            None => return Err(not_in_inventory(&request.number, request.number_type)),
        };
        let (location, unknown_location) = match request.emergency_location_id.as_deref() {
            None => (None, None),
            Some(id) => match locations.get(id) {
                Some(location) => (Some(location.clone()), None),
                None => (None, Some(id.to_owned())),
            },
        };
        let plan = Plan {
            user: holder.user.clone(),
            held: holder.numbers.clone(),
            number,
            created,
            location,
            unknown_location,
        };
        self.check_plan(&plan, near, request.number_type, request.category, None)?;
        self.check_provider(tenant, &plan, request.category).await?;
        let registered = match (&plan.location, &plan.number.emergency_location_id) {
            (Some(location), _) => Some(location.clone()),
            (None, Some(id)) => locations.get(id).cloned(),
            (None, None) => None,
        };
        let notify = request
            .notify_user
            .unwrap_or(defaults.assignment_email_enabled);
        let assigned = self
            .assign_planned(
                actor,
                options,
                request,
                notify,
                &plan,
                registered.as_ref(),
                changes,
            )
            .await?;
        Ok((assigned, created.then(|| plan.number.clone())))
    }

    /// Replaces a user's primary number with another, in one transaction.
    pub async fn change(
        &self,
        caller: &Caller,
        request: &ChangeRequest,
        options: &RequestOptions,
    ) -> Result<Changed> {
        const METHOD: &str = "ChangePhoneNumber";
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        if self.may_ask_over_network(request.number_type) {
            let checked = async {
                let mut read = self.read().await?;
                let (plan, _) = self
                    .plan_change(&mut read, tenant, request, Lock::No)
                    .await?;
                self.check_provider(tenant, &plan, AssignmentCategory::Primary)
                    .await
            };
            if let Err(refused) = checked.await {
                return self.replay_or(&actor, METHOD, options, refused).await;
            }
        }

        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let (plan, previous) = self
            .plan_change(&mut tx, tenant, request, Lock::Yes)
            .await?;
        if !self.may_ask_over_network(request.number_type) {
            self.check_provider(tenant, &plan, AssignmentCategory::Primary)
                .await?;
        }
        let now = self.now();
        let mut changes = Changes::default();
        let mut operation = self.open_operation(options, AuditAction::ChangePhoneNumber);
        let mut released = unassigned(&previous, Block::None);
        released.activation_state = self
            .provision(
                operation.as_mut(),
                tenant,
                &released,
                ProvisioningAction::Deactivate,
                &plan.user.id,
                None,
                None,
            )
            .await?;
        let mut assigned = plan.assigned(AssignmentCategory::Primary);
        let location =
            registered_location(&mut tx, tenant, &assigned, plan.location.as_ref()).await?;
        assigned.activation_state = self
            .provision(
                operation.as_mut(),
                tenant,
                &assigned,
                ProvisioningAction::Activate,
                &plan.user.id,
                location.as_ref(),
                None,
            )
            .await?;
        released.operation_id = operation.as_ref().map(|o| o.id.clone());
        assigned.operation_id = released.operation_id.clone();
        // The old number first: a user holds at most one primary number at any moment.
        let released = released.changed(now);
        let number = assigned.changed(now);
        // A change keeps the user's telephony as it was while the new number is pending: the
        // user is not left without service in between. The worker settles it once the
        // provider answers.
        let mut held: Vec<PhoneNumber> = plan
            .held
            .iter()
            .filter(|n| n.number != previous.number)
            .cloned()
            .collect();
        held.push(number.clone());
        let settle = number.activation_state == ActivationState::Activated;
        let (user, user_changed) = plan.user.holding(&held, settle, now);
        if user_changed {
            changes.users.push(user.clone());
        }
        changes.numbers.extend([released.clone(), number.clone()]);
        for (before, after) in [
            (Some(&previous), &released),
            ((!plan.created).then_some(&plan.number), &number),
        ] {
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::ChangePhoneNumber,
                Some(after.number.canonical()),
                Some(user.id.clone()),
                before.map(number_snapshot),
                Some(number_snapshot(after)),
            ));
        }
        let notify = match request.notify_user {
            Some(notify) => notify,
            None => {
                self.defaults(&mut tx, tenant, true)
                    .await?
                    .assignment_email_enabled
            }
        };
        if notify {
            changes.notifications.extend(Notification::changed(
                &user,
                &released.number,
                &number.number,
                now,
            ));
        }
        let operation = self.close_operation(operation, &actor, options, &mut changes);
        tracing::info!(%tenant, from = %released.number, to = %number.number, user = %user.user_principal_name, "number changed");
        self.finish(
            tx,
            &actor,
            options,
            changes,
            Changed {
                previous: released,
                number,
                user,
                operation,
            },
        )
        .await
    }

    /// Removes one number, or all, from a user; the numbers stay in the inventory.
    pub async fn remove(
        &self,
        caller: &Caller,
        request: &RemoveRequest,
        options: &RequestOptions,
    ) -> Result<Removed> {
        const METHOD: &str = "RemovePhoneNumber";
        let actor = Actor::tenant(caller);
        let now = self.now();
        // The request's own block, checked before anything else; `None` leaves it to the
        // tenant's default.
        let block = match (request.block_days, request.block_forever) {
            (None, false) => None,
            (days, forever) => Some(block_for(days.unwrap_or(0), forever, now)?),
        };
        let tenant = actor.tenant_id.as_str();

        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let defaults = self
            .defaults(
                &mut tx,
                tenant,
                block.is_none() || request.notify_user.is_none(),
            )
            .await?;
        let block = match block {
            Some(block) => block,
            None => defaults.removal_block(now)?,
        };
        let notify = request
            .notify_user
            .unwrap_or(defaults.unassignment_email_enabled);
        let holder = tx
            .lock_user(tenant, &request.identity)
            .await?
            .ok_or_else(|| user_not_found(&request.identity))?;
        let user = holder.user;
        let targets: Vec<String> = match &request.number {
            Some(number) => vec![number.canonical()],
            None => holder
                .numbers
                .iter()
                .map(|n| n.number.canonical())
                .collect(),
        };
        let locked = tx.lock_numbers(tenant, &targets).await?;
        if let Some(number) = &request.number
            && locked.is_empty()
        {
            return Err(number_not_found(number));
        }

        for number in &locked {
            check_number_type(number, request.number_type)?;
            check_held_by(&user, number)?;
            check_not_pending(number)?;
        }
        let mut changes = Changes::default();
        let mut operation = if locked.is_empty() {
            None
        } else {
            self.open_operation(options, AuditAction::RemovePhoneNumber)
        };
        let mut removed = Vec::with_capacity(locked.len());
        for number in locked {
            let mut freed = unassigned(&number, block);
            freed.activation_state = self
                .provision(
                    operation.as_mut(),
                    tenant,
                    &freed,
                    ProvisioningAction::Deactivate,
                    &user.id,
                    None,
                    None,
                )
                .await?;
            freed.operation_id = operation.as_ref().map(|o| o.id.clone());
            let freed = freed.changed(now);
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::RemovePhoneNumber,
                Some(freed.number.canonical()),
                Some(user.id.clone()),
                Some(number_snapshot(&number)),
                Some(number_snapshot(&freed)),
            ));
            if notify {
                changes
                    .notifications
                    .extend(Notification::removed(&user, &freed.number, now));
            }
            changes.numbers.push(freed.clone());
            removed.push(freed);
        }
        let held: Vec<PhoneNumber> = holder
            .numbers
            .into_iter()
            .filter(|n| !removed.iter().any(|r| r.number == n.number))
            .collect();
        let (user, user_changed) = user.holding(&held, true, now);
        if user_changed {
            changes.users.push(user.clone());
        }
        let operation = self.close_operation(operation, &actor, options, &mut changes);
        tracing::info!(%tenant, user = %user.user_principal_name, removed = removed.len(), "numbers removed");
        self.finish(
            tx,
            &actor,
            options,
            changes,
            Removed {
                numbers: removed,
                user,
                operation,
            },
        )
        .await
    }

    /// Whether a number named with `number_type` may belong to a provider in another process,
    /// whose rules are asked before the write transaction rather than inside it.
    pub(super) fn may_ask_over_network(&self, number_type: Option<NumberType>) -> bool {
        self.providers.has_remote() && number_type.is_none_or(|t| t == NumberType::OperatorConnect)
    }

    /// Asks the number's provider whether it agrees to the assignment.
    pub(super) async fn check_provider(
        &self,
        tenant: &TenantId,
        plan: &Plan,
        category: AssignmentCategory,
    ) -> Result<()> {
        self.providers
            .for_number(&plan.number)?
            .check_assignment(&plan.check(tenant, category))
            .await
            .map_err(provider_error)
    }

    /// Loads a user and a number for an assignment and checks the rules.
    async fn plan_assignment(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        request: &AssignRequest,
        lock: Lock,
    ) -> Result<Plan> {
        let (user, held) = load_user(tx, tenant, &request.identity, lock).await?;
        let (number, same_base, created) = load_number_to_assign(
            tx,
            tenant,
            &request.number,
            request.number_type,
            None,
            lock,
            self.now(),
        )
        .await?;
        let (location, unknown_location) =
            load_location(tx, tenant, request.emergency_location_id.as_deref()).await?;
        let plan = Plan {
            user,
            held,
            number,
            created,
            location,
            unknown_location,
        };
        self.check_plan(
            &plan,
            &same_base,
            request.number_type,
            request.category,
            None,
        )?;
        Ok(plan)
    }

    /// Loads a user, its primary number and the new number for a change, and checks the rules.
    async fn plan_change(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        request: &ChangeRequest,
        lock: Lock,
    ) -> Result<(Plan, PhoneNumber)> {
        let (user, held) = load_user(tx, tenant, &request.identity, lock).await?;
        let Some(current) = held.iter().find(|n| n.is_primary()).cloned() else {
            return Err(Error::new(
                Reason::NoPrimaryNumber,
                format!(
                    "{} has no primary number to change; use AssignPhoneNumber",
                    user.user_principal_name
                ),
            )
            .with("user", &user.user_principal_name));
        };
        if current.number == request.number {
            return Err(Error::new(
                Reason::NumberAlreadyAssigned,
                format!(
                    "{} is already the primary number of {}",
                    current.number, user.user_principal_name
                ),
            )
            .with("phoneNumber", &current.number)
            .with("assignedTo", &user.user_principal_name));
        }
        // Both numbers are locked in one statement, in number order.
        let (number, same_base, created) = load_number_to_assign(
            tx,
            tenant,
            &request.number,
            request.number_type,
            Some(&current),
            lock,
            self.now(),
        )
        .await?;
        let previous = same_base
            .iter()
            .find(|n| n.number == current.number)
            .cloned()
            .unwrap_or(current);
        check_not_pending(&previous)?;
        let (location, unknown_location) =
            load_location(tx, tenant, request.emergency_location_id.as_deref()).await?;
        let plan = Plan {
            user,
            held,
            number,
            created,
            location,
            unknown_location,
        };
        self.check_plan(
            &plan,
            &same_base,
            request.number_type,
            AssignmentCategory::Primary,
            Some(&previous),
        )?;
        Ok((plan, previous))
    }

    /// Applies the domain's rules to a plan. `near` are the numbers read with the number (on
    /// its base number, and any other the request changes).
    pub(super) fn check_plan(
        &self,
        plan: &Plan,
        near: &[PhoneNumber],
        requested_type: Option<NumberType>,
        category: AssignmentCategory,
        replacing: Option<&PhoneNumber>,
    ) -> Result<()> {
        let provider = self.providers.for_number(&plan.number)?;
        let same_base: Vec<PhoneNumber> = if provider.descriptor().base_and_extensions_exclusive {
            near.iter()
                .filter(|n| n.number.base() == plan.number.number.base())
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        check_assignment(&AssignmentCandidate {
            user: &plan.user,
            held: &plan.held,
            number: &plan.number,
            requested_type,
            category,
            location: match (&plan.location, &plan.unknown_location) {
                (Some(location), _) => LocationChoice::Use(location),
                (None, Some(id)) => LocationChoice::Unknown(id),
                (None, None) => LocationChoice::Keep,
            },
            replacing,
            same_base: &same_base,
            now: self.now(),
        })
    }
}

/// Finds the user a request names, with the numbers it holds; the user locked when `lock`
/// (the numbers are locked by whoever changes them).
async fn load_user(
    tx: &mut Tx,
    tenant: &TenantId,
    identity: &Identity,
    lock: Lock,
) -> Result<(User, Vec<PhoneNumber>)> {
    let found = match lock {
        Lock::Yes => tx
            .lock_user(tenant, identity)
            .await?
            .map(|holder| (holder.user, holder.numbers)),
        Lock::No => match tx.find_user(tenant, identity).await? {
            Some(user) => {
                let held = tx.get_numbers(tenant, &user.phone_numbers).await?;
                Some((user, held))
            }
            None => None,
        },
    };
    found.ok_or_else(|| user_not_found(identity))
}

/// Finds the number to assign, with the other numbers on its base number and `also` (a number
/// the request changes too), all locked when `lock`, in number order. A Direct Routing number
/// that is not in the inventory yet enters it now (in the write transaction; in the first
/// look it is only imagined). Answers the number, the numbers read with it, and whether it
/// was created.
async fn load_number_to_assign(
    tx: &mut Tx,
    tenant: &TenantId,
    number: &E164,
    requested_type: Option<NumberType>,
    also: Option<&PhoneNumber>,
    lock: Lock,
    now: SystemTime,
) -> Result<(PhoneNumber, Vec<PhoneNumber>, bool)> {
    let canonical = number.canonical();
    let also = also.map(|n| n.number.canonical());
    let near = match lock {
        Lock::Yes => {
            tx.lock_numbers_on_base(tenant, number.base(), also.as_deref())
                .await?
        }
        Lock::No => tx
            .get_number(tenant, &canonical)
            .await?
            .into_iter()
            .collect(),
    };
    if let Some(found) = near.iter().find(|n| n.number == *number) {
        return Ok((found.clone(), near.clone(), false));
    }
    if requested_type != Some(NumberType::DirectRouting) {
        return Err(not_in_inventory(number, requested_type));
    }
    let record = PhoneNumber::direct_routing(number.clone(), now);
    if lock == Lock::No {
        return Ok((record, near, true));
    }
    // A concurrent first assignment of the same number waits here for the other transaction
    // and then finds the number (and its holder); a number of another tenant is refused.
    if tx.insert_number(tenant, &record).await? {
        return Ok((record, near, true));
    }
    let near = tx
        .lock_numbers_on_base(tenant, number.base(), also.as_deref())
        .await?;
    let found = near
        .iter()
        .find(|n| n.number == *number)
        .cloned()
        .ok_or_else(|| number_in_another_tenant(number))?;
    Ok((found, near, false))
}

/// The refusal of a number the tenant does not have, which the request does not say is a
/// Direct Routing number (one that enters the inventory with its first assignment).
fn not_in_inventory(number: &E164, requested_type: Option<NumberType>) -> Error {
    let hint = if number.extension().is_some() || requested_type.is_none() {
        "; to assign a Direct Routing number of your own carrier, give phone_number_type \
         DIRECT_ROUTING"
    } else {
        ""
    };
    Error::new(
        Reason::NumberNotFound,
        format!("phone number {number} is not in this tenant's inventory{hint}"),
    )
    .with("phoneNumber", number)
}

/// Finds the emergency location a request names: the location, or the id the tenant lacks.
async fn load_location(
    tx: &mut Tx,
    tenant: &TenantId,
    id: Option<&str>,
) -> Result<(Option<EmergencyLocation>, Option<String>)> {
    match id {
        None => Ok((None, None)),
        Some(id) => Ok(match tx.get_location(tenant, id).await? {
            Some(location) => (Some(location), None),
            None => (None, Some(id.to_owned())),
        }),
    }
}

/// The number as it will be once unassigned, with `block`.
pub(super) fn unassigned(number: &PhoneNumber, block: Block) -> PhoneNumber {
    PhoneNumber {
        assignment: None,
        block,
        activation_state: ActivationState::Activated,
        ..number.clone()
    }
}

/// The emergency location a number will have: the one the request names, or its current one.
pub(super) async fn registered_location(
    tx: &mut Tx,
    tenant: &TenantId,
    number: &PhoneNumber,
    requested: Option<&EmergencyLocation>,
) -> Result<Option<EmergencyLocation>> {
    match (requested, &number.emergency_location_id) {
        (Some(location), _) => Ok(Some(location.clone())),
        (None, Some(id)) => Ok(tx.get_location(tenant, id).await?),
        (None, None) => Ok(None),
    }
}
