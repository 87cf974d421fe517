//! The one error type of the domain and service layers.
//!
//! Every failure a client can see has a [`Reason`]: an UPPER_SNAKE code that becomes the
//! `ErrorInfo.reason` of the gRPC status, and that fixes the status code. The message is written
//! for an administrator and names the things involved (the number, the user, the two countries);
//! every value in the message is also in the metadata, so programs need not parse text.
//! `api::status` turns an [`Error`] into a `tonic::Status`; nothing else does.

use std::fmt;
use std::time::Duration;

/// The class of a failure; each maps to one gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The request is malformed (INVALID_ARGUMENT).
    InvalidArgument,
    /// A named record does not exist in the caller's tenant (NOT_FOUND).
    NotFound,
    /// The record to create exists already (ALREADY_EXISTS).
    AlreadyExists,
    /// A rule of the domain refuses the request as things stand (FAILED_PRECONDITION).
    FailedPrecondition,
    /// A concurrent change got there first, or an etag is stale (ABORTED).
    Aborted,
    /// The caller may not do this (PERMISSION_DENIED).
    PermissionDenied,
    /// The caller did not prove who it is (UNAUTHENTICATED).
    Unauthenticated,
    /// A limit of the caller's is used up for now, or for good (RESOURCE_EXHAUSTED).
    ResourceExhausted,
    /// A dependency is down; retrying later may help (UNAVAILABLE).
    Unavailable,
    /// A bug or an unexpected fault (INTERNAL).
    Internal,
}

macro_rules! reasons {
    ($($(#[$meta:meta])* $variant:ident = $name:literal => $code:ident,)+) => {
        /// Why a request failed, as clients see it in `ErrorInfo.reason`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$meta])* $variant,)+
        }

        impl Reason {
            /// Every reason, for documentation and tests.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The UPPER_SNAKE spelling clients see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)+
                }
            }

            /// The status code this reason is always reported with.
            pub const fn code(self) -> Code {
                match self {
                    $(Reason::$variant => Code::$code,)+
                }
            }
        }
    };
}

