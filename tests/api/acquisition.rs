//! AcquirePhoneNumbers and ReleasePhoneNumbers over the socket: searching the Calling Plan
//! catalogue by area code, city, prefix and capability, all-or-none acquisition, numbers never
//! sold twice (across tenants and under concurrency), releases, request ids, `validate_only`
//! and permissions. Every refusal is checked to have changed nothing.

use std::collections::{BTreeSet, HashMap};

use number_management::domain::NumberType;
use number_management::proto::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::calls::{
    all_audit_events as audit_events, all_phone_numbers as list_all, get_phone_number as get,
};
use crate::helpers::{Backend, Client, TestApp, TestConfig, assert_error, number, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

const CALLING_PLAN: i32 = pb::NumberType::CallingPlan as i32;
const USER_ASSIGNMENT: i32 = pb::Capability::UserAssignment as i32;
const VOICE_APPLICATION: i32 = pb::Capability::VoiceApplicationAssignment as i32;
const CONFERENCE: i32 = pb::Capability::ConferenceAssignment as i32;
const UNASSIGNED: i32 = pb::AssignmentStatus::Unassigned as i32;
const ACTIVATED: i32 = pb::ActivationState::Activated as i32;
const NOT_BLOCKED: i32 = pb::AssignmentBlockedState::NotBlocked as i32;
const ACQUIRE: i32 = pb::AuditAction::AcquirePhoneNumber as i32;
const RELEASE: i32 = pb::AuditAction::ReleasePhoneNumber as i32;

// ---- the catalogue, as adapters/calling-plan/catalogue.toml lists it ---------------------------

/// `count` consecutive numbers from `first` (written as digits, without `+`).
fn range(first: u64, count: u64) -> Vec<String> {
    (0..count).map(|i| format!("+{}", first + i)).collect()
}

fn seattle() -> Vec<String> {
    range(12065550100, 100)
}

/// Redmond user numbers: +14255550100 to 199 except +14255550102 and +14255550105.
fn redmond_users() -> Vec<String> {
    let mut numbers = range(14255550100, 2);
    numbers.extend(range(14255550103, 2));
    numbers.extend(range(14255550106, 94));
    numbers
}

fn bellevue() -> Vec<String> {
    range(14255550200, 100)
}

fn redmond_service() -> Vec<String> {
    range(14255550900, 50)
}

fn toll_free() -> Vec<String> {
    range(18005550100, 50)
}

fn paris() -> Vec<String> {
    range(33140000000, 100)
}

// ---- helpers of this module --------------------------------------------------------------------

fn acquire_request(
    country: &str,
    area_code: &str,
    quantity: i32,
) -> pb::AcquirePhoneNumbersRequest {
    pb::AcquirePhoneNumbersRequest {
        country: country.into(),
        area_code: area_code.into(),
        quantity,
        ..Default::default()
    }
}

async fn acquire(
    client: &mut Client,
    request: pb::AcquirePhoneNumbersRequest,
) -> Result<Vec<pb::PhoneNumber>, Status> {
    client
        .acquire_phone_numbers(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

fn release_request(numbers: &[&str]) -> pb::ReleasePhoneNumbersRequest {
    pb::ReleasePhoneNumbersRequest {
        phone_numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

async fn release(
    client: &mut Client,
    request: pb::ReleasePhoneNumbersRequest,
) -> Result<Vec<String>, Status> {
    client
        .release_phone_numbers(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

/// The tenant's whole inventory.
async fn inventory(app: &TestApp, tenant: &str) -> Vec<pb::PhoneNumber> {
    list_all(
        &mut app.reader(tenant),
        pb::ListPhoneNumbersRequest::default(),
    )
    .await
}

/// What a refusal must leave as it was: the inventory (content and etags) and the audit trail.
#[derive(Debug, PartialEq)]
struct State {
    numbers: Vec<pb::PhoneNumber>,
    audit: Vec<pb::AuditEvent>,
}

async fn state(app: &TestApp, tenant: &str) -> State {
    State {
        numbers: inventory(app, tenant).await,
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

fn phone_numbers(numbers: &[pb::PhoneNumber]) -> Vec<String> {
    numbers.iter().map(|n| n.phone_number.clone()).collect()
}

fn set(numbers: &[String]) -> BTreeSet<String> {
    numbers.iter().cloned().collect()
}

#[track_caller]
fn assert_sorted_and_distinct(numbers: &[String]) {
    let mut sorted = numbers.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        numbers, sorted,
        "numbers are distinct and ordered by number"
    );
}

#[track_caller]
fn assert_all_within(numbers: &[String], stock: &[String], what: &str) {
    for n in numbers {
        assert!(stock.contains(n), "{n} is not one of the {what} numbers");
    }
}

/// A freshly acquired Calling Plan number, as the API shows it.
#[track_caller]
fn assert_fresh(n: &pb::PhoneNumber, city: &str, capabilities: &[i32], location: &str) {
    assert_eq!(n.number_type, CALLING_PLAN, "{n:?}");
    assert_eq!(n.operator_id, "", "{n:?}");
    assert_eq!(n.city, city, "{n:?}");
    assert_eq!(n.capabilities, capabilities, "{n:?}");
    assert_eq!(n.assignment_status, UNASSIGNED, "{n:?}");
    assert_eq!(n.assigned_to, "", "{n:?}");
    assert_eq!(n.assigned_to_user_principal_name, "", "{n:?}");
    assert_eq!(n.activation_state, ACTIVATED, "{n:?}");
    assert_eq!(n.emergency_location_id, location, "{n:?}");
    assert!(n.location_update_supported, "{n:?}");
    assert_eq!(n.assignment_blocked_state, NOT_BLOCKED, "{n:?}");
    assert_eq!(n.etag, "1", "{n:?}");
    assert!(n.create_time.is_some() && n.update_time.is_some(), "{n:?}");
}

/// The number with its times cut to the microsecond, the precision the store keeps.
fn to_micros(mut n: pb::PhoneNumber) -> pb::PhoneNumber {
    for t in [&mut n.create_time, &mut n.update_time]
        .into_iter()
        .flatten()
    {
        t.nanos -= t.nanos % 1000;
    }
    n
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Assigns a number through the API.
async fn assign(app: &TestApp, tenant: &str, identity: &str, phone_number: &str) {
    app.admin(tenant)
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: identity.into(),
            phone_number: phone_number.into(),
            ..Default::default()
        })
        .await
        .expect("assign the number");
}

/// Creates a validated emergency location through the API and returns its id.
async fn create_location(app: &TestApp, tenant: &str, address: pb::CivicAddress) -> String {
    app.admin(tenant)
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address: Some(address),
                description: "Main office".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("create the location")
        .into_inner()
        .id
}

fn seattle_address() -> pb::CivicAddress {
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

fn london_address() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso UK".into(),
        house_number: "10".into(),
        street_name: "Downing Street".into(),
        city: "London".into(),
        postal_code: "SW1A 2AA".into(),
        country: "GB".into(),
        ..Default::default()
    }
}

// ---- AcquirePhoneNumbers -----------------------------------------------------------------------

async fn acquires_by_country_and_area_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let acquired = acquire(&mut admin, acquire_request("US", "206", 3))
        .await
        .expect("acquire three Seattle numbers");
    assert_eq!(acquired.len(), 3);
    let numbers = phone_numbers(&acquired);
    assert_sorted_and_distinct(&numbers);
    assert_all_within(&numbers, &seattle(), "Seattle");
    for n in &acquired {
        assert_fresh(n, "Seattle", &[USER_ASSIGNMENT], "");
        assert_eq!(n.country, "US");
    }

    // They are in the inventory, as answered.
    let listed = inventory(&app, TENANT).await;
    assert_eq!(phone_numbers(&listed), numbers);
    for (listed, answered) in listed.iter().zip(&acquired) {
        // Times compared to the microsecond; the exact comparison is
        // `acquisition_answers_the_numbers_as_stored`.
        assert_eq!(
            *listed,
            to_micros(answered.clone()),
            "the stored number is the one answered"
        );
        assert_eq!(
            get(&mut admin, &listed.phone_number).await.expect("get"),
            *listed
        );
    }

    // Lower-case country, again: three more, none of the first three.
    let more = acquire(&mut admin, acquire_request("us", "206", 3))
        .await
        .expect("acquire three more");
    let more_numbers = phone_numbers(&more);
    assert_all_within(&more_numbers, &seattle(), "Seattle");
    assert!(set(&more_numbers).is_disjoint(&set(&numbers)));
    assert_eq!(inventory(&app, TENANT).await.len(), 6);

    // One audit event per number, by the caller.
    let events = audit_events(&app, TENANT).await;
    assert_eq!(events.len(), 6);
    let mut audited: Vec<String> = events.iter().map(|e| e.phone_number.clone()).collect();
    audited.sort();
    let mut all = [numbers, more_numbers].concat();
    all.sort();
    assert_eq!(audited, all);
    for event in &events {
        assert_eq!(event.action, ACQUIRE);
        assert_eq!(event.actor, "test");
        assert!(event.before.is_none(), "an acquisition creates: {event:?}");
        assert!(event.after.is_some(), "{event:?}");
    }
}

async fn acquisition_answers_the_numbers_as_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let acquired = acquire(&mut admin, acquire_request("US", "206", 2))
        .await
        .expect("acquire two numbers");
    for answered in &acquired {
        let stored = get(&mut admin, &answered.phone_number)
            .await
            .expect("read the number back");
        assert_eq!(
            stored.create_time, answered.create_time,
            "AcquirePhoneNumbers answers create_time as GetPhoneNumber reads it"
        );
        assert_eq!(stored.update_time, answered.update_time);
        assert_eq!(&stored, answered);
    }
}

async fn acquires_by_city_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let seattle_numbers = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            city: "SEATTLE".into(),
            ..acquire_request("US", "", 2)
        },
    )
    .await
    .expect("acquire by city in capitals");
    assert_all_within(&phone_numbers(&seattle_numbers), &seattle(), "Seattle");
    for n in &seattle_numbers {
        assert_fresh(n, "Seattle", &[USER_ASSIGNMENT], "");
    }

    // Every Redmond user number, and nothing else of area code 425 (Bellevue shares it).
    let redmond = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            city: "rEdMoNd".into(),
            ..acquire_request("US", "", 98)
        },
    )
    .await
    .expect("acquire all Redmond user numbers");
    assert_eq!(phone_numbers(&redmond), redmond_users());
    for n in &redmond {
        assert_fresh(n, "Redmond", &[USER_ASSIGNMENT], "");
    }
    let before = state(&app, TENANT).await;
    assert_error(
        acquire(
            &mut admin,
            pb::AcquirePhoneNumbersRequest {
                city: "redmond".into(),
                ..acquire_request("US", "425", 1)
            },
        )
        .await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(
        &before,
        &state(&app, TENANT).await,
        "no Redmond number left",
    );

    // City and area code together: both must match.
    let bellevue_numbers = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            city: "bellevue".into(),
            ..acquire_request("US", "425", 1)
        },
    )
    .await
    .expect("acquire in Bellevue");
    assert_all_within(&phone_numbers(&bellevue_numbers), &bellevue(), "Bellevue");
    assert_eq!(bellevue_numbers[0].city, "Bellevue");
    let before = state(&app, TENANT).await;
    assert_error(
        acquire(
            &mut admin,
            pb::AcquirePhoneNumbersRequest {
                city: "Seattle".into(),
                ..acquire_request("US", "425", 1)
            },
        )
        .await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "Seattle has no 425");
    assert_eq!(inventory(&app, TENANT).await.len(), 2 + 98 + 1);
}

