//! UpdateEmergencyLocation over the socket, on the demo tenant: setting, changing and clearing
//! the emergency location of numbers of every type, the operators' locks, etags, the location
//! rules, request ids, `validate_only` and permissions; and ListPhoneNumbers by location. Every
//! refusal is checked to have changed nothing.

use number_management::domain::NumberType;
use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::calls::{all_audit_events as audit_events, all_phone_numbers as list_all};
use crate::helpers::{Backend, Client, TestApp, assert_error, number, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

/// Demo numbers.
const CALLING_PLAN_HQ: &str = "+14255550101"; // Calling Plan, at redmond-hq
const FABRIKAM_LOCKED: &str = "+14255550102"; // Fabrikam, at redmond-hq, tenants may not change
const CALLING_PLAN_A: &str = "+14255550103"; // Calling Plan, no location
const CALLING_PLAN_B: &str = "+14255550104"; // Calling Plan, no location
const NORTHWIND_OPEN: &str = "+14255550105"; // Northwind, no location, tenants may change
const PARIS_NUMBER: &str = "+33140000001"; // Calling Plan, France
/// Seeded by the tests that need it.
const DIRECT_ROUTING: &str = "+14255559001";

const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";

const ACTIVATED: i32 = pb::ActivationState::Activated as i32;
const UPDATE_EMERGENCY_LOCATION: i32 = pb::AuditAction::UpdateEmergencyLocation as i32;

// ---- helpers of this module --------------------------------------------------------------------

fn update_request(
    phone_number: &str,
    location: &str,
    etag: &str,
) -> pb::UpdateEmergencyLocationRequest {
    pb::UpdateEmergencyLocationRequest {
        phone_number: phone_number.into(),
        emergency_location_id: location.into(),
        etag: etag.into(),
        ..Default::default()
    }
}

async fn update(
    client: &mut Client,
    request: pb::UpdateEmergencyLocationRequest,
) -> Result<pb::PhoneNumber, Status> {
    client
        .update_emergency_location(request)
        .await
        .map(|r| r.into_inner())
}

async fn get(client: &mut Client, phone_number: &str) -> pb::PhoneNumber {
    client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: phone_number.into(),
        })
        .await
        .expect("get the number")
        .into_inner()
}

/// The numbers registered with `location`.
async fn at_location(app: &TestApp, location: &str) -> Vec<String> {
    list_all(
        &mut app.reader(TENANT),
        pb::ListPhoneNumbersRequest {
            emergency_location_id: location.into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|n| n.phone_number)
    .collect()
}

/// What a refusal must leave as it was: the inventory (content and etags) and the audit trail.
#[derive(Debug, PartialEq)]
struct State {
    numbers: Vec<pb::PhoneNumber>,
    audit: Vec<pb::AuditEvent>,
}

async fn state(app: &TestApp, tenant: &str) -> State {
    State {
        numbers: list_all(
            &mut app.reader(tenant),
            pb::ListPhoneNumbersRequest::default(),
        )
        .await,
        audit: audit_events(app, tenant).await,
    }
}

#[track_caller]
fn assert_unchanged(before: &State, after: &State, what: &str) {
    assert_eq!(
        after.numbers, before.numbers,
        "{what}: the inventory changed"
    );
    assert_eq!(
        after.audit.len(),
        before.audit.len(),
        "{what}: audit events were written"
    );
    assert_eq!(after.audit, before.audit, "{what}: the audit trail changed");
}

fn string_field(s: Option<&prost_types::Struct>, name: &str) -> Option<String> {
    match s?.fields.get(name)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(v) => Some(v.clone()),
        _ => None,
    }
}

fn is_null_field(s: Option<&prost_types::Struct>, name: &str) -> bool {
    matches!(
        s.and_then(|s| s.fields.get(name))
            .and_then(|v| v.kind.as_ref()),
        Some(prost_types::value::Kind::NullValue(_))
    )
}

