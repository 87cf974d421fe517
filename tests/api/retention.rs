//! Retention: the housekeeping task deletes finished operations and emails that are done with
//! once they outlive their retention, and keeps them until then.

use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use number_management::service::WorkerSettings;
use tonic::Code;

use crate::helpers::{Backend, TestApp, TestConfig, assert_error};
use crate::on_both_stores;

const TENANT: &str = "contoso";

async fn operations_and_emails_go_after_their_retention(backend: Backend) {
    let defaults = TestConfig::default();
    let retention = Duration::from_secs(2);
    let app = TestApp::start_with_manual_clock(
        backend,
        TestConfig {
            worker: WorkerSettings {
                operation_retention: retention,
                notification_retention: retention,
                ..defaults.worker.clone()
            },
            ..defaults
        },
    )
    .await;
    app.user(TENANT, "john@contoso.com", "John", "US").await;
    let mut admin = app.admin(TENANT);
    let assigned = admin
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: "john@contoso.com".into(),
            phone_number: "+14255388123".into(),
            phone_number_type: pb::NumberType::DirectRouting as i32,
            ..Default::default()
        })
        .await
        .expect("assign")
        .into_inner();
    let operation = assigned.operation.expect("an operation").id;
    let get = |id: String| {
        let mut admin = app.admin(TENANT);
        async move {
            admin
                .get_operation(pb::GetOperationRequest {
                    id,
                    ..Default::default()
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let emails = || async {
        let mut read = app.store.read().await.unwrap();
        read.notifications(TENANT, false).await.unwrap().len()
    };
    // The email is done with (skipped: the tenant declared no verified domain).
    app.until_no_email_pending(TENANT).await;

    // Within the retention both are kept (the task looks every half second).
    app.advance(retention / 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    get(operation.clone()).await.expect("the operation is kept");
    assert_eq!(emails().await, 1, "the email is kept");

    // Past it, both go.
    app.advance(retention);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let gone = get(operation.clone()).await.is_err() && emails().await == 0;
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operation or the email outlived its retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(get(operation).await, Code::NotFound, "OPERATION_NOT_FOUND");
    // The number itself, and its audit trail, stay.
    let number = admin
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: "+14255388123".into(),
        })
        .await
        .expect("the number stays")
        .into_inner();
    assert_eq!(number.assigned_to_user_principal_name, "john@contoso.com");
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .expect("the audit trail")
        .into_inner()
        .audit_events;
    assert!(
        events
            .iter()
            .any(|e| e.action == pb::AuditAction::AssignPhoneNumber as i32),
        "{events:?}"
    );
}

on_both_stores!(operations_and_emails_go_after_their_retention);
