//! The audit trail over the socket: one event per changed record, with who, what, which number
//! and user, the request id and the record before and after; ListAuditEvents with its filters,
//! order and pages; and no event for refusals, rehearsals, retries, or other tenants.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use number_management::demo;
use number_management::proto::v1 as pb;
use prost_types::Timestamp;
use prost_types::value::Kind;
use tonic::{Code, Status};

use crate::helpers::{Backend, Client, TestApp, TestConfig, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
const JOHN: &str = "john@contoso.com";

const UPSERT_USER: i32 = pb::AuditAction::UpsertUser as i32;
const CREATE_EMERGENCY_LOCATION: i32 = pb::AuditAction::CreateEmergencyLocation as i32;
const ASSIGN: i32 = pb::AuditAction::AssignPhoneNumber as i32;
const CHANGE: i32 = pb::AuditAction::ChangePhoneNumber as i32;
const REMOVE: i32 = pb::AuditAction::RemovePhoneNumber as i32;
const UPDATE_EMERGENCY_LOCATION: i32 = pb::AuditAction::UpdateEmergencyLocation as i32;
const ACQUIRE: i32 = pb::AuditAction::AcquirePhoneNumber as i32;
const RELEASE: i32 = pb::AuditAction::ReleasePhoneNumber as i32;
const ENABLE_OPERATOR: i32 = pb::AuditAction::EnableOperator as i32;
const DISABLE_OPERATOR: i32 = pb::AuditAction::DisableOperator as i32;
const UPLOAD: i32 = pb::AuditAction::UploadPhoneNumber as i32;
const OPERATOR_RELEASE: i32 = pb::AuditAction::OperatorReleasePhoneNumber as i32;

// ---- helpers of this module --------------------------------------------------------------------

async fn list(
    client: &mut Client,
    request: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Status> {
    client
        .list_audit_events(request)
        .await
        .map(|r| r.into_inner())
}

/// Every event of a listing, following the page tokens.
async fn list_all(client: &mut Client, request: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            client,
            pb::ListAuditEventsRequest {
                page_size: if request.page_size == 0 {
                    1000
                } else {
                    request.page_size
                },
                page_token: token,
                ..request.clone()
            },
        )
        .await
        .expect("list audit events");
        events.extend(page.audit_events);
        token = page.next_page_token;
        if token.is_empty() {
            return events;
        }
    }
}

async fn all_events(app: &TestApp, tenant: &str) -> Vec<pb::AuditEvent> {
    list_all(
        &mut app.reader(tenant),
        pb::ListAuditEventsRequest::default(),
    )
    .await
}

/// The events written since `seen` events were, newest first; moves `seen` on.
async fn new_events(app: &TestApp, seen: &mut usize) -> Vec<pb::AuditEvent> {
    let events = all_events(app, TENANT).await;
    assert!(events.len() >= *seen, "audit events disappeared");
    let fresh = events[..events.len() - *seen].to_vec();
    *seen = events.len();
    fresh
}

async fn inventory(app: &TestApp, tenant: &str) -> Vec<pb::PhoneNumber> {
    app.reader(tenant)
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list numbers")
        .into_inner()
        .phone_numbers
}

fn field<'a>(s: Option<&'a prost_types::Struct>, name: &str) -> Option<&'a Kind> {
    s?.fields.get(name)?.kind.as_ref()
}

fn string_field(s: Option<&prost_types::Struct>, name: &str) -> Option<String> {
    match field(s, name)? {
        Kind::StringValue(v) => Some(v.clone()),
        _ => None,
    }
}