/// Checks `updated` is `before` with another location and the next etag, nothing else.
#[track_caller]
fn assert_only_location_changed(
    before: &pb::PhoneNumber,
    updated: &pb::PhoneNumber,
    location: &str,
) {
    let next_etag = (before.etag.parse::<i64>().expect("a numeric etag") + 1).to_string();
    assert_eq!(updated.emergency_location_id, location, "{updated:?}");
    assert_eq!(updated.etag, next_etag, "the etag moves on: {updated:?}");
    assert_eq!(updated.activation_state, ACTIVATED, "{updated:?}");
    assert!(
        !updated.operation_id.is_empty() && updated.operation_id != before.operation_id,
        "the change has its own operation: {updated:?}"
    );
    assert_eq!(
        pb::PhoneNumber {
            emergency_location_id: before.emergency_location_id.clone(),
            etag: before.etag.clone(),
            update_time: before.update_time,
            operation_id: before.operation_id.clone(),
            ..updated.clone()
        },
        *before,
        "nothing else changed"
    );
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Seeds an unassigned Direct Routing number registered at redmond-hq.
async fn seed_direct_routing(app: &TestApp) {
    let mut record = number(DIRECT_ROUTING, NumberType::DirectRouting);
    record.emergency_location_id = Some("redmond-hq".into());
    app.seed_numbers(TENANT, &[record]).await;
}

// ---- setting and changing ----------------------------------------------------------------------

async fn updates_the_location_where_the_operator_allows_it(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = get(&mut admin, NORTHWIND_OPEN).await;
    assert_eq!(before.emergency_location_id, "");
    assert!(before.location_update_supported);
    assert_eq!(before.etag, "1");

    let updated = update(
        &mut admin,
        update_request("14255550105", "redmond-building-92", &before.etag),
    )
    .await
    .expect("set the location");
    assert_only_location_changed(&before, &updated, "redmond-building-92");
    assert_eq!(
        get(&mut admin, NORTHWIND_OPEN).await,
        updated,
        "stored as answered"
    );
    assert_eq!(
        at_location(&app, "redmond-building-92").await,
        [NORTHWIND_OPEN]
    );

    // One audit event: the number before and after.
    let events = audit_events(&app, TENANT).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.action, UPDATE_EMERGENCY_LOCATION);
    assert_eq!(event.actor, "test");
    assert_eq!(event.phone_number, NORTHWIND_OPEN);
    assert_eq!(event.user_id, "", "the number is unassigned");
    assert_eq!(event.request_id, "");
    assert!(is_null_field(event.before.as_ref(), "emergencyLocationId"));
    assert_eq!(
        string_field(event.after.as_ref(), "emergencyLocationId").as_deref(),
        Some("redmond-building-92")
    );

    // And again, to another location, without an etag.
    let moved = update(&mut admin, update_request(NORTHWIND_OPEN, "redmond-hq", ""))
        .await
        .expect("change the location");
    assert_only_location_changed(&updated, &moved, "redmond-hq");
    assert_eq!(moved.etag, "3");
    assert!(at_location(&app, "redmond-building-92").await.is_empty());
    assert_eq!(audit_events(&app, TENANT).await.len(), 2);

    // A Calling Plan number of the tenant, and an assigned one: the event names the holder.
    app.admin(TENANT)
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: "john@contoso.com".into(),
            phone_number: CALLING_PLAN_HQ.into(),
            ..Default::default()
        })
        .await
        .expect("assign to John");
    let assigned = get(&mut admin, CALLING_PLAN_HQ).await;
    let changed = update(
        &mut admin,
        update_request(CALLING_PLAN_HQ, "redmond-building-92", &assigned.etag),
    )
    .await
    .expect("change the location of an assigned number");
    assert_only_location_changed(&assigned, &changed, "redmond-building-92");
    assert_eq!(changed.assigned_to, JOHN_ID);
    let latest = &audit_events(&app, TENANT).await[0];
    assert_eq!(latest.action, UPDATE_EMERGENCY_LOCATION);
    assert_eq!(latest.phone_number, CALLING_PLAN_HQ);
    assert_eq!(latest.user_id, JOHN_ID);
    assert_eq!(
        string_field(latest.before.as_ref(), "emergencyLocationId").as_deref(),
        Some("redmond-hq")
    );
}

