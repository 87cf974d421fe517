//! The one place a service [`Error`] becomes a gRPC status: the code its reason fixes, a
//! `google.rpc.ErrorInfo` with the reason (domain `numbers.v1`) and the message's values, and a
//! `google.rpc.BadRequest` listing the bad fields.

use std::collections::HashMap;

use tonic::{Code as GrpcCode, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use prost::Message as _;

use crate::domain::ItemFailure;
use crate::error::{Code, Error, Reason};

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

/// The gRPC code a reason is always reported with.
fn grpc_code(code: Code) -> GrpcCode {
    match code {
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
    }
}

/// A status with an `ErrorInfo` of `reason` and `metadata`, a `RetryInfo` when a delay is
/// given, and a `BadRequest` of `violations` (field, description).
fn status<'a>(
    code: GrpcCode,
    reason: &str,
    message: &str,
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
    violations: impl IntoIterator<Item = (&'a str, &'a str)>,
    retry_after: Option<std::time::Duration>,
) -> Status {
    let metadata: HashMap<String, String> = metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), bounded(value, MAX_VALUE_CHARS)))
        .collect();
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Some(delay) = retry_after {
        details.set_retry_info(Some(delay));
    }
    for (field, description) in violations {
        details.add_bad_request_violation(field, bounded(description, MAX_VALUE_CHARS));
    }
    Status::with_error_details(code, bounded(message, MAX_MESSAGE_CHARS), details)
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        if let Some(source) = error.source() {
            tracing::error!(
                reason = error.reason().as_str(),
                error = format!("{source:#}"),
                "internal error"
            );
        }
        status(
            grpc_code(error.code()),
            error.reason().as_str(),
            error.message(),
            error.metadata().iter().map(|(k, v)| (*k, v.as_str())),
            error
                .violations()
                .iter()
                .map(|v| (v.field.as_str(), v.description.as_str())),
            error.retry_after(),
        )
    }
}

/// The `google.rpc.Status` of a failed bulk item: what the single call would have answered.
pub(crate) fn item_status(failure: &ItemFailure) -> tonic_types::pb::Status {
    let code = Reason::ALL
        .iter()
        .find(|r| r.as_str() == failure.reason)
        .map_or(GrpcCode::Internal, |r| grpc_code(r.code()));
    let status = status(
        code,
        &failure.reason,
        &failure.message,
        failure
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        failure
            .violations
            .iter()
            .map(|(f, d)| (f.as_str(), d.as_str())),
        None,
    );
    tonic_types::pb::Status::decode(status.details()).unwrap_or(tonic_types::pb::Status {
        code: code as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    })
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
