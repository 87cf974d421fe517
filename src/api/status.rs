//! The one place a service [`Error`] becomes a gRPC status: the code its reason fixes, a
//! `google.rpc.ErrorInfo` with the reason (domain `numbers.v1`) and the message's values, and a
//! `google.rpc.BadRequest` listing the bad fields.

use std::collections::HashMap;

use tonic::{Code as GrpcCode, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::error::{Code, Error};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "numbers.v1";

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
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        let mut details =
            ErrorDetails::with_error_info(error.reason().as_str(), ERROR_DOMAIN, metadata);
        for violation in error.violations() {
            details.add_bad_request_violation(&violation.field, &violation.description);
        }
        Status::with_error_details(code, error.message(), details)
    }
}
