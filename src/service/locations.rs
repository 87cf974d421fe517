//! Emergency locations.

use numbers_provider::LocationCheck;

use super::inventory::number_not_found;
use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, CivicAddress, Country, E164, EmergencyLocation, PhoneNumber, ProvisioningAction,
    TenantId, ValidationStatus, check_emergency_location, check_etag, check_not_pending,
    location_snapshot, number_snapshot, validate_address,
};
use crate::error::{Error, Reason, Result};
use crate::routing::provider_error;
use crate::store::{Changes, LocationCursor, Tx};

impl Service {
    /// Validates an address and creates an emergency location for it.
    pub async fn create_location(
        &self,
        caller: &Caller,
        address: &CivicAddress,
        description: &str,
        options: &RequestOptions,
    ) -> Result<EmergencyLocation> {
        let actor = Actor::tenant(caller);
        let location = validate_address(address, description)?;
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

    /// Finds an emergency location.
    pub async fn get_location(&self, caller: &Caller, id: &str) -> Result<EmergencyLocation> {
        let mut tx = self.read().await?;
        tx.get_location(&caller.tenant_id, id)
            .await?
            .ok_or_else(|| location_not_found(id))
    }

    /// Lists emergency locations, optionally in one city and country.
    pub async fn list_locations(
        &self,
        caller: &Caller,
        city: Option<&str>,
        country: Option<Country>,
        page: &PageRequest,
    ) -> Result<Page<EmergencyLocation>> {
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
        Ok(Page::from_overfetch(locations, page.size, |l| {
            LocationCursor::after(l).encode()
        }))
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