async fn acquires_by_number_prefix_with_or_without_plus(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let with_plus = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            number_prefix: "+1425555021".into(),
            ..acquire_request("US", "", 10)
        },
    )
    .await
    .expect("acquire by prefix with +");
    assert_eq!(phone_numbers(&with_plus), range(14255550210, 10));
    for n in &with_plus {
        assert_fresh(n, "Bellevue", &[USER_ASSIGNMENT], "");
    }

    let without_plus = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            number_prefix: "1425555022".into(),
            ..acquire_request("US", "425", 10)
        },
    )
    .await
    .expect("acquire by prefix without +");
    assert_eq!(phone_numbers(&without_plus), range(14255550220, 10));

    // The prefix is used up: no number of it is sold twice.
    let before = state(&app, TENANT).await;
    for prefix in ["+1425555021", "1425555022"] {
        assert_error(
            acquire(
                &mut admin,
                pb::AcquirePhoneNumbersRequest {
                    number_prefix: prefix.into(),
                    ..acquire_request("US", "", 1)
                },
            )
            .await,
            Code::FailedPrecondition,
            "OUT_OF_STOCK",
        );
    }
    // A prefix of another country than the one asked matches nothing.
    assert_error(
        acquire(
            &mut admin,
            pb::AcquirePhoneNumbersRequest {
                number_prefix: "+1206".into(),
                ..acquire_request("GB", "", 1)
            },
        )
        .await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "used-up prefixes");

    // A prefix of a single number acquires exactly that number.
    let one = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            number_prefix: "+442079460042".into(),
            ..acquire_request("GB", "", 1)
        },
    )
    .await
    .expect("acquire one London number by its full number");
    assert_eq!(phone_numbers(&one), ["+442079460042"]);
    assert_eq!(one[0].country, "GB");
    assert_eq!(one[0].city, "London");
}