fn is_null(s: Option<&prost_types::Struct>, name: &str) -> bool {
    matches!(field(s, name), Some(Kind::NullValue(_)))
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn micros(t: &Timestamp) -> i128 {
    i128::from(t.seconds) * 1_000_000 + i128::from(t.nanos / 1000)
}

/// Checks the fields every event has.
#[track_caller]
fn assert_event(
    event: &pb::AuditEvent,
    action: i32,
    actor: &str,
    phone_number: &str,
    user_id: &str,
    request_id: &str,
) {
    assert_eq!(event.action, action, "{event:?}");
    assert_eq!(event.actor, actor, "{event:?}");
    assert_eq!(event.phone_number, phone_number, "{event:?}");
    assert_eq!(event.user_id, user_id, "{event:?}");
    assert_eq!(event.request_id, request_id, "{event:?}");
    assert!(uuid::Uuid::try_parse(&event.id).is_ok(), "{event:?}");
    assert!(event.time.is_some(), "{event:?}");
}

fn feed_user(upn: &str, display_name: &str) -> pb::User {
    pb::User {
        user_principal_name: upn.into(),
        display_name: display_name.into(),
        usage_location: "US".into(),
        licenses: vec![
            pb::user::License::PhoneSystem as i32,
            pb::user::License::CallingPlan as i32,
        ],
        ..Default::default()
    }
}

async fn upsert(client: &mut Client, request: pb::UpsertUserRequest) -> Result<pb::User, Status> {
    client.upsert_user(request).await.map(|r| r.into_inner())
}

fn seattle() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso".into(),
        house_number: "500".into(),
        street_name: "Pine".into(),
        street_suffix: "St".into(),
        city: "Seattle".into(),
        state_or_province: "WA".into(),
        postal_code: "98101".into(),
        country: "US".into(),
        ..Default::default()
    }
}