async fn a_locked_location_sends_the_admin_to_the_operator(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let locked = get(&mut admin, FABRIKAM_LOCKED).await;
    assert!(!locked.location_update_supported);
    assert_eq!(locked.emergency_location_id, "redmond-hq");

    let before = state(&app, TENANT).await;
    for request in [
        update_request(FABRIKAM_LOCKED, "redmond-building-92", ""),
        update_request(FABRIKAM_LOCKED, "redmond-building-92", &locked.etag),
        update_request(FABRIKAM_LOCKED, "", ""),
        pb::UpdateEmergencyLocationRequest {
            validate_only: true,
            ..update_request(FABRIKAM_LOCKED, "redmond-building-92", "")
        },
    ] {
        let status = assert_error(
            update(&mut admin, request.clone()).await,
            Code::FailedPrecondition,
            "EMERGENCY_LOCATION_LOCKED",
        );
        assert!(
            status.message().contains("contact Fabrikam Telecom"),
            "the message sends the admin to Fabrikam: {status:?}"
        );
        assert!(status.message().contains(FABRIKAM_LOCKED), "{status:?}");
        assert_unchanged(&before, &state(&app, TENANT).await, &format!("{request:?}"));
        assert_eq!(
            get(&mut admin, FABRIKAM_LOCKED).await.emergency_location_id,
            "redmond-hq"
        );
    }

    // The lock is per number, as the operator uploaded it: Northwind may lock one of its
    // numbers, and Fabrikam may open one of its own.
    let uploaded = app
        .operator("northwind-voice")
        .upload_numbers(pb::UploadNumbersRequest {
            tenant_id: TENANT.into(),
            numbers: vec![pb::UploadedNumber {
                phone_number: "+14255551001".into(),
                capabilities: vec![pb::Capability::UserAssignment as i32],
                allow_tenant_location_update: Some(false),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("Northwind uploads a locked number");
    assert!(!uploaded.into_inner().phone_numbers[0].location_update_supported);
    app.operator("fabrikam-telecom")
        .upload_numbers(pb::UploadNumbersRequest {
            tenant_id: TENANT.into(),
            numbers: vec![pb::UploadedNumber {
                phone_number: "+14255551002".into(),
                capabilities: vec![pb::Capability::UserAssignment as i32],
                allow_tenant_location_update: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("Fabrikam uploads an open number");
    let before = state(&app, TENANT).await;
    let status = assert_error(
        update(&mut admin, update_request("+14255551001", "redmond-hq", "")).await,
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_LOCKED",
    );
    assert!(
        status.message().contains("contact Northwind Voice"),
        "{status:?}"
    );
    assert_unchanged(
        &before,
        &state(&app, TENANT).await,
        "Northwind's locked number",
    );
    let opened = update(
        &mut admin,
        update_request("+14255551002", "redmond-hq", "1"),
    )
    .await
    .expect("Fabrikam's open number");
    assert_eq!(opened.emergency_location_id, "redmond-hq");
    assert_eq!(opened.etag, "2");
}

async fn etags_guard_against_concurrent_edits(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let first = get(&mut admin, CALLING_PLAN_HQ).await;
    assert_eq!(first.etag, "1");
    let second = update(
        &mut admin,
        update_request(CALLING_PLAN_HQ, "redmond-building-92", "1"),
    )
    .await
    .expect("update at etag 1");
    assert_eq!(second.etag, "2");

    // The etag read before that update is stale now; so is one never issued.
    let before = state(&app, TENANT).await;
    for stale in ["1", "7", "0"] {
        let status = assert_error(
            update(
                &mut admin,
                update_request(CALLING_PLAN_HQ, "redmond-hq", stale),
            )
            .await,
            Code::Aborted,
            "ETAG_MISMATCH",
        );
        assert!(status.message().contains(CALLING_PLAN_HQ), "{status:?}");
        assert_unchanged(&before, &state(&app, TENANT).await, stale);
    }
    // Even when the request would change nothing.
    assert_error(
        update(
            &mut admin,
            update_request(CALLING_PLAN_HQ, "redmond-building-92", "1"),
        )
        .await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "stale no-op");

    // Malformed etags.
    for malformed in ["abc", "W/\"2\"", "2.0", "two"] {
        let status = assert_error(
            update(
                &mut admin,
                update_request(CALLING_PLAN_HQ, "redmond-hq", malformed),
            )
            .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), ["etag"], "{malformed}");
        assert_unchanged(&before, &state(&app, TENANT).await, malformed);
    }

    // The current etag works, quoted as HTTP writes it or not.
    let third = update(
        &mut admin,
        update_request(CALLING_PLAN_HQ, "redmond-hq", &second.etag),
    )
    .await
    .expect("update at the current etag");
    assert_eq!(third.etag, "3");
    assert_eq!(third.emergency_location_id, "redmond-hq");
    let fourth = update(
        &mut admin,
        update_request(CALLING_PLAN_HQ, "redmond-building-92", "\"3\""),
    )
    .await
    .expect("a quoted etag");
    assert_eq!(fourth.etag, "4");
    assert_eq!(get(&mut admin, CALLING_PLAN_HQ).await, fourth);
}

async fn concurrent_updates_with_one_etag_let_one_win(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let before = app_get(&app, NORTHWIND_OPEN).await;
    assert_eq!(before.etag, "1");

    // Eight admins read etag 1 and update at once, to two different locations.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let mut client = app.admin(TENANT);
            let barrier = barrier.clone();
            let location = if i % 2 == 0 {
                "redmond-hq"
            } else {
                "redmond-building-92"
            };
            tokio::spawn(async move {
                barrier.wait().await;
                update(&mut client, update_request(NORTHWIND_OPEN, location, "1")).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(updated) => winners.push(updated),
            Err(status) => {
                assert_error::<()>(Err(status), Code::Aborted, "ETAG_MISMATCH");
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one update at etag 1 wins: {winners:?}"
    );
    let winner = &winners[0];
    assert_eq!(winner.etag, "2");
    assert_eq!(app_get(&app, NORTHWIND_OPEN).await, *winner);
    let events = audit_events(&app, TENANT).await;
    assert_eq!(events.len(), 1, "one change, one event");
    assert_eq!(
        string_field(events[0].after.as_ref(), "emergencyLocationId"),
        Some(winner.emergency_location_id.clone())
    );
}

async fn concurrent_retries_with_one_request_id_update_once(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    // A client that read etag 1 retries its update eagerly: every retry is the same request,
    // so every one must get the first answer, even those that arrive after it committed.
    let request = pb::UpdateEmergencyLocationRequest {
        request_id: new_request_id(),
        ..update_request(NORTHWIND_OPEN, "redmond-building-92", "1")
    };
    let admin = app.admin(TENANT);
    let answers = futures::future::join_all((0..32).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { update(&mut client, request).await }
    }))
    .await;
    let answers: Vec<pb::PhoneNumber> = answers
        .into_iter()
        .map(|a| a.expect("every retry gets the first answer"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    assert_eq!(answers[0].etag, "2");
    assert_eq!(app_get(&app, NORTHWIND_OPEN).await, answers[0]);
    assert_eq!(
        audit_events(&app, TENANT).await.len(),
        1,
        "one change, one event"
    );
}

async fn app_get(app: &TestApp, phone_number: &str) -> pb::PhoneNumber {
    get(&mut app.reader(TENANT), phone_number).await
}

// ---- clearing ----------------------------------------------------------------------------------

async fn clearing_the_location(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    seed_direct_routing(&app).await;
    let mut admin = app.admin(TENANT);

    // An unassigned Calling Plan number.
    let hq = get(&mut admin, CALLING_PLAN_HQ).await;
    let cleared = update(&mut admin, update_request(CALLING_PLAN_HQ, "", &hq.etag))
        .await
        .expect("clear an unassigned Calling Plan number");
    assert_only_location_changed(&hq, &cleared, "");
    assert_eq!(get(&mut admin, CALLING_PLAN_HQ).await, cleared);

    // A Direct Routing number.
    let direct = get(&mut admin, DIRECT_ROUTING).await;
    assert_eq!(direct.emergency_location_id, "redmond-hq");
    let cleared = update(&mut admin, update_request(DIRECT_ROUTING, "  ", ""))
        .await
        .expect("clear a Direct Routing number");
    assert_only_location_changed(&direct, &cleared, "");
    assert_eq!(at_location(&app, "redmond-hq").await, [FABRIKAM_LOCKED]);

    let events = audit_events(&app, TENANT).await;
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_eq!(event.action, UPDATE_EMERGENCY_LOCATION);
        assert_eq!(
            string_field(event.before.as_ref(), "emergencyLocationId").as_deref(),
            Some("redmond-hq")
        );
        assert!(is_null_field(event.after.as_ref(), "emergencyLocationId"));
    }

    // A Calling Plan number assigned to a user in the US must keep one.
    admin
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: "john@contoso.com".into(),
            phone_number: CALLING_PLAN_A.into(),
            emergency_location_id: "redmond-building-92".into(),
            ..Default::default()
        })
        .await
        .expect("assign to John");
    let before = state(&app, TENANT).await;
    for request in [
        update_request(CALLING_PLAN_A, "", ""),
        update_request(CALLING_PLAN_A, "", "2"),
        pb::UpdateEmergencyLocationRequest {
            validate_only: true,
            ..update_request(CALLING_PLAN_A, "", "")
        },
    ] {
        let status = assert_error(
            update(&mut admin, request).await,
            Code::FailedPrecondition,
            "EMERGENCY_LOCATION_REQUIRED",
        );
        assert!(status.message().contains(CALLING_PLAN_A), "{status:?}");
        assert_unchanged(
            &before,
            &state(&app, TENANT).await,
            "clear an assigned number",
        );
    }
    assert_eq!(
        get(&mut admin, CALLING_PLAN_A).await.emergency_location_id,
        "redmond-building-92"
    );
    // Changing it is fine.
    let changed = update(&mut admin, update_request(CALLING_PLAN_A, "redmond-hq", ""))
        .await
        .expect("change the location of the assigned number");
    assert_eq!(changed.emergency_location_id, "redmond-hq");
}

// ---- refusals ----------------------------------------------------------------------------------

async fn locations_numbers_and_requests_are_checked(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    // A location of another tenant is as unknown as a missing one.
    let foreign = app
        .admin(OTHER_TENANT)
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address: Some(pb::CivicAddress {
                    company_name: "Fabrikam".into(),
                    house_number: "1".into(),
                    street_name: "Microsoft Way".into(),
                    city: "Redmond".into(),
                    state_or_province: "WA".into(),
                    postal_code: "98052".into(),
                    country: "US".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("create a location in another tenant")
        .into_inner()
        .id;

    let before = state(&app, TENANT).await;
    let cases: Vec<(&str, pb::UpdateEmergencyLocationRequest, Code, &str)> = vec![
        (
            "an unknown location",
            update_request(CALLING_PLAN_B, "no-such-place", ""),
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        ),
        (
            "another tenant's location",
            update_request(CALLING_PLAN_B, &foreign, ""),
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        ),
        (
            "an unvalidated location",
            update_request(CALLING_PLAN_B, "seattle-unvalidated", ""),
            Code::FailedPrecondition,
            "EMERGENCY_LOCATION_NOT_VALIDATED",
        ),
        (
            "a French location for a US number",
            update_request(CALLING_PLAN_B, "paris-office", ""),
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
        (
            "a French location for an operator's US number",
            update_request(NORTHWIND_OPEN, "paris-office", ""),
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
        (
            "a US location for a French number",
            update_request(PARIS_NUMBER, "redmond-hq", ""),
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
        (
            "a number not in the inventory",
            update_request("+12065550100", "redmond-hq", ""),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        ),
        (
            "validate_only does not skip the rules",
            pb::UpdateEmergencyLocationRequest {
                validate_only: true,
                ..update_request(CALLING_PLAN_B, "paris-office", "")
            },
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
    ];
    for (what, request, code, reason) in cases {
        assert_error(update(&mut admin, request).await, code, reason);
        assert_unchanged(&before, &state(&app, TENANT).await, what);
    }

    let malformed: Vec<(&str, pb::UpdateEmergencyLocationRequest, &str, &str)> = vec![
        (
            "no number",
            update_request("", "redmond-hq", ""),
            "INVALID_PHONE_NUMBER",
            "phone_number",
        ),
        (
            "not a number",
            update_request("redmond", "redmond-hq", ""),
            "INVALID_PHONE_NUMBER",
            "phone_number",
        ),
        (
            "a request id that is no UUID",
            pb::UpdateEmergencyLocationRequest {
                request_id: "update-1".into(),
                ..update_request(CALLING_PLAN_B, "redmond-hq", "")
            },
            "INVALID_ARGUMENT",
            "request_id",
        ),
    ];
    for (what, request, reason, field) in malformed {
        let status = assert_error(
            update(&mut admin, request).await,
            Code::InvalidArgument,
            reason,
        );
        assert_eq!(violated_fields(&status), [field], "{what}");
        assert_unchanged(&before, &state(&app, TENANT).await, what);
    }

    // Another tenant cannot reach the demo tenant's numbers.
    let other_before = state(&app, OTHER_TENANT).await;
    assert_error(
        update(
            &mut app.admin(OTHER_TENANT),
            update_request(CALLING_PLAN_B, &foreign, ""),
        )
        .await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    assert_unchanged(
        &other_before,
        &state(&app, OTHER_TENANT).await,
        "other tenant",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "other tenant");
}

async fn setting_the_same_location_again_changes_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = state(&app, TENANT).await;
    let hq = get(&mut admin, CALLING_PLAN_HQ).await;

    for etag in ["", "1"] {
        let again = update(
            &mut admin,
            update_request(CALLING_PLAN_HQ, "redmond-hq", etag),
        )
        .await
        .expect("set the same location");
        assert_eq!(again, hq, "answered as it is");
        assert_eq!(again.etag, "1");
        assert_unchanged(&before, &state(&app, TENANT).await, "the same location");
    }
    // Clearing a number that has none is no change either.
    let none = get(&mut admin, CALLING_PLAN_B).await;
    let cleared = update(&mut admin, update_request(CALLING_PLAN_B, "", ""))
        .await
        .expect("clear nothing");
    assert_eq!(cleared, none);
    assert_unchanged(&before, &state(&app, TENANT).await, "clearing nothing");
}

async fn request_id_replays_and_validate_only_changes_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = state(&app, TENANT).await;
    let original = get(&mut admin, CALLING_PLAN_B).await;

    // validate_only answers what would be, and changes nothing.
    let rehearsed = update(
        &mut admin,
        pb::UpdateEmergencyLocationRequest {
            validate_only: true,
            ..update_request(CALLING_PLAN_B, "redmond-building-92", "1")
        },
    )
    .await
    .expect("validate an update");
    assert_eq!(rehearsed.emergency_location_id, "redmond-building-92");
    assert_unchanged(&before, &state(&app, TENANT).await, "validate_only");
    assert_eq!(get(&mut admin, CALLING_PLAN_B).await, original);

    let request_id = new_request_id();
    let request = pb::UpdateEmergencyLocationRequest {
        request_id: request_id.clone(),
        ..update_request(CALLING_PLAN_B, "redmond-building-92", "1")
    };
    let first = update(&mut admin, request.clone())
        .await
        .expect("update with a request id");
    assert_eq!(first.etag, "2");
    let after_first = state(&app, TENANT).await;
    assert_eq!(after_first.audit.len(), 1);
    assert_eq!(after_first.audit[0].request_id, request_id);

    // A retry answers as the first time, though etag 1 is stale now.
    let retry = update(&mut admin, request.clone())
        .await
        .expect("retry the update");
    assert_eq!(retry, first);
    assert_unchanged(&after_first, &state(&app, TENANT).await, "the retry");

    // Even after another change.
    let moved = update(
        &mut admin,
        update_request(CALLING_PLAN_B, "redmond-hq", "2"),
    )
    .await
    .expect("another update");
    assert_eq!(moved.etag, "3");
    let after_move = state(&app, TENANT).await;
    let late = update(&mut admin, request).await.expect("a late retry");
    assert_eq!(late, first);
    assert_unchanged(&after_move, &state(&app, TENANT).await, "the late retry");
    assert_eq!(
        get(&mut admin, CALLING_PLAN_B).await.emergency_location_id,
        "redmond-hq"
    );

    // The same id for another request is refused.
    assert_error(
        update(
            &mut admin,
            pb::UpdateEmergencyLocationRequest {
                request_id,
                ..update_request(CALLING_PLAN_A, "redmond-hq", "")
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert_unchanged(&after_move, &state(&app, TENANT).await, "a reused id");
}

async fn readers_may_not_update_locations(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut reader = app.reader(TENANT);
    let before = state(&app, TENANT).await;
    for request in [
        update_request(NORTHWIND_OPEN, "redmond-hq", ""),
        update_request(CALLING_PLAN_HQ, "", "1"),
        pb::UpdateEmergencyLocationRequest {
            validate_only: true,
            ..update_request(NORTHWIND_OPEN, "redmond-hq", "")
        },
        // Permission comes before validation.
        update_request("not a number", "", "abc"),
    ] {
        assert_error(
            update(&mut reader, request).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert_unchanged(&before, &state(&app, TENANT).await, "a reader's update");
    }
    // Readers may look.
    assert_eq!(
        at_location(&app, "redmond-hq").await,
        [CALLING_PLAN_HQ, FABRIKAM_LOCKED]
    );
}

// ---- ListPhoneNumbers by location --------------------------------------------------------------

async fn lists_the_numbers_of_a_location(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    seed_direct_routing(&app).await;
    let mut admin = app.admin(TENANT);

    assert_eq!(
        at_location(&app, "redmond-hq").await,
        [CALLING_PLAN_HQ, FABRIKAM_LOCKED, DIRECT_ROUTING]
    );
    assert!(at_location(&app, "redmond-building-92").await.is_empty());
    assert!(at_location(&app, "paris-office").await.is_empty());
    assert!(at_location(&app, "no-such-place").await.is_empty());

    for n in [NORTHWIND_OPEN, CALLING_PLAN_A] {
        update(&mut admin, update_request(n, "redmond-building-92", ""))
            .await
            .expect("move to building 92");
    }
    update(&mut admin, update_request(PARIS_NUMBER, "paris-office", ""))
        .await
        .expect("register the Paris number");
    update(
        &mut admin,
        update_request(DIRECT_ROUTING, "redmond-building-92", ""),
    )
    .await
    .expect("move the Direct Routing number");

    assert_eq!(
        at_location(&app, "redmond-hq").await,
        [CALLING_PLAN_HQ, FABRIKAM_LOCKED]
    );
    assert_eq!(
        at_location(&app, "redmond-building-92").await,
        [CALLING_PLAN_A, NORTHWIND_OPEN, DIRECT_ROUTING]
    );
    assert_eq!(at_location(&app, "paris-office").await, [PARIS_NUMBER]);

    // With other filters: all must match.
    let calling_plan_at_92 = list_all(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            emergency_location_id: "redmond-building-92".into(),
            number_type: pb::NumberType::CallingPlan as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(calling_plan_at_92.len(), 1);
    assert_eq!(calling_plan_at_92[0].phone_number, CALLING_PLAN_A);
    let paged = list_all(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            emergency_location_id: "redmond-building-92".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(paged.len(), 3);

    // Another tenant has nothing there.
    let other = list_all(
        &mut app.reader(OTHER_TENANT),
        pb::ListPhoneNumbersRequest {
            emergency_location_id: "redmond-hq".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(other.is_empty());
}

on_both_stores!(
    updates_the_location_where_the_operator_allows_it,
    a_locked_location_sends_the_admin_to_the_operator,
    etags_guard_against_concurrent_edits,
    concurrent_updates_with_one_etag_let_one_win,
    concurrent_retries_with_one_request_id_update_once,
    clearing_the_location,
    locations_numbers_and_requests_are_checked,
    setting_the_same_location_again_changes_nothing,
    request_id_replays_and_validate_only_changes_nothing,
    readers_may_not_update_locations,
    lists_the_numbers_of_a_location,
);