async fn service_numbers_and_user_numbers_are_apart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let service = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            capability: VOICE_APPLICATION,
            ..acquire_request("US", "425", 3)
        },
    )
    .await
    .expect("acquire service numbers");
    assert_all_within(
        &phone_numbers(&service),
        &redmond_service(),
        "Redmond service",
    );
    for n in &service {
        assert_fresh(n, "Redmond", &[VOICE_APPLICATION, CONFERENCE], "");
    }

    // The default is user numbers, never service numbers.
    let users = acquire(&mut admin, acquire_request("US", "425", 3))
        .await
        .expect("acquire user numbers");
    let user_stock = [redmond_users(), bellevue()].concat();
    assert_all_within(&phone_numbers(&users), &user_stock, "425 user");
    for n in &users {
        assert_eq!(n.capabilities, [USER_ASSIGNMENT], "{n:?}");
    }
    let explicit = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            capability: USER_ASSIGNMENT,
            ..acquire_request("US", "425", 1)
        },
    )
    .await
    .expect("acquire a user number explicitly");
    assert_all_within(&phone_numbers(&explicit), &user_stock, "425 user");

    // Conferencing bridges take service numbers too; toll-free ones have no city.
    let toll_free_numbers = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            capability: CONFERENCE,
            ..acquire_request("US", "800", 2)
        },
    )
    .await
    .expect("acquire toll-free conferencing numbers");
    assert_all_within(
        &phone_numbers(&toll_free_numbers),
        &toll_free(),
        "toll-free",
    );
    for n in &toll_free_numbers {
        assert_fresh(n, "", &[VOICE_APPLICATION, CONFERENCE], "");
    }

    // There are no toll-free user numbers.
    let before = state(&app, TENANT).await;
    assert_error(
        acquire(&mut admin, acquire_request("US", "800", 1)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(
        &before,
        &state(&app, TENANT).await,
        "toll-free user numbers",
    );

    // The capability filter of the listing tells them apart.
    let listed_service = list_all(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            capabilities: vec![VOICE_APPLICATION],
            ..Default::default()
        },
    )
    .await;
    let mut expected = [phone_numbers(&service), phone_numbers(&toll_free_numbers)].concat();
    expected.sort();
    assert_eq!(phone_numbers(&listed_service), expected);
    assert_eq!(inventory(&app, TENANT).await.len(), 3 + 3 + 1 + 2);
}

