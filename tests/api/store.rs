//! The store conformance suite: the same checks, unchanged, against SQLite and PostgreSQL.
//! Each proves one behaviour the service relies on, including the invariants the database
//! itself must enforce.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use number_management::clock::{Clock as _, SystemClock};
use number_management::domain::{
    ActivationState, AssignmentCategory, AssignmentStatus, AuditAction, CivicAddress, Country,
    Drift, DriftKind, Identity, Job, License, Notification, NotificationSettings, NumberFilter,
    NumberType, Operation, OperationState, OperatorConsent, ProvisioningAction, Reconciliation,
    ReconciliationState, ReconciliationTrigger, TargetKind, TenantConfiguration, UserFilter,
    UserUpsert, ValidationStatus, validate_address,
};
use number_management::store::{
    Changes, Claim, Delivered, Delivery, JobOutcome, LocationCursor, NewOperation, Store,
    StoreError, Tx,
};
use numbers_provider::{CarrierNumber, CarrierState};
use serde_json::json;

use crate::helpers::{Backend, TestDatabase, assigned, number};
use crate::on_both_stores;

const T1: &str = "tenant-one";
const T2: &str = "tenant-two";

async fn store(backend: Backend) -> (TestDatabase, Arc<dyn Store>) {
    let database = TestDatabase::create(backend).await;
    let store = database.open().await;
    (database, store)
}

fn upsert(id: Option<&str>, upn: &str, display_name: &str) -> UserUpsert {
    UserUpsert::new(
        id.unwrap_or(""),
        upn,
        "",
        display_name,
        "US",
        TargetKind::User,
        [License::PhoneSystem].into_iter().collect(),
        "",
    )
    .unwrap()
}

