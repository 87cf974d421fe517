//! Operator Connect over the socket: the tenant's consent (EnableOperator, DisableOperator,
//! ListOperators), operators uploading numbers into the tenants that enabled them and taking
//! them back, and every credential that may not do so. Every refusal is checked to have changed
//! nothing.

use std::time::Duration;

use number_management::domain::NumberType;
use number_management::proto::v1 as pb;
use number_management::proto::v1::operator_connect_client::OperatorConnectClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Code, Request, Status};

use crate::calls::{
    all_audit_events as audit_events, all_phone_numbers as list_all, get_phone_number as get,
};
use crate::helpers::{
    Backend, Client, OperatorClient, TestApp, assert_error, number, violated_fields,
};
use crate::on_both_stores;

const T1: &str = "t1";
const T2: &str = "t2";
const FABRIKAM: &str = "fabrikam-telecom";
const NORTHWIND: &str = "northwind-voice";

const OPERATOR_CONNECT: i32 = pb::NumberType::OperatorConnect as i32;
const USER_ASSIGNMENT: i32 = pb::Capability::UserAssignment as i32;
const VOICE_APPLICATION: i32 = pb::Capability::VoiceApplicationAssignment as i32;
const CONFERENCE: i32 = pb::Capability::ConferenceAssignment as i32;
const UNASSIGNED: i32 = pb::AssignmentStatus::Unassigned as i32;
const USER_ASSIGNED: i32 = pb::AssignmentStatus::UserAssigned as i32;
const ACTIVATED: i32 = pb::ActivationState::Activated as i32;
const NOT_BLOCKED: i32 = pb::AssignmentBlockedState::NotBlocked as i32;

const ENABLE_OPERATOR: i32 = pb::AuditAction::EnableOperator as i32;
const DISABLE_OPERATOR: i32 = pb::AuditAction::DisableOperator as i32;
const UPLOAD: i32 = pb::AuditAction::UploadPhoneNumber as i32;
const OPERATOR_RELEASE: i32 = pb::AuditAction::OperatorReleasePhoneNumber as i32;

/// US numbers outside the Calling Plan catalogue, for operators to upload.
const X: &str = "+14255551001";
const Y: &str = "+14255551002";
const Z: &str = "+14255551003";
const CANADIAN: &str = "+16045551001";
const BRITISH: &str = "+442079461001";

// ---- helpers of this module --------------------------------------------------------------------

fn uploaded(phone_number: &str, capabilities: &[i32]) -> pb::UploadedNumber {
    pb::UploadedNumber {
        phone_number: phone_number.into(),
        capabilities: capabilities.to_vec(),
        ..Default::default()
    }
}

fn user_number(phone_number: &str) -> pb::UploadedNumber {
    uploaded(phone_number, &[USER_ASSIGNMENT])
}

fn upload_request(tenant: &str, numbers: Vec<pb::UploadedNumber>) -> pb::UploadNumbersRequest {
    pb::UploadNumbersRequest {
        tenant_id: tenant.into(),
        numbers,
        ..Default::default()
    }
}

