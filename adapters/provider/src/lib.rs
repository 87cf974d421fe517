//! The provider adapter trait of the numbers service, and the types it speaks.
//!
//! Every telephone number comes from a provider: the Calling Plan catalogue, an Operator Connect
//! operator, or the customer's own carrier through Direct Routing. The service never talks to a
//! provider directly; it talks to a [`Provider`], chosen from the number's inventory record. This
//! crate holds that trait and nothing else, so an adapter depends on it and never on the service.

#[cfg(feature = "testkit")]
pub mod testkit;
mod types;

#[doc(hidden)]
pub use serde;

pub use types::{
    ActivationMode, AssignmentCategory, Capabilities, Capability, NumberType, ParseEnumError,
    TargetKind,
};

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// What a provider is and what it allows, declared once by the adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Stable identifier: the operator id for Operator Connect, `calling-plan`, `direct-routing`.
    pub id: String,
    /// Name shown to administrators.
    pub display_name: String,
    /// The kind of numbers this provider manages.
    pub number_type: NumberType,
    /// ISO 3166-1 alpha-2 codes of the countries served; empty means any country.
    pub countries: Vec<String>,
    /// Whether tenant administrators may set or change the emergency location of its numbers
    /// (a default; Operator Connect operators may override it per number at upload).
    pub tenant_location_update_allowed: bool,
    /// Whether [`Provider::activate`] and friends finish at once or may answer "pending".
    pub activation: ActivationMode,
    /// Whether a base number and its `;ext=` extensions exclude each other: when true, a base
    /// number cannot be assigned while one of its extensions is held by another target, nor
    /// the other way round. Extensions of one base are always different numbers.
    pub base_and_extensions_exclusive: bool,
    /// Whether the provider sells numbers: [`Provider::search`], [`Provider::acquire`] and
    /// [`Provider::release`] work.
    pub catalogue: bool,
    /// Whether the provider can tell which numbers it holds for a tenant and how
    /// ([`Provider::list_numbers`]), so reconciliation can compare them with the inventory.
    pub lists_numbers: bool,
}

impl Descriptor {
    /// Whether the provider serves numbers of `country` (ISO 3166-1 alpha-2).
    pub fn serves(&self, country: &str) -> bool {
        self.countries.is_empty() || self.countries.iter().any(|c| c == country)
    }
}

/// The civic address of an emergency location, as a provider needs it for provisioning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmergencyAddress {
    /// The service's id of the emergency location.
    pub location_id: String,
    /// ISO 3166-1 alpha-2 country of the address.
    pub country: String,
    /// One-line rendering of the address, for carriers that take free text.
    pub formatted: String,
}

/// Everything a provider may look at before an assignment is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentCheck {
    /// The tenant the number belongs to.
    pub tenant_id: String,
    /// The number in E.164 with `+`, with `;ext=` for Direct Routing extensions.
    pub phone_number: String,
    /// The number's country (ISO 3166-1 alpha-2).
    pub country: String,
    /// The kind of target the number is being assigned to.
    pub target_kind: TargetKind,
    /// The target's usage location (ISO 3166-1 alpha-2).
    pub usage_location: String,
    /// Primary, private or alternate.
    pub category: AssignmentCategory,
    /// Whether the request sets or changes the number's emergency location.
    pub changes_emergency_location: bool,
    /// Whether the number will have an emergency location after the assignment.
    pub has_emergency_location: bool,
    /// Whether this number lets the tenant change its emergency location (from the inventory).
    pub location_update_supported: bool,
}

/// Everything a provider may look at before a number's emergency location changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationCheck {
    /// The tenant the number belongs to.
    pub tenant_id: String,
    /// The number in E.164 with `+` (and `;ext=` where it has one).
    pub phone_number: String,
    /// The number's country (ISO 3166-1 alpha-2).
    pub country: String,
    /// Whether the number is assigned, and to what kind of target.
    pub assigned_to: Option<TargetKind>,
    /// Whether the request removes the location rather than setting one.
    pub clears: bool,
    /// Whether this number lets the tenant change its emergency location (from the inventory).
    pub location_update_supported: bool,
}

