//! Emergency locations.

use numbers_provider::LocationCheck;

use super::inventory::number_not_found;
use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AddressCheck, AddressVerdict, AuditAction, CivicAddress, Country, E164, EmergencyLocation,
    NewEmergencyLocation, PhoneNumber, ProvisioningAction, TenantId, ValidationStatus,
    check_address, check_emergency_location, check_etag, check_not_pending, location_snapshot,
    number_snapshot, validate_address,
};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::routing::provider_error;
use crate::store::{Changes, LocationCursor, Tx};

/// What validates civic addresses: the offline rules by default ([`OfflineAddressRules`]); a
/// geocoding service can stand in for them.
#[async_trait::async_trait]
pub trait AddressValidator: Send + Sync + std::fmt::Debug {
    /// The verdict on `address`, with the address as it would be stored and what was changed.
    async fn check(&self, address: &CivicAddress) -> Result<AddressCheck>;
}

/// The offline rules of `domain::check_address`: each country's required parts and formats,
/// and the corrections they recognise.
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineAddressRules;

#[async_trait::async_trait]
impl AddressValidator for OfflineAddressRules {
    async fn check(&self, address: &CivicAddress) -> Result<AddressCheck> {
        Ok(check_address(address))
    }
}

impl Service {
    /// Validates an address and creates an emergency location for it. An address the rules can
    /// correct is refused with the correction in the error, for the admin to accept.
    pub async fn create_location(
        &self,
        caller: &Caller,
        address: &CivicAddress,
        description: &str,
        options: &RequestOptions,
    ) -> Result<EmergencyLocation> {
        let actor = Actor::tenant(caller);
        let check = self.addresses.check(address).await?;
        let location = match check.verdict {
            AddressVerdict::Valid => validate_address(&check.address, description)?,
            _ => return Err(address_refusal(address, description, &check)),
        };
        let mut tx = match self
            .begin(&actor, "CreateEmergencyLocation", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(location) => return Ok(location),
        };
        let id = uuid::Uuid::now_v7().to_string();
        let created = tx
            .insert_location(
                &caller.tenant_id,
                &id,
                &location,
                ValidationStatus::Validated,
                self.now(),
            )
            .await?;
        let changes = Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::CreateEmergencyLocation,
                None,
                None,
                None,
                Some(location_snapshot(&created)),
            )],
            ..Changes::default()
        };
        tracing::info!(tenant = %caller.tenant_id, location = %created.id, "emergency location created");
        self.finish(tx, &actor, options, changes, created).await
    }

    /// Checks an address as [`Service::create_location`] would, creating nothing.
    pub async fn check_address(&self, address: &CivicAddress) -> Result<AddressCheck> {
        self.addresses.check(address).await
    }

    /// Creates a place inside a location: a location of its own with the location's address.
    pub async fn create_place(
        &self,
        caller: &Caller,
        location_id: &str,
        description: &str,
        options: &RequestOptions,
    ) -> Result<EmergencyLocation> {
        let description = place_description(description)?;
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = match self.begin(&actor, "CreateEmergencyPlace", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(place) => return Ok(place),
        };
        let (parent, _) = lock_location(&mut tx, tenant, location_id).await?;
        if let Some(grandparent) = &parent.parent_id {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                "location_id",
                format!(
                    "{location_id} is a place of location {grandparent}; places are created \
                     inside a location, not inside another place"
                ),
            ));
        }
        let place = NewEmergencyLocation {
            address: parent.address.clone(),
            country: parent.country,
            description,
            parent_id: Some(parent.id.clone()),
        };
        let id = uuid::Uuid::now_v7().to_string();
        let created = tx
            .insert_location(tenant, &id, &place, parent.validation_status, self.now())
            .await?;
        let changes = Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::CreateEmergencyPlace,
                None,
                None,
                None,
                Some(location_snapshot(&created)),
            )],
            ..Changes::default()
        };
        tracing::info!(%tenant, place = %created.id, location = %parent.id, "emergency place created");
        self.finish(tx, &actor, options, changes, created).await
    }

    /// Changes the description of a location or a place.
    pub async fn update_location_details(
        &self,
        caller: &Caller,
        id: &str,
        description: &str,
        etag: Option<i64>,
        options: &RequestOptions,
    ) -> Result<EmergencyLocation> {
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = match self
            .begin(&actor, "UpdateEmergencyLocationDetails", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(location) => return Ok(location),
        };
        let (location, _) = lock_location(&mut tx, tenant, id).await?;
        check_location_etag(&location, etag)?;
        let description = if location.parent_id.is_some() {
            place_description(description)?
        } else {
            location_description(description)?
        };
        if description == location.description {
            return self
                .finish(tx, &actor, options, Changes::default(), location)
                .await;
        }
        let updated = EmergencyLocation {
            description,
            version: location.version + 1,
            ..location.clone()
        };
        if !options.validate_only {
            tx.update_location(tenant, &updated).await?;
        }
        let changes = Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::UpdateEmergencyLocationDetails,
                None,
                None,
                Some(location_snapshot(&location)),
                Some(location_snapshot(&updated)),
            )],
            ..Changes::default()
        };
        self.finish(tx, &actor, options, changes, updated).await
    }

    /// Deletes a location, with its places, or a place, when nothing uses them; answers it.
    pub async fn delete_location(
        &self,
        caller: &Caller,
        id: &str,
        etag: Option<i64>,
        options: &RequestOptions,
    ) -> Result<EmergencyLocation> {
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = match self
            .begin(&actor, "DeleteEmergencyLocation", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(location) => return Ok(location),
        };
        let (location, places) = lock_location(&mut tx, tenant, id).await?;
        check_location_etag(&location, etag)?;
        let ids: Vec<String> = std::iter::once(location.id.clone())
            .chain(places.iter().map(|p| p.id.clone()))
            .collect();
        let uses = tx.lock_location_uses(tenant, &ids).await?;
        if uses > 0 {
            let with_places = if places.is_empty() {
                ""
            } else {
                " (or its places)"
            };
            return Err(Error::new(
                Reason::EmergencyLocationInUse,
                format!(
                    "emergency location {id}{with_places} is used by {uses} number{} or \
                     pending change{}; register those numbers with another location (or \
                     none) first",
                    if uses == 1 { "" } else { "s" },
                    if uses == 1 { "" } else { "s" },
                ),
            )
            .with("emergencyLocationId", id)
            .with("uses", uses));
        }
        if !options.validate_only {
            tx.delete_locations(tenant, &ids).await?;
        }
        let changes = Changes {
            audit: places
                .iter()
                .chain(std::iter::once(&location))
                .map(|deleted| {
                    self.audit(
                        &actor,
                        options,
                        AuditAction::DeleteEmergencyLocation,
                        None,
                        None,
                        Some(location_snapshot(deleted)),
                        None,
                    )
                })
                .collect(),
            ..Changes::default()
        };
        tracing::info!(%tenant, location = %id, places = places.len(), "emergency location deleted");
        self.finish(tx, &actor, options, changes, location).await
    }

    /// Finds an emergency location, with its places.
    pub async fn get_location(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(EmergencyLocation, Vec<EmergencyLocation>)> {
        let mut tx = self.read().await?;
        let location = tx
            .get_location(&caller.tenant_id, id)
            .await?
            .ok_or_else(|| location_not_found(id))?;
        let places = tx
            .places(&caller.tenant_id, std::slice::from_ref(&location.id))
            .await?;
        Ok((location, places))
    }

    /// Lists emergency locations, optionally in one city and country, each with its places.
    pub async fn list_locations(
        &self,
        caller: &Caller,
        city: Option<&str>,
        country: Option<Country>,
        page: &PageRequest,
    ) -> Result<Page<(EmergencyLocation, Vec<EmergencyLocation>)>> {
        let after = match page.after.as_deref() {
            None => None,
            Some(text) => Some(LocationCursor::decode(text).ok_or_else(|| {
                Error::invalid_field(
                    Reason::InvalidPageToken,
                    "page_token",
                    "is not a page token of this listing",
                )
            })?),
        };
        let mut tx = self.read().await?;
        let locations = tx
            .list_locations(
                &caller.tenant_id,
                city,
                country,
                after.as_ref(),
                page.size + 1,
            )
            .await?;
        let page =
            Page::from_overfetch(locations, page.size, |l| LocationCursor::after(l).encode());
        let ids: Vec<String> = page.items.iter().map(|l| l.id.clone()).collect();
        let mut places = tx.places(&caller.tenant_id, &ids).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|location| {
                    let (mine, others) = std::mem::take(&mut places)
                        .into_iter()
                        .partition(|p| p.parent_id.as_deref() == Some(location.id.as_str()));
                    places = others;
                    (location, mine)
                })
                .collect(),
            next_after: page.next_after,
        })
    }
}

