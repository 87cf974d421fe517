//! Bulk calls: each item runs exactly as its single call, with its own result; the call answers
//! an operation at once, whose progress and paged results GetOperation shows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use number_management::domain::NumberType;
use number_management::proto::v1 as pb;
use number_management::service::MAX_BULK_ITEMS;
use pb::operation::State;
use tonic::Code;

use crate::helpers::{Backend, Client, TestApp, assert_error, number};
use crate::on_both_stores;

const TENANT: &str = "contoso";

fn upn(i: usize) -> String {
    format!("user{i}@contoso.com")
}

fn phone(i: usize) -> String {
    format!("+1425555{i:04}")
}

fn user_item(i: usize) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            user_principal_name: upn(i),
            display_name: format!("User {i}"),
            usage_location: "US".into(),
            licenses: vec![pb::user::License::PhoneSystem as i32],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn assign_item(user: usize, number: usize) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        identity: upn(user),
        phone_number: phone(number),
        notify_user: Some(false),
        ..Default::default()
    }
}

/// Sends `messages` as one bulk assignment call.
pub(crate) async fn bulk_assign(
    client: &mut Client,
    messages: Vec<pb::BulkAssignPhoneNumbersRequest>,
) -> Result<pb::Operation, tonic::Status> {
    client
        .bulk_assign_phone_numbers(futures::stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

fn assignments(items: Vec<pb::AssignPhoneNumberRequest>) -> pb::BulkAssignPhoneNumbersRequest {
    pb::BulkAssignPhoneNumbersRequest {
        items,
        ..Default::default()
    }
}

/// Creates `count` users through BulkUpsertUsers, waiting until they all are.
async fn users(app: &TestApp, count: usize) {
    let mut admin = app.admin(TENANT);
    let messages: Vec<pb::BulkUpsertUsersRequest> = (0..count)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| pb::BulkUpsertUsersRequest {
            items: chunk.iter().map(|&i| user_item(i)).collect(),
            ..Default::default()
        })
        .collect();
    let operation = admin
        .bulk_upsert_users(futures::stream::iter(messages))
        .await
        .expect("BulkUpsertUsers")
        .into_inner();
    let ended = ended(&mut admin, &operation.id).await;
    assert_eq!(ended.state(), State::Succeeded, "{ended:?}");
}

/// A tenant with `users` users and `numbers` unassigned Direct Routing numbers.
async fn tenant(backend: Backend, user_count: usize, numbers: usize) -> TestApp {
    let app = TestApp::spawn(backend).await;
    users(&app, user_count).await;
    let records: Vec<_> = (0..numbers)
        .map(|i| number(&phone(i), NumberType::DirectRouting))
        .collect();
    app.seed_numbers(TENANT, &records).await;
    app
}

async fn get(client: &mut Client, request: pb::GetOperationRequest) -> pb::Operation {
    client
        .get_operation(request)
        .await
        .expect("GetOperation")
        .into_inner()
}

/// The operation once every item ran.
pub(crate) async fn ended(client: &mut Client, id: &str) -> pb::Operation {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let operation = get(
            client,
            pb::GetOperationRequest {
                id: id.into(),
                ..Default::default()
            },
        )
        .await;
        if matches!(operation.state(), State::Succeeded | State::Failed) {
            return operation;
        }
        assert!(Instant::now() < deadline, "still running: {operation:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every result of an operation, page by page.
async fn results(client: &mut Client, id: &str, failed_only: bool) -> Vec<pb::ItemResult> {
    let mut results = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = get(
            client,
            pb::GetOperationRequest {
                id: id.into(),
                page_size: 2,
                page_token,
                failed_only,
            },
        )
        .await;
        assert!(page.results.len() <= 2);
        results.extend(page.results);
        if page.next_page_token.is_empty() {
            return results;
        }
        page_token = page.next_page_token;
    }
}

/// The code and ErrorInfo reason of every item of an operation, once every item ran.
async fn outcomes_once_ended(client: &mut Client, id: &str) -> Vec<(Code, String)> {
    ended(client, id).await;
    results(client, id, false)
        .await
        .iter()
        .map(outcome)
        .collect()
}

/// The code and ErrorInfo reason of an item's status.
fn outcome(result: &pb::ItemResult) -> (Code, String) {
    let status = result.status.clone().expect("a status");
    let status = tonic::Status::with_details(
        Code::from(status.code),
        status.message.clone(),
        prost::Message::encode_to_vec(&status).into(),
    );
    let reason = tonic_types::StatusExt::get_error_details(&status)
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

async fn holder(client: &mut Client, number: &str) -> String {
    client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: number.into(),
        })
        .await
        .expect("GetPhoneNumber")
        .into_inner()
        .assigned_to
}

async fn every_item_runs_as_its_single_call(backend: Backend) {
    let app = tenant(backend, 4, 6).await;
    let mut admin = app.admin(TENANT);
    // Taken before the call: the item naming it is refused as the single call would be.
    admin
        .assign_phone_number(assign_item(3, 5))
        .await
        .expect("assign");
    let items = vec![
        assign_item(0, 0),
        assign_item(1, 1),
        assign_item(2, 5),
        pb::AssignPhoneNumberRequest {
            phone_number: "not a number".into(),
            ..assign_item(2, 2)
        },
        assign_item(2, 2),
        pb::AssignPhoneNumberRequest {
            identity: "nobody@contoso.com".into(),
            ..assign_item(0, 3)
        },
    ];
    let accepted = bulk_assign(&mut admin, vec![assignments(items)])
        .await
        .expect("BulkAssignPhoneNumbers");
    assert_eq!(accepted.kind(), pb::AuditAction::BulkAssignPhoneNumbers);
    let progress = accepted.progress.expect("progress");
    assert_eq!((progress.total, progress.validate_only), (6, false));

    let ended = ended(&mut admin, &accepted.id).await;
    assert_eq!(ended.state(), State::Failed);
    let progress = ended.progress.expect("progress");
    assert_eq!(
        (progress.done, progress.succeeded, progress.failed),
        (6, 3, 3)
    );
    assert!(
        ended.error.contains("3 of 6 items failed"),
        "{}",
        ended.error
    );

    let all = results(&mut admin, &accepted.id, false).await;
    let indexes: Vec<i32> = all.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
    let outcomes: Vec<(Code, String)> = all.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        [
            (Code::Ok, String::new()),
            (Code::Ok, String::new()),
            (Code::FailedPrecondition, "NUMBER_ALREADY_ASSIGNED".into()),
            (Code::InvalidArgument, "INVALID_PHONE_NUMBER".into()),
            (Code::Ok, String::new()),
            (Code::NotFound, "USER_NOT_FOUND".into()),
        ]
    );
    // A malformed item names its field across the whole call.
    let status = all[3].status.clone().unwrap();
    assert!(
        status.message.contains("items[3].phone_number"),
        "{status:?}"
    );
    // The assignments' own operations are the single calls'.
    assert!(!all[0].operation_id.is_empty());

    let failed: Vec<i32> = results(&mut admin, &accepted.id, true)
        .await
        .iter()
        .map(|r| r.index)
        .collect();
    assert_eq!(failed, [2, 3, 5]);

    let mut holders = HashMap::new();
    for i in 0..6 {
        holders.insert(i, holder(&mut admin, &phone(i)).await);
    }
    let user_id = |i: usize| {
        let mut admin = app.admin(TENANT);
        async move {
            admin
                .get_user(pb::GetUserRequest { identity: upn(i) })
                .await
                .unwrap()
                .into_inner()
                .id
        }
    };
    assert_eq!(holders[&0], user_id(0).await);
    assert_eq!(holders[&1], user_id(1).await);
    assert_eq!(holders[&2], user_id(2).await);
    assert_eq!(holders[&3], "");
    assert_eq!(holders[&5], user_id(3).await);

    // Each item wrote its own audit event; the call wrote one of its own.
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let count = |action: pb::AuditAction| events.iter().filter(|e| e.action() == action).count();
    assert_eq!(count(pb::AuditAction::AssignPhoneNumber), 4);
    assert_eq!(count(pb::AuditAction::BulkAssignPhoneNumbers), 1);
}