/// A change to provision on the carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioning {
    /// The tenant the number belongs to.
    pub tenant_id: String,
    /// The number in E.164 with `+` (and `;ext=` where it has one).
    pub phone_number: String,
    /// The target the number is (or was) assigned to: the service's user id.
    pub target_id: String,
    /// The emergency address to register with the number, if any.
    pub emergency_address: Option<EmergencyAddress>,
    /// Identifies this change across retries, so a provider can make it idempotent.
    pub idempotency_key: String,
}

/// How a provisioning call ended, when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The carrier has made the change.
    Done,
    /// The carrier accepted the change and will finish it later; ask again with
    /// [`Provider::poll`] and this ticket, not before `retry_after`.
    Pending {
        /// Opaque to the service; handed back to [`Provider::poll`].
        ticket: String,
        /// The earliest moment a poll can tell something new.
        retry_after: Duration,
    },
}

/// Search criteria for numbers a provider can sell (the Calling Plan catalogue).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumberQuery {
    /// ISO 3166-1 alpha-2 country; required.
    pub country: String,
    /// National area code, for example `425`.
    pub area_code: Option<String>,
    /// City name, case-insensitive.
    pub city: Option<String>,
    /// E.164 prefix with `+`, for example `+1425555`.
    pub prefix: Option<String>,
    /// The capability the numbers must have (user numbers or service numbers).
    pub capability: Option<Capability>,
}

/// A number a provider offers, with the facts it knows about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedNumber {
    /// E.164 with `+`.
    pub phone_number: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The city the number belongs to, when the provider knows it.
    pub city: String,
    /// What the number may be assigned to.
    pub capabilities: Capabilities,
}

/// Whether the carrier routes a number's calls, as the carrier itself tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarrierState {
    /// Provisioned: calls reach the target.
    Active,
    /// A change was accepted and is not finished yet.
    Pending,
    /// Held for the tenant, provisioned for no one.
    Inactive,
}

/// A number as the carrier holds it for a tenant: what reconciliation compares with the
/// inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierNumber {
    /// E.164 with `+` (and `;ext=` where it has one).
    pub phone_number: String,
    /// Whether the carrier routes its calls.
    pub state: CarrierState,
    /// The service's id of the user the carrier has it enabled for; `None` when no one.
    pub target_id: Option<String>,
    /// The service's id of the emergency location the carrier has registered; `None` when none.
    pub emergency_location_id: Option<String>,
}

/// One page of the numbers a carrier holds for a tenant, in number order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CarrierPage {
    /// The numbers, each after the previous page's last.
    pub numbers: Vec<CarrierNumber>,
    /// The last number of this page, to pass as `after` for the next; `None` at the end.
    pub next_after: Option<String>,
}

/// Why a provider refused or failed, and whether trying again can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct ProviderError {
    /// The provider that answered.
    pub provider: String,
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// A message an administrator understands.
    pub message: String,
}

/// The kinds of [`ProviderError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The provider's own rules refuse the request; `reason` is an UPPER_SNAKE code such as
    /// `EMERGENCY_LOCATION_LOCKED`. Retrying the same request cannot help.
    Refused {
        /// UPPER_SNAKE reason, surfaced to clients as the `ErrorInfo.reason`.
        reason: String,
    },
    /// The provider does not know the number (or the ticket).
    NotFound,
    /// Not enough numbers match the query.
    OutOfStock,
    /// The provider does not support the operation.
    Unsupported,
    /// The provider is unreachable, overloaded or timed out: a retry may help.
    Unavailable {
        /// The provider's hint for when to try again.
        retry_after: Option<Duration>,
    },
    /// The provider failed for a reason that a retry will not fix.
    Failed,
}