async fn registers_an_emergency_location_with_every_number(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let acquired = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            emergency_location_id: "redmond-hq".into(),
            ..acquire_request("US", "206", 4)
        },
    )
    .await
    .expect("acquire with an emergency location");
    assert_eq!(acquired.len(), 4);
    for n in &acquired {
        assert_fresh(n, "Seattle", &[USER_ASSIGNMENT], "redmond-hq");
    }
    let at_hq = list_all(
        &mut admin,
        pb::ListPhoneNumbersRequest {
            emergency_location_id: "redmond-hq".into(),
            ..Default::default()
        },
    )
    .await;
    let mut expected = [
        phone_numbers(&acquired),
        vec!["+14255550101".to_owned(), "+14255550102".to_owned()],
    ]
    .concat();
    expected.sort();
    assert_eq!(phone_numbers(&at_hq), expected);

    // A French location for French numbers; the demo tenant's own Paris number is skipped.
    let french = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            emergency_location_id: "paris-office".into(),
            city: "paris".into(),
            ..acquire_request("FR", "", 3)
        },
    )
    .await
    .expect("acquire French numbers with the Paris office");
    assert_all_within(&phone_numbers(&french), &paris(), "Paris");
    assert!(!phone_numbers(&french).contains(&"+33140000001".to_owned()));
    for n in &french {
        assert_fresh(n, "Paris", &[USER_ASSIGNMENT], "paris-office");
        assert_eq!(n.country, "FR");
    }

    // Refusals, each leaving everything as it was.
    let cases = [
        (
            "paris-office",
            "US",
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
        (
            "redmond-hq",
            "FR",
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
        (
            "seattle-unvalidated",
            "US",
            Code::FailedPrecondition,
            "EMERGENCY_LOCATION_NOT_VALIDATED",
        ),
        (
            "no-such-location",
            "US",
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        ),
    ];
    for (location, country, code, reason) in cases {
        let before = state(&app, TENANT).await;
        let area_code = if country == "US" { "206" } else { "" };
        let status = assert_error(
            acquire(
                &mut admin,
                pb::AcquirePhoneNumbersRequest {
                    emergency_location_id: location.into(),
                    ..acquire_request(country, area_code, 2)
                },
            )
            .await,
            code,
            reason,
        );
        assert!(
            status.message().contains(location),
            "the message names the location: {status:?}"
        );
        assert_unchanged(&before, &state(&app, TENANT).await, location);
    }

    // Another tenant's location is as unknown as a missing one.
    let before = state(&app, OTHER_TENANT).await;
    assert_error(
        acquire(
            &mut app.admin(OTHER_TENANT),
            pb::AcquirePhoneNumbersRequest {
                emergency_location_id: "redmond-hq".into(),
                ..acquire_request("US", "206", 1)
            },
        )
        .await,
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );
    assert_unchanged(
        &before,
        &state(&app, OTHER_TENANT).await,
        "foreign location",
    );

    // A location created through the API works as well.
    let created = create_location(&app, OTHER_TENANT, seattle_address()).await;
    let other = acquire(
        &mut app.admin(OTHER_TENANT),
        pb::AcquirePhoneNumbersRequest {
            emergency_location_id: created.clone(),
            ..acquire_request("US", "206", 2)
        },
    )
    .await
    .expect("acquire with a created location");
    for n in &other {
        assert_fresh(n, "Seattle", &[USER_ASSIGNMENT], &created);
    }
    assert!(set(&phone_numbers(&other)).is_disjoint(&set(&phone_numbers(&acquired))));
    let london = create_location(&app, OTHER_TENANT, london_address()).await;
    let before = state(&app, OTHER_TENANT).await;
    assert_error(
        acquire(
            &mut app.admin(OTHER_TENANT),
            pb::AcquirePhoneNumbersRequest {
                emergency_location_id: london,
                ..acquire_request("US", "206", 1)
            },
        )
        .await,
        Code::FailedPrecondition,
        "LOCATION_COUNTRY_MISMATCH",
    );
    assert_unchanged(&before, &state(&app, OTHER_TENANT).await, "London location");
}

async fn invalid_acquisitions_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let good = acquire_request("US", "206", 1);
    let cases: Vec<(&str, pb::AcquirePhoneNumbersRequest, &str)> = vec![
        (
            "quantity 0",
            pb::AcquirePhoneNumbersRequest {
                quantity: 0,
                ..good.clone()
            },
            "quantity",
        ),
        (
            "quantity 1001",
            pb::AcquirePhoneNumbersRequest {
                quantity: 1001,
                ..good.clone()
            },
            "quantity",
        ),
        (
            "negative quantity",
            pb::AcquirePhoneNumbersRequest {
                quantity: -3,
                ..good.clone()
            },
            "quantity",
        ),
        (
            "missing country",
            pb::AcquirePhoneNumbersRequest {
                country: String::new(),
                ..good.clone()
            },
            "country",
        ),
        (
            "blank country",
            pb::AcquirePhoneNumbersRequest {
                country: "  ".into(),
                ..good.clone()
            },
            "country",
        ),
        (
            "three-letter country",
            pb::AcquirePhoneNumbersRequest {
                country: "USA".into(),
                ..good.clone()
            },
            "country",
        ),
        (
            "digits as country",
            pb::AcquirePhoneNumbersRequest {
                country: "1".into(),
                ..good.clone()
            },
            "country",
        ),
        (
            "letters in the area code",
            pb::AcquirePhoneNumbersRequest {
                area_code: "42a".into(),
                ..good.clone()
            },
            "area_code",
        ),
        (
            "too long an area code",
            pb::AcquirePhoneNumbersRequest {
                area_code: "1234567".into(),
                ..good.clone()
            },
            "area_code",
        ),
        (
            "area code with +",
            pb::AcquirePhoneNumbersRequest {
                area_code: "+206".into(),
                ..good.clone()
            },
            "area_code",
        ),
        (
            "letters in the prefix",
            pb::AcquirePhoneNumbersRequest {
                number_prefix: "+1206abc".into(),
                ..good.clone()
            },
            "number_prefix",
        ),
        (
            "a bare + as prefix",
            pb::AcquirePhoneNumbersRequest {
                number_prefix: "+".into(),
                ..good.clone()
            },
            "number_prefix",
        ),
        (
            "unknown capability",
            pb::AcquirePhoneNumbersRequest {
                capability: 42,
                ..good.clone()
            },
            "capability",
        ),
        (
            "request id that is no UUID",
            pb::AcquirePhoneNumbersRequest {
                request_id: "retry-1".into(),
                ..good.clone()
            },
            "request_id",
        ),
    ];
    let before = state(&app, TENANT).await;
    for (what, request, field) in cases {
        let status = assert_error(
            acquire(&mut admin, request).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), [field], "{what}: {status:?}");
        assert_unchanged(&before, &state(&app, TENANT).await, what);
    }
    // Refused even when it would only validate.
    let status = assert_error(
        acquire(
            &mut admin,
            pb::AcquirePhoneNumbersRequest {
                quantity: 0,
                validate_only: true,
                ..good.clone()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["quantity"]);
    assert_unchanged(&before, &state(&app, TENANT).await, "validate_only");

    // The bounds themselves are accepted.
    let thousand = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            validate_only: true,
            ..acquire_request("US", "", 1000)
        },
    )
    .await;
    assert_error(thousand, Code::FailedPrecondition, "OUT_OF_STOCK");
    let one = acquire(&mut admin, good).await.expect("quantity 1");
    assert_eq!(one.len(), 1);
}

