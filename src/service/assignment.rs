//! Assigning, changing and removing numbers: the three operations of the seeds.
//!
//! Each runs in two steps. First it reads what the request is about and checks every rule,
//! the provider's own included (a provider may be remote and slow, so it is asked outside any
//! write transaction). Then, in one write transaction, it locks the user and the numbers it
//! changes, checks the rules again against what is now there (another request may have won in
//! between), provisions on the provider, and writes the change with its audit events and
//! notifications.

use numbers_provider::AssignmentCheck;
use serde::{Deserialize, Serialize};

use super::directory::user_not_found;
use super::inventory::number_not_found;
use super::{Actor, Claimed, RequestOptions, Service, now};
use crate::auth::Caller;
use crate::domain::{
    ActivationState, Assignment, AssignmentCandidate, AssignmentCategory, AuditAction, Block, E164,
    EmergencyLocation, Identity, LocationChoice, Notification, NumberType, Operation, PhoneNumber,
    ProvisioningAction, User, block_for, check_assignment, check_held_by, check_not_pending,
    check_number_type, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::routing::provider_error;
use crate::store::Tx;

/// What AssignPhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Whether to email the user.
    pub notify_user: bool,
}

/// What ChangePhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRequest {
    /// The target.
    pub identity: Identity,
    /// The new number.
    pub number: E164,
    /// The type the caller says the new number has.
    pub number_type: Option<NumberType>,
    /// The emergency location to register with the new number.
    pub emergency_location_id: Option<String>,
    /// Whether to email the user.
    pub notify_user: bool,
}

/// What RemovePhoneNumber asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveRequest {
    /// The target.
    pub identity: Identity,
    /// The number to remove, or `None` for all of them.
    pub number: Option<E164>,
    /// The type the caller says the number has.
    pub number_type: Option<NumberType>,
    /// Days to block the removed numbers for.
    pub block_days: i32,
    /// Whether to block them until the block is lifted.
    pub block_forever: bool,
    /// Whether to email the user.
    pub notify_user: bool,
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
enum Lock {
    No,
    Yes,
}

/// Everything an assignment of one number to one user is checked against.
#[derive(Debug)]
struct Plan {
    user: User,
    held: Vec<PhoneNumber>,
    number: PhoneNumber,
    /// Whether the number enters the inventory with this assignment (Direct Routing).
    created: bool,
    location: Option<EmergencyLocation>,
    /// An emergency location id the request names that the tenant does not have; refused in
    /// the rules' order, after the rules about the user and the number.
    unknown_location: Option<String>,
}

