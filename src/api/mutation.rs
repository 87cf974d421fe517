//! The common fields of mutating requests: `request_id` (AIP-155) and `validate_only`
//! (AIP-163), read into the service's [`RequestOptions`].

use prost::Message;

use crate::error::{Error, Reason};
use crate::proto::v1 as pb;
use crate::service::RequestOptions;

/// A mutating request.
pub(crate) trait MutationRequest: Message + Clone {
    /// The client's request id; empty when none.
    fn request_id(&self) -> &str;
    /// Whether the request only validates.
    fn validate_only(&self) -> bool;
    /// Clears both fields, leaving what the request asks for.
    fn clear_options(&mut self);
}

/// Reads the request id and `validate_only`, and fingerprints the rest of the request.
pub(crate) fn request_options<R: MutationRequest>(request: &R) -> Result<RequestOptions, Error> {
    let request_id = request_id(request.request_id())?;
    let mut what = request.clone();
    what.clear_options();
    Ok(RequestOptions {
        request_id,
        fingerprint: what.encode_to_vec(),
        validate_only: request.validate_only(),
    })
}

/// A request id as given: none when empty, else a UUID, lower-cased.
pub(crate) fn request_id(text: &str) -> Result<Option<String>, Error> {
    match text.trim() {
        "" => Ok(None),
        id => {
            uuid::Uuid::try_parse(id).map_err(|_| {
                Error::invalid_field(
                    Reason::InvalidArgument,
                    "request_id",
                    "must be a UUID, like 3f2b8e1c-5d4a-4f6e-9b7a-0c1d2e3f4a5b",
                )
            })?;
            Ok(Some(id.to_ascii_lowercase()))
        }
    }
}

/// Implements [`MutationRequest`] for request messages with `request_id` and `validate_only`.
macro_rules! mutation_request {
    ($($request:ty),+ $(,)?) => {
        $(impl MutationRequest for $request {
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn validate_only(&self) -> bool {
                self.validate_only
            }
            fn clear_options(&mut self) {
                self.request_id.clear();
                self.validate_only = false;
            }
        })+
    };
}

mutation_request!(
    pb::UpsertUserRequest,
    pb::CreateEmergencyLocationRequest,
    pb::AssignPhoneNumberRequest,
    pb::ChangePhoneNumberRequest,
    pb::RemovePhoneNumberRequest,
    pb::UpdateEmergencyLocationRequest,
    pb::AcquirePhoneNumbersRequest,
    pb::ReleasePhoneNumbersRequest,
    pb::EnableOperatorRequest,
    pb::DisableOperatorRequest,
    pb::UpdateNotificationSettingsRequest,
    pb::SetAssignmentBlockRequest,
    pb::RemoveAssignmentBlockRequest,
    pb::TransferPhoneNumberRequest,
    pb::UpdateTenantConfigurationRequest,
    pb::AddPhoneNumberTagsRequest,
    pb::RemovePhoneNumberTagsRequest,
    pb::CreateEmergencyPlaceRequest,
    pb::UpdateEmergencyLocationDetailsRequest,
    pb::DeleteEmergencyLocationRequest,
    pb::UploadDirectRoutingNumbersRequest,
    pb::ReleaseDirectRoutingNumbersRequest,
    pb::RetryOperationRequest,
    pb::CancelOperationRequest,
);

/// Implements [`MutationRequest`] for requests with `request_id` but no `validate_only`.
macro_rules! retryable_request {
    ($($request:ty),+ $(,)?) => {
        $(impl MutationRequest for $request {
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn validate_only(&self) -> bool {
                false
            }
            fn clear_options(&mut self) {
                self.request_id.clear();
            }
        })+
    };
}

retryable_request!(pb::UploadNumbersRequest, pb::ReleaseNumbersRequest);
