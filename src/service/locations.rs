//! Emergency locations.

use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service, now};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, CivicAddress, Country, EmergencyLocation, ValidationStatus, location_snapshot,
    validate_address,
};
use crate::error::{Error, Reason, Result};
use crate::store::LocationCursor;

impl Service {
    /// Validates an address and creates an emergency location for it.
    pub async fn create_location(
        &self,
        caller: &Caller,
        address: &CivicAddress,
        description: &str,
        options: &RequestOptions,
    ) -> Result<EmergencyLocation> {
        let actor = Actor::admin(caller)?;
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
                now(),
            )
            .await?;
        self.audit(
            &mut tx,
            &actor,
            options,
            AuditAction::CreateEmergencyLocation,
            None,
            None,
            None,
            Some(location_snapshot(&created)),
        )
        .await?;
        tracing::info!(tenant = %caller.tenant_id, location = %created.id, "emergency location created");
        self.finish(tx, &actor, options, created).await
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
