//! AssignPhoneNumber, ChangePhoneNumber and RemovePhoneNumber over the socket: the seeds'
//! scenarios on the Contoso demo tenant, every rule's refusal (with its code, its reason, and the
//! data left exactly as it was), Direct Routing numbers and their extensions, request ids,
//! `validate_only`, permissions, and races.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use number_management::demo;
use number_management::domain::{self, Notification};
use number_management::proto::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::calls::{assign, assign_request, change, change_request, remove, remove_request};
use crate::helpers::{Backend, Client, TestApp, TestConfig, assert_error, number, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

const JOHN: &str = "john@contoso.com";
const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
const JACK: &str = "jack@contoso.com";
const JACK_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000002";
const AMELIE: &str = "amelie@contoso.com";
const SAM: &str = "sam@contoso.com";
const LEE: &str = "lee@contoso.com";
const RECEPTION: &str = "reception@contoso.com";
const RECEPTION_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000006";

/// Calling Plan, emergency location `redmond-hq`.
const CP_0101: &str = "+14255550101";
/// Operator Connect (fabrikam-telecom), location `redmond-hq` locked by the operator.
const OC_0102: &str = "+14255550102";
/// Calling Plan, no emergency location.
const CP_0103: &str = "+14255550103";
/// Calling Plan, no emergency location.
const CP_0104: &str = "+14255550104";
/// Operator Connect (northwind-voice), location changes allowed.
const OC_0105: &str = "+14255550105";
/// Calling Plan service number (voice applications and conferencing).
const SERVICE_NUMBER: &str = "+18005550100";
/// French Calling Plan user number.
const FR_NUMBER: &str = "+33140000001";

const CALLING_PLAN: i32 = pb::NumberType::CallingPlan as i32;
const OPERATOR_CONNECT: i32 = pb::NumberType::OperatorConnect as i32;
const DIRECT_ROUTING: i32 = pb::NumberType::DirectRouting as i32;

const NO_CATEGORY: i32 = pb::AssignmentCategory::Unspecified as i32;
const PRIMARY: i32 = pb::AssignmentCategory::Primary as i32;
const PRIVATE: i32 = pb::AssignmentCategory::Private as i32;
const ALTERNATE: i32 = pb::AssignmentCategory::Alternate as i32;

const UNASSIGNED: i32 = pb::AssignmentStatus::Unassigned as i32;
const USER_ASSIGNED: i32 = pb::AssignmentStatus::UserAssigned as i32;
const VOICE_APPLICATION_ASSIGNED: i32 = pb::AssignmentStatus::VoiceApplicationAssigned as i32;

const ACTIVATED: i32 = pb::ActivationState::Activated as i32;

const NOT_BLOCKED: i32 = pb::AssignmentBlockedState::NotBlocked as i32;
const BLOCKED_UNTIL: i32 = pb::AssignmentBlockedState::BlockedUntil as i32;
const BLOCKED_FOREVER: i32 = pb::AssignmentBlockedState::BlockedForever as i32;

const ASSIGN_EVENT: i32 = pb::AuditAction::AssignPhoneNumber as i32;
const CHANGE_EVENT: i32 = pb::AuditAction::ChangePhoneNumber as i32;
const REMOVE_EVENT: i32 = pb::AuditAction::RemovePhoneNumber as i32;

const PHONE_SYSTEM: i32 = pb::user::License::PhoneSystem as i32;

// ---- helpers of this module --------------------------------------------------------------------

/// An assignment that registers emergency location `location` with the number.
fn assign_at(identity: &str, phone_number: &str, location: &str) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        emergency_location_id: location.into(),
        ..assign_request(identity, phone_number)
    }
}

fn change_at(identity: &str, phone_number: &str, location: &str) -> pb::ChangePhoneNumberRequest {
    pb::ChangePhoneNumberRequest {
        emergency_location_id: location.into(),
        ..change_request(identity, phone_number)
    }
}

async fn find_number(client: &mut Client, phone_number: &str) -> Result<pb::PhoneNumber, Status> {
    client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: phone_number.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) async fn get_number(client: &mut Client, phone_number: &str) -> pb::PhoneNumber {
    find_number(client, phone_number)
        .await
        .unwrap_or_else(|status| panic!("GetPhoneNumber {phone_number}: {status:?}"))
}

pub(crate) async fn get_user(client: &mut Client, identity: &str) -> pb::User {
    client
        .get_user(pb::GetUserRequest {
            identity: identity.into(),
        })
        .await
        .unwrap_or_else(|status| panic!("GetUser {identity}: {status:?}"))
        .into_inner()
}

/// Every number matching `filter`, following the page tokens.
async fn all_numbers(
    client: &mut Client,
    filter: pb::ListPhoneNumbersRequest,
) -> Vec<pb::PhoneNumber> {
    let mut numbers = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_phone_numbers(pb::ListPhoneNumbersRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..filter.clone()
            })
            .await
            .expect("list phone numbers")
            .into_inner();
        numbers.extend(page.phone_numbers);
        if page.next_page_token.is_empty() {
            return numbers;
        }
        page_token = page.next_page_token;
    }
}

/// The numbers a user holds, as ListPhoneNumbers filters them.
async fn numbers_of(client: &mut Client, identity: &str) -> Vec<pb::PhoneNumber> {
    all_numbers(
        client,
        pb::ListPhoneNumbersRequest {
            assigned_to: identity.into(),
            ..Default::default()
        },
    )
    .await
}

async fn all_users(client: &mut Client) -> Vec<pb::User> {
    let mut users = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_users(pb::ListUsersRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list users")
            .into_inner();
        users.extend(page.users);
        if page.next_page_token.is_empty() {
            return users;
        }
        page_token = page.next_page_token;
    }
}

/// Every audit event of the tenant, newest first.
async fn all_audit_events(client: &mut Client) -> Vec<pb::AuditEvent> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list audit events")
            .into_inner();
        events.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

/// The audit events of one action, newest first.
pub(crate) async fn events_of(client: &mut Client, action: i32) -> Vec<pb::AuditEvent> {
    all_audit_events(client)
        .await
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

/// The emails queued for the demo tenant (delivered or not), oldest first.
async fn notifications(app: &TestApp) -> Vec<Notification> {
    let mut tx = app.store.read().await.expect("read transaction");
    tx.notifications(TENANT, false)
        .await
        .expect("notifications")
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn reason_of(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// A US Calling Plan user number registered with `redmond-hq`, ready to be seeded.
fn located_calling_plan_number(phone_number: &str) -> domain::PhoneNumber {
    let mut record = number(phone_number, domain::NumberType::CallingPlan);
    record.city = "Redmond".into();
    record.emergency_location_id = Some("redmond-hq".into());
    record
}

/// Creates a user with only the Phone System licence.
async fn phone_system_only_user(app: &TestApp, upn: &str) -> pb::User {
    app.admin(TENANT)
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                user_principal_name: upn.into(),
                display_name: "Pat Jones".into(),
                usage_location: "US".into(),
                licenses: vec![PHONE_SYSTEM],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("upsert user")
        .into_inner()
}

/// Everything a refused request must leave as it was: every number and user of the tenant as
/// GetPhoneNumber and GetUser show them, the audit trail, and the queued emails.
#[derive(Debug, PartialEq)]
pub(crate) struct State {
    numbers: BTreeMap<String, pb::PhoneNumber>,
    users: BTreeMap<String, pb::User>,
    audit_events: Vec<pb::AuditEvent>,
    notifications: Vec<Notification>,
}

impl State {
    pub(crate) async fn read(app: &TestApp) -> Self {
        let mut admin = app.admin(TENANT);
        let mut numbers = BTreeMap::new();
        for listed in all_numbers(&mut admin, pb::ListPhoneNumbersRequest::default()).await {
            let got = get_number(&mut admin, &listed.phone_number).await;
            numbers.insert(listed.phone_number, got);
        }
        let mut users = BTreeMap::new();
        for listed in all_users(&mut admin).await {
            let got = get_user(&mut admin, &listed.id).await;
            users.insert(listed.user_principal_name, got);
        }
        Self {
            numbers,
            users,
            audit_events: all_audit_events(&mut admin).await,
            notifications: notifications(app).await,
        }
    }

    pub(crate) async fn assert_unchanged(&self, app: &TestApp) {
        let now = Self::read(app).await;
        // The fields that matter most first, so a failure says what moved.
        assert_eq!(
            now.audit_events.len(),
            self.audit_events.len(),
            "ListAuditEvents count changed: {:#?}",
            now.audit_events
        );
        assert_eq!(
            now.notifications.len(),
            self.notifications.len(),
            "emails were queued: {:#?}",
            now.notifications
        );
        assert_eq!(
            now.numbers.keys().collect::<Vec<_>>(),
            self.numbers.keys().collect::<Vec<_>>(),
            "the inventory changed"
        );
        for (key, before) in &self.numbers {
            let after = &now.numbers[key];
            assert_eq!(
                (&after.etag, &after.assigned_to, after.assignment_category),
                (
                    &before.etag,
                    &before.assigned_to,
                    before.assignment_category
                ),
                "number {key} changed"
            );
        }
        for (key, before) in &self.users {
            let after = &now.users[key];
            assert_eq!(
                (
                    &after.phone_numbers,
                    after.enterprise_voice_enabled,
                    &after.etag
                ),
                (
                    &before.phone_numbers,
                    before.enterprise_voice_enabled,
                    &before.etag
                ),
                "user {key} changed"
            );
        }
        assert_eq!(&now, self, "the data changed");
    }
}

/// Runs a call that must be refused with `code` and `reason`, and checks that the tenant's data
/// is exactly as before. Answers the status. (The function form, for the other areas.)
pub(crate) async fn refused<T: std::fmt::Debug>(
    app: &TestApp,
    call: impl std::future::Future<Output = Result<T, Status>>,
    code: Code,
    reason: &str,
) -> Status {
    let before = State::read(app).await;
    let status = assert_error(call.await, code, reason);
    before.assert_unchanged(app).await;
    status
}

/// Runs a call that must be refused with `code` and `reason`, and checks that the tenant's data
/// is exactly as before. Answers the status.
macro_rules! refused {
    ($app:expr, $call:expr, $code:expr, $reason:expr $(,)?) => {{
        let before = State::read(&$app).await;
        let status = assert_error($call.await, $code, $reason);
        before.assert_unchanged(&$app).await;
        status
    }};
}

// ---- the seeds' scenarios ----------------------------------------------------------------------

async fn assign_calling_plan_number_to_a_user(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let number_before = get_number(&mut admin, CP_0101).await;
    assert_eq!(number_before.assignment_status, UNASSIGNED);
    let john_before = get_user(&mut admin, JOHN).await;
    assert!(!john_before.enterprise_voice_enabled);
    assert!(john_before.phone_numbers.is_empty());

    let response = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            phone_number_type: CALLING_PLAN,
            ..assign_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("assign +14255550101 to john");

    let number = response.phone_number.expect("the number");
    assert_eq!(number.phone_number, CP_0101);
    assert_eq!(number.number_type, CALLING_PLAN);
    assert_eq!(number.country, "US");
    assert_eq!(number.assignment_status, USER_ASSIGNED);
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.assigned_to_user_principal_name, JOHN);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.activation_state, ACTIVATED);
    assert_eq!(
        number.emergency_location_id, "redmond-hq",
        "no location given: the number keeps its own"
    );
    assert_eq!(number.assignment_blocked_state, NOT_BLOCKED);
    assert_ne!(number.etag, number_before.etag);

    let user = response.user.expect("the user");
    assert_eq!(user.id, JOHN_ID);
    assert_eq!(user.user_principal_name, JOHN);
    assert!(user.enterprise_voice_enabled);
    assert_eq!(user.phone_numbers, [CP_0101]);
    assert_ne!(user.etag, john_before.etag);

    // What the API reads back is what the answer said.
    assert_eq!(get_number(&mut admin, CP_0101).await, number);
    assert_eq!(get_user(&mut admin, JOHN).await, user);
    assert_eq!(get_user(&mut admin, "sip:john@contoso.com").await, user);
    assert_eq!(
        numbers_of(&mut admin, JOHN).await,
        std::slice::from_ref(&number)
    );

    let events = all_audit_events(&mut admin).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.action, ASSIGN_EVENT);
    assert_eq!(event.phone_number, CP_0101);
    assert_eq!(event.user_id, JOHN_ID);
    assert_eq!(event.actor, "test");
    assert_eq!(event.request_id, "");
    assert!(event.before.is_some(), "the number existed before");
    assert!(event.after.is_some());

    // Nobody else changed.
    let jack = get_user(&mut admin, JACK).await;
    assert!(!jack.enterprise_voice_enabled);
    assert!(jack.phone_numbers.is_empty());
}

