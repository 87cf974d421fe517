//! The Direct Routing adapter: numbers of the customer's own carrier, routed through the
//! customer's session border controller.
//!
//! Any valid E.164 number (with an optional `;ext=`) may be used; the service creates it in the
//! inventory on first assignment. There is nothing to provision: the carrier and the SBC are
//! the customer's. The one rule Direct Routing declares is that a base number and its
//! extensions exclude each other (a base number cannot go to one user while its extensions go
//! to others), while extensions of one base are different numbers.

use async_trait::async_trait;
use numbers_provider::{
    ActivationMode, AssignmentCheck, Descriptor, ErrorKind, LocationCheck, NumberType, Progress,
    Provider, ProviderError, ProviderResult, Provisioning, check_location_lock,
};

/// The adapter's id.
pub const ID: &str = "direct-routing";

/// The Direct Routing provider.
#[derive(Debug)]
pub struct DirectRouting {
    descriptor: Descriptor,
}

impl Default for DirectRouting {
    fn default() -> Self {
        Self {
            descriptor: Descriptor {
                id: ID.into(),
                display_name: "Direct Routing".into(),
                number_type: NumberType::DirectRouting,
                countries: Vec::new(),
                tenant_location_update_allowed: true,
                activation: ActivationMode::Synchronous,
                base_and_extensions_exclusive: true,
                catalogue: false,
                lists_numbers: false,
            },
        }
    }
}

#[async_trait]
impl Provider for DirectRouting {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        check_location_lock(
            &self.descriptor,
            &check.phone_number,
            check.changes_emergency_location,
            check.location_update_supported,
        )
    }

    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()> {
        check_location_lock(
            &self.descriptor,
            &check.phone_number,
            true,
            check.location_update_supported,
        )
    }

    async fn activate(&self, _change: &Provisioning) -> ProviderResult<Progress> {
        Ok(Progress::Done)
    }

    async fn deactivate(&self, _change: &Provisioning) -> ProviderResult<Progress> {
        Ok(Progress::Done)
    }

    async fn update_location(&self, _change: &Provisioning) -> ProviderResult<Progress> {
        Ok(Progress::Done)
    }

    async fn poll(&self, ticket: &str) -> ProviderResult<Progress> {
        Err(ProviderError::new(
            ID,
            ErrorKind::NotFound,
            format!("no pending change {ticket}"),
        ))
    }
}
