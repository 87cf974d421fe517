//! TransferPhoneNumber over the socket, on the Contoso demo tenant: a leaver's number moved to
//! a successor in one step with its category and emergency location, both users' numbers,
//! telephony, audit trails and emails; every refusal with its code and reason and the data left
//! as it was; request ids and `validate_only`; and transfers racing each other. (A transfer
//! that waits for its operator is in provisioning.rs.)

use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::assignment::{State, events_of, get_number, get_user, refused};
use crate::calls::{assign, assign_request};
use crate::helpers::{Backend, Client, TestApp, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";
const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
const JACK: &str = "jack@contoso.com";
const JACK_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000002";
const AMELIE: &str = "amelie@contoso.com";
const SAM: &str = "sam@contoso.com";
const LEE: &str = "lee@contoso.com";
const RECEPTION: &str = "reception@contoso.com";

/// Calling Plan, emergency location `redmond-hq`.
const CP_0101: &str = "+14255550101";
/// Calling Plan, no emergency location.
const CP_0103: &str = "+14255550103";
/// Calling Plan, no emergency location.
const CP_0104: &str = "+14255550104";

const PRIMARY: i32 = pb::AssignmentCategory::Primary as i32;
const ALTERNATE: i32 = pb::AssignmentCategory::Alternate as i32;
const ACTIVATED: i32 = pb::ActivationState::Activated as i32;
const TRANSFER_EVENT: i32 = pb::AuditAction::TransferPhoneNumber as i32;

fn transfer_request(phone_number: &str, from: &str, to: &str) -> pb::TransferPhoneNumberRequest {
    pb::TransferPhoneNumberRequest {
        phone_number: phone_number.into(),
        from_identity: from.into(),
        to_identity: to.into(),
        ..Default::default()
    }
}

async fn transfer(
    client: &mut Client,
    request: pb::TransferPhoneNumberRequest,
) -> Result<pb::TransferPhoneNumberResponse, Status> {
    client
        .transfer_phone_number(request)
        .await
        .map(tonic::Response::into_inner)
}

/// John, with `CP_0101` as his primary number at `redmond-hq`.
async fn john_with_his_number(app: &TestApp) -> pb::PhoneNumber {
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign john's number")
        .phone_number
        .expect("the number")
}

/// The users the demo tenant's emails were queued for, oldest first.
async fn emailed(app: &TestApp) -> Vec<String> {
    let mut tx = app.store.read().await.expect("read transaction");
    tx.notifications(TENANT, false)
        .await
        .expect("notifications")
        .into_iter()
        .map(|n| format!("{} {}", n.recipient, n.subject))
        .collect()
}

async fn a_leavers_number_moves_to_a_successor(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let held = john_with_his_number(&app).await;
    let mut admin = app.admin(TENANT);
    let emails_before = emailed(&app).await.len();

    let moved = transfer(&mut admin, transfer_request(CP_0101, JOHN, JACK))
        .await
        .expect("transfer to jack");
    let number = moved.phone_number.clone().expect("the number");
    assert_eq!(number.assigned_to, JACK_ID);
    assert_eq!(number.assigned_to_user_principal_name, JACK);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.emergency_location_id, held.emergency_location_id);
    assert_eq!(number.emergency_location_id, "redmond-hq");
    assert_eq!(number.activation_state, ACTIVATED);
    assert_ne!(number.etag, held.etag);
    assert_eq!(get_number(&mut admin, CP_0101).await, number);

    let john = moved.previous_user.clone().expect("john");
    assert_eq!(john.id, JOHN_ID);
    assert!(john.phone_numbers.is_empty(), "{john:#?}");
    assert!(!john.enterprise_voice_enabled);
    assert_eq!(get_user(&mut admin, JOHN).await, john);
    let jack = moved.user.clone().expect("jack");
    assert_eq!(jack.phone_numbers, [CP_0101]);
    assert!(jack.enterprise_voice_enabled);
    assert_eq!(get_user(&mut admin, JACK).await, jack);

    let operation = moved.operation.expect("the operation");
    assert_eq!(operation.kind, TRANSFER_EVENT);
    assert_eq!(operation.state, pb::operation::State::Succeeded as i32);
    assert_eq!(number.operation_id, operation.id);

    // One event for each holder, so both users' trails show the move.
    let events = events_of(&mut admin, TRANSFER_EVENT).await;
    let mut users: Vec<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
    users.sort_unstable();
    assert_eq!(users, [JOHN_ID, JACK_ID]);
    for event in &events {
        assert_eq!(event.phone_number, CP_0101);
        assert_eq!(holder_in(&event.before), JOHN_ID);
        assert_eq!(holder_in(&event.after), JACK_ID);
    }
    for user in [JOHN, JACK] {
        let trail = admin
            .list_audit_events(pb::ListAuditEventsRequest {
                user: user.into(),
                ..Default::default()
            })
            .await
            .expect("the user's trail")
            .into_inner()
            .audit_events;
        assert_eq!(trail[0].action, TRANSFER_EVENT, "{user}: {trail:#?}");
    }

    // Both are told: John that the number is gone, Jack that it is his.
    let emails = emailed(&app).await;
    assert_eq!(emails.len(), emails_before + 2, "{emails:#?}");
    assert!(emails[emails_before].starts_with(JOHN), "{emails:#?}");
    assert!(emails[emails_before].contains("removed"), "{emails:#?}");
    assert!(emails[emails_before + 1].starts_with(JACK), "{emails:#?}");
}