/// Finds a location and its places; what changes them locks what it changes (a conditional
/// write of the details, the rows themselves before a deletion).
async fn lock_location(
    tx: &mut Tx,
    tenant: &TenantId,
    id: &str,
) -> Result<(EmergencyLocation, Vec<EmergencyLocation>)> {
    let location = tx
        .get_location(tenant, id)
        .await?
        .ok_or_else(|| location_not_found(id))?;
    let places = tx
        .places(tenant, std::slice::from_ref(&location.id))
        .await?;
    Ok((location, places))
}

/// The caller's etag, when it sent one, is the location's current version.
fn check_location_etag(location: &EmergencyLocation, etag: Option<i64>) -> Result<()> {
    match etag {
        Some(etag) if etag != location.version => Err(Error::new(
            Reason::EtagMismatch,
            format!(
                "emergency location {} changed since it was read (etag {etag}, now {}); read \
                 it again and retry",
                location.id, location.version
            ),
        )
        .with("emergencyLocationId", &location.id)
        .with("etag", location.version)),
        _ => Ok(()),
    }
}

/// A place's description: 1 to 200 characters, none a control character.
fn place_description(description: &str) -> Result<String> {
    let description = location_description(description)?;
    if description.is_empty() {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            "description",
            "is required: name the place, like Building 92, 3rd floor",
        ));
    }
    Ok(description)
}

