//! GetPhoneNumber and ListPhoneNumbers over the socket: every spelling of a number, every kind of
//! bad number, and pagination over an inventory larger than the biggest page, with every filter.

use std::collections::{HashMap, HashSet};

use number_management::domain::{
    ActivationState, AssignmentCategory, Capabilities, Capability, E164, NumberType, PhoneNumber,
    TargetKind,
};
use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::calls::get_phone_number as get;
use crate::helpers::{Backend, Client, TestApp, assert_error, assigned, number, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";

// ---- helpers of this module --------------------------------------------------------------------

async fn list(
    client: &mut Client,
    request: pb::ListPhoneNumbersRequest,
) -> Result<pb::ListPhoneNumbersResponse, Status> {
    client
        .list_phone_numbers(request)
        .await
        .map(tonic::Response::into_inner)
}

fn capabilities(list: &[Capability]) -> Capabilities {
    list.iter().copied().collect()
}

/// Creates a user (or resource account) through the API.
async fn upsert(app: &TestApp, upn: &str, display_name: &str, kind: pb::user::Kind) -> pb::User {
    let licenses = match kind {
        pb::user::Kind::ResourceAccount => vec![pb::user::License::PhoneSystemVirtualUser as i32],
        _ => vec![
            pb::user::License::PhoneSystem as i32,
            pb::user::License::CallingPlan as i32,
        ],
    };
    app.admin(TENANT)
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                user_principal_name: upn.into(),
                display_name: display_name.into(),
                usage_location: "US".into(),
                kind: kind as i32,
                licenses,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("upsert user")
        .into_inner()
}

/// Creates an emergency location through the API and returns its id.
async fn create_location(
    app: &TestApp,
    description: &str,
    house: &str,
    street: &str,
    city: &str,
    postal: &str,
) -> String {
    let created = app
        .admin(TENANT)
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address: Some(pb::CivicAddress {
                    company_name: "Contoso".into(),
                    house_number: house.into(),
                    street_name: street.into(),
                    city: city.into(),
                    state_or_province: "WA".into(),
                    postal_code: postal.into(),
                    country: "US".into(),
                    ..Default::default()
                }),
                description: description.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("create emergency location")
        .into_inner();
    assert!(!created.id.is_empty());
    created.id
}

/// What the tests compare of a listed number: everything the seed decides.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Summary {
    phone_number: String,
    number_type: i32,
    operator_id: String,
    country: String,
    capabilities: Vec<i32>,
    assignment_status: i32,
    assigned_to: String,
    assigned_to_user_principal_name: String,
    assignment_category: i32,
    activation_state: i32,
    emergency_location_id: String,
}

impl Summary {
    fn of_response(n: &pb::PhoneNumber) -> Self {
        let mut capabilities = n.capabilities.clone();
        capabilities.sort_unstable();
        Self {
            phone_number: n.phone_number.clone(),
            number_type: n.number_type,
            operator_id: n.operator_id.clone(),
            country: n.country.clone(),
            capabilities,
            assignment_status: n.assignment_status,
            assigned_to: n.assigned_to.clone(),
            assigned_to_user_principal_name: n.assigned_to_user_principal_name.clone(),
            assignment_category: n.assignment_category,
            activation_state: n.activation_state,
            emergency_location_id: n.emergency_location_id.clone(),
        }
    }

    /// What the API should answer for a seeded record; `holders` maps user ids to (upn, kind).
    fn of_record(r: &PhoneNumber, holders: &HashMap<String, (String, TargetKind)>) -> Self {
        let number_type = match r.number_type {
            NumberType::CallingPlan => pb::NumberType::CallingPlan,
            NumberType::OperatorConnect => pb::NumberType::OperatorConnect,
            NumberType::DirectRouting => pb::NumberType::DirectRouting,
        } as i32;
        let mut capabilities: Vec<i32> = [
            (Capability::UserAssignment, pb::Capability::UserAssignment),
            (
                Capability::VoiceApplicationAssignment,
                pb::Capability::VoiceApplicationAssignment,
            ),
            (
                Capability::ConferenceAssignment,
                pb::Capability::ConferenceAssignment,
            ),
        ]
        .into_iter()
        .filter(|(domain, _)| r.capabilities.contains(*domain))
        .map(|(_, proto)| proto as i32)
        .collect();
        capabilities.sort_unstable();
        let (assignment_status, assigned_to, upn, category) = match &r.assignment {
            None => (
                pb::AssignmentStatus::Unassigned,
                String::new(),
                String::new(),
                pb::AssignmentCategory::Unspecified,
            ),
            Some(a) => {
                let (upn, kind) = holders
                    .get(&a.target_id)
                    .expect("seeded holders are known")
                    .clone();
                let status = match kind {
                    TargetKind::User => pb::AssignmentStatus::UserAssigned,
                    TargetKind::ResourceAccount => pb::AssignmentStatus::VoiceApplicationAssigned,
                };
                let category = match a.category {
                    AssignmentCategory::Primary => pb::AssignmentCategory::Primary,
                    AssignmentCategory::Private => pb::AssignmentCategory::Private,
                    AssignmentCategory::Alternate => pb::AssignmentCategory::Alternate,
                };
                (status, a.target_id.clone(), upn, category)
            }
        };
        let activation_state = match r.activation_state {
            ActivationState::Activated => pb::ActivationState::Activated,
            ActivationState::AssignmentPending => pb::ActivationState::AssignmentPending,
            ActivationState::AssignmentFailed => pb::ActivationState::AssignmentFailed,
            ActivationState::UpdatePending => pb::ActivationState::UpdatePending,
            ActivationState::UpdateFailed => pb::ActivationState::UpdateFailed,
        } as i32;
        Self {
            phone_number: r.number.canonical(),
            number_type,
            operator_id: r.operator_id.clone().unwrap_or_default(),
            country: r.number.country().as_str().to_owned(),
            capabilities,
            assignment_status: assignment_status as i32,
            assigned_to,
            assigned_to_user_principal_name: upn,
            assignment_category: category as i32,
            activation_state,
            emergency_location_id: r.emergency_location_id.clone().unwrap_or_default(),
        }
    }
}