async fn out_of_stock_acquires_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let service = |quantity| pb::AcquirePhoneNumbersRequest {
        capability: VOICE_APPLICATION,
        ..acquire_request("US", "425", quantity)
    };

    // 50 Redmond service numbers exist: 51 is one too many, and none is taken.
    let empty = state(&app, TENANT).await;
    let status = assert_error(
        acquire(&mut admin, service(51)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert!(status.message().contains("51"), "{status:?}");
    assert_unchanged(&empty, &state(&app, TENANT).await, "51 of 50");
    assert!(inventory(&app, TENANT).await.is_empty());

    let first = acquire(&mut admin, service(20)).await.expect("acquire 20");
    assert_eq!(first.len(), 20);
    let twenty = state(&app, TENANT).await;
    assert_error(
        acquire(&mut admin, service(31)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&twenty, &state(&app, TENANT).await, "31 of 30 left");

    let rest = acquire(&mut admin, service(30)).await.expect("the last 30");
    let mut all = [phone_numbers(&first), phone_numbers(&rest)].concat();
    all.sort();
    assert_eq!(all, redmond_service(), "every service number, once");
    let full = state(&app, TENANT).await;
    assert_eq!(full.numbers.len(), 50);
    assert_eq!(full.audit.len(), 50);
    assert_error(
        acquire(&mut admin, service(1)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&full, &state(&app, TENANT).await, "none left");

    // Nothing matches: a country or an area code the catalogue does not sell.
    for request in [
        acquire_request("JP", "", 1),
        acquire_request("US", "999", 1),
        acquire_request("CA", "206", 1),
    ] {
        assert_error(
            acquire(&mut admin, request.clone()).await,
            Code::FailedPrecondition,
            "OUT_OF_STOCK",
        );
        assert_unchanged(&full, &state(&app, TENANT).await, &format!("{request:?}"));
    }
}

async fn two_tenants_never_get_the_same_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut a = app.admin(TENANT);
    let mut b = app.admin(OTHER_TENANT);

    let of_a = phone_numbers(
        &acquire(&mut a, acquire_request("US", "206", 30))
            .await
            .expect("tenant A acquires"),
    );
    let of_b = phone_numbers(
        &acquire(&mut b, acquire_request("US", "206", 30))
            .await
            .expect("tenant B acquires"),
    );
    assert!(set(&of_a).is_disjoint(&set(&of_b)), "{of_a:?} / {of_b:?}");

    // 40 are left: B cannot have 41, and asking changes nothing.
    let b_before = state(&app, OTHER_TENANT).await;
    assert_error(
        acquire(&mut b, acquire_request("US", "206", 41)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&b_before, &state(&app, OTHER_TENANT).await, "41 of 40");
    let more_b = phone_numbers(
        &acquire(&mut b, acquire_request("US", "206", 40))
            .await
            .expect("tenant B takes the rest"),
    );
    let mut everything = [of_a.clone(), of_b.clone(), more_b.clone()].concat();
    everything.sort();
    assert_eq!(
        everything,
        seattle(),
        "every Seattle number, in one inventory each"
    );

    let a_before = state(&app, TENANT).await;
    assert_error(
        acquire(&mut a, acquire_request("US", "206", 1)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&a_before, &state(&app, TENANT).await, "Seattle sold out");
    assert_eq!(phone_numbers(&inventory(&app, TENANT).await), of_a);
    let mut b_all = [of_b, more_b].concat();
    b_all.sort();
    assert_eq!(phone_numbers(&inventory(&app, OTHER_TENANT).await), b_all);

    // Each tenant sees its own numbers only.
    assert_error(
        get(&mut a, &b_all[0]).await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    assert_error(
        get(&mut b, &of_a[0]).await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );

    // Numbers already in an inventory (the demo tenant's) are not for sale either, whatever
    // their type there.
    let demo = TestApp::spawn_demo(backend).await;
    let direct_routing = "+14255550106";
    demo.seed_numbers(TENANT, &[number(direct_routing, NumberType::DirectRouting)])
        .await;
    let mut other = demo.admin(OTHER_TENANT);
    let redmond = |quantity| pb::AcquirePhoneNumbersRequest {
        city: "Redmond".into(),
        ..acquire_request("US", "", quantity)
    };
    let before = state(&demo, OTHER_TENANT).await;
    assert_error(
        acquire(&mut other, redmond(95)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&before, &state(&demo, OTHER_TENANT).await, "95 Redmond");
    let got = phone_numbers(
        &acquire(&mut other, redmond(94))
            .await
            .expect("the 94 Redmond numbers Contoso does not hold"),
    );
    let contoso: Vec<String> = [
        "+14255550101",
        "+14255550103",
        "+14255550104",
        direct_routing,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut expected: Vec<String> = redmond_users()
        .into_iter()
        .filter(|n| !contoso.contains(n))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
}

/// A tenant holds at most its quota of Calling Plan numbers: an acquisition beyond it answers
/// RESOURCE_EXHAUSTED and acquires nothing; other tenants have quotas of their own, and a
/// release makes room again.
async fn acquisitions_stop_at_the_tenants_quota(backend: Backend) {
    let app = TestApp::start(
        backend,
        TestConfig {
            calling_plan_quota: 5,
            ..TestConfig::default()
        },
    )
    .await;
    let mut a = app.admin(TENANT);
    let first = phone_numbers(
        &acquire(&mut a, acquire_request("US", "206", 3))
            .await
            .expect("3 of 5"),
    );
    let before = state(&app, TENANT).await;
    let status = assert_error(
        acquire(&mut a, acquire_request("US", "206", 3)).await,
        Code::ResourceExhausted,
        "QUOTA_EXCEEDED",
    );
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["held"], "3");
    assert_eq!(info.metadata["quota"], "5");
    assert_unchanged(&before, &state(&app, TENANT).await, "3 more of 5");
    acquire(&mut a, acquire_request("US", "206", 2))
        .await
        .expect("the last 2 of 5");
    acquire(
        &mut app.admin(OTHER_TENANT),
        acquire_request("US", "206", 5),
    )
    .await
    .expect("another tenant's own quota");
    assert_error(
        acquire(&mut a, acquire_request("US", "206", 1)).await,
        Code::ResourceExhausted,
        "QUOTA_EXCEEDED",
    );
    release(&mut a, release_request(&[first[0].as_str()]))
        .await
        .expect("release one");
    acquire(&mut a, acquire_request("US", "206", 1))
        .await
        .expect("room again after a release");
}

async fn concurrent_retries_with_one_request_id_acquire_and_release_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin(TENANT);
    let request = pb::AcquirePhoneNumbersRequest {
        request_id: new_request_id(),
        ..acquire_request("US", "206", 3)
    };
    let answers = futures::future::join_all((0..16).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { acquire(&mut client, request).await }
    }))
    .await;
    let answers: Vec<Vec<pb::PhoneNumber>> = answers
        .into_iter()
        .map(|a| a.expect("every retry gets the first answer"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    let after = state(&app, TENANT).await;
    assert_eq!(
        phone_numbers(&after.numbers),
        phone_numbers(&answers[0]),
        "acquired once"
    );
    assert_eq!(after.audit.len(), 3);

    let acquired = phone_numbers(&answers[0]);
    let request = pb::ReleasePhoneNumbersRequest {
        request_id: new_request_id(),
        ..release_request(&[&acquired[0], &acquired[1]])
    };
    let answers = futures::future::join_all((0..16).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { release(&mut client, request).await }
    }))
    .await;
    for answer in answers {
        assert_eq!(
            answer.expect("every retry gets the first answer"),
            acquired[..2].to_vec()
        );
    }
    let after = state(&app, TENANT).await;
    assert_eq!(phone_numbers(&after.numbers), acquired[2..].to_vec());
    assert_eq!(after.audit.len(), 3 + 2, "released once");
}

/// Runs `requests` at once, alternating between two tenants; returns each answer with its
/// tenant.
async fn acquire_concurrently(
    app: &TestApp,
    requests: Vec<pb::AcquirePhoneNumbersRequest>,
) -> Vec<(&'static str, Result<Vec<pb::PhoneNumber>, Status>)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let tenant = if i % 2 == 0 { TENANT } else { OTHER_TENANT };
            let mut client = app.admin(tenant);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                (tenant, acquire(&mut client, request).await)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the task ran"));
    }
    answers
}

async fn concurrent_acquisitions_never_share_a_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let requests = vec![acquire_request("US", "206", 5); 16];
    let answers = acquire_concurrently(&app, requests).await;

    let mut by_tenant: HashMap<&str, Vec<String>> = HashMap::new();
    for (tenant, answer) in answers {
        let numbers = phone_numbers(&answer.expect("the stock suffices: every request succeeds"));
        assert_eq!(numbers.len(), 5);
        assert_all_within(&numbers, &seattle(), "Seattle");
        by_tenant.entry(tenant).or_default().extend(numbers);
    }
    let all: Vec<String> = by_tenant.values().flatten().cloned().collect();
    assert_eq!(all.len(), 80);
    assert_eq!(set(&all).len(), 80, "80 distinct numbers");

    // Each number is in exactly the inventory of the tenant it was answered to.
    for tenant in [TENANT, OTHER_TENANT] {
        let mut expected = by_tenant[tenant].clone();
        expected.sort();
        let state = state(&app, tenant).await;
        assert_eq!(phone_numbers(&state.numbers), expected, "{tenant}");
        assert_eq!(state.audit.len(), 40, "{tenant}: one event per number");
    }
}

async fn concurrent_acquisitions_beyond_the_stock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 16 × 7 = 112 numbers asked of 100: 14 requests fit, and then 2 numbers are left.
    let requests = vec![acquire_request("US", "206", 7); 16];
    let answers = acquire_concurrently(&app, requests).await;

    let mut by_tenant: HashMap<&str, Vec<String>> = HashMap::new();
    let mut failures = 0;
    for (tenant, answer) in answers {
        match answer {
            Ok(numbers) => {
                assert_eq!(numbers.len(), 7);
                by_tenant
                    .entry(tenant)
                    .or_default()
                    .extend(phone_numbers(&numbers));
            }
            Err(status) => {
                assert_error::<()>(Err(status), Code::FailedPrecondition, "OUT_OF_STOCK");
                failures += 1;
            }
        }
    }
    let all: Vec<String> = by_tenant.values().flatten().cloned().collect();
    assert_eq!(set(&all).len(), all.len(), "the successes share no number");
    assert_eq!(failures, 2, "exactly the requests that cannot fit fail");
    assert_eq!(all.len(), 98);
    assert_all_within(&all, &seattle(), "Seattle");

    // The failures acquired nothing: the inventories hold exactly the successes' numbers.
    for tenant in [TENANT, OTHER_TENANT] {
        let mut expected = by_tenant.get(tenant).cloned().unwrap_or_default();
        expected.sort();
        let state = state(&app, tenant).await;
        assert_eq!(phone_numbers(&state.numbers), expected, "{tenant}");
        assert_eq!(state.audit.len(), expected.len(), "{tenant}");
    }
    // And they kept nothing back: the last two numbers are still for sale.
    let mut admin = app.admin(TENANT);
    let before = state(&app, TENANT).await;
    assert_error(
        acquire(&mut admin, acquire_request("US", "206", 3)).await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "3 of 2");
    let last = phone_numbers(
        &acquire(&mut admin, acquire_request("US", "206", 2))
            .await
            .expect("the last two"),
    );
    let mut everything = [all, last].concat();
    everything.sort();
    assert_eq!(everything, seattle());
}