async fn add_user(store: &dyn Store, tenant: &str, id: &str, upn: &str) {
    let mut tx = store.write().await.unwrap();
    tx.upsert_user(tenant, &upsert(Some(id), upn, upn), id, SystemTime::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn migrations_apply_once_and_reopen(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let first = database.open().await;
    assert_eq!(
        first.backend(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    first.ping().await.unwrap();
    first.close().await;
    // Opening again finds the migrations applied and changes nothing.
    let second = database.open().await;
    second.ping().await.unwrap();
}

async fn users_upsert_by_user_principal_name_then_by_id(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemTime::now();
    let mut tx = store.write().await.unwrap();
    let created = tx
        .upsert_user(
            T1,
            &upsert(None, "John@Contoso.com", "John"),
            "generated-1",
            now,
        )
        .await
        .unwrap();
    assert_eq!(created.id, "generated-1");
    assert_eq!(created.version, 1);
    // The same user principal name, differently cased, updates the same user.
    let updated = tx
        .upsert_user(
            T1,
            &upsert(None, "john@CONTOSO.com", "John Smith"),
            "generated-2",
            now,
        )
        .await
        .unwrap();
    assert_eq!(updated.id, "generated-1");
    assert_eq!(updated.display_name, "John Smith");
    assert_eq!(updated.user_principal_name, "john@CONTOSO.com");
    assert_eq!(updated.version, 2);
    // Keyed by id, the user principal name can change.
    let renamed = tx
        .upsert_user(
            T1,
            &upsert(Some("generated-1"), "johnny@contoso.com", "John"),
            "x",
            now,
        )
        .await
        .unwrap();
    assert_eq!(renamed.id, "generated-1");
    assert_eq!(renamed.user_principal_name, "johnny@contoso.com");
    tx.commit().await.unwrap();

    let mut read = store.read().await.unwrap();
    for identity in [
        Identity::Id("generated-1".into()),
        Identity::UserPrincipalName("JOHNNY@contoso.com".into()),
        Identity::SipAddress("SIP:johnny@contoso.com".into()),
    ] {
        let found = read.find_user(T1, &identity).await.unwrap();
        assert_eq!(
            found.map(|u| u.id).as_deref(),
            Some("generated-1"),
            "{identity:?}"
        );
    }
    assert!(
        read.find_user(T1, &Identity::UserPrincipalName("john@contoso.com".into()))
            .await
            .unwrap()
            .is_none()
    );
}

async fn users_principal_names_are_unique_per_tenant_only(backend: Backend) {
    let (_db, store) = store(backend).await;
    add_user(store.as_ref(), T1, "u1", "john@contoso.com").await;
    // Another tenant may have the same name.
    add_user(store.as_ref(), T2, "u1", "john@contoso.com").await;

    // Another user of the same tenant may not, whatever the case.
    let mut tx = store.write().await.unwrap();
    let error = tx
        .upsert_user(
            T1,
            &upsert(Some("u2"), "JOHN@contoso.com", "x"),
            "u2",
            SystemTime::now(),
        )
        .await
        .unwrap_err();
    assert!(error.is_constraint("users_upn_unique"), "{error:?}");
    drop(tx);

    let mut read = store.read().await.unwrap();
    assert!(
        read.find_user(T1, &Identity::Id("u2".into()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        read.find_user("tenant-three", &Identity::Id("u1".into()))
            .await
            .unwrap()
            .is_none()
    );
}

async fn users_list_in_order_with_prefix_search(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut tx = store.write().await.unwrap();
    let now = SystemTime::now();
    for (upn, name) in [
        ("zoe@contoso.com", "Zoë Adams"),
        ("adam@contoso.com", "Adam Zed"),
        ("john@contoso.com", "John Smith"),
        ("jack@contoso.com", "Jack Brown"),
        ("j_100%@contoso.com", "Percent"),
    ] {
        tx.upsert_user(T1, &upsert(None, upn, name), &format!("id-{upn}"), now)
            .await
            .unwrap();
    }
    tx.upsert_user(T2, &upsert(None, "jim@contoso.com", "Jim"), "other", now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut read = store.read().await.unwrap();
    let upns = |users: Vec<number_management::domain::User>| {
        users
            .into_iter()
            .map(|u| u.user_principal_name)
            .collect::<Vec<_>>()
    };
    let all = read
        .list_users(T1, &UserFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        upns(all),
        [
            "adam@contoso.com",
            "j_100%@contoso.com",
            "jack@contoso.com",
            "john@contoso.com",
            "zoe@contoso.com"
        ]
    );
    let search = |s: &str| UserFilter {
        search: Some(s.to_lowercase()),
    };
    // By user principal name prefix, or by display name prefix (here "zoë" and "zed" do not
    // start "Adam Zed").
    assert_eq!(
        upns(read.list_users(T1, &search("ja"), None, 10).await.unwrap()),
        ["jack@contoso.com"]
    );
    assert_eq!(
        upns(read.list_users(T1, &search("ZO"), None, 10).await.unwrap()),
        ["zoe@contoso.com"]
    );
    assert_eq!(
        upns(
            read.list_users(T1, &search("john s"), None, 10)
                .await
                .unwrap()
        ),
        ["john@contoso.com"]
    );
    // Wildcards match literally.
    assert_eq!(
        upns(read.list_users(T1, &search("j_"), None, 10).await.unwrap()),
        ["j_100%@contoso.com"]
    );
    assert!(
        read.list_users(T1, &search("%"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Keyset: after a key, in order, limited.
    assert_eq!(
        upns(
            read.list_users(T1, &UserFilter::default(), Some("jack@contoso.com"), 2)
                .await
                .unwrap()
        ),
        ["john@contoso.com", "zoe@contoso.com"]
    );
}

pub fn redmond(description: &str) -> number_management::domain::NewEmergencyLocation {
    validate_address(
        &CivicAddress {
            company_name: "Contoso".into(),
            house_number: "1".into(),
            street_name: "Microsoft Way".into(),
            city: "Redmond".into(),
            state_or_province: "WA".into(),
            postal_code: "98052".into(),
            country: "US".into(),
            ..Default::default()
        },
        description,
    )
    .unwrap()
}

async fn locations_filter_by_city_and_country_per_tenant(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemTime::now();
    let mut tx = store.write().await.unwrap();
    tx.insert_location(T1, "a", &redmond("HQ"), ValidationStatus::Validated, now)
        .await
        .unwrap();
    tx.insert_location(
        T1,
        "b",
        &redmond("B92"),
        ValidationStatus::NotValidated,
        now,
    )
    .await
    .unwrap();
    tx.insert_location(
        T2,
        "c",
        &redmond("Other tenant"),
        ValidationStatus::Validated,
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut read = store.read().await.unwrap();
    let a = read.get_location(T1, "a").await.unwrap().unwrap();
    assert_eq!(a.address.city, "Redmond");
    assert_eq!(a.validation_status, ValidationStatus::Validated);
    assert!(read.get_location(T1, "c").await.unwrap().is_none());
    let us = Country::parse("US").unwrap();
    let ids = |locations: Vec<number_management::domain::EmergencyLocation>| {
        locations.into_iter().map(|l| l.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(read
            .list_locations(T1, Some("REDMOND"), Some(us), None, 10)
            .await
            .unwrap()),
        ["a", "b"]
    );
    let after_a = LocationCursor::after(&a);
    assert_eq!(
        ids(read
            .list_locations(T1, None, None, Some(&after_a), 10)
            .await
            .unwrap()),
        ["b"]
    );
    assert!(
        read.list_locations(T1, Some("Seattle"), None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        read.list_locations(T1, None, Some(Country::parse("GB").unwrap()), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_number_is_in_one_tenant_at_a_time(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut tx = store.write().await.unwrap();
    assert!(
        tx.insert_number(T1, &number("+14255550101", NumberType::DirectRouting))
            .await
            .unwrap()
    );
    // Not in another tenant, whatever the type.
    for number_type in [NumberType::DirectRouting, NumberType::CallingPlan] {
        assert!(
            !tx.insert_number(T2, &number("+14255550101", number_type))
                .await
                .unwrap(),
            "a {number_type} number in two tenants"
        );
    }
    // An extension is a number of its own.
    assert!(
        tx.insert_number(T2, &number("+14255550101;ext=7", NumberType::DirectRouting))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // A second row for one number in one tenant is never written.
    let mut tx = store.write().await.unwrap();
    assert!(
        !tx.insert_number(T1, &number("+14255550101", NumberType::CallingPlan))
            .await
            .unwrap(),
        "a second row for one number in one tenant"
    );
    let kept = tx.get_number(T1, "+14255550101").await.unwrap().unwrap();
    assert_eq!(kept.number_type, NumberType::DirectRouting);
    assert!(tx.get_number(T2, "+14255550101").await.unwrap().is_none());
    // A Calling Plan or Operator Connect number is in one tenant only.
    assert!(
        tx.insert_number(T1, &number("+14255550102", NumberType::CallingPlan))
            .await
            .unwrap()
    );
    assert!(
        !tx.insert_number(T2, &number("+14255550102", NumberType::CallingPlan))
            .await
            .unwrap(),
        "a provider number in two tenants"
    );
    // Every type counts as taken for the catalogue.
    let taken = tx
        .numbers_taken(&[
            "+14255550101".to_owned(),
            "+14255550102".to_owned(),
            "+14255550103".to_owned(),
        ])
        .await
        .unwrap();
    assert_eq!(
        taken,
        HashSet::from(["+14255550101".to_owned(), "+14255550102".to_owned()])
    );
}

async fn numbers_allow_one_primary_per_target(backend: Backend) {
    let (_db, store) = store(backend).await;
    add_user(store.as_ref(), T1, "u1", "john@contoso.com").await;
    let now = SystemTime::now();
    let mut tx = store.write().await.unwrap();
    for n in ["+14255550101", "+14255550102", "+14255550103"] {
        assert!(
            tx.insert_number(T1, &number(n, NumberType::CallingPlan))
                .await
                .unwrap()
        );
    }
    let give = |n: &str, category| {
        assigned(number(n, NumberType::CallingPlan), "u1", category).changed(now)
    };
    // A private number besides the primary is fine.
    let changes = Changes {
        numbers: vec![
            give("+14255550101", AssignmentCategory::Primary),
            give("+14255550103", AssignmentCategory::Private),
        ],
        ..Changes::default()
    };
    tx.apply(T1, &changes).await.unwrap();
    let second_primary = Changes {
        numbers: vec![give("+14255550102", AssignmentCategory::Primary)],
        ..Changes::default()
    };
    let error = tx.apply(T1, &second_primary).await.unwrap_err();
    assert!(
        error.is_constraint("phone_numbers_one_primary_per_target"),
        "{error:?}"
    );
}

async fn numbers_can_only_be_held_by_known_users(backend: Backend) {
    let (_db, store) = store(backend).await;
    // The user exists, but in another tenant.
    add_user(store.as_ref(), T2, "u1", "john@contoso.com").await;
    let mut tx = store.write().await.unwrap();
    assert!(
        tx.insert_number(
            T1,
            &assigned(
                number("+14255550101", NumberType::CallingPlan),
                "u1",
                AssignmentCategory::Primary
            ),
        )
        .await
        .is_err()
    );
}

async fn numbers_list_with_every_filter(backend: Backend) {
    let (_db, store) = store(backend).await;
    add_user(store.as_ref(), T1, "u1", "john@contoso.com").await;
    let mut tx = store.write().await.unwrap();
    let mut service_number = number("+18005550100", NumberType::CallingPlan);
    service_number.capabilities = [
        number_management::domain::Capability::VoiceApplicationAssignment,
        number_management::domain::Capability::ConferenceAssignment,
    ]
    .into_iter()
    .collect();
    let mut pending = number("+14255550104", NumberType::OperatorConnect);
    pending.activation_state = ActivationState::AssignmentPending;
    for record in [
        assigned(
            number("+14255550101", NumberType::CallingPlan),
            "u1",
            AssignmentCategory::Primary,
        ),
        number("+14255550102", NumberType::OperatorConnect),
        number("+14255550103", NumberType::DirectRouting),
        pending,
        service_number,
        number("+442079460000", NumberType::CallingPlan),
    ] {
        tx.insert_number(T1, &record).await.unwrap();
    }
    tx.insert_number(T2, &number("+14255550109", NumberType::CallingPlan))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut read = store.read().await.unwrap();
    let mut list = async |filter: NumberFilter| {
        read.list_numbers(T1, &filter, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.number.canonical())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(NumberFilter::default()).await.len(), 6);
    assert_eq!(
        list(NumberFilter {
            assigned_to: Some("u1".into()),
            ..Default::default()
        })
        .await,
        ["+14255550101"]
    );
    assert_eq!(
        list(NumberFilter {
            number_type: Some(NumberType::OperatorConnect),
            ..Default::default()
        })
        .await,
        ["+14255550102", "+14255550104"]
    );
    assert_eq!(
        list(NumberFilter {
            assignment_status: Some(AssignmentStatus::UserAssigned),
            ..Default::default()
        })
        .await,
        ["+14255550101"]
    );
    assert_eq!(
        list(NumberFilter {
            assignment_status: Some(AssignmentStatus::Unassigned),
            ..Default::default()
        })
        .await
        .len(),
        5
    );
    assert_eq!(
        list(NumberFilter {
            activation_state: Some(ActivationState::AssignmentPending),
            ..Default::default()
        })
        .await,
        ["+14255550104"]
    );
    assert_eq!(
        list(NumberFilter {
            country: Some(Country::parse("GB").unwrap()),
            ..Default::default()
        })
        .await,
        ["+442079460000"]
    );
    assert_eq!(
        list(NumberFilter {
            operator_id: Some("fabrikam-telecom".into()),
            ..Default::default()
        })
        .await,
        ["+14255550102", "+14255550104"]
    );
    assert_eq!(
        list(NumberFilter {
            capabilities: [number_management::domain::Capability::ConferenceAssignment]
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .await,
        ["+18005550100"]
    );
    assert_eq!(
        list(NumberFilter {
            number_prefix: Some("+1425555010".into()),
            ..Default::default()
        })
        .await
        .len(),
        4
    );
    assert!(
        list(NumberFilter {
            number_prefix: Some("+1425555019".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

async fn request_ids_replay_and_refuse_reuse(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemTime::now();
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.claim_request(T1, "r1", "UpsertUser", b"a", now)
            .await
            .unwrap(),
        Claim::New
    );
    answer(&mut tx, "r1", json!({"answer": 1})).await;
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.claim_request(T1, "r1", "UpsertUser", b"a", now)
            .await
            .unwrap(),
        Claim::Replay(json!({"answer": 1}))
    );
    assert_eq!(
        tx.claim_request(T1, "r1", "UpsertUser", b"b", now)
            .await
            .unwrap(),
        Claim::Reused {
            method: "UpsertUser".into()
        }
    );
    assert_eq!(
        tx.claim_request(T1, "r1", "CreateEmergencyLocation", b"a", now)
            .await
            .unwrap(),
        Claim::Reused {
            method: "UpsertUser".into()
        }
    );
    // Request ids belong to a tenant.
    assert_eq!(
        tx.claim_request(T2, "r1", "UpsertUser", b"a", now)
            .await
            .unwrap(),
        Claim::New
    );
}

async fn expired_request_ids_are_purged_in_batches(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemTime::now();
    let day = Duration::from_secs(24 * 3600);
    let mut tx = store.write().await.unwrap();
    for (id, age) in [
        ("old-1", day * 3),
        ("old-2", day * 2),
        ("old-3", day + Duration::from_secs(1)),
        ("recent", day - Duration::from_secs(60)),
    ] {
        assert_eq!(
            tx.claim_request(T1, id, "UpsertUser", b"a", now - age)
                .await
                .unwrap(),
            Claim::New
        );
        answer(&mut tx, id, json!({})).await;
    }
    tx.commit().await.unwrap();

    // Oldest first, no more than the limit at a time.
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.purge_requests(now - day, 2).await.unwrap(), 2);
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.find_request(T1, "old-2", "UpsertUser", b"a")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tx.find_request(T1, "old-3", "UpsertUser", b"a")
            .await
            .unwrap(),
        Some(Claim::Replay(json!({})))
    );
    assert_eq!(tx.purge_requests(now - day, 2).await.unwrap(), 1);
    assert_eq!(tx.purge_requests(now - day, 2).await.unwrap(), 0);
    tx.commit().await.unwrap();

    // The recent one still replays; a purged one is new again, even for another request.
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.claim_request(T1, "recent", "UpsertUser", b"a", now)
            .await
            .unwrap(),
        Claim::Replay(json!({}))
    );
    assert_eq!(
        tx.claim_request(T1, "old-3", "UpsertUser", b"b", now)
            .await
            .unwrap(),
        Claim::New
    );
}

async fn a_shared_secret_is_the_first_one_stored(backend: Backend) {
    let (database, store) = store(backend).await;
    assert_eq!(store.shared_secret("k", b"first").await.unwrap(), b"first");
    assert_eq!(store.shared_secret("k", b"second").await.unwrap(), b"first");
    assert_eq!(store.shared_secret("other", b"own").await.unwrap(), b"own");
    // Another replica (another store on the same database) finds it too.
    let replica = database.open().await;
    assert_eq!(
        replica.shared_secret("k", b"third").await.unwrap(),
        b"first"
    );
}

async fn rolled_back_claims_leave_no_trace(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemTime::now();
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.claim_request(T1, "r1", "UpsertUser", b"a", now)
            .await
            .unwrap(),
        Claim::New
    );
    drop(tx);
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.claim_request(T1, "r1", "UpsertUser", b"a", now)
            .await
            .unwrap(),
        Claim::New
    );
}

async fn concurrent_claims_of_one_request_id_have_one_winner(backend: Backend) {
    let (_db, store) = store(backend).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.write().await.unwrap();
                let claim = tx
                    .claim_request(T1, "r1", "UpsertUser", b"a", SystemTime::now())
                    .await
                    .unwrap();
                if claim == Claim::New {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    answer(&mut tx, "r1", json!("first")).await;
                }
                tx.commit().await.unwrap();
                claim
            })
        })
        .collect();
    let mut claims = Vec::new();
    for task in tasks {
        claims.push(task.await.unwrap());
    }
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::New).count(),
        1,
        "{claims:?}"
    );
    assert_eq!(
        claims
            .iter()
            .filter(|c| **c == Claim::Replay(json!("first")))
            .count(),
        7,
        "every other claim sees the winner's answer: {claims:?}"
    );
}

async fn uncommitted_writes_are_invisible_and_dropped_ones_vanish(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut tx = store.write().await.unwrap();
    tx.insert_number(T1, &number("+14255550101", NumberType::CallingPlan))
        .await
        .unwrap();
    let mut read = store.read().await.unwrap();
    assert!(read.get_number(T1, "+14255550101").await.unwrap().is_none());
    drop(read);
    drop(tx);
    let mut read = store.read().await.unwrap();
    assert!(read.get_number(T1, "+14255550101").await.unwrap().is_none());
}

async fn consents_are_replaced_per_operator(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemTime::now();
    let us = Country::parse("US").unwrap();
    let ca = Country::parse("CA").unwrap();
    let mut tx = store.write().await.unwrap();
    for countries in [vec![us], vec![us, ca]] {
        tx.put_consent(
            T1,
            &OperatorConsent {
                operator_id: "fabrikam-telecom".into(),
                countries,
            },
            now,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    let consents = read.consents(T1).await.unwrap();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].countries, vec![us, ca]);
    assert!(read.consents(T2).await.unwrap().is_empty());
}

async fn users_carry_the_numbers_they_hold(backend: Backend) {
    let (_db, store) = store(backend).await;
    add_user(store.as_ref(), T1, "u1", "john@contoso.com").await;
    let mut tx = store.write().await.unwrap();
    tx.insert_number(
        T1,
        &assigned(
            number("+14255550109", NumberType::CallingPlan),
            "u1",
            AssignmentCategory::Primary,
        ),
    )
    .await
    .unwrap();
    tx.insert_number(
        T1,
        &assigned(
            number("+14255550101", NumberType::CallingPlan),
            "u1",
            AssignmentCategory::Private,
        ),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    let user = read
        .find_user(T1, &Identity::Id("u1".into()))
        .await
        .unwrap()
        .unwrap();
    // Primary first.
    assert_eq!(user.phone_numbers, ["+14255550109", "+14255550101"]);
    let listed = read
        .list_users(T1, &UserFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed[0].phone_numbers, user.phone_numbers);
    let holder = read.get_number(T1, "+14255550109").await.unwrap().unwrap();
    let assignment = holder.assignment.unwrap();
    assert_eq!(assignment.target_user_principal_name, "john@contoso.com");
    assert_eq!(assignment.category, AssignmentCategory::Primary);
}

async fn pages_cover_large_inventories_without_gaps(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut tx = store.write().await.unwrap();
    for i in 0..1500 {
        tx.insert_number(
            T1,
            &number(&format!("+1425555{i:04}"), NumberType::CallingPlan),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = read
            .list_numbers(T1, &NumberFilter::default(), after.as_deref(), 400)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        for n in &page {
            assert!(seen.insert(n.number.canonical()), "duplicate {}", n.number);
        }
        after = page.last().map(|n| n.number.canonical());
    }
    assert_eq!(seen.len(), 1500);
}

/// An operation with `count` jobs for numbers +1425555090x of tenant T1, all due now.
async fn operation_with_jobs(store: &dyn Store, count: usize) -> (String, Vec<Job>) {
    let now = SystemTime::now();
    let id = uuid::Uuid::now_v7().to_string();
    let jobs: Vec<Job> = (0..count)
        .map(|i| Job {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: T1.into(),
            operation_id: id.clone(),
            phone_number: format!("+1425555090{i}"),
            action: ProvisioningAction::Activate,
            provider_id: "litware-mobile".into(),
            target_id: String::new(),
            emergency_location_id: None,
            previous_location_id: None,
            state: OperationState::Pending,
            reason: None,
            ticket: None,
            attempts: 0,
            failures: 0,
            create_time: now,
        })
        .collect();
    let operation = Operation::new(id.clone(), AuditAction::AssignPhoneNumber, &jobs, now);
    assert_eq!(operation.state, OperationState::Pending);
    let changes = Changes {
        operations: vec![NewOperation {
            operation,
            jobs: jobs.clone(),
            request_id: None,
            actor: "test".into(),
        }],
        ..Changes::default()
    };
    let mut tx = store.write().await.unwrap();
    tx.apply(T1, &changes).await.unwrap();
    tx.commit().await.unwrap();
    (id, jobs)
}

/// Stores `response` as the answer to the request id `id` of T1, claimed in `tx`.
async fn answer(tx: &mut Tx, id: &str, response: serde_json::Value) {
    let changes = Changes {
        responses: vec![(id.to_owned(), response.to_string())],
        ..Changes::default()
    };
    tx.apply(T1, &changes).await.unwrap();
}

/// Settles an operation's state from its jobs', as the provisioning worker does.
async fn settle(tx: &mut Tx, id: &str, now: SystemTime) -> OperationState {
    let mut operation = tx.lock_operation(T1, id).await.unwrap().unwrap();
    operation.settle(now);
    tx.update_operation(T1, &operation).await.unwrap();
    operation.state
}

async fn claim(store: &dyn Store, owner: &str, lease: Duration, limit: usize) -> Vec<Job> {
    let mut tx = store.write().await.unwrap();
    let claimed = tx
        .claim_jobs(owner, SystemTime::now(), lease, limit)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    claimed
}

async fn workers_claiming_at_once_take_different_jobs(backend: Backend) {
    let (_db, store) = store(backend).await;
    let (_, jobs) = operation_with_jobs(store.as_ref(), 9).await;
    let claims: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                claim(
                    store.as_ref(),
                    &format!("worker-{w}"),
                    Duration::from_secs(30),
                    4,
                )
                .await
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in claims {
        claimed.extend(task.await.unwrap().into_iter().map(|j| j.id));
    }
    let distinct: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a job was claimed twice: {claimed:?}"
    );
    assert_eq!(claimed.len(), jobs.len(), "every due job was claimed once");
    // Leased jobs are not due again until the lease ends.
    assert!(
        claim(store.as_ref(), "late", Duration::from_secs(30), 10)
            .await
            .is_empty()
    );
}

async fn outcomes_count_only_under_a_live_lease(backend: Backend) {
    let (_db, store) = store(backend).await;
    let (operation, _) = operation_with_jobs(store.as_ref(), 1).await;
    let first = claim(store.as_ref(), "first", Duration::from_millis(200), 1).await;
    assert_eq!(first.len(), 1);
    // The first worker is too slow: its lease ends and another takes the job over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = claim(store.as_ref(), "second", Duration::from_secs(30), 1).await;
    assert_eq!(second.len(), 1, "an expired lease makes the job due again");
    let mut tx = store.write().await.unwrap();
    let now = SystemTime::now();
    assert!(
        !tx.finish_job(&first[0], "first", &JobOutcome::Succeeded, now)
            .await
            .unwrap(),
        "a lost lease records nothing"
    );
    assert!(
        tx.finish_job(&second[0], "second", &JobOutcome::Succeeded, now)
            .await
            .unwrap()
    );
    assert_eq!(
        settle(&mut tx, &operation, now).await,
        OperationState::Succeeded
    );
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    let done = read.get_operation(T1, &operation).await.unwrap().unwrap();
    assert_eq!(done.state, OperationState::Succeeded);
    assert_eq!(done.steps[0].attempts, 1, "only the recorded call counts");
    assert_eq!(read.unfinished_jobs().await.unwrap(), 0);
}

/// What the metrics read: work in hand over the unfinished jobs, and the pools' use.
async fn work_in_hand_counts_unfinished_jobs_and_their_operations(backend: Backend) {
    let (_db, store) = store(backend).await;
    let mut read = store.read().await.unwrap();
    assert_eq!(read.work_in_hand().await.unwrap(), (0, 0));
    drop(read);
    operation_with_jobs(store.as_ref(), 3).await;
    let mut read = store.read().await.unwrap();
    assert_eq!(read.work_in_hand().await.unwrap(), (1, 3));
    drop(read);
    // A running job is still in hand; a finished one is not.
    let claimed = claim(store.as_ref(), "worker", Duration::from_secs(30), 1).await;
    let mut tx = store.write().await.unwrap();
    assert!(
        tx.finish_job(
            &claimed[0],
            "worker",
            &JobOutcome::Succeeded,
            SystemTime::now()
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    assert_eq!(read.work_in_hand().await.unwrap(), (1, 2));
    drop(read);
    let pools = store.pools();
    assert!(!pools.is_empty());
    for pool in pools {
        assert!(pool.max >= 1, "{pool:?}");
        assert!(pool.idle <= pool.open && pool.open <= pool.max, "{pool:?}");
    }
}

async fn finished_operations_and_done_emails_are_purged_after_their_retention(backend: Backend) {
    let (_db, store) = store(backend).await;
    let (finished, _) = operation_with_jobs(store.as_ref(), 2).await;
    let jobs = claim(store.as_ref(), "worker", Duration::from_secs(30), 2).await;
    let now = SystemTime::now();
    let mut tx = store.write().await.unwrap();
    for job in &jobs {
        tx.finish_job(job, "worker", &JobOutcome::Succeeded, now)
            .await
            .unwrap();
    }
    assert_eq!(
        settle(&mut tx, &finished, now).await,
        OperationState::Succeeded
    );
    tx.commit().await.unwrap();
    let (pending, _) = operation_with_jobs(store.as_ref(), 1).await;

    let email = |to: &str| Notification {
        id: uuid::Uuid::now_v7().to_string(),
        recipient: to.to_owned(),
        subject: "Your phone number is +14255550101".into(),
        body: "Hello".into(),
        phone_number: "+14255550101".into(),
        create_time: now,
    };
    let mut tx = store.write().await.unwrap();
    let changes = Changes {
        notifications: vec![email("sent@contoso.com"), email("waiting@contoso.com")],
        ..Changes::default()
    };
    tx.apply(T1, &changes).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let claimed = tx
        .claim_notifications("mailer", now, Duration::from_secs(30), 10)
        .await
        .unwrap();
    let sent = claimed
        .iter()
        .find(|d| d.notification.recipient == "sent@contoso.com")
        .unwrap();
    assert!(
        tx.finish_delivery(sent, "mailer", &Delivered::Sent)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let purge = |before: SystemTime| {
        let store = store.clone();
        async move {
            let mut tx = store.write().await.unwrap();
            let operations = tx.purge_operations(before, 10).await.unwrap();
            let emails = tx.purge_notifications(before, 10).await.unwrap();
            tx.commit().await.unwrap();
            (operations, emails)
        }
    };
    // Nothing is older than its retention yet.
    assert_eq!(purge(now - Duration::from_secs(1)).await, (0, 0));
    // Later, the finished operation goes with its jobs, and the sent email; what is still
    // under way stays, however old.
    assert_eq!(purge(now + Duration::from_secs(3600)).await, (1, 1));
    let mut read = store.read().await.unwrap();
    assert!(read.get_operation(T1, &finished).await.unwrap().is_none());
    let kept = read.get_operation(T1, &pending).await.unwrap().unwrap();
    assert_eq!(kept.state, OperationState::Pending);
    assert_eq!(read.unfinished_jobs().await.unwrap(), 1);
    let emails: Vec<String> = read
        .notifications(T1, false)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.recipient)
        .collect();
    assert_eq!(emails, ["waiting@contoso.com"]);
    drop(read);
    assert_eq!(purge(now + Duration::from_secs(3600)).await, (0, 0));
}

async fn retried_jobs_wait_until_their_next_attempt(backend: Backend) {
    let (_db, store) = store(backend).await;
    let (operation, _) = operation_with_jobs(store.as_ref(), 1).await;
    let job = claim(store.as_ref(), "w", Duration::from_secs(30), 1)
        .await
        .remove(0);
    let now = SystemTime::now();
    let later = JobOutcome::Later {
        at: now + Duration::from_millis(300),
        ticket: Some("ticket-1".into()),
        failures: 1,
        reason: Some("operator unavailable".into()),
    };
    let mut tx = store.write().await.unwrap();
    assert!(tx.finish_job(&job, "w", &later, now).await.unwrap());
    assert_eq!(
        settle(&mut tx, &operation, now).await,
        OperationState::Running
    );
    tx.commit().await.unwrap();
    assert!(
        claim(store.as_ref(), "w", Duration::from_secs(30), 1)
            .await
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let again = claim(store.as_ref(), "w", Duration::from_secs(30), 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].ticket.as_deref(),
        Some("ticket-1"),
        "the ticket is kept for polling"
    );
    assert_eq!(again[0].failures, 1);
    let mut read = store.read().await.unwrap();
    let step = &read
        .get_operation(T1, &operation)
        .await
        .unwrap()
        .unwrap()
        .steps[0];
    assert_eq!(step.reason.as_deref(), Some("operator unavailable"));
}

async fn writes_happen_only_at_the_version_read(backend: Backend) {
    let (_db, store) = store(backend).await;
    add_user(store.as_ref(), T1, "u1", "john@contoso.com").await;
    let now = SystemClock.now();
    let free = number("+14255550101", NumberType::CallingPlan);
    let mut tx = store.write().await.unwrap();
    assert!(tx.insert_number(T1, &free).await.unwrap());
    let user = tx
        .find_user(T1, &Identity::Id("u1".into()))
        .await
        .unwrap()
        .unwrap();
    let held = assigned(free.clone(), "u1", AssignmentCategory::Primary).changed(now);
    let (user, voice_changed) = user.holding(std::slice::from_ref(&held), true, now);
    assert!(voice_changed && user.enterprise_voice_enabled);
    let changes = Changes {
        numbers: vec![held.clone()],
        users: vec![user.clone()],
        ..Changes::default()
    };
    tx.apply(T1, &changes).await.unwrap();
    tx.commit().await.unwrap();

    let mut read = store.read().await.unwrap();
    let stored = read.get_number(T1, "+14255550101").await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert!(stored.is_held_by("u1"));
    assert_eq!(stored.update_time, held.update_time);
    let stored = read
        .find_user(T1, &Identity::Id("u1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, user, "the user reads back as written");
    drop(read);

    // The same change again is at a version that is gone: refused, nothing written.
    for stale in [
        Changes {
            numbers: vec![held.clone()],
            ..Changes::default()
        },
        Changes {
            users: vec![user.clone()],
            ..Changes::default()
        },
    ] {
        let mut tx = store.write().await.unwrap();
        let error = tx.apply(T1, &stale).await.unwrap_err();
        assert!(matches!(error, StoreError::Stale(_)), "{error:?}");
    }
}

async fn emails_are_claimed_under_leases_and_retried(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemClock.now();
    let email = |to: &str| Notification {
        id: uuid::Uuid::now_v7().to_string(),
        recipient: to.to_owned(),
        subject: "Your phone number is +14255550101".into(),
        body: "Hello".into(),
        phone_number: "+14255550101".into(),
        create_time: now,
    };
    let (john, jack) = (email("john@contoso.com"), email("jack@contoso.com"));
    let mut tx = store.write().await.unwrap();
    let changes = Changes {
        notifications: vec![john.clone(), jack.clone()],
        ..Changes::default()
    };
    tx.apply(T1, &changes).await.unwrap();
    tx.commit().await.unwrap();

    let claim = |owner: &'static str, at: SystemTime| {
        let store = store.clone();
        async move {
            let mut tx = store.write().await.unwrap();
            let claimed = tx
                .claim_notifications(owner, at, Duration::from_secs(30), 10)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            claimed
        }
    };
    let finish = |delivery: Delivery, owner: &'static str, outcome: Delivered<'static>| {
        let store = store.clone();
        async move {
            let mut tx = store.write().await.unwrap();
            let recorded = tx
                .finish_delivery(&delivery, owner, &outcome)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            recorded
        }
    };
    let pending = || {
        let store = store.clone();
        async move {
            let mut read = store.read().await.unwrap();
            read.notifications(T1, true)
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.recipient)
                .collect::<Vec<_>>()
        }
    };

    let first = claim("w1", now).await;
    assert_eq!(first.len(), 2, "both are due");
    assert_eq!(first[0].tenant_id, T1);
    assert!(
        claim("w2", now).await.is_empty(),
        "leased emails are not due"
    );
    // w1 is too slow: its leases end and w2 takes the emails over.
    let taken = claim("w2", now + Duration::from_secs(31)).await;
    assert_eq!(taken.len(), 2);
    assert!(
        !finish(first[0].clone(), "w1", Delivered::Sent).await,
        "a lost lease records nothing"
    );
    let (sent, retried): (Vec<_>, Vec<_>) = taken
        .into_iter()
        .partition(|d| d.notification.id == john.id);
    assert!(finish(sent[0].clone(), "w2", Delivered::Sent).await);
    let retry_at = now + Duration::from_secs(60);
    assert!(
        finish(
            retried[0].clone(),
            "w2",
            Delivered::Retry("timeout", retry_at)
        )
        .await
    );
    assert_eq!(pending().await, ["jack@contoso.com"]);
    assert!(
        claim("w3", now + Duration::from_secs(45)).await.is_empty(),
        "a retry waits for its time"
    );
    let again = claim("w3", retry_at).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1, "the failed attempt counts");
    assert_eq!(again[0].notification, jack);
    // Over the tenant's rate: tried again later, no attempt counted.
    let later = retry_at + Duration::from_secs(60);
    assert!(finish(again[0].clone(), "w3", Delivered::Postponed(later)).await);
    assert!(
        claim("w3", retry_at).await.is_empty(),
        "a postponed email waits"
    );
    let again = claim("w3", later).await;
    assert_eq!(again[0].attempts, 1, "a postponement is no attempt");
    assert!(finish(again[0].clone(), "w3", Delivered::Failed("mailbox unknown")).await);
    assert!(
        pending().await.is_empty(),
        "a permanent failure ends the attempts"
    );
    // A skipped email is never sent.
    let skipped = email("eve@elsewhere.example");
    let mut tx = store.write().await.unwrap();
    let changes = Changes {
        notifications: vec![skipped.clone()],
        ..Changes::default()
    };
    tx.apply(T1, &changes).await.unwrap();
    tx.commit().await.unwrap();
    let due = claim("w4", later).await;
    assert_eq!(due.len(), 1);
    assert!(finish(due[0].clone(), "w4", Delivered::Skipped("not verified")).await);
    assert!(pending().await.is_empty(), "a skipped email is done with");
    assert!(
        claim("w4", later + Duration::from_secs(3600))
            .await
            .is_empty()
    );
    assert_eq!(due[0].attempts, 0);
    let mut read = store.read().await.unwrap();
    assert_eq!(read.notifications(T1, false).await.unwrap().len(), 3);
}

/// A writer that locks a user after another writer changed one of the user's numbers (and not
/// the user) sees the number as that writer left it, even when it started waiting for the lock
/// before the other committed.
async fn locked_users_hold_their_numbers_as_the_last_writer_left_them(backend: Backend) {
    let (database, store) = store(backend).await;
    add_user(store.as_ref(), T1, "u1", "john@contoso.com").await;
    let now = SystemClock.now();
    let mut held = assigned(
        number("+14255550101", NumberType::CallingPlan),
        "u1",
        AssignmentCategory::Primary,
    );
    held.activation_state = ActivationState::AssignmentPending;
    let mut tx = store.write().await.unwrap();
    assert!(tx.insert_number(T1, &held).await.unwrap());
    tx.commit().await.unwrap();

    let mut first = store.write().await.unwrap();
    let holder = first
        .lock_user(T1, &Identity::Id("u1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.numbers.len(), 1);
    let mut settled = holder.numbers[0].clone();
    settled.activation_state = ActivationState::Activated;
    let settled = settled.changed(now);
    let changes = Changes {
        numbers: vec![settled.clone()],
        ..Changes::default()
    };
    first.apply(T1, &changes).await.unwrap();

    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.write().await.unwrap();
            tx.lock_user(T1, &Identity::Id("u1".into()))
                .await
                .unwrap()
                .unwrap()
        }
    });
    if backend == Backend::Postgres {
        // The second writer's statement has started, and waits for the first's lock.
        use sqlx::Connection as _;
        let mut watcher = sqlx::PgConnection::connect(&database.url).await.unwrap();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    first.commit().await.unwrap();
    let holder = second.await.unwrap();
    assert_eq!(
        holder.numbers,
        vec![settled],
        "the number as the first writer left it"
    );
}

async fn notification_settings_are_replaced_per_tenant(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemClock.now();
    let settings = |tenant: &'static str| {
        let store = store.clone();
        async move {
            let mut read = store.read().await.unwrap();
            read.notification_settings(tenant).await.unwrap()
        }
    };
    assert_eq!(settings(T1).await, NotificationSettings::default());
    for domains in [vec!["contoso.com"], vec!["contoso.com", "fabrikam.com"]] {
        let domains: Vec<String> = domains.into_iter().map(String::from).collect();
        let declared = NotificationSettings::declare(&domains, now).unwrap();
        let mut tx = store.write().await.unwrap();
        tx.put_notification_settings(T1, &declared).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(settings(T1).await, declared);
    }
    assert_eq!(settings(T2).await, NotificationSettings::default());
}

/// A tenant's configuration is written only over the version it replaces: a writer that read
/// an older one is refused, whoever came first.
async fn tenant_configurations_are_written_over_the_version_read(backend: Backend) {
    let (_db, store) = store(backend).await;
    let now = SystemClock.now();
    let read = |tenant: &'static str| {
        let store = store.clone();
        async move {
            let mut read = store.read().await.unwrap();
            read.tenant_configuration(tenant).await.unwrap()
        }
    };
    assert_eq!(read(T1).await, TenantConfiguration::default());
    let first = TenantConfiguration {
        assignment_email_enabled: false,
        removal_block_days: 30,
        version: 1,
        update_time: Some(now),
        ..TenantConfiguration::default()
    };
    let mut tx = store.write().await.unwrap();
    tx.put_tenant_configuration(T1, &first).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(read(T1).await, first);
    assert_eq!(read(T2).await, TenantConfiguration::default());

    for version in [1, 3] {
        let stale = TenantConfiguration {
            removal_block_forever: true,
            removal_block_days: 0,
            version,
            ..first.clone()
        };
        let mut tx = store.write().await.unwrap();
        let refused = tx.put_tenant_configuration(T1, &stale).await;
        assert!(
            matches!(refused, Err(StoreError::Stale(_))),
            "version {version}: {refused:?}"
        );
    }
    assert_eq!(read(T1).await, first);
    let second = TenantConfiguration {
        unassignment_email_enabled: false,
        version: 2,
        ..first.clone()
    };
    let mut tx = store.write().await.unwrap();
    tx.put_tenant_configuration(T1, &second).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(read(T1).await, second);
}

/// A reconciliation run asked for by tenant `tenant` of `provider`, with a fresh time-ordered id.
fn reconciliation(provider: &str) -> Reconciliation {
    Reconciliation::new(
        uuid::Uuid::now_v7().to_string(),
        provider.into(),
        ReconciliationTrigger::Request,
        SystemTime::now(),
    )
}

async fn claim_run(
    store: &dyn Store,
    owner: &str,
    lease: Duration,
) -> Option<(String, Reconciliation)> {
    let mut tx = store.write().await.unwrap();
    let claimed = tx
        .claim_reconciliation(owner, SystemTime::now(), lease)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    claimed
}

fn drift(number: &str, kind: DriftKind, carrier: Option<CarrierNumber>) -> Drift {
    Drift {
        phone_number: number.into(),
        kind,
        carrier,
    }
}

async fn reconciliations_run_once_under_a_lease_and_keep_their_drift(backend: Backend) {
    let (_db, store) = store(backend).await;
    let first = reconciliation("litware-mobile");
    let mut tx = store.write().await.unwrap();
    assert!(tx.insert_reconciliation(T1, &first).await.unwrap());
    // One open run per tenant and provider: another is not queued beside it.
    assert!(
        !tx.insert_reconciliation(T1, &reconciliation("litware-mobile"))
            .await
            .unwrap()
    );
    assert!(
        tx.insert_reconciliation(T2, &reconciliation("litware-mobile"))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // Three workers at once take different runs; a leased run is not claimed again.
    let claims: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                claim_run(
                    store.as_ref(),
                    &format!("worker-{w}"),
                    Duration::from_millis(300),
                )
                .await
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in claims {
        claimed.extend(task.await.unwrap());
    }
    let mut tenants: Vec<&str> = claimed.iter().map(|(t, _)| t.as_str()).collect();
    tenants.sort_unstable();
    assert_eq!(tenants, [T1, T2], "each run claimed once: {claimed:?}");
    let (_, mine) = claimed.iter().find(|(t, _)| t == T1).unwrap();
    assert_eq!(mine.id, first.id);
    assert_eq!(mine.state, ReconciliationState::Running);
    assert!(mine.start_time.is_some());

    // Its worker stalls; once the lease ends another takes the run over, and the first one's
    // writes count no more.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut takers = Vec::new();
    while let Some((tenant, run)) =
        claim_run(store.as_ref(), "second", Duration::from_secs(30)).await
    {
        takers.push((tenant, run.id));
    }
    assert!(
        takers.contains(&(T1.to_owned(), first.id.clone())),
        "{takers:?}"
    );
    let owner = claimed
        .iter()
        .position(|(t, _)| t == T1)
        .map(|i| format!("worker-{i}"))
        .unwrap();
    let now = SystemTime::now();
    let found = [
        drift("+14255550101", DriftKind::MissingAtCarrier, None),
        drift(
            "+14255550102",
            DriftKind::TargetDiffers,
            Some(CarrierNumber {
                phone_number: "+14255550102".into(),
                state: CarrierState::Active,
                target_id: Some("someone-else".into()),
                emergency_location_id: Some("hq".into()),
            }),
        ),
        drift(
            "+14255550102",
            DriftKind::LocationDiffers,
            Some(CarrierNumber {
                phone_number: "+14255550102".into(),
                state: CarrierState::Active,
                target_id: Some("someone-else".into()),
                emergency_location_id: Some("hq".into()),
            }),
        ),
    ];
    let mut tx = store.write().await.unwrap();
    let lease = Duration::from_secs(30);
    assert!(
        !tx.record_drift(T1, &first.id, &owner, &found, 3, now, lease)
            .await
            .unwrap(),
        "a lost lease records nothing"
    );
    assert!(
        !tx.finish_reconciliation(T1, &first.id, &owner, None, now)
            .await
            .unwrap()
    );
    assert!(
        tx.record_drift(T1, &first.id, "second", &found[..2], 2, now, lease)
            .await
            .unwrap()
    );
    // A page recorded twice (a retry) counts each item once.
    assert!(
        tx.record_drift(T1, &first.id, "second", &found[1..], 1, now, lease)
            .await
            .unwrap()
    );
    assert!(
        tx.finish_reconciliation(T1, &first.id, "second", None, now)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let mut read = store.read().await.unwrap();
    let done = read
        .get_reconciliation(T1, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, ReconciliationState::Succeeded);
    assert_eq!(done.checked, 3);
    assert!(done.end_time.is_some());
    assert_eq!(
        done.counts.into_iter().collect::<Vec<_>>(),
        [
            (DriftKind::MissingAtCarrier, 1),
            (DriftKind::LocationDiffers, 1),
            (DriftKind::TargetDiffers, 1),
        ]
    );
    assert!(
        read.get_reconciliation(T2, &first.id)
            .await
            .unwrap()
            .is_none(),
        "another tenant's"
    );
    let all = read
        .drift_items(T1, &first.id, None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|d| (d.phone_number.as_str(), d.kind))
            .collect::<Vec<_>>(),
        [
            ("+14255550101", DriftKind::MissingAtCarrier),
            ("+14255550102", DriftKind::LocationDiffers),
            ("+14255550102", DriftKind::TargetDiffers),
        ]
    );
    assert_eq!(all[0].carrier, None);
    assert_eq!(all[2].carrier, found[1].carrier);
    let page = read
        .drift_items(
            T1,
            &first.id,
            None,
            Some(("+14255550102", DriftKind::LocationDiffers)),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page, all[2..]);
    let targets = read
        .drift_items(T1, &first.id, Some(DriftKind::TargetDiffers), None, 10)
        .await
        .unwrap();
    assert_eq!(targets, all[2..]);
    drop(read);

    // The run is closed, so another can be asked for; listings are newest first.
    let second = reconciliation("litware-mobile");
    let other = reconciliation("northwind-voice");
    let mut tx = store.write().await.unwrap();
    assert!(tx.insert_reconciliation(T1, &second).await.unwrap());
    assert!(tx.insert_reconciliation(T1, &other).await.unwrap());
    tx.commit().await.unwrap();
    let mut read = store.read().await.unwrap();
    let ids = |runs: Vec<Reconciliation>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(read
            .list_reconciliations(T1, Some("litware-mobile"), None, 10)
            .await
            .unwrap()),
        [second.id.clone(), first.id.clone()]
    );
    assert_eq!(
        ids(read
            .list_reconciliations(T1, None, Some(&other.id), 1)
            .await
            .unwrap()),
        std::slice::from_ref(&second.id)
    );
    let listed = read.list_reconciliations(T1, None, None, 10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[2].counts.values().sum::<i64>(),
        3,
        "counts come with the listing"
    );
}

on_both_stores!(
    reconciliations_run_once_under_a_lease_and_keep_their_drift,
    tenant_configurations_are_written_over_the_version_read,
    a_shared_secret_is_the_first_one_stored,
    migrations_apply_once_and_reopen,
    users_upsert_by_user_principal_name_then_by_id,
    users_principal_names_are_unique_per_tenant_only,
    users_list_in_order_with_prefix_search,
    users_carry_the_numbers_they_hold,
    locations_filter_by_city_and_country_per_tenant,
    a_number_is_in_one_tenant_at_a_time,
    numbers_allow_one_primary_per_target,
    numbers_can_only_be_held_by_known_users,
    numbers_list_with_every_filter,
    pages_cover_large_inventories_without_gaps,
    request_ids_replay_and_refuse_reuse,
    expired_request_ids_are_purged_in_batches,
    rolled_back_claims_leave_no_trace,
    concurrent_claims_of_one_request_id_have_one_winner,
    uncommitted_writes_are_invisible_and_dropped_ones_vanish,
    consents_are_replaced_per_operator,
    workers_claiming_at_once_take_different_jobs,
    outcomes_count_only_under_a_live_lease,
    retried_jobs_wait_until_their_next_attempt,
    finished_operations_and_done_emails_are_purged_after_their_retention,
    work_in_hand_counts_unfinished_jobs_and_their_operations,
    writes_happen_only_at_the_version_read,
    emails_are_claimed_under_leases_and_retried,
    notification_settings_are_replaced_per_tenant,
    locked_users_hold_their_numbers_as_the_last_writer_left_them,
);

/// A PostgreSQL connection that the server ends (as on a restart) is the database being away,
/// which the API answers UNAVAILABLE; an ordinary SQL error is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_loss_counts_as_unavailable() {
    use sqlx::Connection as _;
    let database = TestDatabase::create(Backend::Postgres).await;
    let mut connection = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let ended = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(&mut connection)
        .await
        .expect_err("the server ends the connection");
    let ended = StoreError::from(ended);
    assert!(matches!(ended, StoreError::Unavailable(_)), "{ended:?}");

    let mut connection = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let syntax = sqlx::query("SELEC 1")
        .execute(&mut connection)
        .await
        .expect_err("a syntax error");
    let syntax = StoreError::from(syntax);
    assert!(matches!(syntax, StoreError::Database(_)), "{syntax:?}");
}