async fn assign_operator_connect_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let response = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            phone_number_type: OPERATOR_CONNECT,
            ..assign_request(JACK, OC_0102)
        },
    )
    .await
    .expect("assign +14255550102 to jack");
    let number = response.phone_number.expect("the number");
    assert_eq!(number.phone_number, OC_0102);
    assert_eq!(number.number_type, OPERATOR_CONNECT);
    assert_eq!(number.operator_id, "fabrikam-telecom");
    assert_eq!(number.assignment_status, USER_ASSIGNED);
    assert_eq!(number.assigned_to, JACK_ID);
    assert_eq!(number.assigned_to_user_principal_name, JACK);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.activation_state, ACTIVATED);
    assert_eq!(number.emergency_location_id, "redmond-hq");
    assert!(!number.location_update_supported);
    let user = response.user.expect("the user");
    assert!(user.enterprise_voice_enabled);
    assert_eq!(user.phone_numbers, [OC_0102]);

    assert_eq!(get_number(&mut admin, OC_0102).await, number);
    assert_eq!(get_user(&mut admin, JACK).await, user);
    assert_eq!(events_of(&mut admin, ASSIGN_EVENT).await.len(), 1);
}

async fn change_replaces_the_primary_number_in_one_step(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    let new_before = get_number(&mut admin, CP_0103).await;
    assert_eq!(new_before.emergency_location_id, "");

    let response = change(&mut admin, change_at(JOHN, CP_0103, "redmond-building-92"))
        .await
        .expect("change john's number");

    let previous = response.previous_phone_number.expect("the previous number");
    assert_eq!(previous.phone_number, CP_0101);
    assert_eq!(previous.assignment_status, UNASSIGNED);
    assert_eq!(previous.assigned_to, "");
    assert_eq!(previous.assigned_to_user_principal_name, "");
    assert_eq!(previous.assignment_category, NO_CATEGORY);
    assert_eq!(previous.assignment_blocked_state, NOT_BLOCKED);
    assert_eq!(previous.activation_state, ACTIVATED);

    let number = response.phone_number.expect("the new number");
    assert_eq!(number.phone_number, CP_0103);
    assert_eq!(number.assignment_status, USER_ASSIGNED);
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.activation_state, ACTIVATED);
    assert_eq!(number.emergency_location_id, "redmond-building-92");
    assert_ne!(number.etag, new_before.etag);

    let user = response.user.expect("the user");
    assert_eq!(
        user.phone_numbers,
        [CP_0103],
        "john holds only the new number"
    );
    assert!(user.enterprise_voice_enabled, "enterprise voice stays on");

    assert_eq!(get_number(&mut admin, CP_0101).await, previous);
    assert_eq!(get_number(&mut admin, CP_0103).await, number);
    assert_eq!(get_user(&mut admin, JOHN).await, user);
    assert_eq!(numbers_of(&mut admin, JOHN).await, [number]);

    // One event per number.
    let mut changed: Vec<String> = events_of(&mut admin, CHANGE_EVENT)
        .await
        .into_iter()
        .map(|e| {
            assert_eq!(e.user_id, JOHN_ID);
            e.phone_number
        })
        .collect();
    changed.sort();
    assert_eq!(changed, [CP_0101, CP_0103]);
}

async fn remove_disables_enterprise_voice_and_keeps_the_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    change(&mut admin, change_at(JOHN, CP_0103, "redmond-building-92"))
        .await
        .expect("change");

    let response = remove(&mut admin, remove_request(JOHN, CP_0103))
        .await
        .expect("remove +14255550103 from john");
    assert_eq!(response.phone_numbers.len(), 1, "{response:#?}");
    let freed = &response.phone_numbers[0];
    assert_eq!(freed.phone_number, CP_0103);
    assert_eq!(freed.assignment_status, UNASSIGNED);
    assert_eq!(freed.assigned_to, "");
    assert_eq!(freed.assignment_category, NO_CATEGORY);
    assert_eq!(freed.assignment_blocked_state, NOT_BLOCKED);
    assert_eq!(freed.emergency_location_id, "redmond-building-92");
    let user = response.user.expect("the user");
    assert!(!user.enterprise_voice_enabled, "the last number went");
    assert!(user.phone_numbers.is_empty());

    // Still in the inventory.
    assert_eq!(&get_number(&mut admin, CP_0103).await, freed);
    assert!(
        all_numbers(&mut admin, pb::ListPhoneNumbersRequest::default())
            .await
            .iter()
            .any(|n| n.phone_number == CP_0103)
    );
    assert_eq!(get_user(&mut admin, JOHN).await, user);
    assert!(numbers_of(&mut admin, JOHN).await.is_empty());
    let removals = events_of(&mut admin, REMOVE_EVENT).await;
    assert_eq!(removals.len(), 1);
    assert_eq!(removals[0].phone_number, CP_0103);
    assert_eq!(removals[0].user_id, JOHN_ID);

    // And free for the next user.
    let again = assign(&mut admin, assign_request(JACK, CP_0103))
        .await
        .expect("assign the freed number to jack");
    assert_eq!(again.phone_number.expect("number").assigned_to, JACK_ID);
}

async fn remove_one_of_two_numbers_keeps_enterprise_voice(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: PRIVATE,
            ..assign_at(JOHN, CP_0104, "redmond-hq")
        },
    )
    .await
    .expect("private");

    let response = remove(&mut admin, remove_request(JOHN, CP_0104))
        .await
        .expect("remove the private number");
    let user = response.user.expect("the user");
    assert!(user.enterprise_voice_enabled, "john still holds a number");
    assert_eq!(user.phone_numbers, [CP_0101]);
    assert_eq!(get_user(&mut admin, JOHN).await, user);
}

async fn remove_all_removes_primary_and_private_numbers(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    let private = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: PRIVATE,
            ..assign_at(JOHN, CP_0104, "redmond-hq")
        },
    )
    .await
    .expect("private");
    let private_number = private.phone_number.expect("number");
    assert_eq!(private_number.assignment_category, PRIVATE);
    let user = private.user.expect("user");
    assert_eq!(user.phone_numbers, [CP_0101, CP_0104], "primary first");
    // Someone else's number is not touched by john's remove_all.
    assign(&mut admin, assign_request(JACK, OC_0102))
        .await
        .expect("jack's number");
    let jack_number = get_number(&mut admin, OC_0102).await;

    let response = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            identity: JOHN.into(),
            remove_all: true,
            ..Default::default()
        },
    )
    .await
    .expect("remove all");
    let mut removed: Vec<&str> = response
        .phone_numbers
        .iter()
        .map(|n| {
            assert_eq!(n.assignment_status, UNASSIGNED, "{n:?}");
            assert_eq!(n.assigned_to, "");
            n.phone_number.as_str()
        })
        .collect();
    removed.sort_unstable();
    assert_eq!(removed, [CP_0101, CP_0104]);
    let user = response.user.expect("user");
    assert!(!user.enterprise_voice_enabled);
    assert!(user.phone_numbers.is_empty());

    assert_eq!(get_user(&mut admin, JOHN).await, user);
    for n in [CP_0101, CP_0104] {
        assert_eq!(
            get_number(&mut admin, n).await.assignment_status,
            UNASSIGNED
        );
    }
    assert!(numbers_of(&mut admin, JOHN).await.is_empty());
    assert_eq!(get_number(&mut admin, OC_0102).await, jack_number);
    assert_eq!(events_of(&mut admin, REMOVE_EVENT).await.len(), 2);
}