/// The page size the service applies to a requested one.
fn effective_page_size(requested: i32) -> usize {
    match requested {
        0 => 100,
        n => (n as usize).min(1000),
    }
}

/// Follows the page tokens of `request` to the end, checking that every page but the last is
/// full and the last is not empty (unless it is the only one).
async fn walk(
    client: &mut Client,
    label: &str,
    mut request: pb::ListPhoneNumbersRequest,
) -> Vec<pb::PhoneNumber> {
    let size = effective_page_size(request.page_size);
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = list(client, request.clone())
            .await
            .unwrap_or_else(|s| panic!("{label}: page {pages} failed: {s:?}"));
        pages += 1;
        assert!(pages <= 3000, "{label}: the pages never end");
        let last = page.next_page_token.is_empty();
        if last {
            assert!(
                page.phone_numbers.len() <= size,
                "{label}: the last page is too big"
            );
            if pages > 1 {
                assert!(
                    !page.phone_numbers.is_empty(),
                    "{label}: a token led to an empty page"
                );
            }
        } else {
            assert_eq!(
                page.phone_numbers.len(),
                size,
                "{label}: page {pages} is not full although another page follows"
            );
        }
        all.extend(page.phone_numbers);
        if last {
            return all;
        }
        request.page_token = page.next_page_token;
    }
}

/// Asserts that `got` is exactly `expected`, in order, explaining the first differences briefly.
#[track_caller]
fn assert_same_numbers(label: &str, got: &[Summary], expected: &[Summary]) {
    let numbers = |list: &[Summary]| {
        list.iter()
            .map(|s| s.phone_number.clone())
            .collect::<Vec<_>>()
    };
    let (got_numbers, expected_numbers) = (numbers(got), numbers(expected));
    let unique: HashSet<&String> = got_numbers.iter().collect();
    assert_eq!(
        unique.len(),
        got_numbers.len(),
        "{label}: duplicates across pages"
    );
    assert!(
        got_numbers.windows(2).all(|w| w[0] < w[1]),
        "{label}: the pages are not in ascending order"
    );
    if got_numbers != expected_numbers {
        let expected_set: HashSet<&String> = expected_numbers.iter().collect();
        let missing: Vec<_> = expected_numbers
            .iter()
            .filter(|n| !unique.contains(n))
            .take(5)
            .collect();
        let extra: Vec<_> = got_numbers
            .iter()
            .filter(|n| !expected_set.contains(n))
            .take(5)
            .collect();
        panic!(
            "{label}: got {} numbers, expected {}; missing (first 5) {missing:?}; unexpected (first 5) {extra:?}",
            got_numbers.len(),
            expected_numbers.len()
        );
    }
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e, "{label}: {} differs", e.phone_number);
    }
}

// ---- GetPhoneNumber ---------------------------------------------------------------------------