reasons! {
    /// A field is missing or malformed.
    InvalidArgument = "INVALID_ARGUMENT" => InvalidArgument,
    /// A phone number cannot be parsed as an E.164 number.
    InvalidPhoneNumber = "INVALID_PHONE_NUMBER" => InvalidArgument,
    /// A civic address failed validation.
    InvalidAddress = "INVALID_ADDRESS" => InvalidArgument,
    /// A page token is malformed or belongs to a different query.
    InvalidPageToken = "INVALID_PAGE_TOKEN" => InvalidArgument,
    /// No user with that id, user principal name or SIP address in the tenant.
    UserNotFound = "USER_NOT_FOUND" => NotFound,
    /// No emergency location with that id in the tenant.
    EmergencyLocationNotFound = "EMERGENCY_LOCATION_NOT_FOUND" => NotFound,
    /// No such number in the tenant's inventory.
    NumberNotFound = "NUMBER_NOT_FOUND" => NotFound,
    /// No operation with that id in the tenant.
    OperationNotFound = "OPERATION_NOT_FOUND" => NotFound,
    /// No operator with that id is configured.
    OperatorNotFound = "OPERATOR_NOT_FOUND" => NotFound,
    /// The user principal name belongs to another user.
    UserPrincipalNameTaken = "USER_PRINCIPAL_NAME_TAKEN" => AlreadyExists,
    /// The number is in an inventory already (this tenant's, or another's).
    NumberAlreadyInInventory = "NUMBER_ALREADY_IN_INVENTORY" => AlreadyExists,
    /// The request id was used before for a different request.
    RequestIdReused = "REQUEST_ID_REUSED" => FailedPrecondition,
    /// The number is of another type than the request says.
    NumberTypeMismatch = "NUMBER_TYPE_MISMATCH" => FailedPrecondition,
    /// The user lacks a licence the number needs.
    LicenseRequired = "LICENSE_REQUIRED" => FailedPrecondition,
    /// The user has a number synchronised from the on-premises directory.
    OnPremisesNumberConflict = "ON_PREMISES_NUMBER_CONFLICT" => FailedPrecondition,
    /// The number may not be assigned to this kind of target.
    CapabilityMismatch = "CAPABILITY_MISMATCH" => FailedPrecondition,
    /// The number is assigned to someone.
    NumberAlreadyAssigned = "NUMBER_ALREADY_ASSIGNED" => FailedPrecondition,
    /// The number is blocked from assignment.
    NumberBlocked = "NUMBER_BLOCKED" => FailedPrecondition,
    /// The user has a primary number already.
    UserAlreadyHasPrimaryNumber = "USER_ALREADY_HAS_PRIMARY_NUMBER" => FailedPrecondition,
    /// The user has no primary number to change.
    NoPrimaryNumber = "NO_PRIMARY_NUMBER" => FailedPrecondition,
    /// The number is not assigned to the user named.
    NumberNotAssignedToUser = "NUMBER_NOT_ASSIGNED_TO_USER" => FailedPrecondition,
    /// The number's country is not the user's usage location.
    UsageLocationMismatch = "USAGE_LOCATION_MISMATCH" => FailedPrecondition,
    /// The emergency location is not validated.
    EmergencyLocationNotValidated = "EMERGENCY_LOCATION_NOT_VALIDATED" => FailedPrecondition,
    /// The emergency location is in another country than the number.
    LocationCountryMismatch = "LOCATION_COUNTRY_MISMATCH" => FailedPrecondition,
    /// The provider does not let the tenant set or change the number's emergency location.
    EmergencyLocationLocked = "EMERGENCY_LOCATION_LOCKED" => FailedPrecondition,
    /// The provider needs the number to have an emergency location.
    EmergencyLocationRequired = "EMERGENCY_LOCATION_REQUIRED" => FailedPrecondition,
    /// The operator does not serve the number's country.
    CountryNotServed = "COUNTRY_NOT_SERVED" => FailedPrecondition,
    /// The tenant has not enabled the operator for the number's country.
    CountryNotEnabled = "COUNTRY_NOT_ENABLED" => FailedPrecondition,
    /// The number has a change waiting for its provider.
    ActivationPending = "ACTIVATION_PENDING" => FailedPrecondition,
    /// The number is assigned, and the request needs it unassigned.
    NumberAssigned = "NUMBER_ASSIGNED" => FailedPrecondition,
    /// Users of the tenant hold numbers of the operator.
    OperatorNumbersAssigned = "OPERATOR_NUMBERS_ASSIGNED" => FailedPrecondition,
    /// Numbers (or changes waiting for a provider) use the emergency location.
    EmergencyLocationInUse = "EMERGENCY_LOCATION_IN_USE" => FailedPrecondition,
    /// The operation is not one that can be retried (not FAILED, a bulk call, or its numbers
    /// changed since).
    OperationNotRetryable = "OPERATION_NOT_RETRYABLE" => FailedPrecondition,
    /// The operation is not one that can be cancelled (ended, a bulk call, or in a
    /// provider's hands).
    OperationNotCancellable = "OPERATION_NOT_CANCELLABLE" => FailedPrecondition,
    /// A number would hold more tags than it may.
    TooManyTags = "TOO_MANY_TAGS" => FailedPrecondition,
    /// Fewer numbers than asked for match in the catalogue.
    OutOfStock = "OUT_OF_STOCK" => FailedPrecondition,
    /// The provider refused for a reason of its own (see the metadata).
    ProviderRefused = "PROVIDER_REFUSED" => FailedPrecondition,
    /// The provider failed, and retrying will not help.
    ProviderFailed = "PROVIDER_FAILED" => FailedPrecondition,
    /// No credentials, or credentials that do not verify.
    Unauthenticated = "UNAUTHENTICATED" => Unauthenticated,
    /// Mutual TLS is on and the caller presented no client certificate.
    ClientCertificateRequired = "CLIENT_CERTIFICATE_REQUIRED" => Unauthenticated,
    /// The caller's role does not allow the request.
    PermissionDenied = "PERMISSION_DENIED" => PermissionDenied,
    /// The tenant has not enabled the operator.
    OperatorNotEnabled = "OPERATOR_NOT_ENABLED" => PermissionDenied,
    /// A concurrent change to the same records won; retry.
    ConcurrentChange = "CONCURRENT_CHANGE" => Aborted,
    /// The etag sent is not the record's current one.
    EtagMismatch = "ETAG_MISMATCH" => Aborted,
    /// The database cannot be reached; retry later.
    StoreUnavailable = "STORE_UNAVAILABLE" => Unavailable,
    /// The provider cannot be reached; retry later.
    ProviderUnavailable = "PROVIDER_UNAVAILABLE" => Unavailable,
    /// The tenant (or operator) sent more requests than its rate allows; retry after the delay
    /// the RetryInfo gives.
    RateLimited = "RATE_LIMITED" => ResourceExhausted,
    /// The tenant holds as many numbers of the kind as its quota allows.
    QuotaExceeded = "QUOTA_EXCEEDED" => ResourceExhausted,
    /// The request is larger than the server reads.
    MessageTooLarge = "MESSAGE_TOO_LARGE" => ResourceExhausted,
    /// The identity provider's signing keys cannot be fetched to verify a token; retry later.
    IdentityProviderUnavailable = "IDENTITY_PROVIDER_UNAVAILABLE" => Unavailable,
    /// An unexpected fault; the details are in the server log.
    Internal = "INTERNAL" => Internal,
}