async fn a_plan_changes_nothing(backend: Backend) {
    let app = tenant(backend, 2, 2).await;
    let mut admin = app.admin(TENANT);
    let plan = pb::BulkAssignPhoneNumbersRequest {
        items: vec![
            assign_item(0, 0),
            assign_item(1, 1),
            pb::AssignPhoneNumberRequest {
                identity: "nobody@contoso.com".into(),
                ..assign_item(0, 1)
            },
        ],
        validate_only: true,
        ..Default::default()
    };
    let accepted = bulk_assign(&mut admin, vec![plan]).await.expect("a plan");
    assert!(accepted.progress.as_ref().unwrap().validate_only);
    let ended = ended(&mut admin, &accepted.id).await;
    let outcomes: Vec<(Code, String)> = results(&mut admin, &ended.id, false)
        .await
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            (Code::Ok, String::new()),
            (Code::Ok, String::new()),
            (Code::NotFound, "USER_NOT_FOUND".into()),
        ]
    );
    for i in 0..2 {
        assert_eq!(
            holder(&mut admin, &phone(i)).await,
            "",
            "a plan assigned {i}"
        );
    }
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    assert!(
        events.iter().all(|e| matches!(
            e.action(),
            pb::AuditAction::UpsertUser | pb::AuditAction::BulkUpsertUsers
        )),
        "a plan left events: {events:?}"
    );
}

