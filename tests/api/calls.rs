//! The RPCs as the tests call them, shared by every area: request builders, one call per
//! mutation that keeps the status, and listings that follow every page token.

use tonic::Status;

use number_management::proto::v1 as pb;

use crate::helpers::{Client, TestApp};

/// An assignment of `phone_number` to `identity`, with every option left at its default.
pub fn assign_request(identity: &str, phone_number: &str) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        identity: identity.into(),
        phone_number: phone_number.into(),
        ..Default::default()
    }
}

/// A change of `identity`'s number to `phone_number`.
pub fn change_request(identity: &str, phone_number: &str) -> pb::ChangePhoneNumberRequest {
    pb::ChangePhoneNumberRequest {
        identity: identity.into(),
        phone_number: phone_number.into(),
        ..Default::default()
    }
}

/// A removal of `phone_number` from `identity`.
pub fn remove_request(identity: &str, phone_number: &str) -> pb::RemovePhoneNumberRequest {
    pb::RemovePhoneNumberRequest {
        identity: identity.into(),
        phone_number: phone_number.into(),
        ..Default::default()
    }
}

pub async fn assign(
    client: &mut Client,
    request: pb::AssignPhoneNumberRequest,
) -> Result<pb::AssignPhoneNumberResponse, Status> {
    client
        .assign_phone_number(request)
        .await
        .map(tonic::Response::into_inner)
}

pub async fn change(
    client: &mut Client,
    request: pb::ChangePhoneNumberRequest,
) -> Result<pb::ChangePhoneNumberResponse, Status> {
    client
        .change_phone_number(request)
        .await
        .map(tonic::Response::into_inner)
}

pub async fn remove(
    client: &mut Client,
    request: pb::RemovePhoneNumberRequest,
) -> Result<pb::RemovePhoneNumberResponse, Status> {
    client
        .remove_phone_number(request)
        .await
        .map(tonic::Response::into_inner)
}

pub async fn get_phone_number(
    client: &mut Client,
    phone_number: &str,
) -> Result<pb::PhoneNumber, Status> {
    client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: phone_number.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every number `request` lists, following the page tokens (pages of 1000 unless the request
/// names a size).
pub async fn all_phone_numbers(
    client: &mut Client,
    request: pb::ListPhoneNumbersRequest,
) -> Vec<pb::PhoneNumber> {
    let page_size = if request.page_size == 0 {
        1000
    } else {
        request.page_size
    };
    let mut numbers = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_phone_numbers(pb::ListPhoneNumbersRequest {
                page_size,
                page_token: token,
                ..request.clone()
            })
            .await
            .expect("list phone numbers")
            .into_inner();
        numbers.extend(page.phone_numbers);
        token = page.next_page_token;
        if token.is_empty() {
            return numbers;
        }
    }
}

/// The tenant's whole audit trail, newest first.
pub async fn all_audit_events(app: &TestApp, tenant: &str) -> Vec<pb::AuditEvent> {
    let mut client = app.reader(tenant);
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list audit events")
            .into_inner();
        events.extend(page.audit_events);
        token = page.next_page_token;
        if token.is_empty() {
            return events;
        }
    }
}
