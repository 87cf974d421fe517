//! SetAssignmentBlock and RemoveAssignmentBlock over the socket, on the Contoso demo tenant: a
//! block set, shown, listed and lifted (one set by a removal included), each refusal with its
//! code and reason and the data left as it was, etags, request ids and `validate_only`, and a
//! block whose days have passed.

use std::time::{Duration, SystemTime};

use number_management::demo;
use number_management::domain;
use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::assignment::{State, events_of, get_number, refused};
use crate::calls::{assign, assign_request, remove, remove_request};
use crate::helpers::{Backend, Client, TestApp, TestConfig, number, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";

/// Calling Plan, unassigned, no emergency location.
const CP_0103: &str = "+14255550103";
/// Calling Plan, unassigned, no emergency location.
const CP_0104: &str = "+14255550104";
/// Calling Plan, emergency location `redmond-hq`.
const CP_0101: &str = "+14255550101";

const NOT_BLOCKED: i32 = pb::AssignmentBlockedState::NotBlocked as i32;
const BLOCKED_UNTIL: i32 = pb::AssignmentBlockedState::BlockedUntil as i32;
const BLOCKED_FOREVER: i32 = pb::AssignmentBlockedState::BlockedForever as i32;

const SET_EVENT: i32 = pb::AuditAction::SetAssignmentBlock as i32;
const LIFT_EVENT: i32 = pb::AuditAction::RemoveAssignmentBlock as i32;

fn block_request(phone_number: &str, days: i32) -> pb::SetAssignmentBlockRequest {
    pb::SetAssignmentBlockRequest {
        phone_number: phone_number.into(),
        block_days: days,
        ..Default::default()
    }
}

fn block_forever(phone_number: &str) -> pb::SetAssignmentBlockRequest {
    pb::SetAssignmentBlockRequest {
        phone_number: phone_number.into(),
        block_forever: true,
        ..Default::default()
    }
}

fn lift_request(phone_number: &str) -> pb::RemoveAssignmentBlockRequest {
    pb::RemoveAssignmentBlockRequest {
        phone_number: phone_number.into(),
        ..Default::default()
    }
}

async fn set_block(
    client: &mut Client,
    request: pb::SetAssignmentBlockRequest,
) -> Result<pb::PhoneNumber, Status> {
    client
        .set_assignment_block(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn lift_block(
    client: &mut Client,
    request: pb::RemoveAssignmentBlockRequest,
) -> Result<pb::PhoneNumber, Status> {
    client
        .remove_assignment_block(request)
        .await
        .map(tonic::Response::into_inner)
}

/// The numbers ListPhoneNumbers finds in `state`.
async fn listed_in(client: &mut Client, state: i32) -> Vec<String> {
    client
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            assignment_blocked_state: state,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list phone numbers")
        .into_inner()
        .phone_numbers
        .into_iter()
        .map(|n| n.phone_number)
        .collect()
}

async fn a_block_is_set_shown_listed_and_lifted(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = get_number(&mut admin, CP_0103).await;
    assert_eq!(before.assignment_blocked_state, NOT_BLOCKED);

    let started = SystemTime::now();
    let blocked = set_block(&mut admin, block_request(CP_0103, 10))
        .await
        .expect("block for 10 days");
    assert_eq!(blocked.assignment_blocked_state, BLOCKED_UNTIL);
    assert_ne!(blocked.etag, before.etag);
    let until = blocked.assignment_blocked_until.expect("blocked until");
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(until.seconds as u64);
    let expected = started + Duration::from_secs(10 * 86_400);
    let drift = until
        .duration_since(expected)
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_secs(120), "blocked until {until:?}");
    assert_eq!(get_number(&mut admin, CP_0103).await, blocked);

    assert_eq!(listed_in(&mut admin, BLOCKED_UNTIL).await, [CP_0103]);
    assert!(listed_in(&mut admin, BLOCKED_FOREVER).await.is_empty());
    let free = listed_in(&mut admin, NOT_BLOCKED).await;
    assert!(!free.contains(&CP_0103.to_owned()), "{free:?}");
    assert!(free.contains(&CP_0104.to_owned()), "{free:?}");

    refused(
        &app,
        assign(&mut admin, assign_request(JOHN, CP_0103)),
        Code::FailedPrecondition,
        "NUMBER_BLOCKED",
    )
    .await;

    let lifted = lift_block(
        &mut admin,
        pb::RemoveAssignmentBlockRequest {
            etag: blocked.etag.clone(),
            ..lift_request(CP_0103)
        },
    )
    .await
    .expect("lift the block");
    assert_eq!(lifted.assignment_blocked_state, NOT_BLOCKED);
    assert_eq!(lifted.assignment_blocked_until, None);
    assert_ne!(lifted.etag, blocked.etag);
    assert_eq!(get_number(&mut admin, CP_0103).await, lifted);
    assert!(listed_in(&mut admin, BLOCKED_UNTIL).await.is_empty());
    assert!(
        listed_in(&mut admin, NOT_BLOCKED)
            .await
            .contains(&CP_0103.to_owned())
    );

    // Each change has its audit event, with the number before and after.
    let set = events_of(&mut admin, SET_EVENT).await;
    assert_eq!(set.len(), 1, "{set:#?}");
    assert_eq!(set[0].phone_number, CP_0103);
    assert_eq!(snapshot_block(&set[0].before), "NOT_BLOCKED");
    assert!(
        snapshot_block(&set[0].after).starts_with("BLOCKED_UNTIL "),
        "{set:#?}"
    );
    let lift = events_of(&mut admin, LIFT_EVENT).await;
    assert_eq!(lift.len(), 1, "{lift:#?}");
    assert_eq!(snapshot_block(&lift[0].after), "NOT_BLOCKED");

    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            emergency_location_id: "redmond-hq".into(),
            ..assign_request(JOHN, CP_0103)
        },
    )
    .await
    .expect("assignable once the block is lifted");
}