async fn assign_accepts_a_number_without_plus_and_without_type(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let response = assign(&mut admin, assign_request(JOHN, "14255550101"))
        .await
        .expect("assign 14255550101");
    let number = response.phone_number.expect("number");
    assert_eq!(number.phone_number, CP_0101, "answered in E.164 with +");
    assert_eq!(
        number.number_type, CALLING_PLAN,
        "the inventory knows the type"
    );
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(
        number.assignment_category, PRIMARY,
        "unspecified means PRIMARY"
    );
    assert_eq!(response.user.expect("user").phone_numbers, [CP_0101]);
    assert_eq!(get_number(&mut admin, "14255550101").await, number);
}

async fn assign_private_and_alternate_numbers(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    let private = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: PRIVATE,
            ..assign_at(JOHN, CP_0104, "redmond-hq")
        },
    )
    .await
    .expect("private")
    .phone_number
    .expect("number");
    assert_eq!(private.assignment_category, PRIVATE);
    assert_eq!(private.assigned_to, JOHN_ID);

    // An alternate number may be of another country.
    let alternate = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: ALTERNATE,
            ..assign_request(JOHN, FR_NUMBER)
        },
    )
    .await
    .expect("a French alternate number for a US user");
    let number = alternate.phone_number.expect("number");
    assert_eq!(number.country, "FR");
    assert_eq!(number.assignment_category, ALTERNATE);
    assert_eq!(number.assigned_to, JOHN_ID);
    let user = alternate.user.expect("user");
    assert_eq!(user.phone_numbers, [CP_0101, CP_0104, FR_NUMBER]);
    assert_eq!(
        get_user(&mut admin, JOHN).await.phone_numbers,
        user.phone_numbers
    );
    let held: Vec<(String, i32)> = numbers_of(&mut admin, JOHN)
        .await
        .into_iter()
        .map(|n| (n.phone_number, n.assignment_category))
        .collect();
    assert_eq!(
        held,
        [
            (CP_0101.to_owned(), PRIMARY),
            (CP_0104.to_owned(), PRIVATE),
            (FR_NUMBER.to_owned(), ALTERNATE)
        ]
    );

    // As a primary or private number, the French number needs a French usage location.
    remove(&mut admin, remove_request(JOHN, FR_NUMBER))
        .await
        .expect("take it back");
    let status = refused!(
        app,
        assign(&mut admin, assign_request(JACK, FR_NUMBER)),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
    assert!(
        status.message().contains("(US)") && status.message().contains("(FR)"),
        "{status:?}"
    );
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                assignment_category: PRIVATE,
                ..assign_request(JACK, FR_NUMBER)
            }
        ),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
}

async fn resource_account_gets_a_service_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let response = assign(&mut admin, assign_request(RECEPTION, SERVICE_NUMBER))
        .await
        .expect("assign the service number to the resource account");
    let number = response.phone_number.expect("number");
    assert_eq!(number.phone_number, SERVICE_NUMBER);
    assert_eq!(number.assignment_status, VOICE_APPLICATION_ASSIGNED);
    assert_eq!(number.assigned_to, RECEPTION_ID);
    assert_eq!(number.assigned_to_user_principal_name, RECEPTION);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.activation_state, ACTIVATED);
    let user = response.user.expect("user");
    assert!(user.enterprise_voice_enabled);
    assert_eq!(user.phone_numbers, [SERVICE_NUMBER]);
    assert_eq!(get_number(&mut admin, SERVICE_NUMBER).await, number);
    assert_eq!(get_user(&mut admin, RECEPTION).await, user);
    assert_eq!(events_of(&mut admin, ASSIGN_EVENT).await.len(), 1);
    // A resource account has no mailbox.
    assert!(notifications(&app).await.is_empty());
}

async fn notify_user_queues_one_email_per_change(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    // Default: notify.
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    let emails = notifications(&app).await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert_eq!(emails[0].recipient, JOHN);
    assert_eq!(emails[0].phone_number, CP_0101);
    assert!(emails[0].subject.contains(CP_0101), "{:?}", emails[0]);
    assert!(emails[0].body.contains(CP_0101), "{:?}", emails[0]);
    assert!(emails[0].body.contains("John Smith"), "{:?}", emails[0]);

    // notify_user false: none.
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            notify_user: Some(false),
            ..assign_request(JACK, OC_0102)
        },
    )
    .await
    .expect("assign without email");
    assert_eq!(notifications(&app).await, emails);

    // Explicit true: one.
    change(
        &mut admin,
        pb::ChangePhoneNumberRequest {
            notify_user: Some(true),
            ..change_at(JOHN, CP_0103, "redmond-hq")
        },
    )
    .await
    .expect("change");
    let emails = notifications(&app).await;
    assert_eq!(emails.len(), 2, "{emails:#?}");
    let email = &emails[1];
    assert_eq!(email.recipient, JOHN);
    assert!(email.subject.contains(CP_0103), "{email:?}");
    assert!(
        email.body.contains(CP_0101) && email.body.contains(CP_0103),
        "{email:?}"
    );

    change(
        &mut admin,
        pb::ChangePhoneNumberRequest {
            notify_user: Some(false),
            ..change_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("change back without email");
    assert_eq!(notifications(&app).await, emails);

    remove(&mut admin, remove_request(JOHN, CP_0101))
        .await
        .expect("remove");
    let emails = notifications(&app).await;
    assert_eq!(emails.len(), 3, "{emails:#?}");
    assert_eq!(emails[2].recipient, JOHN);
    assert!(emails[2].subject.contains(CP_0101), "{:?}", emails[2]);

    remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            notify_user: Some(false),
            ..remove_request(JACK, OC_0102)
        },
    )
    .await
    .expect("remove without email");
    assert_eq!(notifications(&app).await, emails);
}

// ---- refusals, one rule at a time --------------------------------------------------------------

async fn unknown_user_is_not_found(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    for identity in [
        "nobody@contoso.com",
        "sip:nobody@contoso.com",
        "7c0e2a51-0d1b-4c3e-9f00-0000000000ff",
    ] {
        refused!(
            app,
            assign(&mut admin, assign_at(identity, CP_0103, "redmond-hq")),
            Code::NotFound,
            "USER_NOT_FOUND",
        );
        refused!(
            app,
            change(&mut admin, change_at(identity, CP_0103, "redmond-hq")),
            Code::NotFound,
            "USER_NOT_FOUND",
        );
        refused!(
            app,
            remove(&mut admin, remove_request(identity, CP_0101)),
            Code::NotFound,
            "USER_NOT_FOUND",
        );
    }
    // A user of another tenant is not found either.
    app.user(OTHER_TENANT, "nina@fabrikam.com", "Nina", "US")
        .await;
    refused!(
        app,
        assign(&mut admin, assign_request("nina@fabrikam.com", CP_0101)),
        Code::NotFound,
        "USER_NOT_FOUND",
    );
}

async fn number_outside_the_inventory_is_not_found(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    // Another tenant's number.
    let elsewhere = "+14255550160";
    app.seed_numbers(
        OTHER_TENANT,
        &[number(elsewhere, domain::NumberType::CallingPlan)],
    )
    .await;

    for phone_number in ["+14255550150", elsewhere] {
        let status = refused!(
            app,
            assign(&mut admin, assign_at(JOHN, phone_number, "redmond-hq")),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
        assert!(status.message().contains(phone_number), "{status:?}");
        refused!(
            app,
            assign(
                &mut admin,
                pb::AssignPhoneNumberRequest {
                    phone_number_type: CALLING_PLAN,
                    ..assign_at(JOHN, phone_number, "redmond-hq")
                }
            ),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
    }

    // Nor can it enter this tenant as a Direct Routing number of its own, and the refusal
    // does not say whose it is; a validation alone is refused alike.
    for validate_only in [true, false] {
        let status = refused!(
            app,
            assign(
                &mut admin,
                pb::AssignPhoneNumberRequest {
                    phone_number_type: DIRECT_ROUTING,
                    validate_only,
                    ..assign_request(JOHN, elsewhere)
                }
            ),
            Code::AlreadyExists,
            "NUMBER_ALREADY_IN_INVENTORY",
        );
        assert!(status.message().contains(elsewhere), "{status:?}");
        assert!(!status.message().contains(OTHER_TENANT), "{status:?}");
    }

    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");
    let status = refused!(
        app,
        change(
            &mut admin,
            pb::ChangePhoneNumberRequest {
                phone_number_type: DIRECT_ROUTING,
                ..change_at(JOHN, elsewhere, "redmond-hq")
            }
        ),
        Code::AlreadyExists,
        "NUMBER_ALREADY_IN_INVENTORY",
    );
    assert!(!status.message().contains(OTHER_TENANT), "{status:?}");
    for phone_number in ["+14255550150", elsewhere] {
        refused!(
            app,
            change(&mut admin, change_at(JOHN, phone_number, "redmond-hq")),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
        refused!(
            app,
            remove(&mut admin, remove_request(JOHN, phone_number)),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
    }

    // The other tenant's number is untouched.
    let theirs = get_number(&mut app.admin(OTHER_TENANT), elsewhere).await;
    assert_eq!(theirs.assignment_status, UNASSIGNED);
    assert_eq!(theirs.etag, "1");
}

async fn number_type_mismatch_says_what_the_number_is(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let status = refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: CALLING_PLAN,
                ..assign_request(JACK, OC_0102)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_TYPE_MISMATCH",
    );
    assert!(
        status.message().contains("OPERATOR_CONNECT")
            && status.message().contains("fabrikam-telecom"),
        "{status:?}"
    );

    let status = refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: DIRECT_ROUTING,
                ..assign_request(JOHN, CP_0101)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_TYPE_MISMATCH",
    );
    assert!(status.message().contains("CALLING_PLAN"), "{status:?}");
    assert!(status.message().contains(CP_0101), "{status:?}");

    // ChangePhoneNumber and RemovePhoneNumber check the type too.
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");
    let status = refused!(
        app,
        change(
            &mut admin,
            pb::ChangePhoneNumberRequest {
                phone_number_type: CALLING_PLAN,
                ..change_request(JOHN, OC_0105)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_TYPE_MISMATCH",
    );
    assert!(status.message().contains("northwind-voice"), "{status:?}");
    refused!(
        app,
        remove(
            &mut admin,
            pb::RemovePhoneNumberRequest {
                phone_number_type: OPERATOR_CONNECT,
                ..remove_request(JOHN, CP_0101)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_TYPE_MISMATCH",
    );
}

async fn licences_are_required(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let dr = "+14255388720";

    // Sam holds no licence at all: neither a Calling Plan nor a Direct Routing number.
    let status = refused!(
        app,
        assign(&mut admin, assign_at(SAM, CP_0103, "redmond-hq")),
        Code::FailedPrecondition,
        "LICENSE_REQUIRED",
    );
    assert!(status.message().contains(SAM), "{status:?}");
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: DIRECT_ROUTING,
                ..assign_request(SAM, dr)
            }
        ),
        Code::FailedPrecondition,
        "LICENSE_REQUIRED",
    );

    // Phone System only: no Calling Plan number, but Direct Routing is fine.
    let pat = phone_system_only_user(&app, "pat@contoso.com").await;
    let status = refused!(
        app,
        assign(
            &mut admin,
            assign_at("pat@contoso.com", CP_0103, "redmond-hq")
        ),
        Code::FailedPrecondition,
        "LICENSE_REQUIRED",
    );
    assert!(status.message().contains("CALLING_PLAN"), "{status:?}");

    let response = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            phone_number_type: DIRECT_ROUTING,
            ..assign_request("pat@contoso.com", dr)
        },
    )
    .await
    .expect("Direct Routing needs Phone System only");
    let number = response.phone_number.expect("number");
    assert_eq!(number.assigned_to, pat.id);
    assert_eq!(number.number_type, DIRECT_ROUTING);
    assert!(response.user.expect("user").enterprise_voice_enabled);
}

async fn on_premises_line_blocks_cloud_assignment(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let status = refused!(
        app,
        assign(&mut admin, assign_at(LEE, CP_0103, "redmond-hq")),
        Code::FailedPrecondition,
        "ON_PREMISES_NUMBER_CONFLICT",
    );
    assert!(
        status.message().contains("+14255550199") && status.message().contains(LEE),
        "{status:?}"
    );
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: DIRECT_ROUTING,
                ..assign_request(LEE, "+14255388730")
            }
        ),
        Code::FailedPrecondition,
        "ON_PREMISES_NUMBER_CONFLICT",
    );
}