impl ProviderError {
    /// Builds an error of `kind` from `provider`.
    pub fn new(provider: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            kind,
            message: message.into(),
        }
    }

    /// A refusal by the provider's own rules, with an UPPER_SNAKE reason.
    pub fn refused(
        provider: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            provider,
            ErrorKind::Refused {
                reason: reason.into(),
            },
            message,
        )
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable { .. })
    }
}

/// The result type of provider calls.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// A source of telephone numbers: the seam between the service and a carrier.
///
/// Implementations must be cheap to call concurrently. Provisioning calls carry an idempotency
/// key: the service may repeat a call after a crash or a timeout, and the provider must then
/// answer as it did the first time rather than provision twice.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// What this provider is and what it allows.
    fn descriptor(&self) -> &Descriptor;

    /// The provider's own rules for an assignment, checked before anything is written.
    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()>;

    /// The provider's own rules for setting, changing or clearing a number's emergency
    /// location, checked before anything is written.
    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()>;

    /// Provisions an assigned number on the carrier.
    async fn activate(&self, change: &Provisioning) -> ProviderResult<Progress>;

    /// Deprovisions a number that was unassigned.
    async fn deactivate(&self, change: &Provisioning) -> ProviderResult<Progress>;

    /// Registers a new emergency address (or none) for a number.
    async fn update_location(&self, change: &Provisioning) -> ProviderResult<Progress>;

    /// Asks how a pending change is going.
    async fn poll(&self, ticket: &str) -> ProviderResult<Progress>;

    /// Numbers the provider can sell that match `query`, in a stable order, skipping the first
    /// `offset`. Whether a number is still free is the service's to know (it holds every
    /// tenant's inventory); the provider lists its whole stock.
    async fn search(
        &self,
        query: &NumberQuery,
        offset: usize,
        limit: usize,
    ) -> ProviderResult<Vec<OfferedNumber>> {
        let _ = (query, offset, limit);
        Err(self.unsupported("searching numbers"))
    }

    /// Takes numbers out of the provider's stock for a tenant.
    async fn acquire(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        let _ = (tenant_id, numbers);
        Err(self.unsupported("acquiring numbers"))
    }

    /// Gives numbers back to the provider's stock.
    async fn release(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        let _ = (tenant_id, numbers);
        Err(self.unsupported("releasing numbers"))
    }

    /// The numbers the carrier holds for `tenant_id`, in number order: up to `limit` of them,
    /// after the number `after` (from the start when `None`). Only providers whose descriptor
    /// says [`Descriptor::lists_numbers`] offer it.
    async fn list_numbers(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ProviderResult<CarrierPage> {
        let _ = (tenant_id, after, limit);
        Err(self.unsupported("listing the numbers it holds"))
    }

    /// The error of an operation this provider does not offer.
    fn unsupported(&self, what: &str) -> ProviderError {
        let descriptor = self.descriptor();
        ProviderError::new(
            descriptor.id.clone(),
            ErrorKind::Unsupported,
            format!("{} does not support {what}", descriptor.display_name),
        )
    }
}

/// The reason a provider gives when the tenant may not set or change a number's emergency
/// location.
pub const EMERGENCY_LOCATION_LOCKED: &str = "EMERGENCY_LOCATION_LOCKED";

/// The rule every provider applies: where the inventory says the tenant may not change a
/// number's emergency location (the operator decided so at upload), a change is refused with
/// [`EMERGENCY_LOCATION_LOCKED`] and a message that sends the administrator to the provider.
pub fn check_location_lock(
    descriptor: &Descriptor,
    phone_number: &str,
    changes_emergency_location: bool,
    location_update_supported: bool,
) -> ProviderResult<()> {
    if changes_emergency_location && !location_update_supported {
        return Err(ProviderError::refused(
            descriptor.id.clone(),
            EMERGENCY_LOCATION_LOCKED,
            format!(
                "{name} does not let tenants set or change the emergency location of \
                 {phone_number}; contact {name} to change it",
                name = descriptor.display_name
            ),
        ));
    }
    Ok(())
}
