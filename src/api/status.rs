//! The one place a service [`Error`] becomes a gRPC status: the code its reason fixes, a
//! `google.rpc.ErrorInfo` with the reason (domain `numbers.v1`) and the message's values, and a
//! `google.rpc.BadRequest` listing the bad fields.

use std::collections::HashMap;

use tonic::{Code as GrpcCode, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::error::{Code, Error};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "numbers.v1";

/// Longest metadata value or field description sent back. Statuses travel in HTTP/2
/// trailers, which clients cap (often at 16 KiB); a request echoing a huge input must still
/// get its error.
const MAX_VALUE_CHARS: usize = 256;
/// Longest message sent back.
const MAX_MESSAGE_CHARS: usize = 2048;

/// `text`, cut to `max` characters with an ellipsis when longer.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match error.code() {
            Code::InvalidArgument => GrpcCode::InvalidArgument,
            Code::NotFound => GrpcCode::NotFound,
            Code::AlreadyExists => GrpcCode::AlreadyExists,
            Code::FailedPrecondition => GrpcCode::FailedPrecondition,
            Code::Aborted => GrpcCode::Aborted,
            Code::PermissionDenied => GrpcCode::PermissionDenied,
            Code::Unauthenticated => GrpcCode::Unauthenticated,
            Code::ResourceExhausted => GrpcCode::ResourceExhausted,
            Code::Unavailable => GrpcCode::Unavailable,
            Code::Internal => GrpcCode::Internal,
        };
        if let Some(source) = error.source() {
            tracing::error!(
                reason = error.reason().as_str(),
                error = format!("{source:#}"),
                "internal error"
            );
        }
        let metadata: HashMap<String, String> = error
            .metadata()
            .iter()
            .map(|(key, value)| ((*key).to_owned(), bounded(value, MAX_VALUE_CHARS)))
            .collect();
        let mut details =
            ErrorDetails::with_error_info(error.reason().as_str(), ERROR_DOMAIN, metadata);
        if let Some(delay) = error.retry_after() {
            details.set_retry_info(Some(delay));
        }
        for violation in error.violations() {
            details.add_bad_request_violation(
                &violation.field,
                bounded(&violation.description, MAX_VALUE_CHARS),
            );
        }
        Status::with_error_details(code, bounded(error.message(), MAX_MESSAGE_CHARS), details)
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

    use super::*;
    use crate::error::Reason;

    #[test]
    fn huge_values_are_cut_to_fit_in_trailers() {
        let huge = "é".repeat(10_000);
        let status: Status =
            Error::invalid_field(Reason::InvalidPhoneNumber, "phone_number", &huge)
                .with("phoneNumber", &huge)
                .into();
        assert!(status.message().chars().count() <= MAX_MESSAGE_CHARS + 3);
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "INVALID_PHONE_NUMBER");
        assert_eq!(
            info.metadata["phoneNumber"].chars().count(),
            MAX_VALUE_CHARS + 3
        );
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "phone_number");
        assert_eq!(violation.description.chars().count(), MAX_VALUE_CHARS + 3);
    }
}