async fn acquire_request_id_replays_and_validate_only_acquires_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let empty = state(&app, TENANT).await;
    let rehearsed = acquire(
        &mut admin,
        pb::AcquirePhoneNumbersRequest {
            validate_only: true,
            ..acquire_request("US", "206", 3)
        },
    )
    .await
    .expect("validate an acquisition");
    assert_eq!(
        rehearsed.len(),
        3,
        "the answer shows what would be acquired"
    );
    assert_unchanged(&empty, &state(&app, TENANT).await, "validate_only");
    assert_error(
        acquire(
            &mut admin,
            pb::AcquirePhoneNumbersRequest {
                validate_only: true,
                ..acquire_request("US", "206", 101)
            },
        )
        .await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );

    let request_id = new_request_id();
    let request = pb::AcquirePhoneNumbersRequest {
        request_id: request_id.clone(),
        ..acquire_request("US", "206", 3)
    };
    let first = acquire(&mut admin, request.clone())
        .await
        .expect("acquire with a request id");
    let after_first = state(&app, TENANT).await;
    assert_eq!(phone_numbers(&after_first.numbers), phone_numbers(&first));
    assert_eq!(after_first.audit.len(), 3);
    for event in &after_first.audit {
        assert_eq!(event.request_id, request_id);
    }

    let retry = acquire(&mut admin, request.clone())
        .await
        .expect("retry the acquisition");
    assert_eq!(
        phone_numbers(&retry),
        phone_numbers(&first),
        "the first answer"
    );
    assert_eq!(retry.len(), 3);
    assert_unchanged(&after_first, &state(&app, TENANT).await, "the retry");

    // The same id for another request is refused.
    assert_error(
        acquire(
            &mut admin,
            pb::AcquirePhoneNumbersRequest {
                request_id: request_id.clone(),
                ..acquire_request("US", "206", 4)
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert_unchanged(&after_first, &state(&app, TENANT).await, "a reused id");

    // Request ids are per tenant: the other tenant's request with the same id is its own.
    let other = acquire(&mut app.admin(OTHER_TENANT), request)
        .await
        .expect("the same id in another tenant");
    assert!(set(&phone_numbers(&other)).is_disjoint(&set(&phone_numbers(&first))));
}

async fn a_release_racing_an_assignment_never_both_win(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let location = create_location(&app, TENANT, seattle_address()).await;
    let numbers = phone_numbers(
        &acquire(
            &mut app.admin(TENANT),
            pb::AcquirePhoneNumbersRequest {
                emergency_location_id: location,
                ..acquire_request("US", "206", 8)
            },
        )
        .await
        .expect("acquire eight numbers"),
    );
    let mut users = Vec::new();
    for i in 0..numbers.len() {
        users.push(
            app.user(TENANT, &format!("racer{i}@contoso.com"), "Racer", "US")
                .await,
        );
    }
    let events_before = audit_events(&app, TENANT).await.len();

    // For each number, an assignment and a release at once.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2 * numbers.len()));
    let mut tasks = Vec::new();
    for (n, user) in numbers.iter().zip(&users) {
        let (mut assigner, mut releaser) = (app.admin(TENANT), app.admin(TENANT));
        let (n1, n2, user_id) = (n.clone(), n.clone(), user.id.clone());
        let (b1, b2) = (barrier.clone(), barrier.clone());
        let assigning = tokio::spawn(async move {
            b1.wait().await;
            assigner
                .assign_phone_number(pb::AssignPhoneNumberRequest {
                    identity: user_id,
                    phone_number: n1,
                    ..Default::default()
                })
                .await
                .map(|_| ())
        });
        let releasing = tokio::spawn(async move {
            b2.wait().await;
            release(&mut releaser, release_request(&[&n2]))
                .await
                .map(|_| ())
        });
        tasks.push((assigning, releasing));
    }
    let mut admin = app.admin(TENANT);
    for ((assigning, releasing), (n, user)) in tasks.into_iter().zip(numbers.iter().zip(&users)) {
        let assigned = assigning.await.expect("the task ran");
        let released = releasing.await.expect("the task ran");
        let held = admin
            .get_user(pb::GetUserRequest {
                identity: user.id.clone(),
            })
            .await
            .expect("get the user")
            .into_inner()
            .phone_numbers;
        match (assigned, released) {
            (Ok(()), Err(status)) => {
                assert_error::<()>(Err(status), Code::FailedPrecondition, "NUMBER_ASSIGNED");
                let number = get(&mut admin, n).await.expect("the number stays");
                assert_eq!(number.assigned_to, user.id);
                assert_eq!(held, [n.as_str()]);
            }
            (Err(status), Ok(())) => {
                assert_error::<()>(Err(status), Code::NotFound, "NUMBER_NOT_FOUND");
                assert_error(get(&mut admin, n).await, Code::NotFound, "NUMBER_NOT_FOUND");
                assert!(held.is_empty(), "{held:?}");
            }
            (assigned, released) => panic!(
                "{n}: exactly one of the assignment and the release wins, got {assigned:?} and \
                 {released:?}"
            ),
        }
    }
    assert_eq!(
        audit_events(&app, TENANT).await.len(),
        events_before + numbers.len(),
        "one event per winner"
    );
}

// ---- ReleasePhoneNumbers -----------------------------------------------------------------------

async fn release_returns_numbers_to_the_catalogue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut a = app.admin(TENANT);
    let acquired = phone_numbers(
        &acquire(&mut a, acquire_request("US", "206", 3))
            .await
            .expect("acquire"),
    );
    let (x, y, z) = (&acquired[0], &acquired[1], &acquired[2]);
    let before = state(&app, TENANT).await;

    let released = release(
        &mut a,
        release_request(&[x, y.strip_prefix('+').expect("E.164")]),
    )
    .await
    .expect("release two numbers");
    assert_eq!(released, [x.clone(), y.clone()], "answered in E.164");

    let after = state(&app, TENANT).await;
    assert_eq!(phone_numbers(&after.numbers), [z.as_str()]);
    assert_eq!(
        after.numbers[0], before.numbers[2],
        "the kept number is untouched"
    );
    for n in [x, y] {
        assert_error(get(&mut a, n).await, Code::NotFound, "NUMBER_NOT_FOUND");
    }
    // One event per released number, with the number as it was and nothing after.
    let events = &after.audit[..2];
    assert_eq!(after.audit.len(), before.audit.len() + 2);
    let mut audited: Vec<String> = events.iter().map(|e| e.phone_number.clone()).collect();
    audited.sort();
    assert_eq!(audited, [x.clone(), y.clone()]);
    for event in events {
        assert_eq!(event.action, RELEASE);
        assert_eq!(event.actor, "test");
        assert!(event.after.is_none(), "{event:?}");
        let before_fields = &event.before.as_ref().expect("a before snapshot").fields;
        let snapshot_number = before_fields
            .get("phoneNumber")
            .and_then(|v| v.kind.clone());
        assert_eq!(
            snapshot_number,
            Some(prost_types::value::Kind::StringValue(
                event.phone_number.clone()
            ))
        );
    }

    // Another tenant can now acquire them.
    let mut b = app.admin(OTHER_TENANT);
    for n in [x, y] {
        let got = acquire(
            &mut b,
            pb::AcquirePhoneNumbersRequest {
                number_prefix: n.clone(),
                ..acquire_request("US", "", 1)
            },
        )
        .await
        .expect("acquire a released number");
        assert_eq!(phone_numbers(&got), [n.as_str()]);
        assert_fresh(&got[0], "Seattle", &[USER_ASSIGNMENT], "");
    }
    // The one still held is not for sale.
    let b_before = state(&app, OTHER_TENANT).await;
    assert_error(
        acquire(
            &mut b,
            pb::AcquirePhoneNumbersRequest {
                number_prefix: z.clone(),
                ..acquire_request("US", "", 1)
            },
        )
        .await,
        Code::FailedPrecondition,
        "OUT_OF_STOCK",
    );
    assert_unchanged(&b_before, &state(&app, OTHER_TENANT).await, "held number");

    // A number listed twice is released once.
    let released = release(&mut a, release_request(&[z, z]))
        .await
        .expect("release");
    assert_eq!(released, [z.as_str()]);
    assert!(inventory(&app, TENANT).await.is_empty());
}

async fn release_of_an_assigned_number_releases_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&app, TENANT, "john@contoso.com", "+14255550101").await;

    let before = state(&app, TENANT).await;
    for numbers in [
        vec!["+14255550103", "+14255550101", "+14255550104"],
        vec!["14255550101"],
    ] {
        let status = assert_error(
            release(&mut admin, release_request(&numbers)).await,
            Code::FailedPrecondition,
            "NUMBER_ASSIGNED",
        );
        assert!(
            status.message().contains("+14255550101"),
            "the message names the assigned number: {status:?}"
        );
        assert!(
            !status.message().contains("+14255550103"),
            "only the assigned number is named: {status:?}"
        );
        assert_unchanged(&before, &state(&app, TENANT).await, &numbers.join(","));
    }
    // Even a validate_only request says so.
    assert_error(
        release(
            &mut admin,
            pb::ReleasePhoneNumbersRequest {
                validate_only: true,
                ..release_request(&["+14255550101"])
            },
        )
        .await,
        Code::FailedPrecondition,
        "NUMBER_ASSIGNED",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "validate_only");

    // Once removed from the user, it goes.
    admin
        .remove_phone_number(pb::RemovePhoneNumberRequest {
            identity: "john@contoso.com".into(),
            phone_number: "+14255550101".into(),
            ..Default::default()
        })
        .await
        .expect("remove the number from John");
    let released = release(&mut admin, release_request(&["+14255550101"]))
        .await
        .expect("release the unassigned number");
    assert_eq!(released, ["+14255550101"]);
    assert_error(
        get(&mut admin, "+14255550101").await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
}

