//! Getting Calling Plan numbers into the tenant, and giving them back.
//!
//! The catalogue lists the whole stock; which numbers are free is decided here, against every
//! tenant's inventory, in the write transaction. A number enters an inventory with an insert
//! that does nothing when the number is taken, and the database's unique index on provider
//! numbers makes "taken" exact: two concurrent buyers never get the same number (on
//! PostgreSQL the second waits for the first to commit, then moves on to the next number).

use numbers_provider::NumberQuery;
use serde::{Deserialize, Serialize};

use super::inventory::number_not_found;
use super::locations::location_not_found;
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, Capability, Country, E164, NumberType, PhoneNumber, check_emergency_location,
    check_not_pending, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::routing::provider_error;
use crate::store::Changes;

/// Most numbers one request acquires or releases.
pub const MAX_NUMBERS_PER_REQUEST: usize = 1000;

/// What AcquirePhoneNumbers asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquireRequest {
    /// The numbers' country.
    pub country: Country,
    /// Only this area code.
    pub area_code: Option<String>,
    /// Only this city.
    pub city: Option<String>,
    /// Only numbers starting with this `+digits` prefix.
    pub prefix: Option<String>,
    /// What the numbers are for.
    pub capability: Capability,
    /// How many, 1 to [`MAX_NUMBERS_PER_REQUEST`].
    pub quantity: usize,
    /// A location to register with every number.
    pub emergency_location_id: Option<String>,
}

/// The answer to an acquisition or a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Numbers(pub Vec<PhoneNumber>);

/// The answer to a release: the numbers given back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released(pub Vec<String>);

