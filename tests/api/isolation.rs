//! Isolation in the database. On PostgreSQL, row-level security keeps every tenant's rows to
//! itself even for a statement that forgot its tenant filter, run as the store runs its own;
//! on both stores the audit trail is append-only.

use std::collections::BTreeMap;
use std::time::SystemTime;

use number_management::domain::{
    AuditAction, AuditEvent, Drift, DriftKind, Job, License, Notification, NotificationSettings,
    NumberType, Operation, OperationState, OperatorConsent, ProvisioningAction, Reconciliation,
    ReconciliationTrigger, TargetKind, UserUpsert, ValidationStatus,
};
use number_management::store::{Changes, NewBulk, NewBulkItem, NewOperation, PostgresStore, Store};
use serde_json::json;
use sqlx::Connection as _;

use crate::helpers::{Backend, TestDatabase, number};
use crate::on_both_stores;

const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// Every table that holds a tenant's rows.
const TENANT_TABLES: [&str; 17] = [
    "reconciliations",
    "drift_items",
    "bulk_operations",
    "bulk_items",
    "users",
    "emergency_locations",
    "phone_numbers",
    "operator_consents",
    "request_ids",
    "audit_events",
    "notifications",
    "operations",
    "provisioning_jobs",
    "notification_settings",
    "tenant_configurations",
    "tags",
    "phone_number_tags",
];

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Writes a row of every kind for `tenant`, through the store: `number` is its number.
async fn populate(store: &dyn Store, tenant: &str, phone_number: &str) {
    let now = SystemTime::now();
    let user_id = uuid();
    let mut tx = store.write().await.unwrap();
    tx.claim_request(
        tenant,
        "request-1",
        "AssignPhoneNumber",
        b"fingerprint",
        now,
    )
    .await
    .unwrap();
    let user = UserUpsert::new(
        &user_id,
        "john@contoso.com",
        "",
        "John",
        "US",
        TargetKind::User,
        [License::PhoneSystem].into_iter().collect(),
        "",
    )
    .unwrap();
    tx.upsert_user(tenant, &user, &user_id, now).await.unwrap();
    let location = crate::store::redmond("HQ");
    tx.insert_location(tenant, &uuid(), &location, ValidationStatus::Validated, now)
        .await
        .unwrap();
    assert!(
        tx.insert_number(tenant, &number(phone_number, NumberType::DirectRouting))
            .await
            .unwrap()
    );
    let consent = OperatorConsent {
        operator_id: "fabrikam-telecom".into(),
        countries: vec![number_management::domain::Country::parse("US").unwrap()],
    };
    tx.put_consent(tenant, &consent, now).await.unwrap();
    let settings = NotificationSettings::declare(&["contoso.com".into()], now).unwrap();
    tx.put_notification_settings(tenant, &settings)
        .await
        .unwrap();
    let configuration = number_management::domain::TenantConfiguration {
        version: 1,
        update_time: Some(now),
        ..Default::default()
    };
    tx.put_tenant_configuration(tenant, &configuration)
        .await
        .unwrap();
    let tag = number_management::domain::Tag::named("Lobby");
    let tagged = number_management::store::TagChange {
        phone_number: phone_number.into(),
        tags: vec![tag.name.clone()],
        added: vec![tag],
        removed: Vec::new(),
    };
    tx.write_tags(tenant, &[tagged], now).await.unwrap();
    let operation_id = uuid();
    let job = Job {
        id: uuid(),
        tenant_id: tenant.into(),
        operation_id: operation_id.clone(),
        phone_number: phone_number.into(),
        action: ProvisioningAction::Activate,
        provider_id: "litware-mobile".into(),
        target_id: user_id.clone(),
        emergency_location_id: None,
        previous_location_id: None,
        state: OperationState::Pending,
        reason: None,
        ticket: None,
        attempts: 0,
        failures: 0,
        create_time: now,
    };
    let operation = Operation::new(
        operation_id.clone(),
        AuditAction::AssignPhoneNumber,
        std::slice::from_ref(&job),
        now,
    );
    let changes = Changes {
        operations: vec![NewOperation {
            operation,
            jobs: vec![job],
            request_id: Some("request-1".into()),
            actor: "test".into(),
        }],
        audit: vec![AuditEvent {
            id: uuid(),
            time: now,
            actor: "test".into(),
            action: AuditAction::AssignPhoneNumber,
            phone_number: Some(phone_number.into()),
            user_id: Some(user_id),
            request_id: Some("request-1".into()),
            before: None,
            after: Some(json!({"phone_number": phone_number})),
        }],
        notifications: vec![Notification {
            id: uuid(),
            recipient: "john@contoso.com".into(),
            subject: format!("Your phone number is {phone_number}"),
            body: "Hello".into(),
            phone_number: phone_number.into(),
            create_time: now,
        }],
        responses: vec![("request-1".into(), json!({"answer": tenant}).to_string())],
        ..Changes::default()
    };
    tx.apply(tenant, &changes).await.unwrap();
    let bulk = NewBulk {
        operation_id,
        method: "AssignPhoneNumber".into(),
        validate_only: false,
        caller: json!({"tenant_id": tenant}),
        total: 1,
    };
    tx.insert_bulk(tenant, &bulk).await.unwrap();
    let item = NewBulkItem {
        request_id: None,
        request: "{}".into(),
        outcome: None,
    };
    tx.insert_bulk_items(tenant, &bulk.operation_id, 0, &[item])
        .await
        .unwrap();
    // A reconciliation run with one drift item: the tenant's is the only open run not leased
    // (the other tenant's, if populated first, is held for a minute).
    let run = Reconciliation::new(
        uuid(),
        "litware-mobile".into(),
        ReconciliationTrigger::Request,
        now,
    );
    assert!(tx.insert_reconciliation(tenant, &run).await.unwrap());
    let (claimed_tenant, _) = tx
        .claim_reconciliation(tenant, now, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the run just asked for");
    assert_eq!(claimed_tenant, tenant);
    let drift = Drift {
        phone_number: phone_number.into(),
        kind: DriftKind::MissingAtCarrier,
        carrier: None,
    };
    assert!(
        tx.record_drift(
            tenant,
            &run.id,
            tenant,
            &[drift],
            1,
            now,
            std::time::Duration::from_secs(60)
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
}

/// The rows of each tenant table, per tenant, as the owner of the tables sees them.
async fn rows_per_tenant(url: &str) -> BTreeMap<(String, String), i64> {
    let mut owner = sqlx::PgConnection::connect(url).await.unwrap();
    let mut rows = BTreeMap::new();
    for table in TENANT_TABLES {
        let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id"
        )))
        .fetch_all(&mut owner)
        .await
        .unwrap();
        for (tenant, count) in counts {
            rows.insert((table.to_owned(), tenant), count);
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_without_a_tenant_filter_sees_one_tenant() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let store = PostgresStore::open(&database.url, 2).await.unwrap();
    populate(&store, A, "+14255550101").await;
    populate(&store, B, "+14255550201").await;

    // Every table that has a tenant column is one of the tenant tables, so each is covered.
    let mut owner = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let with_tenants: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns \
         WHERE column_name = 'tenant_id' AND table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let mut expected: Vec<String> = TENANT_TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(
        with_tenants, expected,
        "a tenant table the test does not cover"
    );

    let before = rows_per_tenant(&database.url).await;
    let count = |table: &str, tenant: &str| {
        before
            .get(&(table.to_owned(), tenant.to_owned()))
            .copied()
            .unwrap_or(0) as u64
    };
    for table in TENANT_TABLES {
        let (a, b) = (count(table, A), count(table, B));
        assert!(a > 0 && b > 0, "{table} holds rows of both tenants");
        let seen = |tenant: &'static str, sql: String| {
            let store = &store;
            async move { store.run_scoped(tenant, &sql).await }
        };
        // No tenant filter: the connection's tenant only.
        assert_eq!(
            seen(A, format!("SELECT * FROM {table}")).await.unwrap(),
            a,
            "{table}"
        );
        assert_eq!(
            seen(B, format!("SELECT * FROM {table}")).await.unwrap(),
            b,
            "{table}"
        );
        // Asking for another tenant's rows finds none.
        let other = format!("SELECT * FROM {table} WHERE tenant_id = '{B}'");
        assert_eq!(seen(A, other).await.unwrap(), 0, "{table}");
        // A tenant with no rows sees nothing; the workers see every tenant.
        let all = format!("SELECT * FROM {table}");
        assert_eq!(seen("tenant-c", all.clone()).await.unwrap(), 0, "{table}");
        assert_eq!(seen("*", all).await.unwrap(), a + b, "{table}");

        if table == "audit_events" {
            // Append-only: neither changed nor removed, whatever the scope.
            for tenant in [A, "*"] {
                for sql in [
                    "UPDATE audit_events SET actor = 'someone else'",
                    "DELETE FROM audit_events",
                ] {
                    let error = seen(tenant, sql.to_owned()).await.unwrap_err();
                    assert!(
                        error.to_string().contains("permission denied"),
                        "{sql}: {error}"
                    );
                }
            }
            continue;
        }
        // Changes without a filter touch the tenant's own rows only...
        let touch = format!("UPDATE {table} SET tenant_id = tenant_id");
        assert_eq!(seen(A, touch).await.unwrap(), a, "{table}");
        // ...and cannot move them into another tenant.
        let error = seen(A, format!("UPDATE {table} SET tenant_id = '{B}'"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("row-level security"),
            "{table}: {error}"
        );
    }
    // Removing without a filter removes the tenant's own rows only.
    assert_eq!(
        store
            .run_scoped(A, "DELETE FROM request_ids")
            .await
            .unwrap(),
        count("request_ids", A)
    );
    let mut after = rows_per_tenant(&database.url).await;
    after.insert(
        ("request_ids".to_owned(), A.to_owned()),
        count("request_ids", A) as i64,
    );
    assert_eq!(after, before, "another tenant's rows changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scope_set_in_a_rolled_back_transaction_is_forgotten() {
    let database = TestDatabase::create(Backend::Postgres).await;
    // One connection, so every loan below is the same session.
    let store = PostgresStore::open(&database.url, 1).await.unwrap();
    populate(&store, A, "+14255550101").await;
    populate(&store, B, "+14255550201").await;
    let mut read = store.read().await.unwrap();
    assert!(read.get_number(A, "+14255550101").await.unwrap().is_some());
    drop(read);
    // Scoped to B inside a transaction that is then rolled back: the session is A's again.
    let mut write = store.write().await.unwrap();
    assert!(write.get_number(B, "+14255550201").await.unwrap().is_some());
    drop(write);
    let mut read = store.read().await.unwrap();
    assert!(read.get_number(B, "+14255550201").await.unwrap().is_some());
    assert!(read.get_number(A, "+14255550101").await.unwrap().is_some());
}

/// The keys and indexes that do not lead with `tenant_id`, on purpose, with the statements
/// across tenants that need them (docs/scaling.md).
const ACROSS_TENANTS: [(&str, &str); 9] = [
    ("bulk_operations_unfinished", "the bulk workers' claim_bulk"),
    (
        "reconciliations_open",
        "the reconciliation workers' claim_reconciliation",
    ),
    (
        "phone_numbers_number_in_one_tenant",
        "a number is in one tenant's inventory at a time: insert_number, numbers_taken",
    ),
    (
        "provisioning_jobs_due",
        "the provisioning workers' claim_jobs",
    ),
    ("notifications_due", "the mail workers' claim_notifications"),
    (
        "request_ids_by_create_time",
        "housekeeping's purge_requests",
    ),
    ("operations_finished", "housekeeping's purge_operations"),
    ("notifications_done", "housekeeping's purge_notifications"),
    (
        "server_secrets_pkey",
        "the replicas' shared secrets, no tenant's data",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_and_index_leads_with_the_tenant() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let _store = PostgresStore::open(&database.url, 1).await.unwrap();
    let mut owner = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_indexdef(i.indexrelid, 1, true) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_class t ON t.oid = i.indrelid \
         WHERE t.relnamespace = current_schema()::regnamespace \
         AND t.relname <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(indexes.len() > 30, "too few indexes found: {indexes:?}");
    let foreign_keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, (SELECT attname::text FROM pg_attribute \
             WHERE attrelid = conrelid AND attnum = conkey[1]) \
         FROM pg_constraint WHERE contype = 'f' \
         AND connamespace = current_schema()::regnamespace ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(!foreign_keys.is_empty());
    let mut across = Vec::new();
    for (name, first) in indexes.iter().chain(&foreign_keys) {
        if first != "tenant_id" {
            across.push(name.as_str());
        }
    }
    let mut expected: Vec<&str> = ACROSS_TENANTS.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    across.sort_unstable();
    assert_eq!(
        across, expected,
        "a key or index that does not lead with tenant_id: lead with it, or name the query \
         across tenants that needs it in ACROSS_TENANTS and docs/scaling.md"
    );
}

async fn audit_events_are_append_only(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let store = database.open().await;
    populate(&*store, A, "+14255550101").await;
    let refused = |result: Result<_, sqlx::Error>| {
        let error = result.expect_err("the audit trail was changed");
        let message = error.to_string();
        assert!(
            message.contains("append-only") || message.contains("permission denied"),
            "{message}"
        );
    };
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&database.url)
                .await
                .unwrap();
            for sql in [
                "UPDATE audit_events SET actor = 'someone else'",
                "DELETE FROM audit_events",
            ] {
                refused(sqlx::query(sql).execute(&mut conn).await);
            }
        }
        Backend::Postgres => {
            let store = PostgresStore::open(&database.url, 1).await.unwrap();
            for sql in [
                "UPDATE audit_events SET actor = 'someone else'",
                "DELETE FROM audit_events",
            ] {
                let error = store.run_scoped(A, sql).await.unwrap_err();
                assert!(error.to_string().contains("permission denied"), "{error}");
            }
        }
    }
    let mut read = store.read().await.unwrap();
    let events = read
        .list_audit(A, &Default::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "test");
}

on_both_stores!(audit_events_are_append_only);