async fn a_transfer_may_give_the_number_another_category(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    john_with_his_number(&app).await;
    let mut admin = app.admin(TENANT);
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            emergency_location_id: "redmond-hq".into(),
            ..assign_request(JACK, CP_0104)
        },
    )
    .await
    .expect("jack's own primary number");

    refused(
        &app,
        transfer(&mut admin, transfer_request(CP_0101, JOHN, JACK)),
        Code::FailedPrecondition,
        "USER_ALREADY_HAS_PRIMARY_NUMBER",
    )
    .await;
    let moved = transfer(
        &mut admin,
        pb::TransferPhoneNumberRequest {
            assignment_category: ALTERNATE,
            notify_user: Some(false),
            ..transfer_request(CP_0101, JOHN, JACK)
        },
    )
    .await
    .expect("transfer as an alternate number");
    let number = moved.phone_number.expect("the number");
    assert_eq!(number.assignment_category, ALTERNATE);
    let jack = get_user(&mut admin, JACK).await;
    assert_eq!(jack.phone_numbers, [CP_0104, CP_0101]);
}

async fn transfer_refusals_leave_everything_as_it_was(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    john_with_his_number(&app).await;
    let mut admin = app.admin(TENANT);

    for (request, field, reason) in [
        (
            transfer_request(CP_0101, JOHN, ""),
            "to_identity",
            "INVALID_ARGUMENT",
        ),
        (
            transfer_request(CP_0101, "", JACK),
            "from_identity",
            "INVALID_ARGUMENT",
        ),
        (
            transfer_request("not a number", JOHN, JACK),
            "phone_number",
            "INVALID_PHONE_NUMBER",
        ),
        (
            pb::TransferPhoneNumberRequest {
                assignment_category: 42,
                ..transfer_request(CP_0101, JOHN, JACK)
            },
            "assignment_category",
            "INVALID_ARGUMENT",
        ),
    ] {
        let status = refused(
            &app,
            transfer(&mut admin, request.clone()),
            Code::InvalidArgument,
            reason,
        )
        .await;
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }

    for (request, code, reason) in [
        (
            transfer_request(CP_0101, JOHN, "nobody@contoso.com"),
            Code::NotFound,
            "USER_NOT_FOUND",
        ),
        (
            transfer_request(CP_0101, "nobody@contoso.com", JACK),
            Code::NotFound,
            "USER_NOT_FOUND",
        ),
        (
            transfer_request("+14255550199", JOHN, JACK),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        ),
        // Jack does not hold it; nobody holds CP_0103.
        (
            transfer_request(CP_0101, JACK, JOHN),
            Code::FailedPrecondition,
            "NUMBER_NOT_ASSIGNED_TO_USER",
        ),
        (
            transfer_request(CP_0103, JOHN, JACK),
            Code::FailedPrecondition,
            "NUMBER_NOT_ASSIGNED_TO_USER",
        ),
        // To its holder, named another way.
        (
            transfer_request(CP_0101, JOHN, JOHN_ID),
            Code::FailedPrecondition,
            "NUMBER_ALREADY_ASSIGNED",
        ),
        // The new holder is checked as by AssignPhoneNumber.
        (
            transfer_request(CP_0101, JOHN, SAM),
            Code::FailedPrecondition,
            "LICENSE_REQUIRED",
        ),
        (
            transfer_request(CP_0101, JOHN, LEE),
            Code::FailedPrecondition,
            "ON_PREMISES_NUMBER_CONFLICT",
        ),
        (
            transfer_request(CP_0101, JOHN, RECEPTION),
            Code::FailedPrecondition,
            "CAPABILITY_MISMATCH",
        ),
        (
            transfer_request(CP_0101, JOHN, AMELIE),
            Code::FailedPrecondition,
            "USAGE_LOCATION_MISMATCH",
        ),
    ] {
        let status = refused(&app, transfer(&mut admin, request.clone()), code, reason).await;
        assert!(!status.message().is_empty(), "{request:?}");
    }
    refused(
        &app,
        transfer(
            &mut app.reader(TENANT),
            transfer_request(CP_0101, JOHN, JACK),
        ),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    )
    .await;
}