async fn capability_must_fit_the_target(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    // A person cannot hold a service number.
    let status = refused!(
        app,
        assign(&mut admin, assign_request(JOHN, SERVICE_NUMBER)),
        Code::FailedPrecondition,
        "CAPABILITY_MISMATCH",
    );
    assert!(status.message().contains(SERVICE_NUMBER), "{status:?}");
    // A resource account cannot hold a user number.
    refused!(
        app,
        assign(&mut admin, assign_request(RECEPTION, CP_0101)),
        Code::FailedPrecondition,
        "CAPABILITY_MISMATCH",
    );
    refused!(
        app,
        assign(&mut admin, assign_at(RECEPTION, CP_0103, "redmond-hq")),
        Code::FailedPrecondition,
        "CAPABILITY_MISMATCH",
    );
}

async fn number_held_by_someone_else_is_refused(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");

    let status = refused!(
        app,
        assign(&mut admin, assign_request(JACK, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    assert!(
        status.message().contains(JOHN),
        "names the holder: {status:?}"
    );
    // Nor may the holder take it twice.
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                assignment_category: PRIVATE,
                ..assign_request(JOHN, CP_0101)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    // Nor change to it.
    assign(&mut admin, assign_at(JACK, CP_0104, "redmond-hq"))
        .await
        .expect("jack's primary");
    let status = refused!(
        app,
        change(&mut admin, change_request(JACK, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    assert!(status.message().contains(JOHN), "{status:?}");
    refused!(
        app,
        change(&mut admin, change_request(JOHN, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
}

async fn blocked_numbers_refuse_assignment(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    let started = SystemTime::now();
    let response = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_days: Some(30),
            ..remove_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("remove, blocked for 30 days");
    let freed = &response.phone_numbers[0];
    assert_eq!(freed.assignment_blocked_state, BLOCKED_UNTIL);
    let until = freed.assignment_blocked_until.expect("blocked_until");
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(until.seconds as u64);
    let expected = started + Duration::from_secs(30 * 86_400);
    let drift = until
        .duration_since(expected)
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_secs(120), "blocked until {until:?}");
    let stored = get_number(&mut admin, CP_0101).await;
    assert_eq!(stored.assignment_blocked_state, BLOCKED_UNTIL);
    assert_eq!(stored.etag, freed.etag);
    assert_eq!(stored.assignment_status, UNASSIGNED);
    assert_eq!(
        stored.assignment_blocked_until.as_ref().map(|t| t.seconds),
        freed.assignment_blocked_until.as_ref().map(|t| t.seconds)
    );

    for who in [JACK, JOHN] {
        let status = refused!(
            app,
            assign(&mut admin, assign_request(who, CP_0101)),
            Code::FailedPrecondition,
            "NUMBER_BLOCKED",
        );
        assert!(status.message().contains(CP_0101), "{status:?}");
    }
    assign(&mut admin, assign_at(JACK, CP_0104, "redmond-hq"))
        .await
        .expect("jack's primary");
    refused!(
        app,
        change(&mut admin, change_request(JACK, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_BLOCKED",
    );

    // For ever.
    assign(&mut admin, assign_at(JOHN, CP_0103, "redmond-hq"))
        .await
        .expect("assign");
    let response = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_forever: true,
            ..remove_request(JOHN, CP_0103)
        },
    )
    .await
    .expect("remove, blocked for ever");
    assert_eq!(
        response.phone_numbers[0].assignment_blocked_state,
        BLOCKED_FOREVER
    );
    assert_eq!(
        get_number(&mut admin, CP_0103)
            .await
            .assignment_blocked_state,
        BLOCKED_FOREVER
    );
    refused!(
        app,
        assign(&mut admin, assign_request(JOHN, CP_0103)),
        Code::FailedPrecondition,
        "NUMBER_BLOCKED",
    );
}

/// A block for days ends by itself: the number is assignable again once the days have passed,
/// by the service's clock (moved here by hand rather than waited for).
async fn blocks_for_days_end_by_themselves(backend: Backend) {
    let app = TestApp::start_with_manual_clock(backend, TestConfig::default()).await;
    demo::load(app.store.as_ref())
        .await
        .expect("the demo tenant");
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_days: Some(1),
            ..remove_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("remove, blocked for a day");

    app.advance(Duration::from_secs(86_400 - 60));
    let mut admin = app.admin(TENANT); // a token valid at the new time
    assert_eq!(
        get_number(&mut admin, CP_0101)
            .await
            .assignment_blocked_state,
        BLOCKED_UNTIL
    );
    refused!(
        app,
        assign(&mut admin, assign_request(JACK, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_BLOCKED",
    );

    app.advance(Duration::from_secs(120));
    let mut admin = app.admin(TENANT);
    assert_eq!(
        get_number(&mut admin, CP_0101)
            .await
            .assignment_blocked_state,
        NOT_BLOCKED
    );
    let response = assign(&mut admin, assign_request(JACK, CP_0101))
        .await
        .expect("the block has ended");
    assert_eq!(response.phone_number.expect("number").assigned_to, JACK_ID);
}

/// RemovePhoneNumber answers the numbers as they are now stored: its answer and GetPhoneNumber
/// agree to the last digit, `assignment_blocked_until` included.
async fn remove_answers_the_block_as_stored(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    let response = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_days: Some(30),
            ..remove_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("remove, blocked for 30 days");
    assert_eq!(
        get_number(&mut admin, CP_0101).await,
        response.phone_numbers[0],
        "the answer is what GetPhoneNumber reads"
    );
}

async fn remove_refuses_bad_block_and_target_options(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");

    let bad = [
        (
            pb::RemovePhoneNumberRequest {
                block_days: Some(30),
                block_forever: true,
                ..remove_request(JOHN, CP_0101)
            },
            "block_days",
        ),
        (
            pb::RemovePhoneNumberRequest {
                block_days: Some(366),
                ..remove_request(JOHN, CP_0101)
            },
            "block_days",
        ),
        (
            pb::RemovePhoneNumberRequest {
                block_days: Some(-1),
                ..remove_request(JOHN, CP_0101)
            },
            "block_days",
        ),
        (remove_request(JOHN, ""), "phone_number"),
        (
            pb::RemovePhoneNumberRequest {
                remove_all: true,
                ..remove_request(JOHN, CP_0101)
            },
            "remove_all",
        ),
    ];
    for (request, field) in bad {
        let status = refused!(
            app,
            remove(&mut admin, request.clone()),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }
    // The edges of the range are fine.
    let response = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_days: Some(365),
            ..remove_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("365 days");
    assert_eq!(
        response.phone_numbers[0].assignment_blocked_state,
        BLOCKED_UNTIL
    );
}

async fn one_primary_number_per_user(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");

    for category in [NO_CATEGORY, PRIMARY] {
        let status = refused!(
            app,
            assign(
                &mut admin,
                pb::AssignPhoneNumberRequest {
                    assignment_category: category,
                    ..assign_at(JOHN, CP_0103, "redmond-hq")
                }
            ),
            Code::FailedPrecondition,
            "USER_ALREADY_HAS_PRIMARY_NUMBER",
        );
        assert!(status.message().contains(CP_0101), "{status:?}");
    }
    // As a private number it is fine.
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: PRIVATE,
            ..assign_at(JOHN, CP_0103, "redmond-hq")
        },
    )
    .await
    .expect("private");
}

async fn usage_location_must_match_the_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let status = refused!(
        app,
        assign(&mut admin, assign_at(AMELIE, CP_0103, "redmond-hq")),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
    let message = status.message();
    assert!(
        message.contains(AMELIE) && message.contains("(FR)") && message.contains("(US)"),
        "names both countries: {status:?}"
    );
    refused!(
        app,
        assign(&mut admin, assign_request(AMELIE, OC_0105)),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
    // Her own country's number is fine.
    assign(&mut admin, assign_at(AMELIE, FR_NUMBER, "paris-office"))
        .await
        .expect("a French number for a French user");
}

async fn emergency_location_rules(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let status = refused!(
        app,
        assign(&mut admin, assign_at(JOHN, CP_0103, "no-such-location")),
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );
    assert!(status.message().contains("no-such-location"), "{status:?}");
    refused!(
        app,
        assign(&mut admin, assign_at(JOHN, CP_0103, "seattle-unvalidated")),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_NOT_VALIDATED",
    );
    let status = refused!(
        app,
        assign(&mut admin, assign_at(JOHN, CP_0103, "paris-office")),
        Code::FailedPrecondition,
        "LOCATION_COUNTRY_MISMATCH",
    );
    assert!(
        status.message().contains("FR") && status.message().contains("US"),
        "{status:?}"
    );
    // A US Calling Plan user number needs a location; 0103 has none of its own.
    let status = refused!(
        app,
        assign(&mut admin, assign_request(JACK, CP_0103)),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_REQUIRED",
    );
    assert!(status.message().contains(CP_0103), "{status:?}");

    // The same rules on ChangePhoneNumber.
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    refused!(
        app,
        change(&mut admin, change_request(JOHN, CP_0103)),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_REQUIRED",
    );
    refused!(
        app,
        change(&mut admin, change_at(JOHN, CP_0103, "no-such-location")),
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );
    refused!(
        app,
        change(&mut admin, change_at(JOHN, CP_0103, "seattle-unvalidated")),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_NOT_VALIDATED",
    );
    refused!(
        app,
        change(&mut admin, change_at(JOHN, CP_0103, "paris-office")),
        Code::FailedPrecondition,
        "LOCATION_COUNTRY_MISMATCH",
    );
}

async fn operator_may_lock_the_emergency_location(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let status = refused!(
        app,
        assign(&mut admin, assign_at(JACK, OC_0102, "redmond-building-92")),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_LOCKED",
    );
    assert!(status.message().contains("Fabrikam"), "{status:?}");
    let metadata = status
        .get_error_details()
        .error_info()
        .expect("error info")
        .metadata
        .clone();
    assert_eq!(
        metadata.get("provider").map(String::as_str),
        Some("fabrikam-telecom"),
        "{metadata:?}"
    );

    // Northwind lets tenants set it.
    let response = assign(&mut admin, assign_at(JOHN, OC_0105, "redmond-building-92"))
        .await
        .expect("northwind allows a location");
    let number = response.phone_number.expect("number");
    assert_eq!(number.emergency_location_id, "redmond-building-92");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(get_number(&mut admin, OC_0105).await, number);
    // And Fabrikam's number may be assigned as long as its location stays.
    assign(&mut admin, assign_request(JACK, OC_0102))
        .await
        .expect("fabrikam's number without a location change");
    assert_eq!(
        get_number(&mut admin, OC_0102).await.emergency_location_id,
        "redmond-hq"
    );
}

async fn change_needs_a_primary_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let status = refused!(
        app,
        change(&mut admin, change_at(JACK, CP_0103, "redmond-hq")),
        Code::FailedPrecondition,
        "NO_PRIMARY_NUMBER",
    );
    assert!(status.message().contains(JACK), "{status:?}");
    // A private number is no primary number.
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: PRIVATE,
            ..assign_at(JACK, CP_0104, "redmond-hq")
        },
    )
    .await
    .expect("private");
    refused!(
        app,
        change(&mut admin, change_at(JACK, CP_0103, "redmond-hq")),
        Code::FailedPrecondition,
        "NO_PRIMARY_NUMBER",
    );
}

async fn remove_needs_a_number_the_user_holds(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("john's number");

    let status = refused!(
        app,
        remove(&mut admin, remove_request(JACK, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_NOT_ASSIGNED_TO_USER",
    );
    assert!(
        status.message().contains(JOHN) && status.message().contains(JACK),
        "{status:?}"
    );
    refused!(
        app,
        remove(&mut admin, remove_request(JOHN, CP_0103)),
        Code::FailedPrecondition,
        "NUMBER_NOT_ASSIGNED_TO_USER",
    );
}

async fn the_earlier_rule_answers(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");

    // The user before the number.
    refused!(
        app,
        assign(
            &mut admin,
            assign_request("nobody@contoso.com", "+14255550150")
        ),
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    // The type before the licence.
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: CALLING_PLAN,
                ..assign_request(SAM, OC_0102)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_TYPE_MISMATCH",
    );
    // The licence before the holder.
    refused!(
        app,
        assign(&mut admin, assign_request(SAM, CP_0101)),
        Code::FailedPrecondition,
        "LICENSE_REQUIRED",
    );
    // The on-premises line before the capability.
    refused!(
        app,
        assign(&mut admin, assign_request(LEE, SERVICE_NUMBER)),
        Code::FailedPrecondition,
        "ON_PREMISES_NUMBER_CONFLICT",
    );
    // The capability before the holder.
    refused!(
        app,
        assign(&mut admin, assign_request(RECEPTION, CP_0101)),
        Code::FailedPrecondition,
        "CAPABILITY_MISMATCH",
    );
    // The holder before the usage location.
    refused!(
        app,
        assign(&mut admin, assign_request(AMELIE, CP_0101)),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    // The primary before the usage location.
    refused!(
        app,
        assign(&mut admin, assign_request(JOHN, FR_NUMBER)),
        Code::FailedPrecondition,
        "USER_ALREADY_HAS_PRIMARY_NUMBER",
    );
    // The usage location before the location's country.
    refused!(
        app,
        assign(&mut admin, assign_at(AMELIE, CP_0103, "paris-office")),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
    // The domain's rules before the provider's.
    refused!(
        app,
        assign(&mut admin, assign_request(AMELIE, CP_0103)),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
    refused!(
        app,
        assign(&mut admin, assign_at(JACK, OC_0102, "seattle-unvalidated")),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_NOT_VALIDATED",
    );
}

/// The documented order puts "the emergency location exists" after every rule about the user
/// and the number: a request that names an unknown location and breaks an earlier rule answers
/// the earlier rule.
async fn the_earlier_rule_answers_before_an_unknown_emergency_location(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");

    refused!(
        app,
        assign(&mut admin, assign_at(SAM, CP_0103, "no-such-location")),
        Code::FailedPrecondition,
        "LICENSE_REQUIRED",
    );
    refused!(
        app,
        assign(&mut admin, assign_at(JACK, CP_0101, "no-such-location")),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    refused!(
        app,
        assign(&mut admin, assign_at(AMELIE, CP_0103, "no-such-location")),
        Code::FailedPrecondition,
        "USAGE_LOCATION_MISMATCH",
    );
}

// ---- Direct Routing ----------------------------------------------------------------------------

async fn direct_routing_number_enters_the_inventory_on_first_assignment(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let first = "+14255388701;ext=1001";
    let second = "+14255388701;ext=1002";
    let base = "+14255388701";
    for n in [first, second, base] {
        assert_error(
            find_number(&mut admin, n).await,
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
    }

    let response = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            phone_number_type: DIRECT_ROUTING,
            ..assign_request(JOHN, first)
        },
    )
    .await
    .expect("assign a new Direct Routing number");
    let number = response.phone_number.expect("number");
    assert_eq!(number.phone_number, first);
    assert_eq!(number.number_type, DIRECT_ROUTING);
    assert_eq!(number.operator_id, "");
    assert_eq!(number.country, "US");
    let mut capabilities = number.capabilities.clone();
    capabilities.sort_unstable();
    assert_eq!(
        capabilities,
        [
            pb::Capability::UserAssignment as i32,
            pb::Capability::VoiceApplicationAssignment as i32,
            pb::Capability::ConferenceAssignment as i32,
        ]
    );
    assert_eq!(number.assignment_status, USER_ASSIGNED);
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.activation_state, ACTIVATED);
    assert_eq!(response.user.expect("user").phone_numbers, [first]);
    assert_eq!(get_number(&mut admin, first).await, number);
    let events = events_of(&mut admin, ASSIGN_EVENT).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].phone_number, first);
    assert!(events[0].before.is_none(), "a creation has no before");

    // Another extension of the same base is another number.
    let response = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            phone_number_type: DIRECT_ROUTING,
            ..assign_request(JACK, second)
        },
    )
    .await
    .expect("another extension to jack");
    assert_eq!(response.phone_number.expect("number").assigned_to, JACK_ID);
    assert_eq!(get_number(&mut admin, second).await.assigned_to, JACK_ID);
    assert_eq!(get_number(&mut admin, first).await.assigned_to, JOHN_ID);

    // The base number cannot go to a third user while others hold its extensions.
    let pat = app.user(TENANT, "pat@contoso.com", "Pat", "US").await;
    let status = refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: DIRECT_ROUTING,
                ..assign_request(&pat.user_principal_name, base)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    assert!(status.message().contains(base), "{status:?}");
    assert_error(
        find_number(&mut admin, base).await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    // And the same extension cannot go twice.
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: DIRECT_ROUTING,
                ..assign_request(&pat.user_principal_name, first)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );

    // Once in the inventory, the type may be left out.
    remove(&mut admin, remove_request(JOHN, first))
        .await
        .expect("remove");
    assert_eq!(
        get_number(&mut admin, first).await.assignment_status,
        UNASSIGNED
    );
    let again = assign(&mut admin, assign_request(&pat.user_principal_name, first))
        .await
        .expect("a known Direct Routing number without its type");
    assert_eq!(again.phone_number.expect("number").assigned_to, pat.id);
}

async fn change_to_a_new_direct_routing_number_creates_it(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let dr = "+14255388770";
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    let response = change(
        &mut admin,
        pb::ChangePhoneNumberRequest {
            phone_number_type: DIRECT_ROUTING,
            ..change_request(JOHN, dr)
        },
    )
    .await
    .expect("change to a new Direct Routing number");
    let number = response.phone_number.expect("number");
    assert_eq!(number.phone_number, dr);
    assert_eq!(number.number_type, DIRECT_ROUTING);
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(
        response
            .previous_phone_number
            .expect("previous")
            .assignment_status,
        UNASSIGNED
    );
    assert_eq!(get_number(&mut admin, dr).await, number);
    assert_eq!(get_user(&mut admin, JOHN).await.phone_numbers, [dr]);
    let events = events_of(&mut admin, CHANGE_EVENT).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let created = events
        .iter()
        .find(|e| e.phone_number == dr)
        .expect("an event for the new number");
    assert!(created.before.is_none(), "a creation has no before");
}

async fn direct_routing_number_needs_its_type_to_enter_the_inventory(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    for n in ["+14255388799", "+14255388799;ext=42"] {
        let status = refused!(
            app,
            assign(&mut admin, assign_request(JOHN, n)),
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
        assert!(status.message().contains("DIRECT_ROUTING"), "{status:?}");
    }
    // Naming another type does not create it either.
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: CALLING_PLAN,
                ..assign_request(JOHN, "+14255388799")
            }
        ),
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
}

// ---- request ids, validate_only, permissions ---------------------------------------------------

async fn assign_retry_with_request_id_answers_the_first_answer(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let request_id = new_request_id();
    let request = pb::AssignPhoneNumberRequest {
        request_id: request_id.clone(),
        ..assign_request(JOHN, CP_0101)
    };

    let first = assign(&mut admin, request.clone()).await.expect("first");
    let retry = assign(&mut admin, request.clone()).await.expect("retry");
    assert_eq!(retry, first, "a retry answers the first answer");
    let upper = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            request_id: request_id.to_uppercase(),
            ..request.clone()
        },
    )
    .await
    .expect("retry, upper case");
    assert_eq!(upper, first);
    let number = first.phone_number.clone().expect("number");
    assert_eq!(get_number(&mut admin, CP_0101).await.etag, number.etag);
    assert_eq!(
        get_user(&mut admin, JOHN).await,
        first.user.clone().expect("user")
    );
    let events = events_of(&mut admin, ASSIGN_EVENT).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].request_id, request_id);
    assert_eq!(notifications(&app).await.len(), 1);

    // The same id for another request is refused, on this method or another.
    let status = refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                request_id: request_id.clone(),
                ..assign_at(JACK, CP_0103, "redmond-hq")
            }
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert!(status.message().contains(&request_id), "{status:?}");
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                notify_user: Some(false),
                ..request.clone()
            }
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    refused!(
        app,
        remove(
            &mut admin,
            pb::RemovePhoneNumberRequest {
                request_id: request_id.clone(),
                ..remove_request(JOHN, CP_0101)
            }
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );

    // Someone else changes the number; the retry still answers the first answer, and changes
    // nothing.
    remove(&mut admin, remove_request(JOHN, CP_0101))
        .await
        .expect("removed by someone else");
    assign(&mut admin, assign_request(JACK, CP_0101))
        .await
        .expect("given to jack");
    let held_by_jack = get_number(&mut admin, CP_0101).await;
    let before = State::read(&app).await;
    let late = assign(&mut admin, request).await.expect("late retry");
    assert_eq!(late, first);
    before.assert_unchanged(&app).await;
    assert_eq!(get_number(&mut admin, CP_0101).await, held_by_jack);
    assert_eq!(held_by_jack.assigned_to, JACK_ID);
}

async fn change_retry_with_request_id_answers_the_first_answer(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            notify_user: Some(false),
            ..assign_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("primary");
    let request_id = new_request_id();
    let request = pb::ChangePhoneNumberRequest {
        request_id: request_id.clone(),
        ..change_at(JOHN, CP_0103, "redmond-building-92")
    };

    let first = change(&mut admin, request.clone()).await.expect("first");
    let retry = change(&mut admin, request.clone()).await.expect("retry");
    assert_eq!(retry, first);
    let number = first.phone_number.clone().expect("number");
    assert_eq!(get_number(&mut admin, CP_0103).await.etag, number.etag);
    assert_eq!(
        get_number(&mut admin, CP_0101).await.etag,
        first.previous_phone_number.clone().expect("previous").etag
    );
    assert_eq!(events_of(&mut admin, CHANGE_EVENT).await.len(), 2);
    assert_eq!(notifications(&app).await.len(), 1);

    refused!(
        app,
        change(
            &mut admin,
            pb::ChangePhoneNumberRequest {
                request_id: request_id.clone(),
                ..change_request(JOHN, CP_0104)
            }
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );

    // Someone else changes john's number again; the retry answers the first answer.
    change(&mut admin, change_at(JOHN, CP_0104, "redmond-hq"))
        .await
        .expect("changed by someone else");
    let before = State::read(&app).await;
    let late = change(&mut admin, request).await.expect("late retry");
    assert_eq!(late, first);
    before.assert_unchanged(&app).await;
    assert_eq!(get_user(&mut admin, JOHN).await.phone_numbers, [CP_0104]);
    assert_eq!(
        get_number(&mut admin, CP_0103).await.assignment_status,
        UNASSIGNED
    );
}

async fn remove_retry_with_request_id_answers_the_first_answer(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    let request_id = new_request_id();
    let request = pb::RemovePhoneNumberRequest {
        request_id: request_id.clone(),
        ..remove_request(JOHN, CP_0101)
    };

    let first = remove(&mut admin, request.clone()).await.expect("first");
    let retry = remove(&mut admin, request.clone()).await.expect("retry");
    assert_eq!(retry, first);
    assert_eq!(
        get_number(&mut admin, CP_0101).await.etag,
        first.phone_numbers[0].etag
    );
    assert_eq!(events_of(&mut admin, REMOVE_EVENT).await.len(), 1);
    assert_eq!(notifications(&app).await.len(), 2, "assigned, removed");

    refused!(
        app,
        remove(
            &mut admin,
            pb::RemovePhoneNumberRequest {
                block_days: Some(5),
                ..request.clone()
            }
        ),
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );

    // The number goes to jack; the retry answers the first answer and does not take it away.
    assign(&mut admin, assign_request(JACK, CP_0101))
        .await
        .expect("given to jack");
    let before = State::read(&app).await;
    let late = remove(&mut admin, request).await.expect("late retry");
    assert_eq!(late, first);
    before.assert_unchanged(&app).await;
    assert_eq!(get_number(&mut admin, CP_0101).await.assigned_to, JACK_ID);
    assert!(get_user(&mut admin, JACK).await.enterprise_voice_enabled);
}

async fn assign_validate_only_changes_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let request_id = new_request_id();
    let request = pb::AssignPhoneNumberRequest {
        request_id: request_id.clone(),
        ..assign_at(JOHN, CP_0103, "redmond-building-92")
    };

    let before = State::read(&app).await;
    let would_be = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            validate_only: true,
            ..request.clone()
        },
    )
    .await
    .expect("validate");
    before.assert_unchanged(&app).await;
    let number = would_be.phone_number.clone().expect("number");
    assert_eq!(number.phone_number, CP_0103);
    assert_eq!(number.assignment_status, USER_ASSIGNED);
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.emergency_location_id, "redmond-building-92");
    let user = would_be.user.clone().expect("user");
    assert!(user.enterprise_voice_enabled);
    assert_eq!(user.phone_numbers, [CP_0103]);
    assert_eq!(
        get_number(&mut admin, CP_0103).await.assignment_status,
        UNASSIGNED
    );
    assert!(!get_user(&mut admin, JOHN).await.enterprise_voice_enabled);

    // A Direct Routing number validated is not created.
    let dr = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            phone_number_type: DIRECT_ROUTING,
            validate_only: true,
            ..assign_request(JACK, "+14255388740")
        },
    )
    .await
    .expect("validate a Direct Routing number");
    assert_eq!(dr.phone_number.expect("number").assigned_to, JACK_ID);
    before.assert_unchanged(&app).await;

    // validate_only refuses what the real request refuses, with the same reason.
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                validate_only: true,
                ..assign_request(JACK, CP_0103)
            }
        ),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_REQUIRED",
    );
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                validate_only: true,
                ..assign_at(SAM, CP_0103, "redmond-hq")
            }
        ),
        Code::FailedPrecondition,
        "LICENSE_REQUIRED",
    );
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                validate_only: true,
                ..assign_at(JACK, OC_0102, "redmond-building-92")
            }
        ),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_LOCKED",
    );

    // Validating did not use up the request id.
    let done = assign(&mut admin, request).await.expect("then do it");
    let done_number = done.phone_number.expect("number");
    assert_eq!(done_number.assigned_to, JOHN_ID);
    assert_eq!(done_number.etag, number.etag, "the would-be version");
    assert_eq!(get_number(&mut admin, CP_0103).await, done_number);
    assert_eq!(events_of(&mut admin, ASSIGN_EVENT).await.len(), 1);
    assert_eq!(notifications(&app).await.len(), 1);
    // Now the real refusal matches the rehearsed one.
    refused!(
        app,
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                validate_only: true,
                ..assign_request(JACK, CP_0103)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    refused!(
        app,
        assign(&mut admin, assign_request(JACK, CP_0103)),
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
}

async fn change_validate_only_changes_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");

    let before = State::read(&app).await;
    let would_be = change(
        &mut admin,
        pb::ChangePhoneNumberRequest {
            validate_only: true,
            request_id: new_request_id(),
            ..change_at(JOHN, CP_0103, "redmond-building-92")
        },
    )
    .await
    .expect("validate");
    before.assert_unchanged(&app).await;
    let previous = would_be.previous_phone_number.expect("previous");
    assert_eq!(previous.phone_number, CP_0101);
    assert_eq!(previous.assignment_status, UNASSIGNED);
    let number = would_be.phone_number.expect("number");
    assert_eq!(number.phone_number, CP_0103);
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(
        would_be.user.expect("user").phone_numbers,
        [CP_0103],
        "the would-be user"
    );
    assert_eq!(get_user(&mut admin, JOHN).await.phone_numbers, [CP_0101]);

    refused!(
        app,
        change(
            &mut admin,
            pb::ChangePhoneNumberRequest {
                validate_only: true,
                ..change_at(JOHN, CP_0103, "paris-office")
            }
        ),
        Code::FailedPrecondition,
        "LOCATION_COUNTRY_MISMATCH",
    );
    refused!(
        app,
        change(
            &mut admin,
            pb::ChangePhoneNumberRequest {
                validate_only: true,
                ..change_at(JACK, CP_0103, "redmond-hq")
            }
        ),
        Code::FailedPrecondition,
        "NO_PRIMARY_NUMBER",
    );
}

