//! GetTenantConfiguration and UpdateTenantConfiguration over the socket, on the Contoso demo
//! tenant: the defaults of a tenant never configured, an update through its mask and etag, and
//! what requests that leave a choice unsaid then do (emails on assignment and on removal, a
//! removal's block, single calls and bulk ones alike), while a request's own choice wins;
//! refusals with their reasons, request ids, `validate_only`, and two updates racing.

use std::time::{Duration, SystemTime};

use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::assignment::events_of;
use crate::bulk::{bulk_assign, ended};
use crate::calls::{assign, assign_request, get_phone_number, remove, remove_request};
use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";
const JACK: &str = "jack@contoso.com";

/// Calling Plan, emergency location `redmond-hq`.
const CP_0101: &str = "+14255550101";
/// Calling Plan, no emergency location.
const CP_0104: &str = "+14255550104";

const NOT_BLOCKED: i32 = pb::AssignmentBlockedState::NotBlocked as i32;
const BLOCKED_UNTIL: i32 = pb::AssignmentBlockedState::BlockedUntil as i32;
const BLOCKED_FOREVER: i32 = pb::AssignmentBlockedState::BlockedForever as i32;
const UPDATE_EVENT: i32 = pb::AuditAction::UpdateTenantConfiguration as i32;

async fn get_configuration(client: &mut Client) -> pb::TenantConfiguration {
    client
        .get_tenant_configuration(pb::GetTenantConfigurationRequest {})
        .await
        .expect("GetTenantConfiguration")
        .into_inner()
}

async fn update(
    client: &mut Client,
    request: pb::UpdateTenantConfigurationRequest,
) -> Result<pb::TenantConfiguration, Status> {
    client
        .update_tenant_configuration(request)
        .await
        .map(tonic::Response::into_inner)
}

/// An update of the fields `paths` names to the values of `configuration`.
fn update_request(
    configuration: pb::TenantConfiguration,
    paths: &[&str],
) -> pb::UpdateTenantConfigurationRequest {
    pb::UpdateTenantConfigurationRequest {
        tenant_configuration: Some(configuration),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        ..Default::default()
    }
}

/// How many emails the demo tenant has queued.
async fn emails(app: &TestApp) -> usize {
    let mut tx = app.store.read().await.expect("read transaction");
    tx.notifications(TENANT, false)
        .await
        .expect("notifications")
        .len()
}

/// An assignment of a number with `redmond-hq` (US Calling Plan numbers need a location).
fn assign_located(identity: &str, phone_number: &str) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        emergency_location_id: "redmond-hq".into(),
        ..assign_request(identity, phone_number)
    }
}

/// Asserts that a refused update left the configuration and the audit trail as they were.
async fn refused_update(
    app: &TestApp,
    request: pb::UpdateTenantConfigurationRequest,
    code: Code,
    reason: &str,
) -> Status {
    let mut admin = app.admin(TENANT);
    let before = get_configuration(&mut admin).await;
    let events = events_of(&mut admin, UPDATE_EVENT).await.len();
    let status = assert_error(update(&mut admin, request).await, code, reason);
    assert_eq!(get_configuration(&mut admin).await, before);
    assert_eq!(events_of(&mut admin, UPDATE_EVENT).await.len(), events);
    status
}