async fn items_and_calls_are_idempotent_by_their_request_ids(backend: Backend) {
    let app = tenant(backend, 3, 3).await;
    let mut admin = app.admin(TENANT);
    let first = "0f8fad5b-d9cb-469f-a165-70867728950e";
    // The single call ran first; the item with its id and content answers the same.
    admin
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            request_id: first.into(),
            ..assign_item(0, 0)
        })
        .await
        .expect("assign");
    let call = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let message = pb::BulkAssignPhoneNumbersRequest {
        items: vec![
            pb::AssignPhoneNumberRequest {
                request_id: first.into(),
                ..assign_item(0, 0)
            },
            // The same id for something else is refused, as the single call refuses it.
            pb::AssignPhoneNumberRequest {
                request_id: first.into(),
                ..assign_item(1, 1)
            },
            assign_item(2, 2),
        ],
        request_id: call.into(),
        ..Default::default()
    };
    let accepted = bulk_assign(&mut admin, vec![message.clone()])
        .await
        .expect("bulk");
    let ended = ended(&mut admin, &accepted.id).await;
    let all = results(&mut admin, &ended.id, false).await;
    assert_eq!(all[0].request_id, first);
    let outcomes: Vec<(Code, String)> = all.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        [
            (Code::Ok, String::new()),
            (Code::FailedPrecondition, "REQUEST_ID_REUSED".into()),
            (Code::Ok, String::new()),
        ]
    );
    assert_eq!(holder(&mut admin, &phone(1)).await, "");

    // The call retried: the same operation, as it is now, and nothing runs twice.
    let retried = bulk_assign(&mut admin, vec![message.clone()])
        .await
        .expect("retry");
    assert_eq!(retried.id, accepted.id);
    assert_eq!(retried.state(), State::Failed);
    // The call's id for other items is refused.
    let other = pb::BulkAssignPhoneNumbersRequest {
        items: vec![assign_item(1, 1)],
        ..message
    };
    assert_error(
        bulk_assign(&mut admin, vec![other]).await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
}