async fn release_refuses_numbers_outside_the_inventory_and_other_types(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut direct = number("+14255559001", NumberType::DirectRouting);
    direct.emergency_location_id = Some("redmond-hq".into());
    app.seed_numbers(TENANT, &[direct]).await;
    let mut admin = app.admin(TENANT);
    let before = state(&app, TENANT).await;

    let cases: Vec<(Vec<&str>, Code, &str, &str)> = vec![
        (
            vec!["+12065550100"],
            Code::NotFound,
            "NUMBER_NOT_FOUND",
            "+12065550100",
        ),
        (
            vec!["+14255550103", "+12065550150"],
            Code::NotFound,
            "NUMBER_NOT_FOUND",
            "+12065550150",
        ),
        (
            vec!["+14255550102"],
            Code::FailedPrecondition,
            "NUMBER_TYPE_MISMATCH",
            "+14255550102",
        ),
        (
            vec!["+14255550103", "+14255550105"],
            Code::FailedPrecondition,
            "NUMBER_TYPE_MISMATCH",
            "+14255550105",
        ),
        (
            vec!["+14255550104", "+14255559001"],
            Code::FailedPrecondition,
            "NUMBER_TYPE_MISMATCH",
            "+14255559001",
        ),
    ];
    for (numbers, code, reason, named) in cases {
        let status = assert_error(
            release(&mut admin, release_request(&numbers)).await,
            code,
            reason,
        );
        assert!(status.message().contains(named), "{status:?}");
        assert_unchanged(&before, &state(&app, TENANT).await, &numbers.join(","));
    }

    // Another tenant cannot release the demo tenant's numbers: they are not in its inventory.
    let other_before = state(&app, OTHER_TENANT).await;
    assert_error(
        release(
            &mut app.admin(OTHER_TENANT),
            release_request(&["+14255550103"]),
        )
        .await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    assert_unchanged(
        &before,
        &state(&app, TENANT).await,
        "another tenant's release",
    );
    assert_unchanged(
        &other_before,
        &state(&app, OTHER_TENANT).await,
        "other tenant",
    );

    // Malformed requests.
    let too_many: Vec<String> = range(14255550200, 1001);
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let malformed: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![], "INVALID_ARGUMENT", "phone_numbers"),
        (too_many, "INVALID_ARGUMENT", "phone_numbers"),
        (
            vec!["+14255550103", "not a number"],
            "INVALID_PHONE_NUMBER",
            "phone_numbers[1]",
        ),
    ];
    for (numbers, reason, field) in malformed {
        let status = assert_error(
            release(&mut admin, release_request(&numbers)).await,
            Code::InvalidArgument,
            reason,
        );
        assert_eq!(violated_fields(&status), [field]);
        assert_unchanged(&before, &state(&app, TENANT).await, field);
    }
}