async fn the_defaults_decide_what_requests_leave_unsaid(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let fresh = get_configuration(&mut admin).await;
    assert_eq!(
        fresh,
        pb::TenantConfiguration {
            assignment_email_enabled: true,
            unassignment_email_enabled: true,
            removal_block_days: 0,
            removal_block_forever: false,
            etag: "0".into(),
            update_time: None,
        }
    );

    let updated = update(
        &mut admin,
        update_request(
            pb::TenantConfiguration {
                assignment_email_enabled: false,
                removal_block_days: 30,
                // Not in the mask: left as it is.
                unassignment_email_enabled: false,
                etag: fresh.etag.clone(),
                ..Default::default()
            },
            &["assignment_email_enabled", "removal_block_days"],
        ),
    )
    .await
    .expect("update");
    assert!(!updated.assignment_email_enabled);
    assert!(updated.unassignment_email_enabled);
    assert_eq!(updated.removal_block_days, 30);
    assert_eq!(updated.etag, "1");
    assert!(updated.update_time.is_some());
    assert_eq!(get_configuration(&mut app.reader(TENANT)).await, updated);
    let events = events_of(&mut admin, UPDATE_EVENT).await;
    assert_eq!(events.len(), 1, "{events:#?}");

    // An assignment that does not say: no email. One that says: an email.
    let queued = emails(&app).await;
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign john");
    assert_eq!(emails(&app).await, queued);
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            notify_user: Some(true),
            ..assign_located(JACK, CP_0104)
        },
    )
    .await
    .expect("assign jack");
    assert_eq!(emails(&app).await, queued + 1);

    // A removal that names no block gets the default's 30 days, and its email.
    let started = SystemTime::now();
    let removed = remove(&mut admin, remove_request(JOHN, CP_0101))
        .await
        .expect("remove john's");
    let freed = &removed.phone_numbers[0];
    assert_eq!(freed.assignment_blocked_state, BLOCKED_UNTIL);
    let until = freed.assignment_blocked_until.expect("blocked until");
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(until.seconds as u64);
    let drift = until
        .duration_since(started + Duration::from_secs(30 * 86_400))
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_secs(120), "blocked until {until:?}");
    assert_eq!(emails(&app).await, queued + 2);

    // A removal's own choice wins: no block (0 days), no email.
    let removed = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_days: Some(0),
            notify_user: Some(false),
            ..remove_request(JACK, CP_0104)
        },
    )
    .await
    .expect("remove jack's");
    assert_eq!(
        removed.phone_numbers[0].assignment_blocked_state,
        NOT_BLOCKED
    );
    assert_eq!(emails(&app).await, queued + 2);
}

/// A default block for ever, and no emails on either side: single calls and a bulk call's
/// items that say nothing follow them.
async fn a_forever_default_and_bulk_items(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    update(
        &mut admin,
        update_request(
            pb::TenantConfiguration {
                assignment_email_enabled: false,
                unassignment_email_enabled: false,
                removal_block_forever: true,
                ..Default::default()
            },
            &[],
        ),
    )
    .await
    .expect("update every field");
    let queued = emails(&app).await;

    let operation = bulk_assign(
        &mut admin,
        vec![pb::BulkAssignPhoneNumbersRequest {
            items: vec![assign_request(JOHN, CP_0101), assign_located(JACK, CP_0104)],
            ..Default::default()
        }],
    )
    .await
    .expect("bulk assign");
    let done = ended(&mut admin, &operation.id).await;
    assert_eq!(done.state(), pb::operation::State::Succeeded, "{done:#?}");
    assert_eq!(emails(&app).await, queued, "the items asked for no email");

    let removed = remove(&mut admin, remove_request(JOHN, CP_0101))
        .await
        .expect("remove");
    assert_eq!(
        removed.phone_numbers[0].assignment_blocked_state,
        BLOCKED_FOREVER
    );
    let removed = remove(
        &mut admin,
        pb::RemovePhoneNumberRequest {
            block_days: Some(3),
            ..remove_request(JACK, CP_0104)
        },
    )
    .await
    .expect("remove for 3 days");
    assert_eq!(
        removed.phone_numbers[0].assignment_blocked_state,
        BLOCKED_UNTIL
    );
    assert_eq!(emails(&app).await, queued);
    assert_eq!(
        get_phone_number(&mut admin, CP_0104)
            .await
            .expect("get")
            .assignment_blocked_state,
        BLOCKED_UNTIL
    );
}