/// A location's description: up to 200 characters, none a control character.
fn location_description(description: &str) -> Result<String> {
    let description = description.trim();
    if description.chars().count() > 200 || description.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            "description",
            "must be at most 200 characters, without control characters",
        ));
    }
    Ok(description.to_owned())
}

/// The refusal of an address the rules did not find valid: what is wrong with it as given and,
/// where a correction exists, the corrected value (in the violation and in the metadata, as
/// `corrected` and the part's name), for the admin to accept.
fn address_refusal(address: &CivicAddress, description: &str, check: &AddressCheck) -> Error {
    let given = match validate_address(address, description) {
        Err(error) => error.violations().to_vec(),
        Ok(_) => check.violations.clone(),
    };
    let required: Vec<_> = check.corrections.iter().filter(|c| c.required).collect();
    let violations = given
        .into_iter()
        .map(|violation| {
            let fix = required
                .iter()
                .find(|c| violation.field == format!("address.{}", c.field));
            match (fix, check.verdict) {
                (Some(fix), _) => FieldViolation::new(
                    violation.field,
                    format!(
                        "{}; did you mean {:?}? ValidateEmergencyAddress answers the \
                         corrected address",
                        violation.description, fix.corrected
                    ),
                ),
                _ => violation,
            }
        })
        .collect();
    let mut error = Error::invalid_fields(Reason::InvalidAddress, violations);
    if check.verdict == AddressVerdict::Corrected {
        for fix in required {
            error = error.with(corrected_key(fix.field), &fix.corrected);
        }
    }
    error
}

/// The ErrorInfo metadata key of a corrected address part.
fn corrected_key(field: &str) -> &'static str {
    match field {
        "state_or_province" => "correctedStateOrProvince",
        "postal_code" => "correctedPostalCode",
        "street_suffix" => "correctedStreetSuffix",
        "country" => "correctedCountry",
        _ => "correctedField",
    }
}

/// The error for a location id that names nothing in the caller's tenant.
pub(crate) fn location_not_found(id: &str) -> Error {
    Error::new(
        Reason::EmergencyLocationNotFound,
        format!("no emergency location {id} in this tenant"),
    )
    .with("emergencyLocationId", id)
}