fn location_request(address: pb::CivicAddress) -> pb::CreateEmergencyLocationRequest {
    pb::CreateEmergencyLocationRequest {
        emergency_location: Some(pb::EmergencyLocation {
            address: Some(address),
            description: "Store".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn assign_request(identity: &str, phone_number: &str) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        identity: identity.into(),
        phone_number: phone_number.into(),
        ..Default::default()
    }
}

fn acquire_request(quantity: i32) -> pb::AcquirePhoneNumbersRequest {
    pb::AcquirePhoneNumbersRequest {
        country: "US".into(),
        area_code: "206".into(),
        quantity,
        ..Default::default()
    }
}

fn upload_request(tenant: &str, phone_number: &str) -> pb::UploadNumbersRequest {
    pb::UploadNumbersRequest {
        tenant_id: tenant.into(),
        numbers: vec![pb::UploadedNumber {
            phone_number: phone_number.into(),
            capabilities: vec![pb::Capability::UserAssignment as i32],
            ..Default::default()
        }],
        ..Default::default()
    }
}

// ---- what is recorded --------------------------------------------------------------------------

async fn every_change_writes_one_event_per_record(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let mut seen = 0;
    assert!(
        new_events(&app, &mut seen).await.is_empty(),
        "the demo loads without events"
    );

    // UpsertUser: one event for the user; a creation has no "before".
    let request_id = new_request_id();
    let kim = upsert(
        &mut admin,
        pb::UpsertUserRequest {
            user: Some(feed_user("kim@contoso.com", "Kim")),
            request_id: request_id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("create Kim");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(&events[0], UPSERT_USER, "test", "", &kim.id, &request_id);
    assert!(events[0].before.is_none(), "a creation: {:?}", events[0]);
    let after = events[0].after.as_ref();
    assert_eq!(
        string_field(after, "userPrincipalName").as_deref(),
        Some("kim@contoso.com")
    );
    assert_eq!(string_field(after, "id"), Some(kim.id.clone()));

    upsert(
        &mut admin,
        pb::UpsertUserRequest {
            user: Some(feed_user("KIM@contoso.com", "Kim Lee")),
            ..Default::default()
        },
    )
    .await
    .expect("update Kim");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(&events[0], UPSERT_USER, "test", "", &kim.id, "");
    assert_eq!(
        string_field(events[0].before.as_ref(), "displayName").as_deref(),
        Some("Kim")
    );
    assert_eq!(
        string_field(events[0].after.as_ref(), "displayName").as_deref(),
        Some("Kim Lee")
    );

    // CreateEmergencyLocation: one event for the location.
    let location = admin
        .create_emergency_location(location_request(seattle()))
        .await
        .expect("create a location")
        .into_inner();
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(&events[0], CREATE_EMERGENCY_LOCATION, "test", "", "", "");
    assert!(events[0].before.is_none());
    assert_eq!(
        string_field(events[0].after.as_ref(), "id"),
        Some(location.id.clone())
    );

    // AssignPhoneNumber: the number, the user, and the holder before (none) and after.
    let request_id = new_request_id();
    admin
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            request_id: request_id.clone(),
            ..assign_request(JOHN, "+14255550101")
        })
        .await
        .expect("assign to John");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(
        &events[0],
        ASSIGN,
        "test",
        "+14255550101",
        JOHN_ID,
        &request_id,
    );
    assert!(is_null(
        events[0].before.as_ref(),
        "assignedToUserPrincipalName"
    ));
    assert_eq!(
        string_field(events[0].after.as_ref(), "assignedToUserPrincipalName").as_deref(),
        Some(JOHN)
    );
    assert_eq!(
        string_field(events[0].after.as_ref(), "assignedTo").as_deref(),
        Some(JOHN_ID)
    );

    // ChangePhoneNumber: one event per number.
    admin
        .change_phone_number(pb::ChangePhoneNumberRequest {
            identity: JOHN.into(),
            phone_number: "+14255550103".into(),
            emergency_location_id: "redmond-hq".into(),
            ..Default::default()
        })
        .await
        .expect("change John's number");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 2);
    let old = events
        .iter()
        .find(|e| e.phone_number == "+14255550101")
        .expect("an event for the old number");
    let new = events
        .iter()
        .find(|e| e.phone_number == "+14255550103")
        .expect("an event for the new number");
    assert_event(old, CHANGE, "test", "+14255550101", JOHN_ID, "");
    assert_event(new, CHANGE, "test", "+14255550103", JOHN_ID, "");
    assert_eq!(
        string_field(old.before.as_ref(), "assignedToUserPrincipalName").as_deref(),
        Some(JOHN)
    );
    assert!(is_null(old.after.as_ref(), "assignedToUserPrincipalName"));
    assert!(is_null(new.before.as_ref(), "assignedToUserPrincipalName"));
    assert_eq!(
        string_field(new.after.as_ref(), "assignedToUserPrincipalName").as_deref(),
        Some(JOHN)
    );

    // RemovePhoneNumber.
    admin
        .remove_phone_number(pb::RemovePhoneNumberRequest {
            identity: JOHN.into(),
            phone_number: "+14255550103".into(),
            ..Default::default()
        })
        .await
        .expect("remove John's number");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(&events[0], REMOVE, "test", "+14255550103", JOHN_ID, "");
    assert_eq!(
        string_field(events[0].before.as_ref(), "assignedToUserPrincipalName").as_deref(),
        Some(JOHN)
    );
    assert!(is_null(
        events[0].after.as_ref(),
        "assignedToUserPrincipalName"
    ));

    // UpdateEmergencyLocation.
    admin
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: "+14255550105".into(),
            emergency_location_id: "redmond-building-92".into(),
            ..Default::default()
        })
        .await
        .expect("set a location");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(
        &events[0],
        UPDATE_EMERGENCY_LOCATION,
        "test",
        "+14255550105",
        "",
        "",
    );
    assert!(is_null(events[0].before.as_ref(), "emergencyLocationId"));
    assert_eq!(
        string_field(events[0].after.as_ref(), "emergencyLocationId").as_deref(),
        Some("redmond-building-92")
    );

    // AcquirePhoneNumbers: one event per number; ReleasePhoneNumbers likewise.
    let acquired: Vec<String> = admin
        .acquire_phone_numbers(acquire_request(3))
        .await
        .expect("acquire")
        .into_inner()
        .phone_numbers
        .into_iter()
        .map(|n| n.phone_number)
        .collect();
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 3);
    let mut audited: Vec<String> = events.iter().map(|e| e.phone_number.clone()).collect();
    audited.sort();
    assert_eq!(audited, acquired);
    for event in &events {
        assert_event(event, ACQUIRE, "test", &event.phone_number, "", "");
        assert!(event.before.is_none());
        assert_eq!(
            string_field(event.after.as_ref(), "phoneNumber"),
            Some(event.phone_number.clone())
        );
    }
    admin
        .release_phone_numbers(pb::ReleasePhoneNumbersRequest {
            phone_numbers: acquired[..2].to_vec(),
            ..Default::default()
        })
        .await
        .expect("release two");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_event(event, RELEASE, "test", &event.phone_number, "", "");
        assert!(acquired[..2].contains(&event.phone_number));
        assert!(event.after.is_none(), "a deletion: {event:?}");
        assert!(event.before.is_some());
    }

    // EnableOperator and DisableOperator: one event each.
    admin
        .enable_operator(pb::EnableOperatorRequest {
            operator_id: "northwind-voice".into(),
            countries: vec!["US".into(), "GB".into()],
            ..Default::default()
        })
        .await
        .expect("enable Northwind for GB too");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(&events[0], ENABLE_OPERATOR, "test", "", "", "");
    assert!(
        events[0].before.is_some(),
        "Northwind was enabled for the US already"
    );
    assert_eq!(
        string_field(events[0].after.as_ref(), "operatorId").as_deref(),
        Some("northwind-voice")
    );
    admin
        .disable_operator(pb::DisableOperatorRequest {
            operator_id: "northwind-voice".into(),
            ..Default::default()
        })
        .await
        .expect("disable Northwind");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(&events[0], DISABLE_OPERATOR, "test", "", "", "");
    assert!(events[0].after.is_none());

    // An operator's upload and release: the actor names the operator.
    let mut fabrikam = app.operator("fabrikam-telecom");
    let request_id = new_request_id();
    fabrikam
        .upload_numbers(pb::UploadNumbersRequest {
            request_id: request_id.clone(),
            ..upload_request(TENANT, "14255551001")
        })
        .await
        .expect("Fabrikam uploads");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(
        &events[0],
        UPLOAD,
        "operator:fabrikam-telecom/test",
        "+14255551001",
        "",
        &request_id,
    );
    assert!(events[0].before.is_none());
    fabrikam
        .release_numbers(pb::ReleaseNumbersRequest {
            tenant_id: TENANT.into(),
            phone_numbers: vec!["+14255551001".into()],
            ..Default::default()
        })
        .await
        .expect("Fabrikam takes it back");
    let events = new_events(&app, &mut seen).await;
    assert_eq!(events.len(), 1);
    assert_event(
        &events[0],
        OPERATOR_RELEASE,
        "operator:fabrikam-telecom/test",
        "+14255551001",
        "",
        "",
    );
    assert!(events[0].after.is_none());

    // The whole trail: newest first, ids unique.
    let all = all_events(&app, TENANT).await;
    assert_eq!(all.len(), seen);
    let ids: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
    assert_eq!(
        all.last().map(|e| e.action),
        Some(UPSERT_USER),
        "the oldest last"
    );
    assert_eq!(all[0].action, OPERATOR_RELEASE, "the newest first");
}