async fn thousands_of_users_in_one_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    users(&app, 2500).await;
    let mut admin = app.admin(TENANT);
    let mut listed = 0;
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_users(pb::ListUsersRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        listed += page.users.len();
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed, 2500);
}

async fn removals_and_locations_in_bulk(backend: Backend) {
    let app = tenant(backend, 3, 3).await;
    let mut admin = app.admin(TENANT);
    let assigned = bulk_assign(
        &mut admin,
        vec![assignments((0..3).map(|i| assign_item(i, i)).collect())],
    )
    .await
    .unwrap();
    assert_eq!(
        ended(&mut admin, &assigned.id).await.state(),
        State::Succeeded
    );
    let location = admin
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address: Some(pb::CivicAddress {
                    company_name: "Contoso".into(),
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
        .expect("location")
        .into_inner();
    let updates = pb::BulkUpdateEmergencyLocationsRequest {
        items: (0..3)
            .map(|i| pb::UpdateEmergencyLocationRequest {
                phone_number: phone(i),
                emergency_location_id: location.id.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let updated = admin
        .bulk_update_emergency_locations(futures::stream::iter(vec![updates]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ended(&mut admin, &updated.id).await.state(),
        State::Succeeded
    );
    let number = admin
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: phone(2),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(number.emergency_location_id, location.id);

    let removals = pb::BulkRemovePhoneNumbersRequest {
        items: vec![
            pb::RemovePhoneNumberRequest {
                identity: upn(0),
                phone_number: phone(0),
                notify_user: Some(false),
                ..Default::default()
            },
            pb::RemovePhoneNumberRequest {
                identity: upn(1),
                remove_all: true,
                notify_user: Some(false),
                ..Default::default()
            },
            // Not user 0's number: refused as the single call refuses it.
            pb::RemovePhoneNumberRequest {
                identity: upn(0),
                phone_number: phone(2),
                notify_user: Some(false),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let removed = admin
        .bulk_remove_phone_numbers(futures::stream::iter(vec![removals]))
        .await
        .unwrap()
        .into_inner();
    let ended = ended(&mut admin, &removed.id).await;
    let outcomes: Vec<(Code, String)> = results(&mut admin, &ended.id, false)
        .await
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            (Code::Ok, String::new()),
            (Code::Ok, String::new()),
            (
                Code::FailedPrecondition,
                "NUMBER_NOT_ASSIGNED_TO_USER".into()
            ),
        ]
    );
    assert_eq!(holder(&mut admin, &phone(0)).await, "");
    assert_eq!(holder(&mut admin, &phone(1)).await, "");
    assert_ne!(holder(&mut admin, &phone(2)).await, "");
}

/// Single calls race the bulk call's items for the same numbers: every number ends with one
/// holder, and that holder's request is the only one that succeeded.
async fn a_bulk_call_racing_single_calls_never_makes_two_holders(backend: Backend) {
    const NUMBERS: usize = 60;
    let app = tenant(backend, 2 * NUMBERS, NUMBERS).await;
    let mut admin = app.admin(TENANT);
    let accepted = bulk_assign(
        &mut admin,
        vec![assignments(
            (0..NUMBERS).map(|i| assign_item(i, i)).collect(),
        )],
    )
    .await
    .unwrap();
    let singles = (0..NUMBERS).map(|i| {
        let mut client = app.admin(TENANT);
        async move {
            client
                .assign_phone_number(assign_item(NUMBERS + i, i))
                .await
                .is_ok()
        }
    });
    let single_won: Vec<bool> = futures::future::join_all(singles).await;
    let ended = ended(&mut admin, &accepted.id).await;
    let bulk_won: Vec<bool> = results(&mut admin, &ended.id, false)
        .await
        .iter()
        .map(|r| outcome(r).0 == Code::Ok)
        .collect();
    for i in 0..NUMBERS {
        assert!(
            single_won[i] != bulk_won[i],
            "number {i}: single won {}, bulk won {}",
            single_won[i],
            bulk_won[i]
        );
        let holder = holder(&mut admin, &phone(i)).await;
        let winner = if bulk_won[i] {
            upn(i)
        } else {
            upn(NUMBERS + i)
        };
        let winner_id = admin
            .get_user(pb::GetUserRequest { identity: winner })
            .await
            .unwrap()
            .into_inner()
            .id;
        assert_eq!(holder, winner_id, "number {i}");
    }
}

/// Assignments run a chunk at a time in one transaction: items that depend on an earlier item
/// of the chunk, a number that turns out to be another tenant's, and a refused item's request
/// id all end as the single calls would have left them.
async fn batched_items_end_as_single_calls_would(backend: Backend) {
    let app = tenant(backend, 3, 4).await;
    app.seed_numbers(
        "fabrikam",
        &[number("+14255559999", NumberType::DirectRouting)],
    )
    .await;
    let mut admin = app.admin(TENANT);
    let refused_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    let first = vec![
        assign_item(0, 0),
        // The same user again: it runs once the item before it did.
        pb::AssignPhoneNumberRequest {
            assignment_category: pb::AssignmentCategory::Private as i32,
            ..assign_item(0, 1)
        },
        // The same number again: taken by the item before it.
        assign_item(1, 0),
        // No such user yet: refused, and its request id is not kept.
        pb::AssignPhoneNumberRequest {
            request_id: refused_id.into(),
            ..assign_item(5, 2)
        },
        // A Direct Routing number new to the inventory enters it.
        pb::AssignPhoneNumberRequest {
            phone_number_type: pb::NumberType::DirectRouting as i32,
            ..assign_item(2, 777)
        },
    ];
    let accepted = bulk_assign(&mut admin, vec![assignments(first)])
        .await
        .expect("bulk");
    let outcomes = outcomes_once_ended(&mut admin, &accepted.id).await;
    assert_eq!(
        outcomes,
        [
            (Code::Ok, String::new()),
            (Code::Ok, String::new()),
            (Code::FailedPrecondition, "NUMBER_ALREADY_ASSIGNED".into()),
            (Code::NotFound, "USER_NOT_FOUND".into()),
            (Code::Ok, String::new()),
        ]
    );
    let user = |i: usize| {
        let mut admin = app.admin(TENANT);
        async move {
            admin
                .get_user(pb::GetUserRequest { identity: upn(i) })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first_user = user(0).await;
    assert_eq!(first_user.phone_numbers, [phone(0), phone(1)]);
    assert_eq!(holder(&mut admin, &phone(0)).await, first_user.id);
    assert_eq!(holder(&mut admin, &phone(777)).await, user(2).await.id);

    // The refused item's request id runs again once the user exists.
    admin
        .upsert_user(user_item(5))
        .await
        .expect("upsert user 5");
    admin
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            request_id: refused_id.into(),
            ..assign_item(5, 2)
        })
        .await
        .expect("the refused item's request id, retried once the user exists");
    assert_eq!(holder(&mut admin, &phone(2)).await, user(5).await.id);

    // Another tenant's number makes the chunk run item by item, with the same results.
    let second = vec![
        assign_item(1, 3),
        pb::AssignPhoneNumberRequest {
            phone_number: "+14255559999".into(),
            phone_number_type: pb::NumberType::DirectRouting as i32,
            assignment_category: pb::AssignmentCategory::Private as i32,
            ..assign_item(2, 0)
        },
    ];
    let accepted = bulk_assign(&mut admin, vec![assignments(second)])
        .await
        .expect("bulk");
    let outcomes = outcomes_once_ended(&mut admin, &accepted.id).await;
    assert_eq!(
        outcomes,
        [
            (Code::Ok, String::new()),
            (Code::AlreadyExists, "NUMBER_ALREADY_IN_INVENTORY".into()),
        ]
    );
    assert_eq!(holder(&mut admin, &phone(3)).await, user(1).await.id);
}

/// A call whose every item is refused as it is read has ended when it is accepted, counted
/// across the chunks its items are recorded in.
async fn a_call_of_malformed_items_only_has_ended_when_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let malformed = |i: usize| pb::AssignPhoneNumberRequest {
        phone_number: format!("not a number {i}"),
        ..assign_item(i, i)
    };
    let messages = vec![
        assignments((0..1000).map(malformed).collect()),
        assignments((1000..1500).map(malformed).collect()),
    ];
    let accepted = bulk_assign(&mut admin, messages)
        .await
        .expect("BulkAssignPhoneNumbers");
    assert_eq!(accepted.state(), State::Failed);
    let progress = accepted.progress.expect("progress");
    assert_eq!(
        (progress.total, progress.done, progress.failed),
        (1500, 1500, 1500)
    );
    assert!(
        accepted.error.contains("1500 of 1500 items failed"),
        "{}",
        accepted.error
    );
    let read = get(
        &mut admin,
        pb::GetOperationRequest {
            id: accepted.id.clone(),
            page_size: 1000,
            failed_only: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(read.state(), State::Failed);
    assert_eq!(read.progress, accepted.progress);
    assert_eq!(read.results.len(), 1000);
    let last = &read.results[999];
    assert_eq!(last.index, 999);
    assert_eq!(
        outcome(last),
        (Code::InvalidArgument, "INVALID_PHONE_NUMBER".into())
    );
    let message = last.status.as_ref().unwrap().message.clone();
    assert!(message.contains("items[999].phone_number"), "{message}");
}

async fn malformed_calls_are_refused_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    assert_error(
        bulk_assign(&mut admin, vec![]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let first = pb::BulkAssignPhoneNumbersRequest {
        items: vec![assign_item(0, 0)],
        request_id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        ..Default::default()
    };
    let second = pb::BulkAssignPhoneNumbersRequest {
        items: vec![assign_item(1, 1)],
        request_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        ..Default::default()
    };
    let status = assert_error(
        bulk_assign(&mut admin, vec![first, second]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(crate::helpers::violated_fields(&status), ["request_id"]);
    // A message over the limit of any request.
    let crowded = assignments((0..1001).map(|i| assign_item(i, i)).collect());
    let status = assert_error(
        bulk_assign(&mut admin, vec![crowded]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(crate::helpers::violated_fields(&status), ["items"]);
    // Only admins make bulk changes.
    let mut reader = app.reader(TENANT);
    assert_error(
        bulk_assign(&mut reader, vec![assignments(vec![assign_item(0, 0)])]).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    // Nothing was recorded.
    let mut read = app.store.read().await.unwrap();
    let events = read
        .list_audit(TENANT, &Default::default(), None, 10)
        .await
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

/// One item over the most a call takes is refused, and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_takes_at_most_its_limit_of_items() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut admin = app.admin(TENANT);
    let item = pb::RemovePhoneNumberRequest {
        identity: "u".into(),
        remove_all: true,
        ..Default::default()
    };
    let messages: Vec<_> = (0..=MAX_BULK_ITEMS / 1000)
        .map(|_| pb::BulkRemovePhoneNumbersRequest {
            items: vec![item.clone(); 1000],
            ..Default::default()
        })
        .collect();
    let status = assert_error(
        admin
            .bulk_remove_phone_numbers(futures::stream::iter(messages))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert!(
        status.message().contains("at most 100000 items"),
        "{status:?}"
    );
}

on_both_stores!(
    every_item_runs_as_its_single_call,
    a_plan_changes_nothing,
    items_and_calls_are_idempotent_by_their_request_ids,
    thousands_of_users_in_one_call,
    removals_and_locations_in_bulk,
    a_bulk_call_racing_single_calls_never_makes_two_holders,
    batched_items_end_as_single_calls_would,
    a_call_of_malformed_items_only_has_ended_when_accepted,
    malformed_calls_are_refused_whole,
);
