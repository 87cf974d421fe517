//! UploadDirectRoutingNumbers and ReleaseDirectRoutingNumbers over the socket, on the Contoso
//! demo tenant: the customer's own numbers loaded ahead of use (extensions included), listed,
//! tagged and located before anyone holds them, then assigned and taken out; every refusal
//! with its code and reason and nothing uploaded or released; request ids and
//! `validate_only`.

use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::assignment::{State, events_of, get_number, refused};
use crate::calls::{all_phone_numbers, assign, assign_request};
use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";
const JOHN: &str = "john@contoso.com";

const BASE: &str = "+14255388800";
const EXTENSION: &str = "+14255388800;ext=101";
const OTHER: &str = "+14255388801";
/// A Calling Plan number of the demo tenant.
const CP_0101: &str = "+14255550101";

const DIRECT_ROUTING: i32 = pb::NumberType::DirectRouting as i32;
const UNASSIGNED: i32 = pb::AssignmentStatus::Unassigned as i32;
const USER_ASSIGNMENT: i32 = pb::Capability::UserAssignment as i32;
const CONFERENCE: i32 = pb::Capability::ConferenceAssignment as i32;
const UPLOAD_EVENT: i32 = pb::AuditAction::UploadDirectRoutingNumber as i32;
const RELEASE_EVENT: i32 = pb::AuditAction::ReleaseDirectRoutingNumber as i32;

fn dr(phone_number: &str, capabilities: &[i32], location: &str) -> pb::DirectRoutingNumber {
    pb::DirectRoutingNumber {
        phone_number: phone_number.into(),
        capabilities: capabilities.to_vec(),
        emergency_location_id: location.into(),
    }
}

fn uploading(numbers: Vec<pb::DirectRoutingNumber>) -> pb::UploadDirectRoutingNumbersRequest {
    pb::UploadDirectRoutingNumbersRequest {
        numbers,
        ..Default::default()
    }
}