impl Plan {
    /// The number as it will be once assigned.
    fn assigned(&self, category: AssignmentCategory) -> PhoneNumber {
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
    fn check(&self, tenant: &str, category: AssignmentCategory) -> AssignmentCheck {
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
        let actor = Actor::admin(caller)?;
        if let Some(first) = self.replay(&actor, METHOD, options).await? {
            return Ok(first);
        }
        let tenant = actor.tenant_id.as_str();

        let checked = async {
            let plan = self
                .plan_assignment(&mut self.read().await?, tenant, request, Lock::No)
                .await?;
            let provider = self.providers.for_number(&plan.number)?;
            provider
                .check_assignment(&plan.check(tenant, request.category))
                .await
                .map_err(provider_error)
        };
        if let Err(refused) = checked.await {
            return self.replay_or(&actor, METHOD, options, refused).await;
        }

        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let plan = self
            .plan_assignment(&mut tx, tenant, request, Lock::Yes)
            .await?;
        let now = now();
        let operation = self
            .open_operation(&mut tx, &actor, options, AuditAction::AssignPhoneNumber)
            .await?;
        let mut assigned = plan.assigned(request.category);
        let location =
            registered_location(&mut tx, tenant, &assigned, plan.location.as_ref()).await?;
        assigned.activation_state = self
            .provision(
                &mut tx,
                operation.as_ref(),
                tenant,
                &assigned,
                ProvisioningAction::Activate,
                &plan.user.id,
                location.as_ref(),
                None,
            )
            .await?;
        assigned.operation_id = operation.as_ref().map(|o| o.id.clone());
        let number = tx.update_number(tenant, &assigned, now).await?;
        let user = tx
            .refresh_enterprise_voice(tenant, &plan.user.id, now)
            .await?;
        let before = (!plan.created).then(|| number_snapshot(&plan.number));
        self.audit(
            &mut tx,
            &actor,
            options,
            AuditAction::AssignPhoneNumber,
            Some(number.number.canonical()),
            Some(user.id.clone()),
            before,
            Some(number_snapshot(&number)),
        )
        .await?;
        if request.notify_user {
            notify(
                &mut tx,
                tenant,
                Notification::assigned(&user, &number.number, now),
            )
            .await?;
        }
        let operation = self.close_operation(&mut tx, tenant, operation).await?;
        tracing::info!(%tenant, number = %number.number, user = %user.user_principal_name, state = %number.activation_state, "number assigned");
        self.finish(
            tx,
            &actor,
            options,
            Assigned {
                number,
                user,
                operation,
            },
        )
        .await
    }

    /// Replaces a user's primary number with another, in one transaction.
    pub async fn change(
        &self,
        caller: &Caller,
        request: &ChangeRequest,
        options: &RequestOptions,
    ) -> Result<Changed> {
        const METHOD: &str = "ChangePhoneNumber";
        let actor = Actor::admin(caller)?;
        if let Some(first) = self.replay(&actor, METHOD, options).await? {
            return Ok(first);
        }
        let tenant = actor.tenant_id.as_str();

        let checked = async {
            let (plan, _) = self
                .plan_change(&mut self.read().await?, tenant, request, Lock::No)
                .await?;
            let provider = self.providers.for_number(&plan.number)?;
            provider
                .check_assignment(&plan.check(tenant, AssignmentCategory::Primary))
                .await
                .map_err(provider_error)
        };
        if let Err(refused) = checked.await {
            return self.replay_or(&actor, METHOD, options, refused).await;
        }

        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let (plan, previous) = self
            .plan_change(&mut tx, tenant, request, Lock::Yes)
            .await?;
        let now = now();
        let operation = self
            .open_operation(&mut tx, &actor, options, AuditAction::ChangePhoneNumber)
            .await?;
        let operation_id = operation.as_ref().map(|o| o.id.clone());
        let mut released = unassigned(&previous, Block::None);
        released.activation_state = self
            .provision(
                &mut tx,
                operation.as_ref(),
                tenant,
                &released,
                ProvisioningAction::Deactivate,
                &plan.user.id,
                None,
                None,
            )
            .await?;
        released.operation_id = operation_id.clone();
        let mut assigned = plan.assigned(AssignmentCategory::Primary);
        let location =
            registered_location(&mut tx, tenant, &assigned, plan.location.as_ref()).await?;
        assigned.activation_state = self
            .provision(
                &mut tx,
                operation.as_ref(),
                tenant,
                &assigned,
                ProvisioningAction::Activate,
                &plan.user.id,
                location.as_ref(),
                None,
            )
            .await?;
        assigned.operation_id = operation_id;
        // The old number first: a user holds at most one primary number at any moment.
        let released = tx.update_number(tenant, &released, now).await?;
        let number = tx.update_number(tenant, &assigned, now).await?;
        // A change keeps the user's telephony as it was while the new number is pending: the
        // user is not left without service in between. The worker settles it once the
        // provider answers.
        let user = if number.activation_state == ActivationState::Activated {
            tx.refresh_enterprise_voice(tenant, &plan.user.id, now)
                .await?
        } else {
            tx.find_user(tenant, &Identity::Id(plan.user.id.clone()))
                .await?
                .ok_or_else(|| user_not_found(&request.identity))?
        };
        for (before, after) in [
            (Some(&previous), &released),
            ((!plan.created).then_some(&plan.number), &number),
        ] {
            self.audit(
                &mut tx,
                &actor,
                options,
                AuditAction::ChangePhoneNumber,
                Some(after.number.canonical()),
                Some(user.id.clone()),
                before.map(number_snapshot),
                Some(number_snapshot(after)),
            )
            .await?;
        }
        if request.notify_user {
            let email = Notification::changed(&user, &released.number, &number.number, now);
            notify(&mut tx, tenant, email).await?;
        }
        let operation = self.close_operation(&mut tx, tenant, operation).await?;
        tracing::info!(%tenant, from = %released.number, to = %number.number, user = %user.user_principal_name, "number changed");
        self.finish(
            tx,
            &actor,
            options,
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
        let actor = Actor::admin(caller)?;
        let now = now();
        let block = block_for(request.block_days, request.block_forever, now)?;
        if let Some(first) = self.replay(&actor, METHOD, options).await? {
            return Ok(first);
        }
        let tenant = actor.tenant_id.as_str();

        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let user = lock_user(&mut tx, tenant, &request.identity).await?;
        let held = tx.numbers_held_by(tenant, &user.id, false).await?;
        let targets: Vec<String> = match &request.number {
            Some(number) => vec![number.canonical()],
            None => held.iter().map(|n| n.number.canonical()).collect(),
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
        let operation = if locked.is_empty() {
            None
        } else {
            self.open_operation(&mut tx, &actor, options, AuditAction::RemovePhoneNumber)
                .await?
        };
        let mut removed = Vec::with_capacity(locked.len());
        for number in locked {
            let mut freed = unassigned(&number, block);
            freed.activation_state = self
                .provision(
                    &mut tx,
                    operation.as_ref(),
                    tenant,
                    &freed,
                    ProvisioningAction::Deactivate,
                    &user.id,
                    None,
                    None,
                )
                .await?;
            freed.operation_id = operation.as_ref().map(|o| o.id.clone());
            let freed = tx.update_number(tenant, &freed, now).await?;
            self.audit(
                &mut tx,
                &actor,
                options,
                AuditAction::RemovePhoneNumber,
                Some(freed.number.canonical()),
                Some(user.id.clone()),
                Some(number_snapshot(&number)),
                Some(number_snapshot(&freed)),
            )
            .await?;
            if request.notify_user {
                notify(
                    &mut tx,
                    tenant,
                    Notification::removed(&user, &freed.number, now),
                )
                .await?;
            }
            removed.push(freed);
        }
        let user = tx.refresh_enterprise_voice(tenant, &user.id, now).await?;
        let operation = self.close_operation(&mut tx, tenant, operation).await?;
        tracing::info!(%tenant, user = %user.user_principal_name, removed = removed.len(), "numbers removed");
        self.finish(
            tx,
            &actor,
            options,
            Removed {
                numbers: removed,
                user,
                operation,
            },
        )
        .await
    }

    /// Loads a user and a number for an assignment and checks the rules.
    async fn plan_assignment(
        &self,
        tx: &mut Tx,
        tenant: &str,
        request: &AssignRequest,
        lock: Lock,
    ) -> Result<Plan> {
        let user = load_user(tx, tenant, &request.identity, lock).await?;
        let held = tx.numbers_held_by(tenant, &user.id, false).await?;
        let (number, created) =
            load_number_to_assign(tx, tenant, &request.number, request.number_type, lock).await?;
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
            tx,
            tenant,
            &plan,
            request.number_type,
            request.category,
            None,
        )
        .await?;
        Ok(plan)
    }

    /// Loads a user, its primary number and the new number for a change, and checks the rules.
    async fn plan_change(
        &self,
        tx: &mut Tx,
        tenant: &str,
        request: &ChangeRequest,
        lock: Lock,
    ) -> Result<(Plan, PhoneNumber)> {
        let user = load_user(tx, tenant, &request.identity, lock).await?;
        let held = tx.numbers_held_by(tenant, &user.id, false).await?;
        let Some(current) = held
            .iter()
            .find(|n| {
                n.assignment
                    .as_ref()
                    .is_some_and(|a| a.category == AssignmentCategory::Primary)
            })
            .cloned()
        else {
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
        // Lock both numbers in one statement, in number order.
        let (number, created) = match lock {
            Lock::Yes => {
                let canonical = [current.number.canonical(), request.number.canonical()];
                tx.lock_numbers(tenant, &canonical).await?;
                load_number_to_assign(tx, tenant, &request.number, request.number_type, lock)
                    .await?
            }
            Lock::No => {
                load_number_to_assign(tx, tenant, &request.number, request.number_type, lock)
                    .await?
            }
        };
        let previous = match lock {
            Lock::Yes => tx
                .get_number(tenant, &current.number.canonical())
                .await?
                .ok_or_else(|| number_not_found(&current.number))?,
            Lock::No => current,
        };
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
            tx,
            tenant,
            &plan,
            request.number_type,
            AssignmentCategory::Primary,
            Some(&previous),
        )
        .await?;
        Ok((plan, previous))
    }

    /// Applies the domain's rules to a plan.
    async fn check_plan(
        &self,
        tx: &mut Tx,
        tenant: &str,
        plan: &Plan,
        requested_type: Option<NumberType>,
        category: AssignmentCategory,
        replacing: Option<&PhoneNumber>,
    ) -> Result<()> {
        let provider = self.providers.for_number(&plan.number)?;
        let same_base = if provider.descriptor().base_and_extensions_exclusive {
            tx.assigned_on_base(tenant, plan.number.number.base())
                .await?
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
            now: now(),
        })
    }
}

/// Finds the user a request names, locked when `lock`.
async fn load_user(tx: &mut Tx, tenant: &str, identity: &Identity, lock: Lock) -> Result<User> {
    let found = match lock {
        Lock::Yes => tx.lock_user(tenant, identity).await?,
        Lock::No => tx.find_user(tenant, identity).await?,
    };
    found.ok_or_else(|| user_not_found(identity))
}

async fn lock_user(tx: &mut Tx, tenant: &str, identity: &Identity) -> Result<User> {
    load_user(tx, tenant, identity, Lock::Yes).await
}

/// Finds the number to assign. A Direct Routing number that is not in the inventory yet
/// enters it now (in the write transaction; in the first look it is only imagined).
async fn load_number_to_assign(
    tx: &mut Tx,
    tenant: &str,
    number: &E164,
    requested_type: Option<NumberType>,
    lock: Lock,
) -> Result<(PhoneNumber, bool)> {
    let canonical = number.canonical();
    let found = match lock {
        Lock::Yes => tx.lock_number(tenant, &canonical).await?,
        Lock::No => tx.get_number(tenant, &canonical).await?,
    };
    if let Some(found) = found {
        return Ok((found, false));
    }
    if requested_type != Some(NumberType::DirectRouting) {
        let hint = if number.extension().is_some() || requested_type.is_none() {
            "; to assign a Direct Routing number of your own carrier, give phone_number_type \
             DIRECT_ROUTING"
        } else {
            ""
        };
        return Err(Error::new(
            Reason::NumberNotFound,
            format!("phone number {number} is not in this tenant's inventory{hint}"),
        )
        .with("phoneNumber", number));
    }
    let record = PhoneNumber::direct_routing(number.clone(), now());
    if lock == Lock::No {
        return Ok((record, true));
    }
    // A concurrent first assignment of the same number waits here for the other transaction
    // and then finds the number (and its holder).
    let created = tx.insert_number_if_absent(tenant, &record).await?;
    let locked = tx
        .lock_number(tenant, &canonical)
        .await?
        .ok_or_else(|| number_not_found(number))?;
    Ok((locked, created))
}

/// Finds the emergency location a request names: the location, or the id the tenant lacks.
async fn load_location(
    tx: &mut Tx,
    tenant: &str,
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
fn unassigned(number: &PhoneNumber, block: Block) -> PhoneNumber {
    PhoneNumber {
        assignment: None,
        block,
        activation_state: ActivationState::Activated,
        ..number.clone()
    }
}

/// The emergency location a number will have: the one the request names, or its current one.
async fn registered_location(
    tx: &mut Tx,
    tenant: &str,
    number: &PhoneNumber,
    requested: Option<&EmergencyLocation>,
) -> Result<Option<EmergencyLocation>> {
    match (requested, &number.emergency_location_id) {
        (Some(location), _) => Ok(Some(location.clone())),
        (None, Some(id)) => Ok(tx.get_location(tenant, id).await?),
        (None, None) => Ok(None),
    }
}

/// Queues an email, when the user has a mailbox.
async fn notify(tx: &mut Tx, tenant: &str, notification: Option<Notification>) -> Result<()> {
    if let Some(notification) = notification {
        tx.insert_notification(tenant, &notification).await?;
    }
    Ok(())
}