impl Service {
    /// Acquires `quantity` catalogue numbers matching the request, all or none.
    pub async fn acquire_numbers(
        &self,
        caller: &Caller,
        request: &AcquireRequest,
        options: &RequestOptions,
    ) -> Result<Numbers> {
        const METHOD: &str = "AcquirePhoneNumbers";
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let location = match &request.emergency_location_id {
            None => None,
            Some(id) => Some(
                tx.get_location(tenant, id)
                    .await?
                    .ok_or_else(|| location_not_found(id))?,
            ),
        };
        // The quota is counted once the tenant's other acquisitions have ended (they take
        // turns), so two at once cannot both fit in what is left.
        let held = tx
            .count_numbers_taking_turn(tenant, NumberType::CallingPlan)
            .await?;
        let held = usize::try_from(held).unwrap_or(usize::MAX);
        if held.saturating_add(request.quantity) > self.calling_plan_quota {
            return Err(Error::new(
                Reason::QuotaExceeded,
                format!(
                    "the tenant holds {held} Calling Plan numbers of its quota of {}; {} more \
                     would exceed it. Release numbers it does not use, or ask for fewer",
                    self.calling_plan_quota, request.quantity
                ),
            )
            .with("held", held)
            .with("quota", self.calling_plan_quota)
            .with("requested", request.quantity));
        }
        let catalogue = self.providers.calling_plan_adapter();
        let query = NumberQuery {
            country: request.country.as_str().to_owned(),
            area_code: request.area_code.clone(),
            city: request.city.clone(),
            prefix: request.prefix.clone(),
            capability: Some(request.capability),
        };
        let now = self.now();
        let batch = (request.quantity * 2).clamp(64, MAX_NUMBERS_PER_REQUEST);
        let mut offset = 0;
        let mut acquired: Vec<PhoneNumber> = Vec::with_capacity(request.quantity);
        'search: while acquired.len() < request.quantity {
            let offered = catalogue
                .search(&query, offset, batch)
                .await
                .map_err(provider_error)?;
            if offered.is_empty() {
                break;
            }
            offset += offered.len();
            let candidates: Vec<String> = offered.iter().map(|o| o.phone_number.clone()).collect();
            let taken = tx.numbers_taken(&candidates).await?;
            for offer in offered
                .into_iter()
                .filter(|o| !taken.contains(&o.phone_number))
            {
                let number = E164::parse(&offer.phone_number).map_err(|e| {
                    Error::internal(anyhow::anyhow!(
                        "catalogue number {}: {e}",
                        offer.phone_number
                    ))
                })?;
                if let Some(location) = &location {
                    check_emergency_location(location, &number)?;
                }
                let mut record = PhoneNumber::from_provider(
                    number,
                    NumberType::CallingPlan,
                    None,
                    offer.city,
                    offer.capabilities,
                    now,
                );
                record.emergency_location_id = location.as_ref().map(|l| l.id.clone());
                if tx.insert_number(tenant, &record).await? {
                    acquired.push(record);
                    if acquired.len() == request.quantity {
                        break 'search;
                    }
                }
            }
        }
        if acquired.len() < request.quantity {
            return Err(Error::new(
                Reason::OutOfStock,
                format!(
                    "only {} {} numbers matching the search are left in {}; {} were asked for",
                    acquired.len(),
                    request.capability,
                    request.country,
                    request.quantity
                ),
            )
            .with("available", acquired.len())
            .with("requested", request.quantity)
            .with("country", request.country));
        }
        let numbers: Vec<String> = acquired.iter().map(|n| n.number.canonical()).collect();
        if !options.validate_only {
            catalogue
                .acquire(tenant, &numbers)
                .await
                .map_err(provider_error)?;
        }
        let changes = Changes {
            audit: acquired
                .iter()
                .map(|number| {
                    self.audit(
                        &actor,
                        options,
                        AuditAction::AcquirePhoneNumber,
                        Some(number.number.canonical()),
                        None,
                        None,
                        Some(number_snapshot(number)),
                    )
                })
                .collect(),
            ..Changes::default()
        };
        tracing::info!(%tenant, count = acquired.len(), "numbers acquired");
        self.finish(tx, &actor, options, changes, Numbers(acquired))
            .await
    }

    /// Returns unassigned Calling Plan numbers to the catalogue, all or none.
    pub async fn release_numbers(
        &self,
        caller: &Caller,
        numbers: &[E164],
        options: &RequestOptions,
    ) -> Result<Released> {
        const METHOD: &str = "ReleasePhoneNumbers";
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = match self.begin(&actor, METHOD, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let canonical: Vec<String> = numbers.iter().map(E164::canonical).collect();
        let locked = tx.lock_numbers(tenant, &canonical).await?;
        if let Some(missing) = numbers
            .iter()
            .find(|n| !locked.iter().any(|l| l.number == **n))
        {
            return Err(number_not_found(missing));
        }
        if let Some(other) = locked
            .iter()
            .find(|n| n.number_type != NumberType::CallingPlan)
        {
            return Err(Error::new(
                Reason::NumberTypeMismatch,
                format!(
                    "{} is a {} number: only Calling Plan numbers are released here (an \
                     operator takes its numbers back itself)",
                    other.number, other.number_type
                ),
            )
            .with("phoneNumber", &other.number)
            .with("numberType", other.number_type));
        }
        for number in &locked {
            check_not_pending(number)?;
        }
        let assigned: Vec<String> = locked
            .iter()
            .filter(|n| n.assignment.is_some())
            .map(|n| n.number.canonical())
            .collect();
        if !assigned.is_empty() {
            return Err(Error::new(
                Reason::NumberAssigned,
                format!(
                    "{} assigned; remove them from their users first. Nothing was released",
                    describe_list(&assigned)
                ),
            )
            .with("phoneNumbers", assigned.join(",")));
        }
        if !options.validate_only {
            self.providers
                .calling_plan_adapter()
                .release(tenant, &canonical)
                .await
                .map_err(provider_error)?;
        }
        tx.delete_numbers(tenant, &canonical).await?;
        let changes = Changes {
            audit: locked
                .iter()
                .map(|number| {
                    self.audit(
                        &actor,
                        options,
                        AuditAction::ReleasePhoneNumber,
                        Some(number.number.canonical()),
                        None,
                        Some(number_snapshot(number)),
                        None,
                    )
                })
                .collect(),
            ..Changes::default()
        };
        tracing::info!(%tenant, count = locked.len(), "numbers released");
        self.finish(tx, &actor, options, changes, Released(canonical))
            .await
    }
}

/// "+1 is", "+1 and +2 are", "+1, +2 and 3 others are".
pub(super) fn describe_list(numbers: &[String]) -> String {
    match numbers {
        [] => "no number is".to_owned(),
        [one] => format!("{one} is"),
        [first, second] => format!("{first} and {second} are"),
        [first, second, rest @ ..] => {
            format!("{first}, {second} and {} others are", rest.len())
        }
    }
}
