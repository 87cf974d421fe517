//! The one mapping between a [`ProviderError`] and a gRPC status, both ways, as
//! `adapter.proto` documents it: the client reads a carrier's statuses with
//! [`error_from_status`], a Rust carrier (and the simulator) answers with [`status_from_error`].
//!
//! What matters most is the line between refusals and outages: a refusal
//! (FAILED_PRECONDITION) must never be retried, a transient fault (UNAVAILABLE and friends)
//! always may be, and anything the protocol does not name is a plain failure.

use std::collections::HashMap;

use numbers_provider::{ErrorKind, ProviderError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// The `ErrorInfo.reason` that tells "out of stock" from "overloaded" in a RESOURCE_EXHAUSTED.
pub const OUT_OF_STOCK: &str = "OUT_OF_STOCK";

/// The reason read from a FAILED_PRECONDITION that carries no `ErrorInfo`.
const UNKNOWN_REFUSAL: &str = "FAILED_PRECONDITION";

/// The status a carrier answers for `error`: FAILED_PRECONDITION with an `ErrorInfo` (domain:
/// the provider id) for a refusal, NOT_FOUND, RESOURCE_EXHAUSTED with `OUT_OF_STOCK`,
/// UNIMPLEMENTED, UNAVAILABLE with a `RetryInfo` when the error has a hint, INTERNAL.
pub fn status_from_error(error: &ProviderError) -> Status {
    let message = error.message.clone();
    let refusal = |code, reason: &str| {
        let info = ErrorDetails::with_error_info(reason, &error.provider, HashMap::new());
        Status::with_error_details(code, message.clone(), info)
    };
    match &error.kind {
        ErrorKind::Refused { reason } => refusal(Code::FailedPrecondition, reason),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::OutOfStock => refusal(Code::ResourceExhausted, OUT_OF_STOCK),
        ErrorKind::Unsupported => Status::unimplemented(message),
        ErrorKind::Unavailable {
            retry_after: Some(delay),
        } => Status::with_error_details(
            Code::Unavailable,
            message,
            ErrorDetails::with_retry_info(Some(*delay)),
        ),
        ErrorKind::Unavailable { retry_after: None } => Status::unavailable(message),
        ErrorKind::Failed => Status::internal(message),
    }
}

/// The error of `provider` (the descriptor id) that a carrier's `status` means.
pub fn error_from_status(provider: &str, status: &Status) -> ProviderError {
    let details = status.get_error_details();
    let reason = details
        .error_info()
        .map(|info| info.reason.as_str())
        .filter(|reason| !reason.is_empty());
    let kind = match status.code() {
        Code::FailedPrecondition => ErrorKind::Refused {
            reason: reason.unwrap_or(UNKNOWN_REFUSAL).to_owned(),
        },
        Code::NotFound => ErrorKind::NotFound,
        Code::ResourceExhausted if reason == Some(OUT_OF_STOCK) => ErrorKind::OutOfStock,
        Code::Unimplemented => ErrorKind::Unsupported,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            ErrorKind::Unavailable {
                retry_after: details.retry_info().and_then(|info| info.retry_delay),
            }
        }
        _ => ErrorKind::Failed,
    };
    // A refusal's message is written for administrators; a fault's needs its code to make sense.
    let message = match (&kind, status.message()) {
        (_, "") => status.code().description().to_owned(),
        (ErrorKind::Unavailable { .. } | ErrorKind::Failed, text) => {
            format!("{}: {text}", status.code().description())
        }
        (_, text) => text.to_owned(),
    };
    ProviderError::new(provider, kind, message)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ID: &str = "fabrikam-telecom";

    #[test]
    fn every_kind_survives_the_round_trip() {
        for kind in [
            ErrorKind::Refused {
                reason: "EMERGENCY_LOCATION_LOCKED".into(),
            },
            ErrorKind::NotFound,
            ErrorKind::OutOfStock,
            ErrorKind::Unsupported,
            ErrorKind::Unavailable { retry_after: None },
            ErrorKind::Unavailable {
                retry_after: Some(Duration::from_secs(3)),
            },
            ErrorKind::Failed,
        ] {
            let error = ProviderError::new(ID, kind.clone(), "no");
            let back = error_from_status(ID, &status_from_error(&error));
            assert_eq!(back.kind, kind);
            assert_eq!(back.provider, ID);
            assert!(back.message.ends_with("no"), "{}", back.message);
        }
    }

    #[test]
    fn refusals_carry_their_reason_and_the_provider_as_domain() {
        let status = status_from_error(&ProviderError::refused(
            ID,
            "COUNTRY_NOT_SERVED",
            "Fabrikam does not serve FR",
        ));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "Fabrikam does not serve FR");
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "COUNTRY_NOT_SERVED");
        assert_eq!(info.domain, ID);
        let error = error_from_status(ID, &status);
        assert!(!error.is_retryable());
        assert_eq!(error.message, "Fabrikam does not serve FR");
    }

    #[test]
    fn transient_codes_are_retryable_with_their_hint() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
        ] {
            let status = Status::with_error_details(
                code,
                "busy",
                ErrorDetails::with_retry_info(Some(Duration::from_millis(250))),
            );
            let error = error_from_status(ID, &status);
            assert!(error.is_retryable(), "{code:?}");
            assert_eq!(
                error.kind,
                ErrorKind::Unavailable {
                    retry_after: Some(Duration::from_millis(250))
                }
            );
            let bare = error_from_status(ID, &Status::new(code, "busy"));
            assert_eq!(bare.kind, ErrorKind::Unavailable { retry_after: None });
        }
    }

    #[test]
    fn a_refusal_without_error_info_is_still_a_refusal() {
        let error = error_from_status(ID, &Status::failed_precondition("no"));
        assert_eq!(
            error.kind,
            ErrorKind::Refused {
                reason: UNKNOWN_REFUSAL.into()
            }
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn codes_the_protocol_does_not_name_are_failures() {
        for code in [
            Code::Unknown,
            Code::Internal,
            Code::InvalidArgument,
            Code::Cancelled,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::AlreadyExists,
            Code::DataLoss,
            Code::OutOfRange,
        ] {
            let error = error_from_status(ID, &Status::new(code, ""));
            assert_eq!(error.kind, ErrorKind::Failed, "{code:?}");
            assert!(!error.message.is_empty());
        }
    }
}