async fn upload(
    client: &mut OperatorClient,
    request: pb::UploadNumbersRequest,
) -> Result<Vec<pb::PhoneNumber>, Status> {
    client
        .upload_numbers(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

fn release_request(tenant: &str, numbers: &[&str]) -> pb::ReleaseNumbersRequest {
    pb::ReleaseNumbersRequest {
        tenant_id: tenant.into(),
        phone_numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

async fn operator_release(
    client: &mut OperatorClient,
    request: pb::ReleaseNumbersRequest,
) -> Result<Vec<String>, Status> {
    client
        .release_numbers(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

async fn enable(
    client: &mut Client,
    operator_id: &str,
    countries: &[&str],
) -> Result<pb::Operator, Status> {
    client
        .enable_operator(pb::EnableOperatorRequest {
            operator_id: operator_id.into(),
            countries: countries.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn disable(client: &mut Client, operator_id: &str) -> Result<pb::Operator, Status> {
    client
        .disable_operator(pb::DisableOperatorRequest {
            operator_id: operator_id.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn operators(app: &TestApp, tenant: &str) -> Vec<pb::Operator> {
    app.reader(tenant)
        .list_operators(pb::ListOperatorsRequest::default())
        .await
        .expect("list operators")
        .into_inner()
        .operators
}

fn find<'a>(operators: &'a [pb::Operator], id: &str) -> &'a pb::Operator {
    operators
        .iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("operator {id} is listed"))
}

/// What a refusal must leave as it was: the inventory, the audit trail and the consents.
#[derive(Debug, PartialEq)]
struct State {
    numbers: Vec<pb::PhoneNumber>,
    audit: Vec<pb::AuditEvent>,
    operators: Vec<pb::Operator>,
}

async fn state(app: &TestApp, tenant: &str) -> State {
    State {
        numbers: list_all(
            &mut app.reader(tenant),
            pb::ListPhoneNumbersRequest::default(),
        )
        .await,
        audit: audit_events(app, tenant).await,
        operators: operators(app, tenant).await,
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
    assert_eq!(
        after.operators, before.operators,
        "{what}: the consents changed"
    );
}

fn phone_numbers(numbers: &[pb::PhoneNumber]) -> Vec<String> {
    numbers.iter().map(|n| n.phone_number.clone()).collect()
}

fn by_number<'a>(numbers: &'a [pb::PhoneNumber], phone_number: &str) -> &'a pb::PhoneNumber {
    numbers
        .iter()
        .find(|n| n.phone_number == phone_number)
        .unwrap_or_else(|| panic!("{phone_number} is in {numbers:?}"))
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

fn string_field(s: Option<&prost_types::Struct>, name: &str) -> Option<String> {
    match s?.fields.get(name)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(v) => Some(v.clone()),
        _ => None,
    }
}

fn bool_field(s: Option<&prost_types::Struct>, name: &str) -> Option<bool> {
    match s?.fields.get(name)?.kind.as_ref()? {
        prost_types::value::Kind::BoolValue(v) => Some(*v),
        _ => None,
    }
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn redmond_address() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Tenant One".into(),
        house_number: "1".into(),
        street_name: "Microsoft Way".into(),
        city: "Redmond".into(),
        state_or_province: "WA".into(),
        postal_code: "98052".into(),
        country: "US".into(),
        ..Default::default()
    }
}

fn london_address() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Tenant One UK".into(),
        house_number: "10".into(),
        street_name: "Downing Street".into(),
        city: "London".into(),
        postal_code: "SW1A 2AA".into(),
        country: "GB".into(),
        ..Default::default()
    }
}

/// Creates a (validated) emergency location as the tenant's admin and returns its id.
async fn create_location(app: &TestApp, tenant: &str, address: pb::CivicAddress) -> String {
    let created = app
        .admin(tenant)
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address: Some(address),
                description: "Reception".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("create the location")
        .into_inner();
    assert_eq!(
        created.validation_status,
        pb::ValidationStatus::Validated as i32
    );
    created.id
}

async fn assign(app: &TestApp, tenant: &str, identity: &str, phone_number: &str) {
    let assigned = app
        .admin(tenant)
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: identity.into(),
            phone_number: phone_number.into(),
            ..Default::default()
        })
        .await
        .expect("assign the number")
        .into_inner();
    assert_eq!(
        assigned.phone_number.expect("the number").assignment_status,
        USER_ASSIGNED
    );
}

async fn remove(app: &TestApp, tenant: &str, identity: &str, phone_number: &str) {
    app.admin(tenant)
        .remove_phone_number(pb::RemovePhoneNumberRequest {
            identity: identity.into(),
            phone_number: phone_number.into(),
            ..Default::default()
        })
        .await
        .expect("remove the number");
}

/// A tenant that enabled fabrikam for the US.
async fn tenant_with_fabrikam(app: &TestApp, tenant: &str) {
    enable(&mut app.admin(tenant), FABRIKAM, &["US"])
        .await
        .expect("enable Fabrikam for the US");
}

// ---- consent -----------------------------------------------------------------------------------

async fn uploads_need_the_tenants_consent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut fabrikam = app.operator(FABRIKAM);
    let mut admin = app.admin(T1);

    let empty = state(&app, T1).await;
    assert!(empty.numbers.is_empty() && empty.audit.is_empty());
    let status = assert_error(
        upload(&mut fabrikam, upload_request(T1, vec![user_number(X)])).await,
        Code::PermissionDenied,
        "OPERATOR_NOT_ENABLED",
    );
    assert!(status.message().contains(T1), "{status:?}");
    assert_unchanged(&empty, &state(&app, T1).await, "upload without consent");

    // The admin enables Fabrikam for the US.
    let enabled = enable(&mut admin, FABRIKAM, &["us"])
        .await
        .expect("enable Fabrikam");
    assert_eq!(enabled.id, FABRIKAM);
    assert_eq!(enabled.display_name, "Fabrikam Telecom");
    assert!(enabled.enabled);
    assert_eq!(enabled.enabled_countries, ["US"]);
    assert_eq!(enabled.countries, ["US", "CA"]);
    let listed = operators(&app, T1).await;
    assert_eq!(*find(&listed, FABRIKAM), enabled);
    let northwind = find(&listed, NORTHWIND);
    assert!(!northwind.enabled);
    assert!(northwind.enabled_countries.is_empty());
    // Consent is per tenant.
    assert!(!find(&operators(&app, T2).await, FABRIKAM).enabled);

    let events = audit_events(&app, T1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, ENABLE_OPERATOR);
    assert_eq!(events[0].actor, "test");
    assert!(events[0].before.is_none());
    assert_eq!(
        string_field(events[0].after.as_ref(), "operatorId").as_deref(),
        Some(FABRIKAM)
    );

    // Refusals, each leaving the consents as they were.
    let consented = state(&app, T1).await;
    let cases: Vec<(&str, Vec<&str>, Code, &str)> = vec![
        (
            FABRIKAM,
            vec!["GB"],
            Code::FailedPrecondition,
            "COUNTRY_NOT_SERVED",
        ),
        (
            FABRIKAM,
            vec!["US", "GB"],
            Code::FailedPrecondition,
            "COUNTRY_NOT_SERVED",
        ),
        (
            NORTHWIND,
            vec!["CA"],
            Code::FailedPrecondition,
            "COUNTRY_NOT_SERVED",
        ),
        (
            "contoso-phone",
            vec!["US"],
            Code::NotFound,
            "OPERATOR_NOT_FOUND",
        ),
        ("", vec!["US"], Code::NotFound, "OPERATOR_NOT_FOUND"),
    ];
    for (operator, countries, code, reason) in cases {
        assert_error(enable(&mut admin, operator, &countries).await, code, reason);
        assert_unchanged(
            &consented,
            &state(&app, T1).await,
            &format!("enable {operator} {countries:?}"),
        );
    }
    let status = assert_error(
        enable(&mut admin, FABRIKAM, &["USA"]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["countries[0]"]);
    assert_error(
        enable(&mut app.reader(T1), NORTHWIND, &["US"]).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_unchanged(&consented, &state(&app, T1).await, "invalid enables");

    // Northwind is still not enabled; Fabrikam is, for T1 only.
    assert_error(
        upload(
            &mut app.operator(NORTHWIND),
            upload_request(T1, vec![user_number(X)]),
        )
        .await,
        Code::PermissionDenied,
        "OPERATOR_NOT_ENABLED",
    );
    let t2 = state(&app, T2).await;
    assert_error(
        upload(&mut fabrikam, upload_request(T2, vec![user_number(X)])).await,
        Code::PermissionDenied,
        "OPERATOR_NOT_ENABLED",
    );
    assert_unchanged(&t2, &state(&app, T2).await, "upload into T2");
    assert_unchanged(&consented, &state(&app, T1).await, "refused uploads");

    let saved = upload(&mut fabrikam, upload_request(T1, vec![user_number(X)]))
        .await
        .expect("upload once enabled");
    assert_eq!(phone_numbers(&saved), [X]);

    // No countries: every country the operator serves.
    let northwind = enable(&mut admin, NORTHWIND, &[])
        .await
        .expect("enable Northwind everywhere");
    assert!(northwind.enabled);
    let mut countries = northwind.enabled_countries.clone();
    countries.sort();
    assert_eq!(countries, ["GB", "US"]);
    assert_eq!(*find(&operators(&app, T1).await, NORTHWIND), northwind);
}

// ---- UploadNumbers -----------------------------------------------------------------------------

async fn uploaded_numbers_enter_the_inventory(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    enable(&mut app.admin(T1), NORTHWIND, &["US", "GB"])
        .await
        .expect("enable Northwind");
    let location = create_location(&app, T1, redmond_address()).await;
    let mut fabrikam = app.operator(FABRIKAM);
    let before = state(&app, T1).await;

    let saved = upload(
        &mut fabrikam,
        upload_request(
            T1,
            vec![
                pb::UploadedNumber {
                    emergency_location_id: location.clone(),
                    ..user_number(X)
                },
                pb::UploadedNumber {
                    allow_tenant_location_update: Some(true),
                    ..uploaded("14255551002", &[VOICE_APPLICATION, CONFERENCE])
                },
                pb::UploadedNumber {
                    allow_tenant_location_update: Some(false),
                    ..user_number(Z)
                },
            ],
        ),
    )
    .await
    .expect("upload three numbers");
    let mut answered = phone_numbers(&saved);
    answered.sort();
    assert_eq!(answered, [X, Y, Z]);
    let expected = [
        (X, vec![USER_ASSIGNMENT], location.as_str(), false),
        (Y, vec![VOICE_APPLICATION, CONFERENCE], "", true),
        (Z, vec![USER_ASSIGNMENT], "", false),
    ];
    for (phone_number, capabilities, location, location_update_supported) in &expected {
        let n = by_number(&saved, phone_number);
        assert_eq!(n.number_type, OPERATOR_CONNECT, "{n:?}");
        assert_eq!(n.operator_id, FABRIKAM, "{n:?}");
        assert_eq!(n.country, "US", "{n:?}");
        assert_eq!(n.capabilities, *capabilities, "{n:?}");
        assert_eq!(n.assignment_status, UNASSIGNED, "{n:?}");
        assert_eq!(n.assigned_to, "", "{n:?}");
        assert_eq!(n.activation_state, ACTIVATED, "{n:?}");
        assert_eq!(n.assignment_blocked_state, NOT_BLOCKED, "{n:?}");
        assert_eq!(n.emergency_location_id, *location, "{n:?}");
        assert_eq!(
            n.location_update_supported, *location_update_supported,
            "{n:?}"
        );
        assert_eq!(n.etag, "1", "{n:?}");
    }

    // The inventory holds them as answered.
    let after = state(&app, T1).await;
    assert_eq!(phone_numbers(&after.numbers), [X, Y, Z]);
    for n in &after.numbers {
        assert_eq!(
            *n,
            to_micros(by_number(&saved, &n.phone_number).clone()),
            "stored as answered"
        );
    }
    let of_fabrikam = list_all(
        &mut app.reader(T1),
        pb::ListPhoneNumbersRequest {
            operator_id: FABRIKAM.into(),
            number_type: OPERATOR_CONNECT,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(of_fabrikam, after.numbers);
    let at_location = list_all(
        &mut app.reader(T1),
        pb::ListPhoneNumbersRequest {
            emergency_location_id: location.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(phone_numbers(&at_location), [X]);

    // One audit event per number, by the operator.
    assert_eq!(after.audit.len(), before.audit.len() + 3);
    let mut audited: Vec<String> = after.audit[..3]
        .iter()
        .map(|e| e.phone_number.clone())
        .collect();
    audited.sort();
    assert_eq!(audited, [X, Y, Z]);
    for event in &after.audit[..3] {
        assert_eq!(event.action, UPLOAD);
        assert_eq!(event.actor, "operator:fabrikam-telecom/test");
        assert!(event.before.is_none(), "{event:?}");
        assert_eq!(
            string_field(event.after.as_ref(), "operatorId").as_deref(),
            Some(FABRIKAM)
        );
    }

    // Northwind lets tenants change locations by default; an upload may say otherwise.
    let northwind = upload(
        &mut app.operator(NORTHWIND),
        upload_request(
            T1,
            vec![
                user_number("+14255551004"),
                pb::UploadedNumber {
                    allow_tenant_location_update: Some(false),
                    ..user_number("+14255551005")
                },
                user_number(BRITISH),
            ],
        ),
    )
    .await
    .expect("Northwind uploads");
    let n4 = by_number(&northwind, "+14255551004");
    assert_eq!(n4.operator_id, NORTHWIND);
    assert!(n4.location_update_supported);
    assert!(!by_number(&northwind, "+14255551005").location_update_supported);
    let british = by_number(&northwind, BRITISH);
    assert_eq!(british.country, "GB");
    assert!(british.location_update_supported);
    assert_eq!(
        list_all(
            &mut app.reader(T1),
            pb::ListPhoneNumbersRequest {
                operator_id: NORTHWIND.into(),
                ..Default::default()
            },
        )
        .await
        .len(),
        3
    );
}

async fn upload_answers_the_numbers_as_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    let saved = upload(
        &mut app.operator(FABRIKAM),
        upload_request(T1, vec![user_number(X)]),
    )
    .await
    .expect("upload");
    let stored = get(&mut app.admin(T1), X).await.expect("read it back");
    assert_eq!(
        stored.create_time, saved[0].create_time,
        "UploadNumbers answers create_time as GetPhoneNumber reads it"
    );
    assert_eq!(stored, saved[0]);
}

async fn invalid_uploads_upload_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    let location = create_location(&app, T1, redmond_address()).await;
    let london = create_location(&app, T1, london_address()).await;
    let mut fabrikam = app.operator(FABRIKAM);
    let before = state(&app, T1).await;

    // Each batch starts with a good number: nothing of the batch is uploaded.
    let good = || pb::UploadedNumber {
        emergency_location_id: location.clone(),
        ..user_number(X)
    };
    let cases: Vec<(&str, pb::UploadedNumber, Code, &str, Option<&str>)> = vec![
        (
            "a Canadian number, enabled for the US only",
            user_number(CANADIAN),
            Code::FailedPrecondition,
            "COUNTRY_NOT_ENABLED",
            None,
        ),
        (
            "a British number Fabrikam does not serve",
            user_number(BRITISH),
            Code::FailedPrecondition,
            "COUNTRY_NOT_SERVED",
            Some("numbers[1].phone_number"),
        ),
        (
            "an extension",
            user_number("+14255551003;ext=12"),
            Code::InvalidArgument,
            "INVALID_PHONE_NUMBER",
            Some("numbers[1].phone_number"),
        ),
        (
            "not a number",
            user_number("call me"),
            Code::InvalidArgument,
            "INVALID_PHONE_NUMBER",
            Some("numbers[1].phone_number"),
        ),
        (
            "a number listed twice",
            user_number(X),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("numbers[1].phone_number"),
        ),
        (
            "a number listed twice, spelled otherwise",
            user_number("1 (425) 555-1001"),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("numbers[1].phone_number"),
        ),
        (
            "no capability",
            uploaded(Y, &[]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("numbers[1].capabilities"),
        ),
        (
            "an unspecified capability",
            uploaded(Y, &[0]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("numbers[1].capabilities[0]"),
        ),
        (
            "an unknown capability",
            uploaded(Y, &[USER_ASSIGNMENT, 17]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            Some("numbers[1].capabilities[1]"),
        ),
        (
            "a location of another country",
            pb::UploadedNumber {
                emergency_location_id: london.clone(),
                ..user_number(Y)
            },
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
            None,
        ),
        (
            "an unknown location",
            pb::UploadedNumber {
                emergency_location_id: "nowhere".into(),
                ..user_number(Y)
            },
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
            None,
        ),
    ];
    for (what, bad, code, reason, field) in cases {
        let status = assert_error(
            upload(&mut fabrikam, upload_request(T1, vec![good(), bad])).await,
            code,
            reason,
        );
        if let Some(field) = field {
            assert_eq!(violated_fields(&status), [field], "{what}: {status:?}");
        }
        assert_unchanged(&before, &state(&app, T1).await, what);
    }

    // Malformed requests.
    let malformed: Vec<(&str, pb::UploadNumbersRequest, &str)> = vec![
        ("no numbers", upload_request(T1, vec![]), "numbers"),
        ("no tenant", upload_request("", vec![good()]), "tenant_id"),
        (
            "too many numbers",
            upload_request(
                T1,
                (0..1001)
                    .map(|i| user_number(&format!("+1425555{:04}", 2000 + i)))
                    .collect(),
            ),
            "numbers",
        ),
        (
            "a request id that is no UUID",
            pb::UploadNumbersRequest {
                request_id: "upload-1".into(),
                ..upload_request(T1, vec![good()])
            },
            "request_id",
        ),
    ];
    for (what, request, field) in malformed {
        let status = assert_error(
            upload(&mut fabrikam, request).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), [field], "{what}: {status:?}");
        assert_unchanged(&before, &state(&app, T1).await, what);
    }

    // The good number alone goes in.
    let saved = upload(&mut fabrikam, upload_request(T1, vec![good()]))
        .await
        .expect("the good number alone");
    assert_eq!(phone_numbers(&saved), [X]);
    assert_eq!(saved[0].emergency_location_id, location);
}

async fn reuploading_a_number_updates_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    let location = create_location(&app, T1, redmond_address()).await;
    let mut fabrikam = app.operator(FABRIKAM);

    let first = upload(
        &mut fabrikam,
        upload_request(
            T1,
            vec![pb::UploadedNumber {
                emergency_location_id: location.clone(),
                ..user_number(X)
            }],
        ),
    )
    .await
    .expect("upload")
    .remove(0);
    assert_eq!(first.etag, "1");
    assert!(!first.location_update_supported);

    // New capabilities, and the tenant may now change the location; the location is kept.
    let second = upload(
        &mut fabrikam,
        upload_request(
            T1,
            vec![pb::UploadedNumber {
                allow_tenant_location_update: Some(true),
                ..uploaded("14255551001", &[USER_ASSIGNMENT, VOICE_APPLICATION])
            }],
        ),
    )
    .await
    .expect("re-upload")
    .remove(0);
    assert_eq!(second.phone_number, X);
    assert_eq!(second.etag, "2");
    assert_eq!(second.capabilities, [USER_ASSIGNMENT, VOICE_APPLICATION]);
    assert!(second.location_update_supported);
    assert_eq!(second.emergency_location_id, location);
    assert_eq!(second.operator_id, FABRIKAM);
    assert_eq!(
        to_micros(second.clone()).create_time,
        to_micros(first.clone()).create_time
    );
    assert_eq!(get(&mut app.admin(T1), X).await.expect("get"), second);

    // Unset again: back to Fabrikam's default.
    let third = upload(&mut fabrikam, upload_request(T1, vec![user_number(X)]))
        .await
        .expect("re-upload again")
        .remove(0);
    assert_eq!(third.etag, "3");
    assert_eq!(third.capabilities, [USER_ASSIGNMENT]);
    assert!(!third.location_update_supported);
    assert_eq!(third.emergency_location_id, location);

    let after = state(&app, T1).await;
    assert_eq!(phone_numbers(&after.numbers), [X], "still one number");
    let uploads: Vec<&pb::AuditEvent> = after.audit.iter().filter(|e| e.action == UPLOAD).collect();
    assert_eq!(uploads.len(), 3);
    // Newest first: the last re-upload, which turned the flag off again.
    let latest = uploads[0];
    assert_eq!(latest.phone_number, X);
    assert_eq!(
        bool_field(latest.before.as_ref(), "locationUpdateSupported"),
        Some(true)
    );
    assert_eq!(
        bool_field(latest.after.as_ref(), "locationUpdateSupported"),
        Some(false)
    );
    assert!(uploads[2].before.is_none(), "the first upload created it");
}

async fn numbers_already_in_an_inventory_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    tenant_with_fabrikam(&app, T2).await;
    enable(&mut app.admin(T1), NORTHWIND, &["US"])
        .await
        .expect("enable Northwind");
    let mut fabrikam = app.operator(FABRIKAM);
    upload(&mut fabrikam, upload_request(T1, vec![user_number(X)]))
        .await
        .expect("upload into T1");

    // Another tenant's number: refused, alone or in a batch.
    let t1 = state(&app, T1).await;
    let t2 = state(&app, T2).await;
    for batch in [vec![user_number(X)], vec![user_number(Y), user_number(X)]] {
        let status = assert_error(
            upload(&mut fabrikam, upload_request(T2, batch)).await,
            Code::AlreadyExists,
            "NUMBER_ALREADY_IN_INVENTORY",
        );
        assert!(status.message().contains(X), "{status:?}");
        assert_discreet(&status);
        assert_unchanged(&t2, &state(&app, T2).await, "upload into T2");
        assert_unchanged(&t1, &state(&app, T1).await, "T1, while T2 is refused");
    }

    // Another operator's number in the same tenant.
    let status = assert_error(
        upload(
            &mut app.operator(NORTHWIND),
            upload_request(T1, vec![user_number(X)]),
        )
        .await,
        Code::AlreadyExists,
        "NUMBER_ALREADY_IN_INVENTORY",
    );
    assert_discreet(&status);
    assert_unchanged(&t1, &state(&app, T1).await, "Northwind over Fabrikam");

    // A Calling Plan number of the tenant, and of another tenant.
    let calling_plan = app
        .admin(T1)
        .acquire_phone_numbers(pb::AcquirePhoneNumbersRequest {
            country: "US".into(),
            area_code: "206".into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .expect("acquire a Calling Plan number")
        .into_inner()
        .phone_numbers
        .remove(0)
        .phone_number;
    let t1 = state(&app, T1).await;
    for tenant in [T1, T2] {
        let before = state(&app, tenant).await;
        let status = assert_error(
            upload(
                &mut fabrikam,
                upload_request(tenant, vec![user_number(&calling_plan)]),
            )
            .await,
            Code::AlreadyExists,
            "NUMBER_ALREADY_IN_INVENTORY",
        );
        assert_discreet(&status);
        assert_unchanged(&before, &state(&app, tenant).await, tenant);
    }
    assert_unchanged(&t1, &state(&app, T1).await, "the Calling Plan number");

    // A Direct Routing number of the tenant.
    app.seed_numbers(T1, &[number(Z, NumberType::DirectRouting)])
        .await;
    let t1 = state(&app, T1).await;
    for tenant in [T1, T2] {
        let before = state(&app, tenant).await;
        let status = assert_error(
            upload(&mut fabrikam, upload_request(tenant, vec![user_number(Z)])).await,
            Code::AlreadyExists,
            "NUMBER_ALREADY_IN_INVENTORY",
        );
        assert_discreet(&status);
        assert_unchanged(&before, &state(&app, tenant).await, tenant);
    }
    assert_unchanged(&t1, &state(&app, T1).await, "the Direct Routing number");
}

/// An operator's refusal says the number is not available, not where it is, as what, or
/// whose it is.
fn assert_discreet(status: &tonic::Status) {
    let message = status.message();
    for secret in [
        "t1",
        "another tenant",
        "CALLING_PLAN",
        "DIRECT_ROUTING",
        "OPERATOR_CONNECT",
        "Calling Plan",
        "Direct Routing",
    ] {
        assert!(!message.contains(secret), "{secret:?} told: {status:?}");
    }
}

async fn upload_request_id_replays_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    let mut fabrikam = app.operator(FABRIKAM);
    let request_id = new_request_id();
    let request = pb::UploadNumbersRequest {
        request_id: request_id.clone(),
        ..upload_request(T1, vec![user_number(X), user_number(Y)])
    };

    let first = upload(&mut fabrikam, request.clone())
        .await
        .expect("upload with a request id");
    let after_first = state(&app, T1).await;
    assert_eq!(phone_numbers(&after_first.numbers), [X, Y]);
    for event in after_first.audit.iter().filter(|e| e.action == UPLOAD) {
        assert_eq!(event.request_id, request_id);
    }

    let retry = upload(&mut fabrikam, request.clone()).await.expect("retry");
    assert_eq!(retry, first, "the first answer");
    assert_unchanged(&after_first, &state(&app, T1).await, "the retry");

    // The number changes; a retry still answers as the first time and changes nothing.
    let updated = upload(
        &mut fabrikam,
        upload_request(T1, vec![uploaded(X, &[VOICE_APPLICATION])]),
    )
    .await
    .expect("update X")
    .remove(0);
    assert_eq!(updated.etag, "2");
    let after_update = state(&app, T1).await;
    let late_retry = upload(&mut fabrikam, request.clone())
        .await
        .expect("a late retry");
    assert_eq!(late_retry, first);
    assert_unchanged(&after_update, &state(&app, T1).await, "the late retry");
    assert_eq!(
        get(&mut app.admin(T1), X).await.expect("get").capabilities,
        [VOICE_APPLICATION]
    );

    // The same id with another request is refused.
    assert_error(
        upload(
            &mut fabrikam,
            pb::UploadNumbersRequest {
                request_id,
                ..upload_request(T1, vec![user_number(Z)])
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert_unchanged(&after_update, &state(&app, T1).await, "a reused id");
}

async fn concurrent_retries_with_one_request_id_upload_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    let fabrikam = app.operator(FABRIKAM);
    let request = pb::UploadNumbersRequest {
        request_id: new_request_id(),
        ..upload_request(T1, vec![user_number(X), user_number(Y)])
    };
    let answers = futures::future::join_all((0..16).map(|_| {
        let mut client = fabrikam.clone();
        let request = request.clone();
        async move { upload(&mut client, request).await }
    }))
    .await;
    let answers: Vec<Vec<pb::PhoneNumber>> = answers
        .into_iter()
        .map(|a| a.expect("every retry gets the first answer"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    let after = state(&app, T1).await;
    for n in &after.numbers {
        assert_eq!(n.etag, "1", "uploaded once: {n:?}");
    }
    assert_eq!(
        after.audit.iter().filter(|e| e.action == UPLOAD).count(),
        2,
        "one event per number"
    );

    let request = pb::ReleaseNumbersRequest {
        request_id: new_request_id(),
        ..release_request(T1, &[X, Y])
    };
    let answers = futures::future::join_all((0..16).map(|_| {
        let mut client = fabrikam.clone();
        let request = request.clone();
        async move { operator_release(&mut client, request).await }
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.expect("every retry gets the first answer"), [X, Y]);
    }
    let after = state(&app, T1).await;
    assert!(after.numbers.is_empty());
    assert_eq!(
        after
            .audit
            .iter()
            .filter(|e| e.action == OPERATOR_RELEASE)
            .count(),
        2,
        "released once"
    );
}

async fn one_operators_request_id_does_not_answer_another(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    enable(&mut app.admin(T1), NORTHWIND, &["US"])
        .await
        .expect("enable Northwind");
    let request = pb::UploadNumbersRequest {
        request_id: new_request_id(),
        ..upload_request(T1, vec![user_number(X)])
    };
    let first = upload(&mut app.operator(FABRIKAM), request.clone())
        .await
        .expect("Fabrikam uploads");
    assert_eq!(first[0].operator_id, FABRIKAM);

    // Northwind sends the same request with the same id: it is not Fabrikam's retry. X is
    // Fabrikam's, so Northwind's upload must be refused, not answered with Fabrikam's numbers.
    let before = state(&app, T1).await;
    let answer = upload(&mut app.operator(NORTHWIND), request).await;
    assert!(
        answer.is_err(),
        "Northwind was answered with Fabrikam's upload: {answer:?}"
    );
    assert_unchanged(&before, &state(&app, T1).await, "Northwind's attempt");
}

async fn concurrent_uploads_of_one_number_land_in_one_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tenants: Vec<String> = (0..8).map(|i| format!("tenant-{i}")).collect();
    for tenant in &tenants {
        tenant_with_fabrikam(&app, tenant).await;
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tenants.len()));
    let tasks: Vec<_> = tenants
        .iter()
        .map(|tenant| {
            let mut client = app.operator(FABRIKAM);
            let barrier = barrier.clone();
            let request = upload_request(tenant, vec![user_number(X)]);
            tokio::spawn(async move {
                barrier.wait().await;
                upload(&mut client, request).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (task, tenant) in tasks.into_iter().zip(&tenants) {
        match task.await.expect("the task ran") {
            Ok(saved) => {
                assert_eq!(phone_numbers(&saved), [X]);
                winners.push(tenant.clone());
            }
            Err(status) => {
                assert_error::<()>(
                    Err(status),
                    Code::AlreadyExists,
                    "NUMBER_ALREADY_IN_INVENTORY",
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "one tenant gets the number: {winners:?}");
    for tenant in &tenants {
        let state = state(&app, tenant).await;
        let uploads = state.audit.iter().filter(|e| e.action == UPLOAD).count();
        if *tenant == winners[0] {
            assert_eq!(phone_numbers(&state.numbers), [X], "{tenant}");
            assert_eq!(uploads, 1, "{tenant}");
        } else {
            assert!(state.numbers.is_empty(), "{tenant}: {:?}", state.numbers);
            assert_eq!(uploads, 0, "{tenant}");
        }
    }
}

async fn concurrent_reuploads_by_the_owner_update_the_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    // An operator retrying without request ids: every upload is of the operator's own number,
    // so each one creates or updates it; none may be told the number is in another tenant's
    // inventory. Several rounds of eight, one new number each, to give a race its chances.
    for round in 0..5 {
        let phone_number = format!("+1425555200{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let mut client = app.operator(FABRIKAM);
                let barrier = barrier.clone();
                let request = upload_request(T1, vec![user_number(&phone_number)]);
                tokio::spawn(async move {
                    barrier.wait().await;
                    upload(&mut client, request).await
                })
            })
            .collect();
        let mut succeeded = 0;
        for task in tasks {
            match task.await.expect("the task ran") {
                Ok(saved) => {
                    assert_eq!(phone_numbers(&saved), [phone_number.as_str()]);
                    succeeded += 1;
                }
                Err(status) => assert_ne!(
                    status.code(),
                    Code::AlreadyExists,
                    "round {round}: the operator's own number is not in another inventory: \
                     {status:?}"
                ),
            }
        }
        let stored = get(&mut app.reader(T1), &phone_number)
            .await
            .expect("the number is in the inventory");
        assert_eq!(stored.operator_id, FABRIKAM);
        assert_eq!(
            stored.etag,
            succeeded.to_string(),
            "round {round}: one version per successful upload"
        );
        let uploads = audit_events(&app, T1)
            .await
            .iter()
            .filter(|e| e.action == UPLOAD && e.phone_number == phone_number)
            .count();
        assert_eq!(uploads, succeeded, "round {round}");
    }
}

async fn uploads_check_locations_as_tenants_do(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut fabrikam = app.operator(FABRIKAM);
    let before = state(&app, "contoso").await;
    for (location, code, reason) in [
        (
            "seattle-unvalidated",
            Code::FailedPrecondition,
            "EMERGENCY_LOCATION_NOT_VALIDATED",
        ),
        (
            "paris-office",
            Code::FailedPrecondition,
            "LOCATION_COUNTRY_MISMATCH",
        ),
        (
            "no-such-place",
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        ),
    ] {
        assert_error(
            upload(
                &mut fabrikam,
                upload_request(
                    "contoso",
                    vec![
                        user_number(Y),
                        pb::UploadedNumber {
                            emergency_location_id: location.into(),
                            ..user_number(X)
                        },
                    ],
                ),
            )
            .await,
            code,
            reason,
        );
        assert_unchanged(&before, &state(&app, "contoso").await, location);
    }
    // A demo location of the tenant works, and is another tenant's business only there.
    let saved = upload(
        &mut fabrikam,
        upload_request(
            "contoso",
            vec![pb::UploadedNumber {
                emergency_location_id: "redmond-building-92".into(),
                ..user_number(X)
            }],
        ),
    )
    .await
    .expect("upload with a demo location");
    assert_eq!(saved[0].emergency_location_id, "redmond-building-92");
    tenant_with_fabrikam(&app, T2).await;
    let t2 = state(&app, T2).await;
    assert_error(
        upload(
            &mut fabrikam,
            upload_request(
                T2,
                vec![pb::UploadedNumber {
                    emergency_location_id: "redmond-hq".into(),
                    ..user_number(Y)
                }],
            ),
        )
        .await,
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );
    assert_unchanged(&t2, &state(&app, T2).await, "another tenant's location");
}

// ---- credentials -------------------------------------------------------------------------------

async fn the_wrong_callers_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    enable(&mut app.admin(T1), NORTHWIND, &["US"])
        .await
        .expect("enable Northwind");
    upload(
        &mut app.operator(FABRIKAM),
        upload_request(T1, vec![user_number(X)]),
    )
    .await
    .expect("Fabrikam uploads X");
    let before = state(&app, T1).await;

    // The wrong operator: Fabrikam's number is none of Northwind's business.
    let mut northwind = app.operator(NORTHWIND);
    let status = assert_error(
        operator_release(&mut northwind, release_request(T1, &[X])).await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    assert!(status.message().contains(X), "{status:?}");
    assert_unchanged(&before, &state(&app, T1).await, "Northwind releasing X");

    // A tenant's tokens on OperatorConnect.
    for token in [
        app.token(T1, number_management::auth::Role::Admin),
        app.token(T1, number_management::auth::Role::Reader),
    ] {
        let header: MetadataValue<Ascii> = format!("Bearer {token}").parse().expect("ascii");
        let mut client = OperatorConnectClient::with_interceptor(
            app.channel(),
            move |mut request: Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", header.clone());
                Ok(request)
            },
        );
        assert_error(
            client
                .upload_numbers(upload_request(T1, vec![user_number(Y)]))
                .await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert_error(
            client.release_numbers(release_request(T1, &[X])).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert_unchanged(&before, &state(&app, T1).await, "a tenant token");
    }

    // No token at all.
    let mut anonymous = OperatorConnectClient::new(app.channel());
    assert_error(
        anonymous
            .upload_numbers(upload_request(T1, vec![user_number(Y)]))
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );

    // An operator token on NumberManagement.
    let operator_token = app
        .key
        .mint_operator(FABRIKAM, "test", Duration::from_secs(600))
        .expect("mint an operator token");
    let mut as_operator = app.client_with_token(Some(&operator_token));
    assert_error(
        as_operator
            .list_phone_numbers(pb::ListPhoneNumbersRequest::default())
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        as_operator
            .enable_operator(pb::EnableOperatorRequest {
                operator_id: FABRIKAM.into(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        as_operator
            .release_phone_numbers(pb::ReleasePhoneNumbersRequest {
                phone_numbers: vec![X.into()],
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_unchanged(&before, &state(&app, T1).await, "an operator token");

    // An operator this service does not know.
    let mut unknown = app.operator("unknown-op");
    let status = assert_error(
        upload(&mut unknown, upload_request(T1, vec![user_number(Y)])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert!(status.message().contains("unknown-op"), "{status:?}");
    assert_error(
        operator_release(&mut unknown, release_request(T1, &[X])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_unchanged(&before, &state(&app, T1).await, "an unknown operator");
}

// ---- ReleaseNumbers ----------------------------------------------------------------------------

async fn operators_take_back_unassigned_numbers_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    tenant_with_fabrikam(&app, T2).await;
    let ann = app.user(T1, "ann@t1.example.com", "Ann", "US").await;
    let mut fabrikam = app.operator(FABRIKAM);
    upload(
        &mut fabrikam,
        upload_request(T1, vec![user_number(X), user_number(Y), user_number(Z)]),
    )
    .await
    .expect("upload three numbers");
    assign(&app, T1, &ann.user_principal_name, X).await;

    // An assigned number refuses the whole request.
    let before = state(&app, T1).await;
    for numbers in [vec![Y, X], vec![X]] {
        let status = assert_error(
            operator_release(&mut fabrikam, release_request(T1, &numbers)).await,
            Code::FailedPrecondition,
            "NUMBER_ASSIGNED",
        );
        assert!(status.message().contains(X), "{status:?}");
        assert_unchanged(&before, &state(&app, T1).await, &numbers.join(","));
    }
    // While assigned to a person, X keeps the capability she needs.
    let status = assert_error(
        upload(
            &mut fabrikam,
            upload_request(T1, vec![uploaded(X, &[VOICE_APPLICATION])]),
        )
        .await,
        Code::FailedPrecondition,
        "CAPABILITY_MISMATCH",
    );
    assert!(status.message().contains(X), "{status:?}");
    assert!(
        !status.message().contains(&ann.user_principal_name),
        "the holder is not the operator's to know: {status:?}"
    );
    assert_unchanged(&before, &state(&app, T1).await, "X without USER_ASSIGNMENT");

    // Numbers not in the tenant: NUMBER_NOT_FOUND, and nothing released.
    for (tenant, numbers) in [(T1, vec![Y, "+14255551009"]), (T2, vec![Y])] {
        let other = state(&app, tenant).await;
        assert_error(
            operator_release(&mut fabrikam, release_request(tenant, &numbers)).await,
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
        assert_unchanged(&other, &state(&app, tenant).await, tenant);
    }
    assert_unchanged(&before, &state(&app, T1).await, "refused releases");

    // The unassigned ones go.
    let released = operator_release(
        &mut fabrikam,
        release_request(T1, &[Y, Z.strip_prefix('+').expect("E.164")]),
    )
    .await
    .expect("release the unassigned numbers");
    assert_eq!(released, [Y, Z]);
    let after = state(&app, T1).await;
    assert_eq!(phone_numbers(&after.numbers), [X]);
    assert_eq!(after.numbers[0], before.numbers[0], "X is untouched");
    assert_eq!(after.audit.len(), before.audit.len() + 2);
    for event in &after.audit[..2] {
        assert_eq!(event.action, OPERATOR_RELEASE);
        assert_eq!(event.actor, "operator:fabrikam-telecom/test");
        assert!(event.after.is_none(), "{event:?}");
        assert_eq!(
            string_field(event.before.as_ref(), "phoneNumber"),
            Some(event.phone_number.clone())
        );
    }
    assert_error(
        get(&mut app.admin(T1), Y).await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    // Released twice: gone.
    assert_error(
        operator_release(&mut fabrikam, release_request(T1, &[Y])).await,
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    );
    // A released number may go to another tenant.
    upload(&mut fabrikam, upload_request(T2, vec![user_number(Y)]))
        .await
        .expect("upload Y into T2");

    // Once the tenant removes X from Ann, Fabrikam takes it back.
    remove(&app, T1, &ann.user_principal_name, X).await;
    let released = operator_release(&mut fabrikam, release_request(T1, &[X]))
        .await
        .expect("release X");
    assert_eq!(released, [X]);
    assert!(state(&app, T1).await.numbers.is_empty());
}

// ---- DisableOperator ---------------------------------------------------------------------------

async fn disabling_an_operator_waits_for_its_numbers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant_with_fabrikam(&app, T1).await;
    let ann = app.user(T1, "ann@t1.example.com", "Ann", "US").await;
    let mut fabrikam = app.operator(FABRIKAM);
    let mut admin = app.admin(T1);
    upload(
        &mut fabrikam,
        upload_request(T1, vec![user_number(X), user_number(Y)]),
    )
    .await
    .expect("upload");
    assign(&app, T1, &ann.id, X).await;

    let before = state(&app, T1).await;
    let status = assert_error(
        disable(&mut admin, FABRIKAM).await,
        Code::FailedPrecondition,
        "OPERATOR_NUMBERS_ASSIGNED",
    );
    assert!(status.message().contains("Fabrikam Telecom"), "{status:?}");
    assert_unchanged(&before, &state(&app, T1).await, "disable while assigned");
    assert!(find(&before.operators, FABRIKAM).enabled);
    assert_error(
        admin
            .disable_operator(pb::DisableOperatorRequest {
                operator_id: FABRIKAM.into(),
                validate_only: true,
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "OPERATOR_NUMBERS_ASSIGNED",
    );
    assert_error(
        disable(&mut admin, "contoso-phone").await,
        Code::NotFound,
        "OPERATOR_NOT_FOUND",
    );
    assert_error(
        disable(&mut app.reader(T1), FABRIKAM).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_unchanged(&before, &state(&app, T1).await, "refused disables");

    // Once nobody holds its numbers, it goes.
    remove(&app, T1, &ann.id, X).await;
    let removed = state(&app, T1).await;
    let disabled = disable(&mut admin, FABRIKAM)
        .await
        .expect("disable Fabrikam");
    assert_eq!(disabled.id, FABRIKAM);
    assert!(!disabled.enabled);
    assert!(disabled.enabled_countries.is_empty());
    let after = state(&app, T1).await;
    assert_eq!(*find(&after.operators, FABRIKAM), disabled);
    assert_eq!(after.audit.len(), removed.audit.len() + 1);
    assert_eq!(after.audit[0].action, DISABLE_OPERATOR);
    assert_eq!(after.audit[0].actor, "test");
    assert!(after.audit[0].after.is_none());
    assert_eq!(
        string_field(after.audit[0].before.as_ref(), "operatorId").as_deref(),
        Some(FABRIKAM)
    );

    // Further uploads are refused, and change nothing.
    let status = assert_error(
        upload(&mut fabrikam, upload_request(T1, vec![user_number(Z)])).await,
        Code::PermissionDenied,
        "OPERATOR_NOT_ENABLED",
    );
    assert!(status.message().contains(T1), "{status:?}");
    assert_error(
        upload(
            &mut fabrikam,
            upload_request(T1, vec![uploaded(Y, &[CONFERENCE])]),
        )
        .await,
        Code::PermissionDenied,
        "OPERATOR_NOT_ENABLED",
    );
    assert_unchanged(&after, &state(&app, T1).await, "uploads after disabling");
}

on_both_stores!(
    uploads_need_the_tenants_consent,
    uploaded_numbers_enter_the_inventory,
    upload_answers_the_numbers_as_stored,
    invalid_uploads_upload_nothing,
    reuploading_a_number_updates_it,
    numbers_already_in_an_inventory_are_refused,
    upload_request_id_replays_the_first_answer,
    concurrent_retries_with_one_request_id_upload_once,
    one_operators_request_id_does_not_answer_another,
    concurrent_uploads_of_one_number_land_in_one_tenant,
    concurrent_reuploads_by_the_owner_update_the_number,
    uploads_check_locations_as_tenants_do,
    the_wrong_callers_are_refused,
    operators_take_back_unassigned_numbers_only,
    disabling_an_operator_waits_for_its_numbers,
);
