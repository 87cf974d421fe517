//! The Operator Connect adapter: one instance per operator declared in configuration.
//!
//! An operator uploads numbers into the tenants that enabled it, and decides, per number,
//! whether tenants may set or change the emergency location. The inventory records that
//! decision; this adapter enforces it, and refuses numbers of countries the operator does not
//! serve. Operators that run their own process are reached through the remote adapter instead.

use async_trait::async_trait;
use numbers_provider::{
    ActivationMode, AssignmentCheck, Descriptor, ErrorKind, LocationCheck, NumberType, Progress,
    Provider, ProviderError, ProviderResult, Provisioning, check_location_lock,
};

/// The reason given for a number of a country the operator does not serve.
pub const COUNTRY_NOT_SERVED: &str = "COUNTRY_NOT_SERVED";

/// How an operator is declared in configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSettings {
    /// Stable id, such as `fabrikam-telecom`.
    pub id: String,
    /// The operator's name.
    pub display_name: String,
    /// ISO 3166-1 alpha-2 countries served.
    pub countries: Vec<String>,
    /// Whether tenants may change the emergency location of its numbers, by default.
    pub tenant_location_update_allowed: bool,
}

/// One Operator Connect operator, integrated in-process: its numbers are provisioned when the
/// operator uploads them, so assignments take effect at once.
#[derive(Debug)]
pub struct OperatorConnect {
    descriptor: Descriptor,
}

impl OperatorConnect {
    /// The adapter of the operator `settings` declares.
    pub fn new(settings: OperatorSettings) -> Self {
        Self {
            descriptor: Descriptor {
                id: settings.id,
                display_name: settings.display_name,
                number_type: NumberType::OperatorConnect,
                countries: settings.countries,
                tenant_location_update_allowed: settings.tenant_location_update_allowed,
                activation: ActivationMode::Synchronous,
                base_and_extensions_exclusive: false,
                catalogue: false,
                lists_numbers: false,
            },
        }
    }

    fn check_country(&self, phone_number: &str, country: &str) -> ProviderResult<()> {
        if self.descriptor.serves(country) {
            return Ok(());
        }
        Err(ProviderError::refused(
            self.descriptor.id.clone(),
            COUNTRY_NOT_SERVED,
            format!(
                "{} does not serve {country}, the country of {phone_number}",
                self.descriptor.display_name
            ),
        ))
    }
}

#[async_trait]
impl Provider for OperatorConnect {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        self.check_country(&check.phone_number, &check.country)?;
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
            self.descriptor.id.clone(),
            ErrorKind::NotFound,
            format!("no pending change {ticket}"),
        ))
    }
}