async fn get_phone_number_accepts_every_spelling(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut base = number("+14255388701", NumberType::DirectRouting);
    base.city = "Redmond".into();
    let mut extension = number("+14255388701;ext=1001", NumberType::DirectRouting);
    extension.city = "Redmond, desk 1001".into();
    extension.capabilities =
        capabilities(&[Capability::UserAssignment, Capability::ConferenceAssignment]);
    app.seed_numbers(
        TENANT,
        &[
            number("+14255550101", NumberType::CallingPlan),
            base,
            extension,
            number("+442079460000", NumberType::CallingPlan),
        ],
    )
    .await;
    let mut client = app.reader(TENANT);

    for spelling in [
        "+14255550101",
        "14255550101",
        "+1 (425) 555-0101",
        "1 (425) 555-0101",
        "+1-425-555-0101",
        "+1.425.555.0101",
        "+1 425 555 0101",
        "  +14255550101  ",
    ] {
        let found = get(&mut client, spelling)
            .await
            .unwrap_or_else(|s| panic!("{spelling:?} was refused: {s:?}"));
        assert_eq!(found.phone_number, "+14255550101", "{spelling:?}");
        assert_eq!(found.country, "US", "{spelling:?}");
        assert_eq!(found.number_type, pb::NumberType::CallingPlan as i32);
        assert_eq!(
            found.assignment_status,
            pb::AssignmentStatus::Unassigned as i32
        );
        assert_eq!(
            found.activation_state,
            pb::ActivationState::Activated as i32
        );
        assert_eq!(found.capabilities, [pb::Capability::UserAssignment as i32]);
        assert_eq!(found.assigned_to, "");
    }

    for spelling in [
        "+442079460000",
        "442079460000",
        "+44 20 7946 0000",
        "+44 (20) 7946-0000",
    ] {
        let found = get(&mut client, spelling)
            .await
            .unwrap_or_else(|s| panic!("{spelling:?} was refused: {s:?}"));
        assert_eq!(found.phone_number, "+442079460000", "{spelling:?}");
        assert_eq!(found.country, "GB", "{spelling:?}");
    }

    // A Direct Routing extension is a number of its own, found by its full form only.
    for spelling in [
        "+14255388701;ext=1001",
        "14255388701;ext=1001",
        "+1 (425) 538-8701;ext=1001",
        "+14255388701;EXT=1001",
    ] {
        let found = get(&mut client, spelling)
            .await
            .unwrap_or_else(|s| panic!("{spelling:?} was refused: {s:?}"));
        assert_eq!(found.phone_number, "+14255388701;ext=1001", "{spelling:?}");
        assert_eq!(found.city, "Redmond, desk 1001");
        assert_eq!(found.country, "US");
        assert_eq!(found.number_type, pb::NumberType::DirectRouting as i32);
        assert_eq!(
            found.capabilities,
            [
                pb::Capability::UserAssignment as i32,
                pb::Capability::ConferenceAssignment as i32
            ]
        );
    }
    let base = get(&mut client, "+1 425 538 8701")
        .await
        .expect("the base number");
    assert_eq!(base.phone_number, "+14255388701");
    assert_eq!(base.city, "Redmond");
    assert_eq!(base.capabilities, [pb::Capability::UserAssignment as i32]);

    // Valid numbers that are not in the inventory.
    for (absent, canonical) in [
        ("+14255550199", "+14255550199"),
        ("1 (425) 555-0102", "+14255550102"),
        ("+14255388701;ext=1002", "+14255388701;ext=1002"),
        ("+14255550101;ext=1001", "+14255550101;ext=1001"),
        ("+442079460001", "+442079460001"),
    ] {
        let status = assert_error(
            get(&mut client, absent).await,
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
        let details = tonic_types::StatusExt::get_error_details(&status);
        let info = details.error_info().expect("error info");
        assert_eq!(
            info.metadata.get("phoneNumber").map(String::as_str),
            Some(canonical),
            "{absent:?}: {status:?}"
        );
    }

    // Admins read the same record.
    let as_admin = get(&mut app.admin(TENANT), "14255550101").await.unwrap();
    assert_eq!(as_admin.phone_number, "+14255550101");
}

async fn invalid_phone_numbers_are_refused_and_the_server_keeps_serving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_numbers(TENANT, &[number("+14255550101", NumberType::CallingPlan)])
        .await;
    let mut client = app.admin(TENANT);

    let long_digits = "9".repeat(10_000);
    let long_pluses = "+1".repeat(5_000);
    let long_unicode = "é".repeat(10_000);
    let long_number_like = format!("+1425555{}", "0".repeat(9_992));
    let invalid: Vec<&str> = vec![
        // Letters.
        "+1 425 555 FLOW",
        "abc",
        "+1425555010I",
        "0x14255550101",
        "sip:+14255550101",
        "+1 425 555 0101 x1001",
        "+14255550101#",
        "*67+14255550101",
        // Too long.
        "+1425555010199999",
        "+1234567890123456",
        // No country code.
        "4255550101",
        "(425) 555-0101",
        "555-0101",
        // A tel: URI.
        "tel:+14255550101",
        "TEL:+14255550101",
        "tel:14255550101",
        // Nothing, or no digits.
        "",
        "   ",
        "+",
        "++",
        "()-.",
        // A + that is not first.
        "1+4255550101",
        "+1425+5550101",
        "++14255550101",
        "+14255550101+",
        // Bad extensions and parameters.
        "+14255550101;ext=",
        "+14255550101;ext=12ab",
        "+14255550101;ext=-1",
        "+14255550101;ext=12345678901",
        "+14255550101;ext=1001;ext=1002",
        "+14255550101;foo=1",
        "+14255550101;",
        "+14255550101;ex=1",
        ";ext=1001",
        // Unknown country codes, numbers invalid for their country, global service numbers.
        "+999123",
        "+999123456789",
        "+0123456789",
        "+14250550101",
        "+80012345678",
        // Huge inputs.
        &long_digits,
        &long_pluses,
        &long_unicode,
        &long_number_like,
        // Digits that are not ASCII.
        "+１４２５５５５０１０１",
        "+١٤٢٥٥٥٥٠١٠١",
        "+१४२५५५५०१०१",
        // Control and invisible characters.
        "+1425555\u{0}0101",
        "+14255550101\u{0}",
        "\u{0}",
        "+1425\u{7}5550101",
        "+1425555\u{1b}[0m0101",
        "\u{202e}+14255550101",
        "+14255550101\u{200b}",
        "+1425555\r\n0101",
    ];
    // Every input is checked, and every failure reported at the end, so one bad answer does not
    // hide another.
    let mut failures = Vec::new();
    for input in &invalid {
        if let Err(why) = refused_as_invalid_number(get(&mut client, input).await) {
            failures.push(format!("{}: {why}", describe(input)));
        }
    }

    // The same inputs as a reader, concurrently: still refused, and nothing falls over.
    let reader = app.reader(TENANT);
    let tasks: Vec<_> = invalid
        .iter()
        .map(|input| {
            let mut reader = reader.clone();
            let input = (*input).to_owned();
            tokio::spawn(async move {
                let result = get(&mut reader, &input).await;
                refused_as_invalid_number(result)
                    .map_err(|why| format!("{} (concurrently): {why}", describe(&input)))
            })
        })
        .collect();
    for task in tasks {
        if let Err(why) = task.await.expect("task") {
            failures.push(why);
        }
    }

    // After all that, the server still answers.
    let found = get(&mut client, "+1 (425) 555-0101")
        .await
        .expect("a valid request");
    assert_eq!(found.phone_number, "+14255550101");
    let listed = list(&mut client, pb::ListPhoneNumbersRequest::default())
        .await
        .expect("a valid listing");
    assert_eq!(listed.phone_numbers.len(), 1);

    assert!(
        failures.is_empty(),
        "{} invalid inputs were not answered INVALID_ARGUMENT / INVALID_PHONE_NUMBER on phone_number:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A short, printable description of a test input.
fn describe(input: &str) -> String {
    let shown: String = input.chars().take(24).collect();
    format!(
        "{shown:?} ({} characters, {} bytes)",
        input.chars().count(),
        input.len()
    )
}

/// Checks, without panicking, that `result` is INVALID_ARGUMENT / INVALID_PHONE_NUMBER with a
/// `phone_number` field violation.
fn refused_as_invalid_number(result: Result<pb::PhoneNumber, Status>) -> Result<(), String> {
    let status = match result {
        Ok(found) => return Err(format!("accepted as {}", found.phone_number)),
        Err(status) => status,
    };
    let details = tonic_types::StatusExt::get_error_details(&status);
    let reason = details.error_info().map(|info| info.reason.clone());
    let fields = violated_fields(&status);
    if status.code() != Code::InvalidArgument
        || reason.as_deref() != Some("INVALID_PHONE_NUMBER")
        || fields != ["phone_number"]
    {
        let message: String = status.message().chars().take(200).collect();
        return Err(format!(
            "answered {:?} reason {reason:?} fields {fields:?}: {message}",
            status.code()
        ));
    }
    Ok(())
}

// ---- ListPhoneNumbers: pagination and filters --------------------------------------------------

/// The seeded inventory of the pagination test and who holds what.
struct Inventory {
    records: Vec<PhoneNumber>,
    holders: HashMap<String, (String, TargetKind)>,
    alice: pb::User,
    bob: pb::User,
    reception: pb::User,
    headquarters: String,
    store: String,
}

impl Inventory {
    /// The expected answer of a listing whose filters are `keep`, ordered by number.
    fn expected(&self, keep: impl Fn(&PhoneNumber) -> bool) -> Vec<Summary> {
        let mut kept: Vec<&PhoneNumber> = self.records.iter().filter(|r| keep(r)).collect();
        kept.sort_by_key(|r| r.number.canonical());
        kept.iter()
            .map(|r| Summary::of_record(r, &self.holders))
            .collect()
    }
}

const OPERATOR_DEFAULT: &str = "fabrikam-telecom";
const OPERATOR_OTHER: &str = "northwind-voice";

/// 2,600 numbers of three types in two countries, some held by two users and a resource account,
/// some pending, some with other capabilities, operators or emergency locations.
async fn seed_inventory(app: &TestApp) -> Inventory {
    let alice = upsert(
        app,
        "alice@contoso.com",
        "Alice Adams",
        pb::user::Kind::User,
    )
    .await;
    let bob = upsert(app, "bob@contoso.com", "Bob Baker", pb::user::Kind::User).await;
    let reception = upsert(
        app,
        "reception@contoso.com",
        "Reception",
        pb::user::Kind::ResourceAccount,
    )
    .await;
    let headquarters = create_location(
        app,
        "Headquarters",
        "1",
        "Microsoft Way",
        "Redmond",
        "98052",
    )
    .await;
    let store = create_location(app, "Store", "500", "Pine", "Seattle", "98101").await;

    let mut spelled = Vec::new();
    spelled.extend((0..1000).map(|i| format!("+1425555{i:04}")));
    spelled.extend((0..800).map(|i| format!("+1206555{i:04}")));
    spelled.extend((0..790).map(|i| format!("+44207946{i:04}")));
    spelled.extend((0..10).map(|k| format!("+1425555{:04};ext={}", k * 37, 1000 + k)));
    assert_eq!(spelled.len(), 2600);
    for s in &spelled {
        let parsed = E164::parse(s).unwrap_or_else(|e| panic!("{s} is not valid: {e}"));
        assert_eq!(
            &parsed.canonical(),
            s,
            "seed numbers are spelled canonically"
        );
    }

    let mut primaries: HashSet<String> = HashSet::new();
    let mut next_secondary = 0usize;
    let mut category_for = |holder: &str| {
        if primaries.insert(holder.to_owned()) {
            AssignmentCategory::Primary
        } else {
            next_secondary += 1;
            if next_secondary.is_multiple_of(2) {
                AssignmentCategory::Private
            } else {
                AssignmentCategory::Alternate
            }
        }
    };
    let mut records = Vec::with_capacity(spelled.len());
    for (j, s) in spelled.iter().enumerate() {
        let number_type = if s.contains(";ext=") {
            NumberType::DirectRouting
        } else {
            [
                NumberType::CallingPlan,
                NumberType::OperatorConnect,
                NumberType::DirectRouting,
            ][j % 3]
        };
        let mut record = number(s, number_type);
        if number_type == NumberType::OperatorConnect {
            record.operator_id = Some(
                if j % 4 == 1 {
                    OPERATOR_OTHER
                } else {
                    OPERATOR_DEFAULT
                }
                .to_owned(),
            );
        }
        record.capabilities = if j % 5 == 4 {
            capabilities(&[
                Capability::VoiceApplicationAssignment,
                Capability::ConferenceAssignment,
            ])
        } else if j % 11 == 0 {
            capabilities(&[Capability::UserAssignment, Capability::ConferenceAssignment])
        } else {
            capabilities(&[Capability::UserAssignment])
        };
        record.activation_state = if j % 13 == 1 {
            ActivationState::AssignmentPending
        } else if j % 17 == 3 {
            ActivationState::UpdatePending
        } else {
            ActivationState::Activated
        };
        record.emergency_location_id = if j % 9 == 5 {
            Some(headquarters.clone())
        } else if j % 23 == 7 {
            Some(store.clone())
        } else {
            None
        };
        if record.capabilities.contains(Capability::UserAssignment) && j % 10 == 3 {
            let holder = if (j / 10) % 2 == 0 { &alice } else { &bob };
            let category = category_for(&holder.id);
            record = assigned(record, &holder.id, category);
        } else if record
            .capabilities
            .contains(Capability::VoiceApplicationAssignment)
            && j % 10 == 9
        {
            let category = category_for(&reception.id);
            record = assigned(record, &reception.id, category);
            if let Some(assignment) = record.assignment.as_mut() {
                assignment.target_kind = TargetKind::ResourceAccount;
            }
        }
        records.push(record);
    }
    app.seed_numbers(TENANT, &records).await;

    let holders = [
        (
            alice.id.clone(),
            (alice.user_principal_name.clone(), TargetKind::User),
        ),
        (
            bob.id.clone(),
            (bob.user_principal_name.clone(), TargetKind::User),
        ),
        (
            reception.id.clone(),
            (
                reception.user_principal_name.clone(),
                TargetKind::ResourceAccount,
            ),
        ),
    ]
    .into_iter()
    .collect();
    Inventory {
        records,
        holders,
        alice,
        bob,
        reception,
        headquarters,
        store,
    }
}

fn held_by(record: &PhoneNumber, user: &pb::User) -> bool {
    record
        .assignment
        .as_ref()
        .is_some_and(|a| a.target_id == user.id)
}

async fn list_pages_cover_a_large_inventory_under_every_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let inventory = seed_inventory(&app).await;
    let inv = &inventory;
    let mut client = app.reader(TENANT);
    let everything = inv.expected(|_| true);
    assert_eq!(everything.len(), 2600);

    // The default page size is 100, and the first page says there is more.
    let first = list(&mut client, pb::ListPhoneNumbersRequest::default())
        .await
        .unwrap();
    assert_eq!(first.phone_numbers.len(), 100);
    assert!(!first.next_page_token.is_empty());
    let first: Vec<Summary> = first
        .phone_numbers
        .iter()
        .map(Summary::of_response)
        .collect();
    assert_eq!(first, everything[..100]);

    // Page sizes above the maximum are treated as 1000.
    let huge = list(
        &mut client,
        pb::ListPhoneNumbersRequest {
            page_size: 5000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(huge.phone_numbers.len(), 1000);
    assert!(!huge.next_page_token.is_empty());

    // The whole inventory, with the default, the largest, an oversized and a dividing page size.
    for page_size in [0, 1000, 5000, 650, 999] {
        let label = format!("everything, page_size {page_size}");
        let got: Vec<Summary> = walk(
            &mut client,
            &label,
            pb::ListPhoneNumbersRequest {
                page_size,
                ..Default::default()
            },
        )
        .await
        .iter()
        .map(Summary::of_response)
        .collect();
        assert_same_numbers(&label, &got, &everything);
    }

    // The page size may change from page to page; the token still continues the listing.
    let mut request = pb::ListPhoneNumbersRequest::default();
    let mut got = Vec::new();
    for page_size in [1, 7, 300, 1000, 5000, 2].into_iter().cycle() {
        request.page_size = page_size;
        let page = list(&mut client, request.clone()).await.unwrap();
        if page.next_page_token.is_empty() {
            assert!(page.phone_numbers.len() <= effective_page_size(page_size));
        } else {
            assert_eq!(page.phone_numbers.len(), effective_page_size(page_size));
        }
        got.extend(page.phone_numbers.iter().map(Summary::of_response));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_same_numbers("changing page sizes", &got, &everything);

    // Every filter, walked to the end.
    let user_caps = [pb::Capability::UserAssignment as i32];
    let conference = [pb::Capability::ConferenceAssignment as i32];
    let user_and_conference = [
        pb::Capability::UserAssignment as i32,
        pb::Capability::ConferenceAssignment as i32,
    ];
    let has = |record: &PhoneNumber, wanted: &[Capability]| {
        record.capabilities.contains_all(capabilities(wanted))
    };
    type Keep<'a> = Box<dyn Fn(&PhoneNumber) -> bool + 'a>;
    let alice = &inv.alice;
    let bob = &inv.bob;
    let reception = &inv.reception;
    let cases: Vec<(&str, pb::ListPhoneNumbersRequest, Keep<'_>)> = vec![
        (
            "assigned_to alice by UPN",
            pb::ListPhoneNumbersRequest {
                assigned_to: "alice@contoso.com".into(),
                ..Default::default()
            },
            Box::new(|r| held_by(r, alice)),
        ),
        (
            "assigned_to alice by UPN in other case",
            pb::ListPhoneNumbersRequest {
                assigned_to: "ALICE@Contoso.COM".into(),
                ..Default::default()
            },
            Box::new(|r| held_by(r, alice)),
        ),
        (
            "assigned_to bob by id",
            pb::ListPhoneNumbersRequest {
                assigned_to: bob.id.clone(),
                ..Default::default()
            },
            Box::new(|r| held_by(r, bob)),
        ),
        (
            "assigned_to bob by sip address",
            pb::ListPhoneNumbersRequest {
                assigned_to: "sip:bob@contoso.com".into(),
                ..Default::default()
            },
            Box::new(|r| held_by(r, bob)),
        ),
        (
            "assigned_to the resource account",
            pb::ListPhoneNumbersRequest {
                assigned_to: "reception@contoso.com".into(),
                ..Default::default()
            },
            Box::new(|r| held_by(r, reception)),
        ),
        (
            "number_type CALLING_PLAN",
            pb::ListPhoneNumbersRequest {
                number_type: pb::NumberType::CallingPlan as i32,
                ..Default::default()
            },
            Box::new(|r| r.number_type == NumberType::CallingPlan),
        ),
        (
            "number_type OPERATOR_CONNECT",
            pb::ListPhoneNumbersRequest {
                number_type: pb::NumberType::OperatorConnect as i32,
                ..Default::default()
            },
            Box::new(|r| r.number_type == NumberType::OperatorConnect),
        ),
        (
            "number_type DIRECT_ROUTING",
            pb::ListPhoneNumbersRequest {
                number_type: pb::NumberType::DirectRouting as i32,
                ..Default::default()
            },
            Box::new(|r| r.number_type == NumberType::DirectRouting),
        ),
        (
            "assignment_status UNASSIGNED",
            pb::ListPhoneNumbersRequest {
                assignment_status: pb::AssignmentStatus::Unassigned as i32,
                ..Default::default()
            },
            Box::new(|r| r.assignment.is_none()),
        ),
        (
            "assignment_status USER_ASSIGNED",
            pb::ListPhoneNumbersRequest {
                assignment_status: pb::AssignmentStatus::UserAssigned as i32,
                ..Default::default()
            },
            Box::new(|r| held_by(r, alice) || held_by(r, bob)),
        ),
        (
            "assignment_status VOICE_APPLICATION_ASSIGNED",
            pb::ListPhoneNumbersRequest {
                assignment_status: pb::AssignmentStatus::VoiceApplicationAssigned as i32,
                ..Default::default()
            },
            Box::new(|r| held_by(r, reception)),
        ),
        (
            "activation_state ACTIVATED",
            pb::ListPhoneNumbersRequest {
                activation_state: pb::ActivationState::Activated as i32,
                ..Default::default()
            },
            Box::new(|r| r.activation_state == ActivationState::Activated),
        ),
        (
            "activation_state ASSIGNMENT_PENDING",
            pb::ListPhoneNumbersRequest {
                activation_state: pb::ActivationState::AssignmentPending as i32,
                ..Default::default()
            },
            Box::new(|r| r.activation_state == ActivationState::AssignmentPending),
        ),
        (
            "activation_state UPDATE_PENDING",
            pb::ListPhoneNumbersRequest {
                activation_state: pb::ActivationState::UpdatePending as i32,
                ..Default::default()
            },
            Box::new(|r| r.activation_state == ActivationState::UpdatePending),
        ),
        (
            "country US",
            pb::ListPhoneNumbersRequest {
                country: "US".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.country().as_str() == "US"),
        ),
        (
            "country gb (lower case)",
            pb::ListPhoneNumbersRequest {
                country: "gb".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.country().as_str() == "GB"),
        ),
        (
            "operator_id northwind-voice",
            pb::ListPhoneNumbersRequest {
                operator_id: OPERATOR_OTHER.into(),
                ..Default::default()
            },
            Box::new(|r| r.operator_id.as_deref() == Some(OPERATOR_OTHER)),
        ),
        (
            "operator_id fabrikam-telecom",
            pb::ListPhoneNumbersRequest {
                operator_id: OPERATOR_DEFAULT.into(),
                ..Default::default()
            },
            Box::new(|r| r.operator_id.as_deref() == Some(OPERATOR_DEFAULT)),
        ),
        (
            "capabilities USER_ASSIGNMENT",
            pb::ListPhoneNumbersRequest {
                capabilities: user_caps.to_vec(),
                ..Default::default()
            },
            Box::new(|r| has(r, &[Capability::UserAssignment])),
        ),
        (
            "capabilities CONFERENCE_ASSIGNMENT",
            pb::ListPhoneNumbersRequest {
                capabilities: conference.to_vec(),
                ..Default::default()
            },
            Box::new(|r| has(r, &[Capability::ConferenceAssignment])),
        ),
        (
            "capabilities USER_ASSIGNMENT and CONFERENCE_ASSIGNMENT",
            pb::ListPhoneNumbersRequest {
                capabilities: user_and_conference.to_vec(),
                ..Default::default()
            },
            Box::new(|r| {
                has(
                    r,
                    &[Capability::UserAssignment, Capability::ConferenceAssignment],
                )
            }),
        ),
        (
            "capabilities VOICE_APPLICATION_ASSIGNMENT",
            pb::ListPhoneNumbersRequest {
                capabilities: vec![pb::Capability::VoiceApplicationAssignment as i32],
                ..Default::default()
            },
            Box::new(|r| has(r, &[Capability::VoiceApplicationAssignment])),
        ),
        (
            "number_prefix +1206",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+1206".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.canonical().starts_with("+1206")),
        ),
        (
            "number_prefix 1206 (without +)",
            pb::ListPhoneNumbersRequest {
                number_prefix: "1206".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.canonical().starts_with("+1206")),
        ),
        (
            "number_prefix +1",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+1".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.canonical().starts_with("+1")),
        ),
        (
            "number_prefix 44207946",
            pb::ListPhoneNumbersRequest {
                number_prefix: "44207946".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.canonical().starts_with("+44207946")),
        ),
        (
            "number_prefix +14255550 (with extensions)",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+14255550".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.canonical().starts_with("+14255550")),
        ),
        (
            "number_prefix +14255550037 (a number and its extension)",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+14255550037".into(),
                ..Default::default()
            },
            Box::new(|r| r.number.canonical().starts_with("+14255550037")),
        ),
        (
            "emergency_location_id headquarters",
            pb::ListPhoneNumbersRequest {
                emergency_location_id: inv.headquarters.clone(),
                ..Default::default()
            },
            Box::new(|r| r.emergency_location_id.as_deref() == Some(inv.headquarters.as_str())),
        ),
        (
            "emergency_location_id store",
            pb::ListPhoneNumbersRequest {
                emergency_location_id: inv.store.clone(),
                ..Default::default()
            },
            Box::new(|r| r.emergency_location_id.as_deref() == Some(inv.store.as_str())),
        ),
        (
            "Operator Connect, US, user capability, activated, prefix 1425, operator fabrikam",
            pb::ListPhoneNumbersRequest {
                number_type: pb::NumberType::OperatorConnect as i32,
                country: "US".into(),
                capabilities: user_caps.to_vec(),
                activation_state: pb::ActivationState::Activated as i32,
                number_prefix: "1425".into(),
                operator_id: OPERATOR_DEFAULT.into(),
                ..Default::default()
            },
            Box::new(|r| {
                r.number_type == NumberType::OperatorConnect
                    && r.number.country().as_str() == "US"
                    && has(r, &[Capability::UserAssignment])
                    && r.activation_state == ActivationState::Activated
                    && r.number.canonical().starts_with("+1425")
                    && r.operator_id.as_deref() == Some(OPERATOR_DEFAULT)
            }),
        ),
        (
            "bob, user assigned, Calling Plan, US",
            pb::ListPhoneNumbersRequest {
                assigned_to: "bob@contoso.com".into(),
                assignment_status: pb::AssignmentStatus::UserAssigned as i32,
                number_type: pb::NumberType::CallingPlan as i32,
                country: "US".into(),
                ..Default::default()
            },
            Box::new(|r| {
                held_by(r, bob)
                    && r.number_type == NumberType::CallingPlan
                    && r.number.country().as_str() == "US"
            }),
        ),
        (
            "unassigned, GB, headquarters, pending",
            pb::ListPhoneNumbersRequest {
                assignment_status: pb::AssignmentStatus::Unassigned as i32,
                country: "GB".into(),
                emergency_location_id: inv.headquarters.clone(),
                activation_state: pb::ActivationState::AssignmentPending as i32,
                ..Default::default()
            },
            Box::new(|r| {
                r.assignment.is_none()
                    && r.number.country().as_str() == "GB"
                    && r.emergency_location_id.as_deref() == Some(inv.headquarters.as_str())
                    && r.activation_state == ActivationState::AssignmentPending
            }),
        ),
    ];
    for (label, request, keep) in &cases {
        let expected = inv.expected(keep);
        assert!(
            !expected.is_empty(),
            "{label}: the seed should match something"
        );
        assert!(
            expected.len() < everything.len(),
            "{label}: the filter should filter"
        );
        // Pages small enough that every listing spans several (four or five).
        let page_size = i32::try_from((expected.len() / 4).clamp(1, 1000)).unwrap();
        let label = format!("{label}, page_size {page_size}");
        let got: Vec<Summary> = walk(
            &mut client,
            &label,
            pb::ListPhoneNumbersRequest {
                page_size,
                ..request.clone()
            },
        )
        .await
        .iter()
        .map(Summary::of_response)
        .collect();
        assert_same_numbers(&label, &got, &expected);
    }

    // Sanity of the seed itself: every kind of record the filters look for exists.
    let count =
        |keep: &dyn Fn(&PhoneNumber) -> bool| inv.records.iter().filter(|r| keep(r)).count();
    assert_eq!(
        count(&|r| held_by(r, alice)
            && r.assignment.as_ref().unwrap().category == AssignmentCategory::Primary),
        1
    );
    assert_eq!(
        count(&|r| held_by(r, bob)
            && r.assignment.as_ref().unwrap().category == AssignmentCategory::Primary),
        1
    );
    assert_eq!(count(&|r| r.number.extension().is_some()), 10);

    // Filters that match nothing answer one empty page.
    for request in [
        pb::ListPhoneNumbersRequest {
            number_prefix: "+1999".into(),
            ..Default::default()
        },
        pb::ListPhoneNumbersRequest {
            assigned_to: "alice@contoso.com".into(),
            assignment_status: pb::AssignmentStatus::Unassigned as i32,
            ..Default::default()
        },
        pb::ListPhoneNumbersRequest {
            country: "FR".into(),
            ..Default::default()
        },
        pb::ListPhoneNumbersRequest {
            emergency_location_id: "no-such-location".into(),
            ..Default::default()
        },
        pb::ListPhoneNumbersRequest {
            operator_id: "no-such-operator".into(),
            ..Default::default()
        },
    ] {
        let page = list(&mut client, request.clone()).await.unwrap();
        assert!(page.phone_numbers.is_empty(), "{request:?}");
        assert!(page.next_page_token.is_empty(), "{request:?}");
    }

    // Another tenant sees none of it.
    let other = list(
        &mut app.reader("fabrikam-corp"),
        pb::ListPhoneNumbersRequest::default(),
    )
    .await
    .unwrap();
    assert!(other.phone_numbers.is_empty());
}

async fn list_requests_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.user(TENANT, "alice@contoso.com", "Alice", "US").await;
    let mut records: Vec<PhoneNumber> = (0..30)
        .map(|i| number(&format!("+1425555{i:04}"), NumberType::CallingPlan))
        .collect();
    records[0] = assigned(records[0].clone(), &alice.id, AssignmentCategory::Primary);
    records.push(number("+442079460000", NumberType::CallingPlan));
    app.seed_numbers(TENANT, &records).await;
    let mut client = app.reader(TENANT);

    // Negative page sizes.
    for page_size in [-1, i32::MIN] {
        let status = assert_error(
            list(
                &mut client,
                pb::ListPhoneNumbersRequest {
                    page_size,
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), ["page_size"]);
    }

    // A token continues only the request that produced it.
    let first_request = pb::ListPhoneNumbersRequest {
        country: "US".into(),
        page_size: 10,
        ..Default::default()
    };
    let first = list(&mut client, first_request.clone()).await.unwrap();
    assert_eq!(first.phone_numbers.len(), 10);
    assert_eq!(first.phone_numbers[9].phone_number, "+14255550009");
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    for (what, changed) in [
        (
            "another country",
            pb::ListPhoneNumbersRequest {
                country: "GB".into(),
                ..first_request.clone()
            },
        ),
        (
            "the country dropped",
            pb::ListPhoneNumbersRequest {
                country: String::new(),
                ..first_request.clone()
            },
        ),
        (
            "a number type added",
            pb::ListPhoneNumbersRequest {
                number_type: pb::NumberType::CallingPlan as i32,
                ..first_request.clone()
            },
        ),
        (
            "a prefix added",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+1425".into(),
                ..first_request.clone()
            },
        ),
        (
            "assigned_to added",
            pb::ListPhoneNumbersRequest {
                assigned_to: "alice@contoso.com".into(),
                ..first_request.clone()
            },
        ),
        (
            "a capability added",
            pb::ListPhoneNumbersRequest {
                capabilities: vec![pb::Capability::UserAssignment as i32],
                ..first_request.clone()
            },
        ),
    ] {
        let status = assert_error(
            list(
                &mut client,
                pb::ListPhoneNumbersRequest {
                    page_token: token.clone(),
                    ..changed
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        assert_eq!(violated_fields(&status), ["page_token"], "{what}");
    }
    // Only the page size may change.
    let second = list(
        &mut client,
        pb::ListPhoneNumbersRequest {
            page_size: 15,
            page_token: token.clone(),
            ..first_request.clone()
        },
    )
    .await
    .unwrap();
    let second: Vec<&str> = second
        .phone_numbers
        .iter()
        .map(|n| n.phone_number.as_str())
        .collect();
    let expected: Vec<String> = (10..25).map(|i| format!("+1425555{i:04}")).collect();
    assert_eq!(second, expected);

    // Tokens that this service never issued.
    let garbage_tokens = [
        "garbage".to_owned(),
        "not a token!".to_owned(),
        "AAAA".to_owned(),
        "%%%".to_owned(),
        format!("{token}x"),
        token[..token.len() / 2].to_owned(),
        "A".repeat(2000),
    ];
    for garbage in garbage_tokens {
        let status = assert_error(
            list(
                &mut client,
                pb::ListPhoneNumbersRequest {
                    page_token: garbage.clone(),
                    ..first_request.clone()
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        assert_eq!(violated_fields(&status), ["page_token"], "{garbage:?}");
    }

    // assigned_to must name a user of the tenant.
    for unknown in ["nobody@contoso.com", "sip:nobody@contoso.com", "no-such-id"] {
        assert_error(
            list(
                &mut client,
                pb::ListPhoneNumbersRequest {
                    assigned_to: unknown.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::NotFound,
            "USER_NOT_FOUND",
        );
    }
    // Alice of contoso is unknown to another tenant.
    assert_error(
        list(
            &mut app.reader("fabrikam-corp"),
            pb::ListPhoneNumbersRequest {
                assigned_to: "alice@contoso.com".into(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let status = assert_error(
        list(
            &mut client,
            pb::ListPhoneNumbersRequest {
                assigned_to: "bad\u{7}name@contoso.com".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["assigned_to"]);

    // Malformed filters.
    let bad: Vec<(&str, pb::ListPhoneNumbersRequest)> = vec![
        (
            "number_prefix",
            pb::ListPhoneNumbersRequest {
                number_prefix: "12a".into(),
                ..Default::default()
            },
        ),
        (
            "number_prefix",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+".into(),
                ..Default::default()
            },
        ),
        (
            "number_prefix",
            pb::ListPhoneNumbersRequest {
                number_prefix: "++1425".into(),
                ..Default::default()
            },
        ),
        (
            "number_prefix",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+1 425".into(),
                ..Default::default()
            },
        ),
        (
            "number_prefix",
            pb::ListPhoneNumbersRequest {
                number_prefix: "1".repeat(16),
                ..Default::default()
            },
        ),
        (
            "number_prefix",
            pb::ListPhoneNumbersRequest {
                number_prefix: "+１４２５".into(),
                ..Default::default()
            },
        ),
        (
            "number_type",
            pb::ListPhoneNumbersRequest {
                number_type: 42,
                ..Default::default()
            },
        ),
        (
            "number_type",
            pb::ListPhoneNumbersRequest {
                number_type: -1,
                ..Default::default()
            },
        ),
        (
            "assignment_status",
            pb::ListPhoneNumbersRequest {
                assignment_status: 42,
                ..Default::default()
            },
        ),
        (
            "activation_state",
            pb::ListPhoneNumbersRequest {
                activation_state: 42,
                ..Default::default()
            },
        ),
        (
            "capabilities[0]",
            pb::ListPhoneNumbersRequest {
                capabilities: vec![42],
                ..Default::default()
            },
        ),
        (
            "capabilities[1]",
            pb::ListPhoneNumbersRequest {
                capabilities: vec![pb::Capability::UserAssignment as i32, 0],
                ..Default::default()
            },
        ),
        (
            "country",
            pb::ListPhoneNumbersRequest {
                country: "USA".into(),
                ..Default::default()
            },
        ),
        (
            "country",
            pb::ListPhoneNumbersRequest {
                country: "QQ".into(),
                ..Default::default()
            },
        ),
        (
            "country",
            pb::ListPhoneNumbersRequest {
                country: "1".into(),
                ..Default::default()
            },
        ),
    ];
    for (field, request) in bad {
        let status = assert_error(
            list(&mut client, request.clone()).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }

    // Still serving, and the valid filters above still work.
    let us = walk(
        &mut client,
        "US after errors",
        pb::ListPhoneNumbersRequest {
            country: "us".into(),
            page_size: 7,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(us.len(), 30);
    let held = list(
        &mut client,
        pb::ListPhoneNumbersRequest {
            assigned_to: alice.user_principal_name.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(held.phone_numbers.len(), 1);
    assert_eq!(held.phone_numbers[0].phone_number, "+14255550000");
    assert_eq!(held.phone_numbers[0].assigned_to, alice.id);
    assert_eq!(
        held.phone_numbers[0].assigned_to_user_principal_name,
        "alice@contoso.com"
    );
    assert_eq!(
        held.phone_numbers[0].assignment_category,
        pb::AssignmentCategory::Primary as i32
    );
    assert_eq!(
        held.phone_numbers[0].assignment_status,
        pb::AssignmentStatus::UserAssigned as i32
    );
}

async fn page_tokens_of_other_listings_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user(TENANT, "alice@contoso.com", "Alice", "US").await;
    app.user(TENANT, "bob@contoso.com", "Bob", "US").await;
    let numbers: Vec<PhoneNumber> = (0..5)
        .map(|i| number(&format!("+1425555{i:04}"), NumberType::CallingPlan))
        .collect();
    app.seed_numbers(TENANT, &numbers).await;
    let mut client = app.reader(TENANT);

    // Both lists have more pages; neither request has filters.
    let users_token = client
        .list_users(pb::ListUsersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!users_token.is_empty());
    let operators_token = client
        .list_operators(pb::ListOperatorsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!operators_token.is_empty());

    // A token of another listing does not continue this one: it must be refused, not silently
    // answer an empty (or arbitrary) page.
    for (origin, token) in [
        ("ListUsers", users_token),
        ("ListOperators", operators_token),
    ] {
        let result = list(
            &mut client,
            pb::ListPhoneNumbersRequest {
                page_token: token,
                ..Default::default()
            },
        )
        .await;
        if let Ok(page) = &result {
            let numbers: Vec<&str> = page
                .phone_numbers
                .iter()
                .map(|n| n.phone_number.as_str())
                .collect();
            panic!(
                "a {origin} page token was accepted by ListPhoneNumbers, which answered {numbers:?} \
                 (next_page_token {:?}) although the tenant has 5 numbers",
                page.next_page_token
            );
        }
        let status = assert_error(result, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_eq!(violated_fields(&status), ["page_token"], "{origin}");
    }
}

async fn page_tokens_of_another_tenant_or_altered_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for tenant in [TENANT, "fabrikam"] {
        let numbers: Vec<PhoneNumber> = (0..3)
            .map(|i| {
                let prefix = if tenant == TENANT {
                    "1425555"
                } else {
                    "1206555"
                };
                number(&format!("+{prefix}{i:04}"), NumberType::CallingPlan)
            })
            .collect();
        app.seed_numbers(tenant, &numbers).await;
    }
    let first_page = pb::ListPhoneNumbersRequest {
        page_size: 1,
        ..Default::default()
    };
    let token = list(&mut app.reader(TENANT), first_page.clone())
        .await
        .expect("Contoso's first page")
        .next_page_token;
    assert!(!token.is_empty());
    let next_page = |page_token: String| pb::ListPhoneNumbersRequest {
        page_token,
        ..first_page.clone()
    };
    assert_eq!(
        list(&mut app.reader(TENANT), next_page(token.clone()))
            .await
            .expect("Contoso's second page")
            .phone_numbers[0]
            .phone_number,
        "+14255550001"
    );

    // Another tenant's token, however alike its query, and a token altered by a character.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    for (client, token, what) in [
        (app.reader("fabrikam"), token.clone(), "Contoso's token"),
        (
            app.reader(TENANT),
            String::from_utf8(altered).unwrap(),
            "an altered token",
        ),
    ] {
        let status = assert_error(
            list(&mut client.clone(), next_page(token)).await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        assert_eq!(violated_fields(&status), ["page_token"], "{what}");
    }
}

on_both_stores!(
    page_tokens_of_another_tenant_or_altered_are_refused,
    get_phone_number_accepts_every_spelling,
    invalid_phone_numbers_are_refused_and_the_server_keeps_serving,
    list_pages_cover_a_large_inventory_under_every_filter,
    list_requests_are_validated,
    page_tokens_of_other_listings_are_refused,
);
