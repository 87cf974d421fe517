//! The entities of the service and the rules that govern them: no I/O, no SQL, no proto types.
//!
//! Values are parsed once at the edge into types that cannot hold bad data (`E164`, `Country`,
//! `Identity`), so the rest of the service never re-checks them.

mod address;
mod assignment;
mod audit;
mod country;
mod emergency_location;
mod notification;
mod operation;
mod operator;
mod phone_number;
mod reconciliation;
mod tag;
mod tenant;
mod user;

pub use address::{AddressCheck, AddressCorrection, AddressVerdict, check_address};
pub use assignment::{
    AssignmentCandidate, LocationChoice, block_for, check_assignment, check_blockable,
    check_emergency_location, check_etag, check_held_by, check_not_pending, check_number_type,
    required_licences,
};
pub use audit::{
    AuditAction, AuditEvent, AuditFilter, consent_snapshot, location_snapshot, number_snapshot,
    user_snapshot,
};
pub use country::Country;
pub use emergency_location::{
    CivicAddress, EmergencyLocation, NewEmergencyLocation, ValidationStatus,
    validate as validate_address,
};
pub use notification::{MAX_EMAIL_DOMAINS, Notification, NotificationSettings, plain_text};
pub use numbers_provider::{
    ActivationMode, AssignmentCategory, Capabilities, Capability, NumberType, TargetKind,
};
pub use operation::{
    BulkProgress, ItemFailure, ItemOutcome, ItemResult, Job, Operation, OperationFilter,
    OperationState, OperationStep, ProvisioningAction, backoff,
};
pub use operator::{Operator, OperatorConsent};
pub use phone_number::{
    ActivationState, Assignment, AssignmentStatus, Block, BlockState, CountryReadiness, E164,
    NumberFilter, PhoneNumber, ReadinessProblem,
};
pub use reconciliation::{
    Drift, DriftKind, Reconciliation, ReconciliationState, ReconciliationTrigger,
    carrier_state_name, carrier_state_named, compare as compare_with_carrier,
};
pub use tag::{MAX_TAG_CHARS, MAX_TAGS_PER_NUMBER, Tag, TagCount};
pub use tenant::{MAX_BLOCK_DAYS, TenantConfiguration};
pub use user::{Identity, License, Licenses, User, UserFilter, UserUpsert};

/// The id of a tenant, as named by the caller's token.
pub type TenantId = str;

/// The longest tenant id.
pub const MAX_TENANT_ID_CHARS: usize = 128;

/// Whether `id` can name a tenant: 1 to 128 ASCII letters, digits, `-`, `_` and `.` (Microsoft
/// Entra ID's tenant ids are GUIDs). Anything else is refused where a tenant id comes in, so no
/// tenant can be named like the workers' scope of every tenant (`*`) in the database.
pub fn is_tenant_id(id: &str) -> bool {
    (1..=MAX_TENANT_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