async fn upload(
    client: &mut Client,
    request: pb::UploadDirectRoutingNumbersRequest,
) -> Result<Vec<pb::PhoneNumber>, Status> {
    client
        .upload_direct_routing_numbers(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

async fn release(client: &mut Client, numbers: &[&str]) -> Result<Vec<String>, Status> {
    client
        .release_direct_routing_numbers(pb::ReleaseDirectRoutingNumbersRequest {
            phone_numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().phone_numbers)
}

async fn numbers_are_loaded_ahead_of_use_then_assigned_and_released(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let uploaded = upload(
        &mut admin,
        uploading(vec![
            dr(BASE, &[], ""),
            dr(EXTENSION, &[], ""),
            dr(OTHER, &[USER_ASSIGNMENT], "redmond-hq"),
        ]),
    )
    .await
    .expect("upload");
    let got: Vec<&str> = uploaded.iter().map(|n| n.phone_number.as_str()).collect();
    assert_eq!(got, [BASE, EXTENSION, OTHER]);
    for number in &uploaded {
        assert_eq!(number.number_type, DIRECT_ROUTING);
        assert_eq!(number.assignment_status, UNASSIGNED);
        assert_eq!(get_number(&mut admin, &number.phone_number).await, *number);
    }
    assert_eq!(uploaded[0].capabilities.len(), 3, "every capability");
    assert_eq!(uploaded[2].capabilities, [USER_ASSIGNMENT]);
    assert_eq!(uploaded[2].emergency_location_id, "redmond-hq");
    assert_eq!(events_of(&mut admin, UPLOAD_EVENT).await.len(), 3);

    let listed: Vec<String> = all_phone_numbers(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            number_type: DIRECT_ROUTING,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|n| n.phone_number)
    .collect();
    assert_eq!(listed, [BASE, EXTENSION, OTHER]);

    // Uploaded again: the one whose capabilities change is updated, the others left as they
    // are.
    let again = upload(
        &mut admin,
        uploading(vec![
            dr(BASE, &[], ""),
            dr(OTHER, &[USER_ASSIGNMENT, CONFERENCE], ""),
        ]),
    )
    .await
    .expect("upload again");
    assert_eq!(again[0], uploaded[0]);
    assert_ne!(again[1].etag, uploaded[2].etag);
    assert_eq!(again[1].capabilities, [USER_ASSIGNMENT, CONFERENCE]);
    assert_eq!(again[1].emergency_location_id, "redmond-hq");
    assert_eq!(events_of(&mut admin, UPLOAD_EVENT).await.len(), 4);

    // In the inventory, it is assigned without saying its type.
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            emergency_location_id: "redmond-hq".into(),
            ..assign_request(JOHN, EXTENSION)
        },
    )
    .await
    .expect("assign the extension");
    let status = refused(
        &app,
        release(&mut admin, &[OTHER, EXTENSION]),
        Code::FailedPrecondition,
        "NUMBER_ASSIGNED",
    )
    .await;
    assert!(status.message().contains(EXTENSION), "{status:?}");

    let released = release(&mut admin, &[OTHER, BASE]).await.expect("release");
    assert_eq!(released, [OTHER, BASE]);
    for number in [OTHER, BASE] {
        assert_error(
            admin
                .get_phone_number(pb::GetPhoneNumberRequest {
                    phone_number: number.into(),
                })
                .await,
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
    }
    assert_eq!(events_of(&mut admin, RELEASE_EVENT).await.len(), 2);
}

async fn uploads_and_releases_are_refused_whole(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    upload(
        &mut app.admin(OTHER_TENANT),
        uploading(vec![dr(OTHER, &[], "")]),
    )
    .await
    .expect("another tenant's number");

    for (numbers, code, reason) in [
        (
            vec![dr(BASE, &[], ""), dr(CP_0101, &[], "")],
            Code::FailedPrecondition,
            "NUMBER_TYPE_MISMATCH",
        ),
        (
            vec![dr(BASE, &[], ""), dr(OTHER, &[], "")],
            Code::AlreadyExists,
            "NUMBER_ALREADY_IN_INVENTORY",
        ),
        (
            vec![dr(BASE, &[], "nowhere")],
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        ),
        (
            vec![dr(BASE, &[], "paris-office")],
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
    ] {
        refused(&app, upload(&mut admin, uploading(numbers)), code, reason).await;
    }
    for (numbers, field, reason) in [
        (
            vec![dr(BASE, &[], ""), dr("14255388800", &[], "")],
            "numbers[1].phone_number",
            "INVALID_ARGUMENT",
        ),
        (
            vec![dr("+1425", &[], "")],
            "numbers[0].phone_number",
            "INVALID_PHONE_NUMBER",
        ),
        (vec![], "numbers", "INVALID_ARGUMENT"),
    ] {
        let status = refused(
            &app,
            upload(&mut admin, uploading(numbers)),
            Code::InvalidArgument,
            reason,
        )
        .await;
        assert_eq!(violated_fields(&status), [field]);
    }
    refused(
        &app,
        upload(&mut app.reader(TENANT), uploading(vec![dr(BASE, &[], "")])),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    )
    .await;

    upload(&mut admin, uploading(vec![dr(BASE, &[], "")]))
        .await
        .expect("upload");
    refused(
        &app,
        release(&mut admin, &[BASE, "+14255388899"]),
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    )
    .await;
    refused(
        &app,
        release(&mut admin, &[BASE, CP_0101]),
        Code::FailedPrecondition,
        "NUMBER_TYPE_MISMATCH",
    )
    .await;
}

async fn uploads_replay_and_validate(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = State::read(&app).await;
    let rehearsed = upload(
        &mut admin,
        pb::UploadDirectRoutingNumbersRequest {
            validate_only: true,
            ..uploading(vec![dr(BASE, &[], "")])
        },
    )
    .await
    .expect("validate");
    assert_eq!(rehearsed[0].phone_number, BASE);
    before.assert_unchanged(&app).await;

    let request = pb::UploadDirectRoutingNumbersRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..uploading(vec![dr(BASE, &[], "")])
    };
    let first = upload(&mut admin, request.clone()).await.expect("upload");
    release(&mut admin, &[BASE]).await.expect("release");
    // The retry answers the first answer and uploads nothing again.
    assert_eq!(upload(&mut admin, request).await.expect("retry"), first);
    assert_error(
        admin
            .get_phone_number(pb::GetPhoneNumberRequest {
                phone_number: BASE.into(),
            })
            .await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
}

on_both_stores!(
    numbers_are_loaded_ahead_of_use_then_assigned_and_released,
    uploads_and_releases_are_refused_whole,
    uploads_replay_and_validate,
);