async fn remove_validate_only_changes_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");

    let before = State::read(&app).await;
    let would_be = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            validate_only: true,
            block_forever: true,
            ..remove_request(JOHN, CP_0101)
        },
    )
    .await
    .expect("validate");
    before.assert_unchanged(&app).await;
    assert_eq!(would_be.phone_numbers.len(), 1);
    assert_eq!(would_be.phone_numbers[0].phone_number, CP_0101);
    assert_eq!(would_be.phone_numbers[0].assignment_status, UNASSIGNED);
    assert_eq!(
        would_be.phone_numbers[0].assignment_blocked_state,
        BLOCKED_FOREVER
    );
    let user = would_be.user.expect("user");
    assert!(!user.enterprise_voice_enabled);
    assert!(user.phone_numbers.is_empty());
    assert!(get_user(&mut admin, JOHN).await.enterprise_voice_enabled);

    let all = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            identity: JOHN.into(),
            remove_all: true,
            validate_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("validate remove_all");
    assert_eq!(all.phone_numbers.len(), 1);
    before.assert_unchanged(&app).await;

    refused!(
        app,
        remove(
            &mut admin,
            pb::RemovePhoneNumberRequest {
                validate_only: true,
                ..remove_request(JACK, CP_0101)
            }
        ),
        Code::FailedPrecondition,
        "NUMBER_NOT_ASSIGNED_TO_USER",
    );
    refused!(
        app,
        remove(
            &mut admin,
            pb::RemovePhoneNumberRequest {
                validate_only: true,
                block_days: Some(400),
                ..remove_request(JOHN, CP_0101)
            }
        ),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
}