async fn updates_are_refused_with_reasons(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let current = update(
        &mut admin,
        update_request(
            pb::TenantConfiguration {
                removal_block_days: 5,
                ..Default::default()
            },
            &["removal_block_days"],
        ),
    )
    .await
    .expect("a first update");

    let status = refused_update(
        &app,
        update_request(pb::TenantConfiguration::default(), &["removal_block_hours"]),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    )
    .await;
    assert_eq!(violated_fields(&status), ["update_mask.paths[0]"]);
    for days in [366, -1] {
        let status = refused_update(
            &app,
            update_request(
                pb::TenantConfiguration {
                    removal_block_days: days,
                    ..Default::default()
                },
                &["removal_block_days"],
            ),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        )
        .await;
        assert_eq!(
            violated_fields(&status),
            ["tenant_configuration.removal_block_days"]
        );
    }
    // Forever, with the 5 days already there: one or the other.
    let status = refused_update(
        &app,
        update_request(
            pb::TenantConfiguration {
                removal_block_forever: true,
                ..Default::default()
            },
            &["removal_block_forever"],
        ),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    )
    .await;
    assert_eq!(
        violated_fields(&status),
        ["tenant_configuration.removal_block_days"]
    );
    let status = refused_update(
        &app,
        update_request(
            pb::TenantConfiguration {
                etag: "yesterday".into(),
                ..Default::default()
            },
            &["assignment_email_enabled"],
        ),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    )
    .await;
    assert_eq!(violated_fields(&status), ["tenant_configuration.etag"]);
    refused_update(
        &app,
        update_request(
            pb::TenantConfiguration {
                etag: "0".into(),
                ..Default::default()
            },
            &["assignment_email_enabled"],
        ),
        Code::Aborted,
        "ETAG_MISMATCH",
    )
    .await;
    let helpdesk = app.client_with_token(Some(
        &app.token(TENANT, number_management::auth::Role::Helpdesk),
    ));
    let before = get_configuration(&mut admin).await;
    assert_error(
        update(
            &mut helpdesk.clone(),
            update_request(pb::TenantConfiguration::default(), &[]),
        )
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_eq!(get_configuration(&mut admin).await, before);
    assert_eq!(before, current);
}

async fn updates_replay_and_validate(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let rehearsed = update(
        &mut admin,
        pb::UpdateTenantConfigurationRequest {
            validate_only: true,
            ..update_request(
                pb::TenantConfiguration {
                    removal_block_forever: true,
                    ..Default::default()
                },
                &["removal_block_forever"],
            )
        },
    )
    .await
    .expect("validate");
    assert!(rehearsed.removal_block_forever);
    let unchanged = get_configuration(&mut admin).await;
    assert!(!unchanged.removal_block_forever);
    assert_eq!(unchanged.etag, "0");

    let request = pb::UpdateTenantConfigurationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..update_request(
            pb::TenantConfiguration {
                unassignment_email_enabled: false,
                ..Default::default()
            },
            &["unassignment_email_enabled"],
        )
    };
    let first = update(&mut admin, request.clone()).await.expect("update");
    let retried = update(&mut admin, request.clone()).await.expect("retry");
    assert_eq!(retried, first);
    assert_eq!(get_configuration(&mut admin).await.etag, "1");
    assert_eq!(events_of(&mut admin, UPDATE_EVENT).await.len(), 1);
    refused_update(
        &app,
        pb::UpdateTenantConfigurationRequest {
            update_mask: None,
            ..request
        },
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    )
    .await;
}

/// Updates racing with the same etag: one wins, the others are told to read again.
async fn racing_updates_with_one_etag_have_one_winner(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let calls = (0..8).map(|i| {
        let mut admin = app.admin(TENANT);
        async move {
            update(
                &mut admin,
                update_request(
                    pb::TenantConfiguration {
                        removal_block_days: 10 + i,
                        etag: "0".into(),
                        ..Default::default()
                    },
                    &["removal_block_days"],
                ),
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let won: Vec<&pb::TenantConfiguration> = results.iter().flatten().collect();
    assert_eq!(won.len(), 1, "{results:#?}");
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), Code::Aborted, "{status:?}");
        }
    }
    let mut admin = app.admin(TENANT);
    let now = get_configuration(&mut admin).await;
    assert_eq!(&now, won[0]);
    assert_eq!(now.etag, "1");
    assert_eq!(events_of(&mut admin, UPDATE_EVENT).await.len(), 1);
}

on_both_stores!(
    the_defaults_decide_what_requests_leave_unsaid,
    a_forever_default_and_bulk_items,
    updates_are_refused_with_reasons,
    updates_replay_and_validate,
    racing_updates_with_one_etag_have_one_winner,
);