async fn release_request_id_replays_and_validate_only_releases_nothing(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let before = state(&app, TENANT).await;
    let rehearsed = release(
        &mut admin,
        pb::ReleasePhoneNumbersRequest {
            validate_only: true,
            ..release_request(&["+14255550103", "14255550104"])
        },
    )
    .await
    .expect("validate a release");
    assert_eq!(rehearsed, ["+14255550103", "+14255550104"]);
    assert_unchanged(&before, &state(&app, TENANT).await, "validate_only");

    let request_id = new_request_id();
    let request = pb::ReleasePhoneNumbersRequest {
        request_id: request_id.clone(),
        ..release_request(&["+14255550103"])
    };
    let first = release(&mut admin, request.clone())
        .await
        .expect("release with a request id");
    assert_eq!(first, ["+14255550103"]);
    let after_first = state(&app, TENANT).await;
    assert_eq!(after_first.numbers.len(), before.numbers.len() - 1);
    assert_eq!(after_first.audit.len(), 1);
    assert_eq!(after_first.audit[0].request_id, request_id);
    assert_eq!(after_first.audit[0].phone_number, "+14255550103");

    // The retry answers as the first time, though the number is gone now.
    let retry = release(&mut admin, request)
        .await
        .expect("retry the release");
    assert_eq!(retry, first);
    assert_unchanged(&after_first, &state(&app, TENANT).await, "the retry");

    assert_error(
        release(
            &mut admin,
            pb::ReleasePhoneNumbersRequest {
                request_id,
                ..release_request(&["+14255550104"])
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert_unchanged(&after_first, &state(&app, TENANT).await, "a reused id");
    get(&mut admin, "+14255550104")
        .await
        .expect("the number of the refused request is kept");
}

async fn readers_may_not_acquire_or_release(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut reader = app.reader(TENANT);
    let before = state(&app, TENANT).await;

    assert_error(
        acquire(&mut reader, acquire_request("US", "206", 1)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    // Permission comes before validation.
    assert_error(
        acquire(&mut reader, acquire_request("", "", 0)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        acquire(
            &mut reader,
            pb::AcquirePhoneNumbersRequest {
                validate_only: true,
                ..acquire_request("US", "206", 1)
            },
        )
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        release(&mut reader, release_request(&["+14255550103"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "a reader's attempts");

    // Nobody at all: UNAUTHENTICATED.
    let mut anonymous = app.client_with_token(None);
    assert_error(
        acquire(&mut anonymous, acquire_request("US", "206", 1)).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_error(
        release(&mut anonymous, release_request(&["+14255550103"])).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_unchanged(&before, &state(&app, TENANT).await, "anonymous attempts");
}

on_both_stores!(
    acquisitions_stop_at_the_tenants_quota,
    acquires_by_country_and_area_code,
    acquisition_answers_the_numbers_as_stored,
    acquires_by_city_case_insensitively,
    acquires_by_number_prefix_with_or_without_plus,
    service_numbers_and_user_numbers_are_apart,
    registers_an_emergency_location_with_every_number,
    invalid_acquisitions_are_refused,
    out_of_stock_acquires_nothing,
    two_tenants_never_get_the_same_number,
    concurrent_acquisitions_never_share_a_number,
    concurrent_acquisitions_beyond_the_stock,
    acquire_request_id_replays_and_validate_only_acquires_nothing,
    concurrent_retries_with_one_request_id_acquire_and_release_once,
    release_returns_numbers_to_the_catalogue,
    release_of_an_assigned_number_releases_nothing,
    a_release_racing_an_assignment_never_both_win,
    release_refuses_numbers_outside_the_inventory_and_other_types,
    release_request_id_replays_and_validate_only_releases_nothing,
    readers_may_not_acquire_or_release,
);