/// The block a removal sets for ever could not be undone before there was
/// RemoveAssignmentBlock: now it can.
async fn a_block_set_by_a_removal_is_lifted(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_forever: true,
            ..remove_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("remove, blocked for ever");
    assert_eq!(listed_in(&mut admin, BLOCKED_FOREVER).await, [CP_0101]);

    let lifted = lift_block(&mut admin, lift_request(CP_0101))
        .await
        .expect("lift");
    assert_eq!(lifted.assignment_blocked_state, NOT_BLOCKED);
    assert!(listed_in(&mut admin, BLOCKED_FOREVER).await.is_empty());
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assignable again");

    // A forever block set on its own is listed and lifted the same way.
    set_block(&mut admin, block_forever(CP_0104))
        .await
        .expect("block for ever");
    assert_eq!(listed_in(&mut admin, BLOCKED_FOREVER).await, [CP_0104]);
    let lifted = lift_block(&mut admin, lift_request(CP_0104))
        .await
        .expect("lift");
    assert_eq!(lifted.assignment_blocked_state, NOT_BLOCKED);
}

async fn set_block_refusals_leave_everything_as_it_was(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut pending = number("+14255550180", domain::NumberType::CallingPlan);
    pending.activation_state = domain::ActivationState::UpdatePending;
    app.seed_numbers(TENANT, &[pending]).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    set_block(&mut admin, block_request(CP_0104, 5))
        .await
        .expect("block");
    let current = get_number(&mut admin, CP_0103).await;

    for (request, field) in [
        (block_request(CP_0103, 0), "block_days"),
        (block_request(CP_0103, 366), "block_days"),
        (block_request(CP_0103, -3), "block_days"),
        (
            pb::SetAssignmentBlockRequest {
                block_forever: true,
                ..block_request(CP_0103, 3)
            },
            "block_days",
        ),
        (
            pb::SetAssignmentBlockRequest {
                etag: "not-an-etag".into(),
                ..block_request(CP_0103, 3)
            },
            "etag",
        ),
    ] {
        let status = refused(
            &app,
            set_block(&mut admin, request.clone()),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        )
        .await;
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }
    let status = refused(
        &app,
        set_block(&mut admin, block_request("+1425", 3)),
        Code::InvalidArgument,
        "INVALID_PHONE_NUMBER",
    )
    .await;
    assert_eq!(violated_fields(&status), ["phone_number"]);

    refused(
        &app,
        set_block(&mut admin, block_request("+14255550199", 3)),
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    )
    .await;
    let status = refused(
        &app,
        set_block(&mut admin, block_request(CP_0101, 3)),
        Code::FailedPrecondition,
        "NUMBER_ASSIGNED",
    )
    .await;
    assert!(status.message().contains(JOHN), "{status:?}");
    let status = refused(
        &app,
        set_block(&mut admin, block_forever(CP_0104)),
        Code::FailedPrecondition,
        "NUMBER_BLOCKED",
    )
    .await;
    assert!(
        status.message().contains("RemoveAssignmentBlock"),
        "{status:?}"
    );
    refused(
        &app,
        set_block(&mut admin, block_request("+14255550180", 3)),
        Code::FailedPrecondition,
        "ACTIVATION_PENDING",
    )
    .await;
    refused(
        &app,
        set_block(
            &mut admin,
            pb::SetAssignmentBlockRequest {
                etag: (current.etag.parse::<i64>().expect("a number") + 1).to_string(),
                ..block_request(CP_0103, 3)
            },
        ),
        Code::Aborted,
        "ETAG_MISMATCH",
    )
    .await;
    refused(
        &app,
        set_block(&mut app.reader(TENANT), block_request(CP_0103, 3)),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    )
    .await;
    // The right etag is taken.
    set_block(
        &mut admin,
        pb::SetAssignmentBlockRequest {
            etag: current.etag,
            ..block_request(CP_0103, 3)
        },
    )
    .await
    .expect("block with the current etag");
}