async fn reader_may_not_assign_change_or_remove(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let mut reader = app.reader(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");

    for validate_only in [false, true] {
        refused!(
            app,
            assign(
                &mut reader,
                pb::AssignPhoneNumberRequest {
                    validate_only,
                    ..assign_at(JACK, CP_0103, "redmond-hq")
                }
            ),
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        refused!(
            app,
            change(
                &mut reader,
                pb::ChangePhoneNumberRequest {
                    validate_only,
                    ..change_at(JOHN, CP_0103, "redmond-hq")
                }
            ),
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        refused!(
            app,
            remove(
                &mut reader,
                pb::RemovePhoneNumberRequest {
                    validate_only,
                    ..remove_request(JOHN, CP_0101)
                }
            ),
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
    }
    // Permission comes before the body.
    refused!(
        app,
        assign(&mut reader, pb::AssignPhoneNumberRequest::default()),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    refused!(
        app,
        change(&mut reader, pb::ChangePhoneNumberRequest::default()),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    refused!(
        app,
        remove(
            &mut reader,
            pb::RemovePhoneNumberRequest {
                block_days: Some(999),
                ..remove_request(JOHN, CP_0101)
            }
        ),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
}

// ---- races -------------------------------------------------------------------------------------

/// Creates `count` licensed US users named `prefix-N@contoso.com`, in order.
async fn many_users(app: &TestApp, prefix: &str, count: usize) -> Vec<pb::User> {
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        users.push(
            app.user(
                TENANT,
                &format!("{prefix}-{i:02}@contoso.com"),
                &format!("User {i}"),
                "US",
            )
            .await,
        );
    }
    users
}

/// Assigns `phone_number` to every user at once; checks exactly one wins and the others lose
/// with NUMBER_ALREADY_ASSIGNED or CONCURRENT_CHANGE. Answers the winner's index.
async fn race_one_number(
    app: &TestApp,
    users: &[pb::User],
    request: pb::AssignPhoneNumberRequest,
) -> usize {
    let admin = app.admin(TENANT);
    let answers = futures::future::join_all(users.iter().map(|user| {
        let mut client = admin.clone();
        let request = pb::AssignPhoneNumberRequest {
            identity: user.user_principal_name.clone(),
            ..request.clone()
        };
        async move { assign(&mut client, request).await }
    }))
    .await;

    let mut winners = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Ok(response) => winners.push((i, response.clone())),
            Err(status) => {
                let reason = reason_of(status);
                assert!(
                    (status.code() == Code::FailedPrecondition
                        && reason == "NUMBER_ALREADY_ASSIGNED")
                        || (status.code() == Code::Aborted && reason == "CONCURRENT_CHANGE"),
                    "unexpected refusal: {status:?}"
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:#?}");
    let (index, response) = winners.pop().expect("a winner");
    let winner = &users[index];
    let canonical = response.phone_number.expect("number").phone_number;
    assert_eq!(
        response.user.expect("user").phone_numbers,
        std::slice::from_ref(&canonical)
    );

    let mut admin = admin;
    let number = get_number(&mut admin, &canonical).await;
    assert_eq!(number.assigned_to, winner.id);
    assert_eq!(number.assignment_category, PRIMARY);
    let enabled: Vec<String> = all_users(&mut admin)
        .await
        .into_iter()
        .filter(|u| users.iter().any(|r| r.id == u.id))
        .filter(|u| u.enterprise_voice_enabled || !u.phone_numbers.is_empty())
        .map(|u| u.id)
        .collect();
    assert_eq!(
        enabled,
        std::slice::from_ref(&winner.id),
        "only the winner is enabled"
    );
    let events: Vec<pb::AuditEvent> = events_of(&mut admin, ASSIGN_EVENT)
        .await
        .into_iter()
        .filter(|e| e.phone_number == canonical)
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].user_id, winner.id);
    let emails: Vec<Notification> = notifications(app)
        .await
        .into_iter()
        .filter(|n| n.phone_number == canonical)
        .collect();
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert_eq!(emails[0].recipient, winner.user_principal_name);
    index
}

async fn concurrent_assignments_of_one_number_have_one_winner(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let users = many_users(&app, "racer", 32).await;
    app.seed_numbers(TENANT, &[located_calling_plan_number("+14255550150")])
        .await;
    race_one_number(&app, &users, assign_request("", "+14255550150")).await;
}

async fn concurrent_assignments_of_one_direct_routing_number_have_one_winner(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let users = many_users(&app, "racer", 32).await;
    app.seed_numbers(
        TENANT,
        &[number("+14255388750", domain::NumberType::DirectRouting)],
    )
    .await;
    race_one_number(&app, &users, assign_request("", "+14255388750")).await;
}

async fn concurrent_first_assignments_of_a_new_direct_routing_number_have_one_winner(
    backend: Backend,
) {
    let app = TestApp::spawn_demo(backend).await;
    let users = many_users(&app, "racer", 16).await;
    let new_number = "+14255388760;ext=77";
    race_one_number(
        &app,
        &users,
        pb::AssignPhoneNumberRequest {
            phone_number_type: DIRECT_ROUTING,
            ..assign_request("", new_number)
        },
    )
    .await;
    let mut admin = app.admin(TENANT);
    let created: Vec<String> = all_numbers(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            number_prefix: "+14255388760".into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|n| n.phone_number)
    .collect();
    assert_eq!(created, [new_number], "created once");
}

async fn concurrent_retries_with_one_request_id_assign_once(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let admin = app.admin(TENANT);
    let request = pb::AssignPhoneNumberRequest {
        request_id: new_request_id(),
        ..assign_request(JOHN, CP_0101)
    };
    let answers = futures::future::join_all((0..32).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { assign(&mut client, request).await }
    }))
    .await;
    let answers: Vec<pb::AssignPhoneNumberResponse> = answers
        .into_iter()
        .map(|a| a.expect("every retry succeeds"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");

    let mut admin = admin;
    let number = get_number(&mut admin, CP_0101).await;
    assert_eq!(Some(&number), answers[0].phone_number.as_ref());
    assert_eq!(events_of(&mut admin, ASSIGN_EVENT).await.len(), 1);
    assert_eq!(notifications(&app).await.len(), 1);
}

async fn concurrent_retries_with_one_request_id_change_once(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let admin = app.admin(TENANT);
    assign(&mut admin.clone(), assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");
    let request = pb::ChangePhoneNumberRequest {
        request_id: new_request_id(),
        ..change_at(JOHN, CP_0103, "redmond-hq")
    };
    let answers = futures::future::join_all((0..32).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { change(&mut client, request).await }
    }))
    .await;
    let answers: Vec<pb::ChangePhoneNumberResponse> = answers
        .into_iter()
        .map(|a| a.expect("every retry succeeds"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");

    let mut admin = admin;
    assert_eq!(get_user(&mut admin, JOHN).await.phone_numbers, [CP_0103]);
    assert_eq!(events_of(&mut admin, CHANGE_EVENT).await.len(), 2);
    assert_eq!(notifications(&app).await.len(), 2, "assigned, changed");
}

async fn concurrent_retries_with_one_request_id_remove_once(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let admin = app.admin(TENANT);
    assign(&mut admin.clone(), assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");
    let request = pb::RemovePhoneNumberRequest {
        request_id: new_request_id(),
        ..remove_request(JOHN, CP_0101)
    };
    let answers = futures::future::join_all((0..32).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { remove(&mut client, request).await }
    }))
    .await;
    let answers: Vec<pb::RemovePhoneNumberResponse> = answers
        .into_iter()
        .map(|a| a.expect("every retry succeeds"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");

    let mut admin = admin;
    assert!(get_user(&mut admin, JOHN).await.phone_numbers.is_empty());
    assert_eq!(events_of(&mut admin, REMOVE_EVENT).await.len(), 1);
    assert_eq!(notifications(&app).await.len(), 2, "assigned, removed");
}

/// One user changes to a number while others are given it: one of them gets it.
async fn concurrent_change_and_assignments_of_one_number_have_one_winner(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let users = many_users(&app, "racer", 15).await;
    let target = "+14255550150";
    app.seed_numbers(TENANT, &[located_calling_plan_number(target)])
        .await;
    let admin = app.admin(TENANT);
    assign(&mut admin.clone(), assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");

    let changing = {
        let mut client = admin.clone();
        async move { change(&mut client, change_request(JOHN, target)).await }
    };
    let assigning = futures::future::join_all(users.iter().map(|user| {
        let mut client = admin.clone();
        let request = assign_request(&user.user_principal_name, target);
        async move { assign(&mut client, request).await }
    }));
    let (changed, assigned) = futures::future::join(changing, assigning).await;

    let lost = |status: &Status| {
        let reason = reason_of(status);
        assert!(
            (status.code() == Code::FailedPrecondition && reason == "NUMBER_ALREADY_ASSIGNED")
                || (status.code() == Code::Aborted && reason == "CONCURRENT_CHANGE"),
            "unexpected refusal: {status:?}"
        );
    };
    let mut holders = Vec::new();
    match &changed {
        Ok(_) => holders.push(JOHN_ID.to_owned()),
        Err(status) => lost(status),
    }
    for (user, answer) in users.iter().zip(&assigned) {
        match answer {
            Ok(_) => holders.push(user.id.clone()),
            Err(status) => lost(status),
        }
    }
    assert_eq!(holders.len(), 1, "exactly one winner: {holders:?}");

    let mut admin = admin;
    let number = get_number(&mut admin, target).await;
    assert_eq!(number.assigned_to, holders[0]);
    assert_eq!(number.assignment_category, PRIMARY);
    let john = get_user(&mut admin, JOHN).await;
    assert!(john.enterprise_voice_enabled);
    if changed.is_ok() {
        assert_eq!(john.phone_numbers, [target]);
        assert_eq!(
            get_number(&mut admin, CP_0101).await.assignment_status,
            UNASSIGNED
        );
    } else {
        assert_eq!(john.phone_numbers, [CP_0101]);
    }
    let on_target = all_audit_events(&mut admin)
        .await
        .into_iter()
        .filter(|e| e.phone_number == target)
        .count();
    assert_eq!(on_target, 1, "one event for the number");
}

async fn concurrent_changes_of_one_user_leave_one_primary_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let targets: Vec<String> = (110..126).map(|i| format!("+14255550{i}")).collect();
    let records: Vec<domain::PhoneNumber> = targets
        .iter()
        .map(|n| located_calling_plan_number(n))
        .collect();
    app.seed_numbers(TENANT, &records).await;
    let admin = app.admin(TENANT);
    assign(&mut admin.clone(), assign_request(JOHN, CP_0101))
        .await
        .expect("john's primary");

    let answers = futures::future::join_all(targets.iter().map(|target| {
        let mut client = admin.clone();
        let request = change_request(JOHN, target);
        async move { change(&mut client, request).await }
    }))
    .await;

    let mut successes = Vec::new();
    let mut refusals = 0;
    for answer in answers {
        match answer {
            Ok(response) => successes.push(response),
            Err(status) => {
                assert!(
                    status.code() == Code::Aborted && reason_of(&status) == "CONCURRENT_CHANGE",
                    "unexpected refusal: {status:?}"
                );
                refusals += 1;
            }
        }
    }
    assert_eq!(successes.len() + refusals, targets.len());
    assert!(!successes.is_empty(), "at least one change succeeds");

    let mut admin = admin;
    let held = numbers_of(&mut admin, JOHN).await;
    assert_eq!(held.len(), 1, "exactly one number: {held:#?}");
    let primary = &held[0];
    assert_eq!(primary.assignment_category, PRIMARY);
    assert!(targets.contains(&primary.phone_number), "{primary:?}");
    let user = get_user(&mut admin, JOHN).await;
    assert_eq!(
        user.phone_numbers,
        std::slice::from_ref(&primary.phone_number)
    );
    assert!(user.enterprise_voice_enabled);
    for n in targets.iter().map(String::as_str).chain([CP_0101]) {
        if n != primary.phone_number {
            let other = get_number(&mut admin, n).await;
            assert_eq!(other.assignment_status, UNASSIGNED, "{other:?}");
        }
    }

    // The successes form one chain: each replaced the primary number the previous one set.
    let mut previous: Vec<String> = successes
        .iter()
        .map(|s| {
            s.previous_phone_number
                .clone()
                .expect("previous")
                .phone_number
        })
        .collect();
    previous.push(primary.phone_number.clone());
    previous.sort();
    let mut set: Vec<String> = successes
        .iter()
        .map(|s| s.phone_number.clone().expect("number").phone_number)
        .collect();
    set.push(CP_0101.to_owned());
    set.sort();
    assert_eq!(previous, set, "the changes happened one after another");
    assert_eq!(
        events_of(&mut admin, CHANGE_EVENT).await.len(),
        2 * successes.len()
    );
}

async fn concurrent_primary_assignments_to_one_user_leave_one_primary(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let candidates: Vec<String> = (110..126).map(|i| format!("+14255550{i}")).collect();
    let records: Vec<domain::PhoneNumber> = candidates
        .iter()
        .map(|n| located_calling_plan_number(n))
        .collect();
    app.seed_numbers(TENANT, &records).await;
    let admin = app.admin(TENANT);

    let answers = futures::future::join_all(candidates.iter().map(|candidate| {
        let mut client = admin.clone();
        let request = assign_request(JOHN, candidate);
        async move { assign(&mut client, request).await }
    }))
    .await;

    let mut winners = Vec::new();
    for answer in answers {
        match answer {
            Ok(response) => winners.push(response),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(
                    reason_of(&status),
                    "USER_ALREADY_HAS_PRIMARY_NUMBER",
                    "{status:?}"
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:#?}");
    let won = winners[0]
        .phone_number
        .clone()
        .expect("number")
        .phone_number;

    let mut admin = admin;
    let held = numbers_of(&mut admin, JOHN).await;
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].phone_number, won);
    assert_eq!(held[0].assignment_category, PRIMARY);
    assert_eq!(
        get_user(&mut admin, JOHN).await.phone_numbers,
        std::slice::from_ref(&won)
    );
    let primaries = all_numbers(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            assigned_to: JOHN_ID.into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .filter(|n| n.assignment_category == PRIMARY)
    .count();
    assert_eq!(primaries, 1);
    assert_eq!(events_of(&mut admin, ASSIGN_EVENT).await.len(), 1);
    let others: HashSet<i32> = {
        let mut set = HashSet::new();
        for n in candidates.iter().filter(|n| **n != won) {
            set.insert(get_number(&mut admin, n).await.assignment_status);
        }
        set
    };
    assert_eq!(others, HashSet::from([UNASSIGNED]));
}

on_both_stores!(
    assign_calling_plan_number_to_a_user,
    assign_operator_connect_number,
    change_replaces_the_primary_number_in_one_step,
    remove_disables_enterprise_voice_and_keeps_the_number,
    remove_one_of_two_numbers_keeps_enterprise_voice,
    remove_all_removes_primary_and_private_numbers,
    assign_accepts_a_number_without_plus_and_without_type,
    assign_private_and_alternate_numbers,
    resource_account_gets_a_service_number,
    notify_user_queues_one_email_per_change,
    unknown_user_is_not_found,
    number_outside_the_inventory_is_not_found,
    number_type_mismatch_says_what_the_number_is,
    licences_are_required,
    on_premises_line_blocks_cloud_assignment,
    capability_must_fit_the_target,
    number_held_by_someone_else_is_refused,
    blocked_numbers_refuse_assignment,
    blocks_for_days_end_by_themselves,
    remove_answers_the_block_as_stored,
    remove_refuses_bad_block_and_target_options,
    one_primary_number_per_user,
    usage_location_must_match_the_number,
    emergency_location_rules,
    operator_may_lock_the_emergency_location,
    change_needs_a_primary_number,
    remove_needs_a_number_the_user_holds,
    the_earlier_rule_answers,
    the_earlier_rule_answers_before_an_unknown_emergency_location,
    direct_routing_number_enters_the_inventory_on_first_assignment,
    direct_routing_number_needs_its_type_to_enter_the_inventory,
    change_to_a_new_direct_routing_number_creates_it,
    assign_retry_with_request_id_answers_the_first_answer,
    change_retry_with_request_id_answers_the_first_answer,
    remove_retry_with_request_id_answers_the_first_answer,
    assign_validate_only_changes_nothing,
    change_validate_only_changes_nothing,
    remove_validate_only_changes_nothing,
    reader_may_not_assign_change_or_remove,
    concurrent_assignments_of_one_number_have_one_winner,
    concurrent_assignments_of_one_direct_routing_number_have_one_winner,
    concurrent_first_assignments_of_a_new_direct_routing_number_have_one_winner,
    concurrent_retries_with_one_request_id_assign_once,
    concurrent_retries_with_one_request_id_change_once,
    concurrent_retries_with_one_request_id_remove_once,
    concurrent_change_and_assignments_of_one_number_have_one_winner,
    concurrent_changes_of_one_user_leave_one_primary_number,
    concurrent_primary_assignments_to_one_user_leave_one_primary,
);