/// What UpdateEmergencyLocation asks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocationUpdate {
    /// The number.
    pub number: E164,
    /// The location to register, or `None` to clear it.
    pub emergency_location_id: Option<String>,
    /// The number's version as the caller last read it.
    pub etag: Option<i64>,
}

impl Service {
    /// Sets, changes or clears the emergency location of a number, assigned or not.
    pub async fn update_number_location(
        &self,
        caller: &Caller,
        update: &LocationUpdate,
        options: &RequestOptions,
    ) -> Result<PhoneNumber> {
        const METHOD: &str = "UpdateEmergencyLocation";
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        // A provider in another process is asked before the write transaction, outside any
        // lock; one in this process, inside it.
        let ask_first = self.providers.has_remote();
        if ask_first {
            let checked = async {
                let mut read = self.read().await?;
                let (number, _) = self
                    .plan_location_update(&mut read, tenant, update, false)
                    .await?;
                self.check_location_with_provider(tenant, &number, update)
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
        let (number, location) = self
            .plan_location_update(&mut tx, tenant, update, true)
            .await?;
        if !ask_first {
            self.check_location_with_provider(tenant, &number, update)
                .await?;
        }
        let new_id = location.as_ref().map(|l| l.id.clone());
        if new_id == number.emergency_location_id {
            // Nothing to change: answer the number as it is.
            return self
                .finish(tx, &actor, options, Changes::default(), number)
                .await;
        }
        let mut changes = Changes::default();
        let mut operation = self.open_operation(options, AuditAction::UpdateEmergencyLocation);
        let mut updated = PhoneNumber {
            emergency_location_id: new_id,
            ..number.clone()
        };
        let target = number
            .assignment
            .as_ref()
            .map(|a| a.target_id.clone())
            .unwrap_or_default();
        updated.activation_state = self
            .provision(
                operation.as_mut(),
                tenant,
                &updated,
                ProvisioningAction::UpdateLocation,
                &target,
                location.as_ref(),
                number.emergency_location_id.clone(),
            )
            .await?;
        if let Some(operation) = &operation {
            updated.operation_id = Some(operation.id.clone());
        }
        let updated = updated.changed(self.now());
        changes.numbers.push(updated.clone());
        changes.audit.push(self.audit(
            &actor,
            options,
            AuditAction::UpdateEmergencyLocation,
            Some(updated.number.canonical()),
            updated.assignment.as_ref().map(|a| a.target_id.clone()),
            Some(number_snapshot(&number)),
            Some(number_snapshot(&updated)),
        ));
        self.close_operation(operation, &actor, options, &mut changes);
        self.finish(tx, &actor, options, changes, updated).await
    }

    /// Asks the number's provider whether it agrees to the location update.
    async fn check_location_with_provider(
        &self,
        tenant: &TenantId,
        number: &PhoneNumber,
        update: &LocationUpdate,
    ) -> Result<()> {
        self.providers
            .for_number(number)?
            .check_location_update(&LocationCheck {
                tenant_id: tenant.to_owned(),
                phone_number: number.number.canonical(),
                country: number.country().as_str().to_owned(),
                assigned_to: number.assignment.as_ref().map(|a| a.target_kind),
                clears: update.emergency_location_id.is_none(),
                location_update_supported: number.location_update_supported,
            })
            .await
            .map_err(provider_error)
    }

    /// Loads the number (locked when `lock`) and the new location, and checks the etag, the
    /// number's state and the location.
    async fn plan_location_update(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        update: &LocationUpdate,
        lock: bool,
    ) -> Result<(PhoneNumber, Option<EmergencyLocation>)> {
        let canonical = update.number.canonical();
        let found = if lock {
            tx.lock_numbers(tenant, std::slice::from_ref(&canonical))
                .await?
                .pop()
        } else {
            tx.get_number(tenant, &canonical).await?
        };
        let number = found.ok_or_else(|| number_not_found(&update.number))?;
        check_etag(&number, update.etag)?;
        check_not_pending(&number)?;
        let location = match &update.emergency_location_id {
            None => None,
            Some(id) => {
                let location = tx
                    .get_location(tenant, id)
                    .await?
                    .ok_or_else(|| location_not_found(id))?;
                check_emergency_location(&location, &number.number)?;
                Some(location)
            }
        };
        Ok((number, location))
    }
}
