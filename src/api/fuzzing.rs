//! The entry points of the fuzz targets (`fuzz/`) and of their corpora's regression test: each
//! reads arbitrary bytes as the API would and must never panic, whatever they hold.

use prost::Message as _;

use super::convert;
use super::limits;
use super::pagination::{ListRequest, PageTokens};
use crate::domain::{E164, Identity};
use crate::proto::v1 as pb;

/// Reads `input` as a phone number and as an identity, as request fields are read.
pub fn phone_number(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    if let Ok(number) = E164::parse(&text) {
        // What parses is canonical, and parses again to itself.
        let canonical = number.canonical();
        assert_eq!(
            E164::parse(&canonical).map(|again| again.canonical()),
            Ok(canonical),
            "{text:?}"
        );
    }
    let _ = convert::phone_number("phone_number", &text);
    let _ = convert::number_prefix("number_prefix", &text);
    let _ = Identity::parse(&text);
}

/// Decodes `input` as each request message and runs it through the limits and the checks
/// that need no database.
pub fn request(input: &[u8]) {
    macro_rules! decoded {
        ($($request:ty),+ $(,)?) => {
            $(if let Ok(request) = <$request>::decode(input) {
                let _ = limits::check(&request);
            })+
        };
    }
    decoded!(
        pb::GetUserRequest,
        pb::GetEmergencyLocationRequest,
        pb::ListEmergencyLocationsRequest,
        pb::GetPhoneNumberRequest,
        pb::ListOperatorsRequest,
        pb::AssignPhoneNumberRequest,
        pb::ChangePhoneNumberRequest,
        pb::RemovePhoneNumberRequest,
        pb::UpdateEmergencyLocationRequest,
        pb::AcquirePhoneNumbersRequest,
        pb::ReleasePhoneNumbersRequest,
        pb::EnableOperatorRequest,
        pb::DisableOperatorRequest,
        pb::ListAuditEventsRequest,
        pb::GetOperationRequest,
        pb::CreateEmergencyLocationRequest,
        pb::ReleaseNumbersRequest,
        pb::GetNotificationSettingsRequest,
        pb::RemoveAssignmentBlockRequest,
        pb::GetTenantConfigurationRequest,
        pb::ListTagsRequest,
        pb::CreateEmergencyPlaceRequest,
        pb::UpdateEmergencyLocationDetailsRequest,
        pb::DeleteEmergencyLocationRequest,
        pb::ReleaseDirectRoutingNumbersRequest,
        pb::GetEmergencyReadinessRequest,
        pb::RetryOperationRequest,
        pb::CancelOperationRequest,
    );
    if let Ok(request) = pb::WatchChangesRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = super::changes::resume_position(&request.resume_token);
    }
    if let Ok(request) = pb::ListOperationsRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::operation_filter(&request);
    }
    if let Ok(request) = pb::UploadDirectRoutingNumbersRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::direct_routing_uploads(request.numbers, 1000);
    }
    if let Ok(request) = pb::ValidateEmergencyAddressRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = crate::domain::check_address(&convert::civic_address(request.address));
    }
    if let Ok(request) = pb::AddPhoneNumberTagsRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::tag_edit(&request.phone_numbers, &request.tags);
    }
    if let Ok(request) = pb::UpdateTenantConfigurationRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::configuration_update(&request);
    }
    if let Ok(request) = pb::TransferPhoneNumberRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::transfer_request(&request);
    }
    if let Ok(request) = pb::SetAssignmentBlockRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::block_request(&request);
    }
    if let Ok(request) = pb::UpdateNotificationSettingsRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = crate::domain::NotificationSettings::declare(
            &request.verified_email_domains,
            std::time::SystemTime::UNIX_EPOCH,
        );
    }
    if let Ok(request) = pb::ExportPhoneNumbersRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::export_filter(request, std::time::SystemTime::UNIX_EPOCH);
    }
    if let Ok(request) = pb::UpsertUserRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::user_upsert(request.user);
    }
    if let Ok(request) = pb::ListPhoneNumbersRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::number_filter(&request, std::time::SystemTime::UNIX_EPOCH);
    }
    if let Ok(request) = pb::ListUsersRequest::decode(input) {
        let _ = limits::check(&request);
    }
    if let Ok(request) = pb::UploadNumbersRequest::decode(input)
        && limits::check(&request).is_ok()
    {
        let _ = convert::uploads(request.numbers, crate::service::MAX_NUMBERS_PER_REQUEST);
    }
}

/// Reads `input` as the page token of each listing.
pub fn page_token(input: &[u8]) {
    fn read<R: ListRequest>(mut request: R, token: &str, set: fn(&mut R, String)) {
        set(&mut request, token.to_owned());
        let tokens = PageTokens::new(b"the fuzzer's key");
        let _ = tokens.page_request("tenant", &request);
    }
    let token = String::from_utf8_lossy(input);
    read(pb::ListUsersRequest::default(), &token, |r, t| {
        r.page_token = t
    });
    read(pb::ListPhoneNumbersRequest::default(), &token, |r, t| {
        r.page_token = t
    });
    read(pb::ListAuditEventsRequest::default(), &token, |r, t| {
        r.page_token = t
    });
}