// ---- ListAuditEvents ---------------------------------------------------------------------------

async fn lists_newest_first_with_filters(backend: Backend) {
    // The service's clock moves only when the test moves it, so the time filters' bounds fall
    // exactly between the changes.
    let app = TestApp::start_with_manual_clock(backend, TestConfig::default()).await;
    demo::load(app.store.as_ref())
        .await
        .expect("the demo tenant");
    let mut admin = app.admin(TENANT);
    let t0 = app.now();
    app.advance(Duration::from_millis(1));

    let kim = upsert(
        &mut admin,
        pb::UpsertUserRequest {
            user: Some(feed_user("kim@contoso.com", "Kim")),
            ..Default::default()
        },
    )
    .await
    .expect("create Kim");
    admin
        .assign_phone_number(assign_request(JOHN, "14255550101"))
        .await
        .expect("assign to John");
    admin
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: "+14255550101".into(),
            emergency_location_id: "redmond-building-92".into(),
            ..Default::default()
        })
        .await
        .expect("move John's number");
    app.advance(Duration::from_millis(1));
    let t1 = app.now();
    admin
        .acquire_phone_numbers(acquire_request(2))
        .await
        .expect("acquire");
    upsert(
        &mut admin,
        pb::UpsertUserRequest {
            user: Some(feed_user("kim@contoso.com", "Kim Lee")),
            ..Default::default()
        },
    )
    .await
    .expect("update Kim");
    app.advance(Duration::from_millis(1));
    let t2 = app.now();

    // Newest first: ids and times go down.
    let all = all_events(&app, TENANT).await;
    assert_eq!(all.len(), 6);
    let actions: Vec<i32> = all.iter().map(|e| e.action).collect();
    assert_eq!(
        [actions[0], actions[3], actions[4], actions[5]],
        [UPSERT_USER, UPDATE_EMERGENCY_LOCATION, ASSIGN, UPSERT_USER]
    );
    assert_eq!(&actions[1..3], [ACQUIRE, ACQUIRE]);
    for pair in all.windows(2) {
        assert!(pair[0].id > pair[1].id, "ids go down: {pair:?}");
        let (newer, older) = (
            pair[0].time.as_ref().expect("a time"),
            pair[1].time.as_ref().expect("a time"),
        );
        assert!(micros(newer) >= micros(older), "times go down: {pair:?}");
    }

    // By number, with or without +.
    let by_number = |phone_number: &str| pb::ListAuditEventsRequest {
        phone_number: phone_number.into(),
        ..Default::default()
    };
    let john_number = list_all(&mut admin, by_number("+14255550101")).await;
    assert_eq!(
        john_number.iter().map(|e| e.action).collect::<Vec<_>>(),
        [UPDATE_EMERGENCY_LOCATION, ASSIGN]
    );
    assert_eq!(
        list_all(&mut admin, by_number("14255550101")).await,
        john_number
    );
    assert_eq!(
        list_all(&mut admin, by_number(" +1 425-555-0101 ")).await,
        john_number
    );
    assert!(
        list_all(&mut admin, by_number("+14255550103"))
            .await
            .is_empty()
    );

    // By user: id, user principal name (any case) or SIP address.
    let by_user = |user: &str| pb::ListAuditEventsRequest {
        user: user.into(),
        ..Default::default()
    };
    let john_events = list_all(&mut admin, by_user(JOHN)).await;
    // The assignment and the location change of his number both concern John.
    assert_eq!(
        john_events.iter().map(|e| e.action).collect::<Vec<_>>(),
        [UPDATE_EMERGENCY_LOCATION, ASSIGN]
    );
    for identity in [JOHN_ID, "JOHN@Contoso.com", "sip:john@contoso.com"] {
        assert_eq!(
            list_all(&mut admin, by_user(identity)).await,
            john_events,
            "{identity}"
        );
    }
    let kim_events = list_all(&mut admin, by_user(&kim.id)).await;
    assert_eq!(kim_events.len(), 2);
    assert!(
        kim_events
            .iter()
            .all(|e| e.action == UPSERT_USER && e.user_id == kim.id)
    );
    assert_eq!(
        list_all(&mut admin, by_user("kim@contoso.com")).await,
        kim_events
    );
    // Both filters: both must match.
    assert_eq!(
        list_all(
            &mut admin,
            pb::ListAuditEventsRequest {
                user: JOHN.into(),
                phone_number: "+14255550101".into(),
                ..Default::default()
            },
        )
        .await,
        john_events
    );
    assert!(
        list_all(
            &mut admin,
            pb::ListAuditEventsRequest {
                user: "kim@contoso.com".into(),
                phone_number: "+14255550101".into(),
                ..Default::default()
            },
        )
        .await
        .is_empty()
    );

    // By time: [start, end).
    let between = |start: Option<SystemTime>, end: Option<SystemTime>| pb::ListAuditEventsRequest {
        start_time: start.map(Timestamp::from),
        end_time: end.map(Timestamp::from),
        ..Default::default()
    };
    let first_batch = list_all(&mut admin, between(Some(t0), Some(t1))).await;
    let second_batch = list_all(&mut admin, between(Some(t1), None)).await;
    assert_eq!(first_batch, all[3..].to_vec());
    assert_eq!(second_batch, all[..3].to_vec());
    assert_eq!(
        list_all(&mut admin, between(None, Some(t1))).await,
        first_batch
    );
    assert_eq!(list_all(&mut admin, between(Some(t0), Some(t2))).await, all);
    assert!(
        list_all(&mut admin, between(Some(t2), None))
            .await
            .is_empty()
    );
    assert!(
        list_all(&mut admin, between(None, Some(t0)))
            .await
            .is_empty()
    );
    // The start is inclusive, the end exclusive: an event's own time.
    let oldest_time = all[5].time;
    let from_oldest = list_all(
        &mut admin,
        pb::ListAuditEventsRequest {
            start_time: oldest_time,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(from_oldest, all);
    let before_oldest = list_all(
        &mut admin,
        pb::ListAuditEventsRequest {
            end_time: oldest_time,
            ..Default::default()
        },
    )
    .await;
    assert!(before_oldest.is_empty());
    // Time and user together.
    let kim_later = list_all(
        &mut admin,
        pb::ListAuditEventsRequest {
            user: "kim@contoso.com".into(),
            start_time: Some(Timestamp::from(t1)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(kim_later, vec![all[0].clone()]);

    // Refusals.
    let status = assert_error(
        list(&mut admin, by_user("nobody@contoso.com")).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert!(
        status.message().contains("nobody@contoso.com"),
        "{status:?}"
    );
    assert_error(
        list(&mut admin, by_user("00000000-0000-0000-0000-000000000000")).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let status = assert_error(
        list(&mut admin, by_number("not a number")).await,
        Code::InvalidArgument,
        "INVALID_PHONE_NUMBER",
    );
    assert_eq!(violated_fields(&status), ["phone_number"]);
    assert_eq!(
        all_events(&app, TENANT).await,
        all,
        "listing changes nothing"
    );
}

async fn pages_have_no_duplicates_or_gaps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for i in 0..25 {
        upsert(
            &mut admin,
            pb::UpsertUserRequest {
                user: Some(feed_user(&format!("user{i:02}@contoso.com"), "User")),
                ..Default::default()
            },
        )
        .await
        .expect("create a user");
    }
    let all = all_events(&app, TENANT).await;
    assert_eq!(all.len(), 25);

    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &mut admin,
            pb::ListAuditEventsRequest {
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("a page");
        sizes.push(page.audit_events.len());
        paged.extend(page.audit_events);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "the pages never end");
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(paged, all, "the pages are the listing, in order");
    let ids: HashSet<&str> = paged.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 25, "no duplicates");
    let upns: HashSet<String> = paged
        .iter()
        .filter_map(|e| string_field(e.after.as_ref(), "userPrincipalName"))
        .collect();
    assert_eq!(upns.len(), 25, "every user once");

    // New events between pages do not shift the pages already under way.
    let first = list(
        &mut admin,
        pb::ListAuditEventsRequest {
            page_size: 10,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    upsert(
        &mut admin,
        pb::UpsertUserRequest {
            user: Some(feed_user("late@contoso.com", "Late")),
            ..Default::default()
        },
    )
    .await
    .expect("a user created meanwhile");
    let second = list(
        &mut admin,
        pb::ListAuditEventsRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("second page");
    assert_eq!(first.audit_events, all[..10].to_vec());
    assert_eq!(second.audit_events, all[10..20].to_vec());

    // A page exactly as large as the listing has no next page.
    let exact = list(
        &mut admin,
        pb::ListAuditEventsRequest {
            page_size: 26,
            ..Default::default()
        },
    )
    .await
    .expect("one page");
    assert_eq!(exact.audit_events.len(), 26);
    assert_eq!(exact.next_page_token, "");

    // A filtered listing pages too.
    let user = "user07@contoso.com";
    for name in ["Seven", "Sept", "Sieben"] {
        upsert(
            &mut admin,
            pb::UpsertUserRequest {
                user: Some(feed_user(user, name)),
                ..Default::default()
            },
        )
        .await
        .expect("update user07");
    }
    let filtered = list_all(
        &mut admin,
        pb::ListAuditEventsRequest {
            user: user.into(),
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(filtered.len(), 4);
    let names: Vec<String> = filtered
        .iter()
        .filter_map(|e| string_field(e.after.as_ref(), "displayName"))
        .collect();
    assert_eq!(names, ["Sieben", "Sept", "Seven", "User"]);

    // A token belongs to its filters; sizes are checked.
    let status = assert_error(
        list(
            &mut admin,
            pb::ListAuditEventsRequest {
                page_size: 10,
                page_token: first.next_page_token,
                user: user.into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
    assert_error(
        list(
            &mut admin,
            pb::ListAuditEventsRequest {
                page_token: "garbage!".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    let status = assert_error(
        list(
            &mut admin,
            pb::ListAuditEventsRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["page_size"]);
}

// ---- what is not recorded ----------------------------------------------------------------------

async fn refused_rehearsed_and_retried_requests_write_no_event(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    admin
        .assign_phone_number(assign_request(JOHN, "+14255550101"))
        .await
        .expect("assign to John");
    let before = all_events(&app, TENANT).await;
    let numbers_before = inventory(&app, TENANT).await;
    assert_eq!(before.len(), 1);

    // Refusals.
    assert_error(
        admin
            .assign_phone_number(assign_request("nobody@contoso.com", "+14255550103"))
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_error(
        admin
            .assign_phone_number(assign_request("jack@contoso.com", "+14255550101"))
            .await,
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    assert_error(
        admin
            .release_phone_numbers(pb::ReleasePhoneNumbersRequest {
                phone_numbers: vec!["+14255550103".into(), "+14255550101".into()],
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "NUMBER_ASSIGNED",
    );
    assert_error(
        admin
            .update_emergency_location(pb::UpdateEmergencyLocationRequest {
                phone_number: "+14255550102".into(),
                emergency_location_id: "redmond-building-92".into(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_LOCKED",
    );
    assert_error(
        admin.acquire_phone_numbers(acquire_request(101)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_error(
        admin
            .enable_operator(pb::EnableOperatorRequest {
                operator_id: "fabrikam-telecom".into(),
                countries: vec!["GB".into()],
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "COUNTRY_NOT_SERVED",
    );
    assert_error(
        admin
            .upsert_user(pb::UpsertUserRequest {
                user: Some(feed_user("not-an-upn", "Nobody")),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        app.operator("fabrikam-telecom")
            .upload_numbers(upload_request(TENANT, "+16045551001"))
            .await,
        Code::FailedPrecondition,
        "COUNTRY_NOT_ENABLED",
    );
    let mut reader = app.reader(TENANT);
    assert_error(
        reader
            .upsert_user(pb::UpsertUserRequest {
                user: Some(feed_user("kim@contoso.com", "Kim")),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        reader.acquire_phone_numbers(acquire_request(1)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_eq!(
        all_events(&app, TENANT).await,
        before,
        "refusals write no event"
    );
    assert_eq!(inventory(&app, TENANT).await, numbers_before);

    // validate_only: everything checked, nothing written.
    admin
        .upsert_user(pb::UpsertUserRequest {
            user: Some(feed_user("kim@contoso.com", "Kim")),
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("validate an upsert");
    admin
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            validate_only: true,
            ..location_request(seattle())
        })
        .await
        .expect("validate a location");
    admin
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            validate_only: true,
            emergency_location_id: "redmond-hq".into(),
            ..assign_request("jack@contoso.com", "+14255550103")
        })
        .await
        .expect("validate an assignment");
    admin
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: "+14255550105".into(),
            emergency_location_id: "redmond-hq".into(),
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("validate a location update");
    admin
        .acquire_phone_numbers(pb::AcquirePhoneNumbersRequest {
            validate_only: true,
            ..acquire_request(5)
        })
        .await
        .expect("validate an acquisition");
    admin
        .release_phone_numbers(pb::ReleasePhoneNumbersRequest {
            phone_numbers: vec!["+14255550104".into()],
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("validate a release");
    admin
        .enable_operator(pb::EnableOperatorRequest {
            operator_id: "northwind-voice".into(),
            countries: vec!["GB".into()],
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("validate an enable");
    admin
        .disable_operator(pb::DisableOperatorRequest {
            operator_id: "northwind-voice".into(),
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("validate a disable");
    admin
        .remove_phone_number(pb::RemovePhoneNumberRequest {
            identity: JOHN.into(),
            phone_number: "+14255550101".into(),
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("validate a removal");
    assert_eq!(
        all_events(&app, TENANT).await,
        before,
        "validate_only writes no event"
    );
    assert_eq!(inventory(&app, TENANT).await, numbers_before);

    // A retry writes no second event.
    let request = pb::UpsertUserRequest {
        user: Some(feed_user("kim@contoso.com", "Kim")),
        request_id: new_request_id(),
        ..Default::default()
    };
    let first = upsert(&mut admin, request.clone())
        .await
        .expect("create Kim");
    let after_first = all_events(&app, TENANT).await;
    assert_eq!(after_first.len(), before.len() + 1);
    let retry = upsert(&mut admin, request).await.expect("retry");
    assert_eq!(retry, first);
    assert_eq!(
        all_events(&app, TENANT).await,
        after_first,
        "a retry writes no event"
    );
    // So does a change that changes nothing.
    admin
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: "+14255550101".into(),
            emergency_location_id: "redmond-hq".into(),
            ..Default::default()
        })
        .await
        .expect("the same location again");
    assert_eq!(all_events(&app, TENANT).await, after_first);
}

async fn tenants_see_only_their_own_events(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    admin
        .assign_phone_number(assign_request(JOHN, "+14255550101"))
        .await
        .expect("assign to John");
    admin
        .acquire_phone_numbers(acquire_request(2))
        .await
        .expect("acquire");
    let contoso = all_events(&app, TENANT).await;
    assert_eq!(contoso.len(), 3);

    let mut other = app.admin(OTHER_TENANT);
    assert!(all_events(&app, OTHER_TENANT).await.is_empty());
    assert!(
        list_all(
            &mut other,
            pb::ListAuditEventsRequest {
                phone_number: "+14255550101".into(),
                ..Default::default()
            },
        )
        .await
        .is_empty()
    );
    // Contoso's users are unknown there.
    assert_error(
        list(
            &mut other,
            pb::ListAuditEventsRequest {
                user: JOHN_ID.into(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );

    // The other tenant's own changes stay its own.
    let ann = upsert(
        &mut other,
        pb::UpsertUserRequest {
            user: Some(feed_user("ann@fabrikam.com", "Ann")),
            ..Default::default()
        },
    )
    .await
    .expect("create Ann");
    other
        .enable_operator(pb::EnableOperatorRequest {
            operator_id: "fabrikam-telecom".into(),
            ..Default::default()
        })
        .await
        .expect("enable Fabrikam");
    app.operator("fabrikam-telecom")
        .upload_numbers(upload_request(OTHER_TENANT, "+14255551001"))
        .await
        .expect("upload into the other tenant");
    let theirs = all_events(&app, OTHER_TENANT).await;
    assert_eq!(
        theirs.iter().map(|e| e.action).collect::<Vec<_>>(),
        [UPLOAD, ENABLE_OPERATOR, UPSERT_USER]
    );
    assert_eq!(theirs[2].user_id, ann.id);
    assert_eq!(
        all_events(&app, TENANT).await,
        contoso,
        "Contoso sees none of them"
    );
    assert_error(
        list(
            &mut admin,
            pb::ListAuditEventsRequest {
                user: "ann@fabrikam.com".into(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert!(
        list_all(
            &mut admin,
            pb::ListAuditEventsRequest {
                phone_number: "+14255551001".into(),
                ..Default::default()
            },
        )
        .await
        .is_empty()
    );
}

async fn readers_may_list_events(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    admin
        .assign_phone_number(assign_request(JOHN, "+14255550101"))
        .await
        .expect("assign to John");
    let mut reader = app.reader(TENANT);
    let as_reader = list(&mut reader, pb::ListAuditEventsRequest::default())
        .await
        .expect("a reader lists events")
        .audit_events;
    let as_admin = list(&mut admin, pb::ListAuditEventsRequest::default())
        .await
        .expect("an admin lists events")
        .audit_events;
    assert_eq!(as_reader.len(), 1);
    assert_eq!(as_reader, as_admin);
    let filtered = list(
        &mut reader,
        pb::ListAuditEventsRequest {
            user: JOHN.into(),
            phone_number: "+14255550101".into(),
            ..Default::default()
        },
    )
    .await
    .expect("a reader filters");
    assert_eq!(filtered.audit_events, as_admin);

    // Nobody else: no token, or an operator's.
    assert_error(
        list(
            &mut app.client_with_token(None),
            pb::ListAuditEventsRequest::default(),
        )
        .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    let token = app
        .key
        .mint_operator("fabrikam-telecom", "test", Duration::from_secs(600))
        .expect("an operator token");
    assert_error(
        list(
            &mut app.client_with_token(Some(&token)),
            pb::ListAuditEventsRequest::default(),
        )
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
}

on_both_stores!(
    every_change_writes_one_event_per_record,
    lists_newest_first_with_filters,
    pages_have_no_duplicates_or_gaps,
    refused_rehearsed_and_retried_requests_write_no_event,
    tenants_see_only_their_own_events,
    readers_may_list_events,
);