/// A bad field: which one, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path as in the request, such as `emergency_location.address.postal_code`.
    pub field: String,
    /// What is wrong, for a person.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation, with its field path under `parent`.
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// A failure of a request, as the domain and the service layer report it.
#[derive(Debug)]
pub struct Error {
    reason: Reason,
    message: String,
    metadata: Vec<(&'static str, String)>,
    violations: Vec<FieldViolation>,
    retry_after: Option<Duration>,
    source: Option<anyhow::Error>,
}

/// The result type of the domain and service layers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure for `reason`, explained by `message`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            metadata: Vec::new(),
            violations: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// Says when a retry may succeed.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// When a retry may succeed, if the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Adds a metadata entry; keys are lowerCamel, as AIP-193 wants.
    pub fn with(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.metadata.push((key, value.to_string()));
        self
    }

    /// Adds a field violation.
    pub fn with_violation(mut self, violation: FieldViolation) -> Self {
        self.violations.push(violation);
        self
    }

    /// An INVALID_ARGUMENT for one bad field.
    pub fn invalid_field(
        reason: Reason,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        let violation = FieldViolation::new(field, description);
        Self::new(
            reason,
            format!("{}: {}", violation.field, violation.description),
        )
        .with_violation(violation)
    }

    /// An INVALID_ARGUMENT listing several bad fields.
    pub fn invalid_fields(reason: Reason, violations: Vec<FieldViolation>) -> Self {
        let mut error = Self::new(reason, describe(&violations));
        error.violations = violations;
        error
    }

    /// An unexpected fault. The cause goes to the log; the client sees a generic message.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(Reason::Internal, "internal error; see the server log");
        error.source = Some(source.into());
        error
    }

    /// The same error with every field violation's path put under `parent`.
    pub fn under(mut self, parent: &str) -> Self {
        self.violations = self
            .violations
            .into_iter()
            .map(|v| v.under(parent))
            .collect();
        if !self.violations.is_empty() {
            self.message = describe(&self.violations);
        }
        self
    }

    /// Why the request failed.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The status code class.
    pub fn code(&self) -> Code {
        self.reason.code()
    }

    /// The message for the administrator.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The values named in the message, by key.
    pub fn metadata(&self) -> &[(&'static str, String)] {
        &self.metadata
    }

    /// The bad fields, for INVALID_ARGUMENT.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// The underlying fault of an internal error.
    pub fn source(&self) -> Option<&anyhow::Error> {
        self.source.as_ref()
    }
}

/// The message of an INVALID_ARGUMENT: every violation, `field: problem`, separated by `; `.
fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)?;
        if let Some(source) = &self.source {
            write!(f, " ({source:#})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_upper_snake() {
        assert_eq!(Reason::InvalidPhoneNumber.as_str(), "INVALID_PHONE_NUMBER");
        assert_eq!(Reason::UserNotFound.as_str(), "USER_NOT_FOUND");
        for reason in Reason::ALL {
            let name = reason.as_str();
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
            assert!(name.len() <= 63, "{name}");
        }
    }

    #[test]
    fn violations_move_under_their_parent() {
        let error = Error::invalid_field(Reason::InvalidAddress, "postal_code", "is required")
            .under("emergency_location.address");
        assert_eq!(
            error.violations()[0].field,
            "emergency_location.address.postal_code"
        );
        assert_eq!(
            error.message(),
            "emergency_location.address.postal_code: is required"
        );
    }
}