async fn transfers_replay_and_validate(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    john_with_his_number(&app).await;
    let mut admin = app.admin(TENANT);

    let before = State::read(&app).await;
    let rehearsed = transfer(
        &mut admin,
        pb::TransferPhoneNumberRequest {
            validate_only: true,
            ..transfer_request(CP_0101, JOHN, JACK)
        },
    )
    .await
    .expect("validate");
    assert_eq!(
        rehearsed.phone_number.expect("the number").assigned_to,
        JACK_ID
    );
    assert!(rehearsed.operation.is_none());
    before.assert_unchanged(&app).await;

    let request = pb::TransferPhoneNumberRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..transfer_request(CP_0101, JOHN, JACK)
    };
    let first = transfer(&mut admin, request.clone())
        .await
        .expect("transfer");
    let after = State::read(&app).await;
    assert_eq!(
        transfer(&mut admin, request.clone()).await.expect("retry"),
        first
    );
    after.assert_unchanged(&app).await;
    refused(
        &app,
        transfer(
            &mut admin,
            pb::TransferPhoneNumberRequest {
                to_identity: JOHN.into(),
                from_identity: JACK.into(),
                ..request
            },
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    )
    .await;
}

/// Transfers of one number racing each other, and back: each number has one holder at the
/// end, who lists it, and the other users list none.
async fn racing_transfers_leave_one_holder(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    john_with_his_number(&app).await;
    let calls = (0..16).map(|i| {
        let mut admin = app.admin(TENANT);
        let (from, to) = if i % 2 == 0 {
            (JOHN, JACK)
        } else {
            (JACK, JOHN)
        };
        async move { transfer(&mut admin, transfer_request(CP_0101, from, to)).await }
    });
    let results = futures::future::join_all(calls).await;
    for result in &results {
        if let Err(status) = result {
            // The other direction's turn: the number is not (or no longer) the caller's to
            // give, or the race was lost to a concurrent change.
            assert!(
                matches!(status.code(), Code::FailedPrecondition | Code::Aborted),
                "{status:?}"
            );
        }
    }
    assert!(results.iter().any(Result::is_ok), "{results:#?}");
    let mut admin = app.admin(TENANT);
    let number = get_number(&mut admin, CP_0101).await;
    let (holder, other) = if number.assigned_to == JOHN_ID {
        (JOHN, JACK)
    } else {
        (JACK, JOHN)
    };
    assert_eq!(get_user(&mut admin, holder).await.phone_numbers, [CP_0101]);
    assert!(get_user(&mut admin, other).await.phone_numbers.is_empty());
    let moves = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        events_of(&mut admin, TRANSFER_EVENT).await.len(),
        2 * moves,
        "two events per transfer that happened"
    );
}

/// The `assignedTo` field of an audit snapshot.
fn holder_in(snapshot: &Option<prost_types::Struct>) -> String {
    let field = snapshot
        .as_ref()
        .and_then(|s| s.fields.get("assignedTo"))
        .and_then(|v| v.kind.clone());
    match field {
        Some(prost_types::value::Kind::StringValue(text)) => text,
        other => panic!("no assignedTo in the snapshot: {other:?}"),
    }
}

on_both_stores!(
    a_leavers_number_moves_to_a_successor,
    a_transfer_may_give_the_number_another_category,
    transfer_refusals_leave_everything_as_it_was,
    transfers_replay_and_validate,
    racing_transfers_leave_one_holder,
);