async fn remove_block_refusals_and_an_unblocked_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let free = get_number(&mut admin, CP_0103).await;
    // Not blocked: answered as it is, nothing written.
    let before = State::read(&app).await;
    let answered = lift_block(&mut admin, lift_request(CP_0103))
        .await
        .expect("lift nothing");
    assert_eq!(answered, free);
    before.assert_unchanged(&app).await;

    refused(
        &app,
        lift_block(&mut admin, lift_request("+14255550199")),
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    )
    .await;
    let blocked = set_block(&mut admin, block_request(CP_0103, 3))
        .await
        .expect("block");
    refused(
        &app,
        lift_block(
            &mut admin,
            pb::RemoveAssignmentBlockRequest {
                etag: free.etag.clone(),
                ..lift_request(CP_0103)
            },
        ),
        Code::Aborted,
        "ETAG_MISMATCH",
    )
    .await;
    refused(
        &app,
        lift_block(&mut app.reader(TENANT), lift_request(CP_0103)),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    )
    .await;
    assert_eq!(get_number(&mut admin, CP_0103).await, blocked);
}

async fn block_calls_replay_and_validate(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    // validate_only: the answer shows the block, nothing is written.
    let before = State::read(&app).await;
    let rehearsed = set_block(
        &mut admin,
        pb::SetAssignmentBlockRequest {
            validate_only: true,
            ..block_request(CP_0103, 7)
        },
    )
    .await
    .expect("validate");
    assert_eq!(rehearsed.assignment_blocked_state, BLOCKED_UNTIL);
    before.assert_unchanged(&app).await;

    // A retry with the same id answers the first answer, and writes nothing more.
    let id = uuid::Uuid::new_v4().to_string();
    let request = pb::SetAssignmentBlockRequest {
        request_id: id.clone(),
        ..block_request(CP_0103, 7)
    };
    let first = set_block(&mut admin, request.clone()).await.expect("block");
    let again = State::read(&app).await;
    let retried = set_block(&mut admin, request).await.expect("retry");
    assert_eq!(retried, first);
    again.assert_unchanged(&app).await;
    refused(
        &app,
        set_block(
            &mut admin,
            pb::SetAssignmentBlockRequest {
                request_id: id,
                ..block_request(CP_0104, 7)
            },
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    )
    .await;

    let id = uuid::Uuid::new_v4().to_string();
    let lift = pb::RemoveAssignmentBlockRequest {
        request_id: id,
        ..lift_request(CP_0103)
    };
    let lifted = lift_block(&mut admin, lift.clone()).await.expect("lift");
    // Blocked again since: the retry still answers the first answer, and lifts nothing.
    let blocked = set_block(&mut admin, block_forever(CP_0103))
        .await
        .expect("block again");
    assert_eq!(lift_block(&mut admin, lift).await.expect("retry"), lifted);
    assert_eq!(get_number(&mut admin, CP_0103).await, blocked);
    assert_eq!(events_of(&mut admin, SET_EVENT).await.len(), 2);
    assert_eq!(events_of(&mut admin, LIFT_EVENT).await.len(), 1);
}

/// A block whose days have passed is no block: listed as NOT_BLOCKED, and another may be set.
async fn a_block_whose_days_have_passed_is_none(backend: Backend) {
    let app = TestApp::start_with_manual_clock(backend, TestConfig::default()).await;
    demo::load(app.store.as_ref())
        .await
        .expect("the demo tenant");
    let mut admin = app.admin(TENANT);
    set_block(&mut admin, block_request(CP_0103, 1))
        .await
        .expect("block for a day");
    assert_eq!(listed_in(&mut admin, BLOCKED_UNTIL).await, [CP_0103]);

    app.advance(Duration::from_secs(86_400 + 60));
    let mut admin = app.admin(TENANT); // a token valid at the new time
    assert!(listed_in(&mut admin, BLOCKED_UNTIL).await.is_empty());
    assert!(
        listed_in(&mut admin, NOT_BLOCKED)
            .await
            .contains(&CP_0103.to_owned())
    );
    let number = get_number(&mut admin, CP_0103).await;
    assert_eq!(number.assignment_blocked_state, NOT_BLOCKED);
    // Lifting it changes nothing; setting another is allowed.
    assert_eq!(
        lift_block(&mut admin, lift_request(CP_0103))
            .await
            .expect("lift")
            .etag,
        number.etag
    );
    let blocked = set_block(&mut admin, block_forever(CP_0103))
        .await
        .expect("block again");
    assert_eq!(blocked.assignment_blocked_state, BLOCKED_FOREVER);
}

/// The `assignmentBlocked` field of an audit snapshot.
fn snapshot_block(snapshot: &Option<prost_types::Struct>) -> String {
    let field = snapshot
        .as_ref()
        .and_then(|s| s.fields.get("assignmentBlocked"))
        .and_then(|v| v.kind.clone());
    match field {
        Some(prost_types::value::Kind::StringValue(text)) => text,
        other => panic!("no assignmentBlocked in the snapshot: {other:?}"),
    }
}

on_both_stores!(
    a_block_is_set_shown_listed_and_lifted,
    a_block_set_by_a_removal_is_lifted,
    set_block_refusals_leave_everything_as_it_was,
    remove_block_refusals_and_an_unblocked_number,
    block_calls_replay_and_validate,
    a_block_whose_days_have_passed_is_none,
);
