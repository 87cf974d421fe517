//! Emergency locations that can be fixed, over the socket on the Contoso demo tenant: places
//! inside a location (created, listed with it, registered with numbers), details changed
//! under an etag, locations deleted only when nothing uses them, and addresses the rules
//! correct for the admin (ValidateEmergencyAddress, and CreateEmergencyLocation's refusal);
//! each refusal with its code and reason and the data left as it was.

use number_management::proto::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::assignment::{State, events_of, get_number};
use crate::calls::{assign, assign_request};
use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";
/// Calling Plan, unassigned, no emergency location.
const CP_0103: &str = "+14255550103";
/// The demo's location that numbers use.
const REDMOND_HQ: &str = "redmond-hq";

const PLACE_EVENT: i32 = pb::AuditAction::CreateEmergencyPlace as i32;
const DETAILS_EVENT: i32 = pb::AuditAction::UpdateEmergencyLocationDetails as i32;
const DELETE_EVENT: i32 = pb::AuditAction::DeleteEmergencyLocation as i32;

fn bellevue() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso".into(),
        house_number: "500".into(),
        street_name: "108th".into(),
        street_suffix: "Ave".into(),
        pre_directional: "NE".into(),
        city: "Bellevue".into(),
        state_or_province: "WA".into(),
        postal_code: "98004".into(),
        country: "US".into(),
        ..Default::default()
    }
}

async fn create_location(
    client: &mut Client,
    address: pb::CivicAddress,
) -> Result<pb::EmergencyLocation, Status> {
    client
        .create_emergency_location(pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address: Some(address),
                description: "Bellevue office".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn create_place(
    client: &mut Client,
    location_id: &str,
    description: &str,
) -> Result<pb::EmergencyLocation, Status> {
    client
        .create_emergency_place(pb::CreateEmergencyPlaceRequest {
            location_id: location_id.into(),
            description: description.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_location(client: &mut Client, id: &str) -> Result<pb::EmergencyLocation, Status> {
    client
        .get_emergency_location(pb::GetEmergencyLocationRequest { id: id.into() })
        .await
        .map(tonic::Response::into_inner)
}

async fn update_details(
    client: &mut Client,
    request: pb::UpdateEmergencyLocationDetailsRequest,
) -> Result<pb::EmergencyLocation, Status> {
    client
        .update_emergency_location_details(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn delete(
    client: &mut Client,
    request: pb::DeleteEmergencyLocationRequest,
) -> Result<pb::EmergencyLocation, Status> {
    client
        .delete_emergency_location(request)
        .await
        .map(tonic::Response::into_inner)
}

fn deletion(id: &str) -> pb::DeleteEmergencyLocationRequest {
    pb::DeleteEmergencyLocationRequest {
        id: id.into(),
        ..Default::default()
    }
}

async fn validate(
    client: &mut Client,
    address: pb::CivicAddress,
) -> pb::ValidateEmergencyAddressResponse {
    client
        .validate_emergency_address(pb::ValidateEmergencyAddressRequest {
            address: Some(address),
        })
        .await
        .expect("ValidateEmergencyAddress")
        .into_inner()
}

/// Every location the tenant lists, with its places.
async fn listed(client: &mut Client) -> Vec<pb::EmergencyLocation> {
    client
        .list_emergency_locations(pb::ListEmergencyLocationsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list locations")
        .into_inner()
        .emergency_locations
}

/// Runs a call that must be refused with `code` and `reason`, and checks that the tenant's data
/// (its locations included) is exactly as before. Answers the status.
async fn refused<T: std::fmt::Debug>(
    app: &TestApp,
    call: impl std::future::Future<Output = Result<T, Status>>,
    code: Code,
    reason: &str,
) -> Status {
    let before = State::read(app).await;
    let locations = listed(&mut app.admin(TENANT)).await;
    let status = assert_error(call.await, code, reason);
    before.assert_unchanged(app).await;
    assert_eq!(listed(&mut app.admin(TENANT)).await, locations);
    status
}

async fn places_are_listed_with_their_location_and_registered_with_numbers(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let office = create_location(&mut admin, bellevue())
        .await
        .expect("a location");
    assert_eq!(office.etag, "1");
    assert!(office.parent_location_id.is_empty());

    let floor = create_place(&mut admin, &office.id, "  3rd floor ")
        .await
        .expect("a place");
    assert_eq!(floor.parent_location_id, office.id);
    assert_eq!(floor.description, "3rd floor");
    assert_eq!(floor.address, office.address);
    assert_eq!(floor.validation_status, office.validation_status);
    let wing = create_place(&mut admin, &office.id, "East wing")
        .await
        .expect("another place");

    let read = get_location(&mut admin, &office.id).await.expect("get");
    assert_eq!(read.places, [floor.clone(), wing.clone()]);
    assert_eq!(
        get_location(&mut admin, &floor.id).await.expect("get"),
        floor
    );
    let all = listed(&mut admin).await;
    assert!(
        all.iter().all(|l| l.parent_location_id.is_empty()),
        "places are listed with their location: {all:#?}"
    );
    let mine = all.iter().find(|l| l.id == office.id).expect("listed");
    assert_eq!(mine.places, [floor.clone(), wing]);
    assert_eq!(events_of(&mut admin, PLACE_EVENT).await.len(), 2);

    // A number registers with a place like with any location.
    let assigned = assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            emergency_location_id: floor.id.clone(),
            ..assign_request(JOHN, CP_0103)
        },
    )
    .await
    .expect("assign at the place");
    assert_eq!(
        assigned.phone_number.expect("number").emergency_location_id,
        floor.id
    );

    for (id, description, field, code, reason) in [
        (
            floor.id.as_str(),
            "x",
            "location_id",
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            office.id.as_str(),
            " ",
            "description",
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "",
            "x",
            "location_id",
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "nowhere",
            "x",
            "",
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        ),
    ] {
        let status = refused(
            &app,
            create_place(&mut admin, id, description),
            code,
            reason,
        )
        .await;
        if !field.is_empty() {
            assert_eq!(violated_fields(&status), [field], "{id} {description:?}");
        }
    }
    refused(
        &app,
        create_place(
            &mut app.client_with_token(Some(
                &app.token(TENANT, number_management::auth::Role::Helpdesk),
            )),
            &office.id,
            "x",
        ),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    )
    .await;
}

async fn details_change_under_an_etag(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let office = create_location(&mut admin, bellevue())
        .await
        .expect("location");
    let floor = create_place(&mut admin, &office.id, "3rd floor")
        .await
        .expect("place");

    let renamed = update_details(
        &mut admin,
        pb::UpdateEmergencyLocationDetailsRequest {
            id: floor.id.clone(),
            description: "3rd floor, north".into(),
            etag: floor.etag.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("rename the place");
    assert_eq!(renamed.description, "3rd floor, north");
    assert_eq!(renamed.etag, "2");
    assert_eq!(renamed.address, floor.address);
    assert_eq!(
        get_location(&mut admin, &floor.id).await.expect("get"),
        renamed
    );
    let events = events_of(&mut admin, DETAILS_EVENT).await;
    assert_eq!(events.len(), 1, "{events:#?}");

    // The same description again changes nothing.
    let same = update_details(
        &mut admin,
        pb::UpdateEmergencyLocationDetailsRequest {
            id: floor.id.clone(),
            description: "3rd floor, north".into(),
            ..Default::default()
        },
    )
    .await
    .expect("the same");
    assert_eq!(same, renamed);

    refused(
        &app,
        update_details(
            &mut admin,
            pb::UpdateEmergencyLocationDetailsRequest {
                id: floor.id.clone(),
                description: "Basement".into(),
                etag: floor.etag.clone(),
                ..Default::default()
            },
        ),
        Code::Aborted,
        "ETAG_MISMATCH",
    )
    .await;
    let status = refused(
        &app,
        update_details(
            &mut admin,
            pb::UpdateEmergencyLocationDetailsRequest {
                id: floor.id.clone(),
                description: String::new(),
                ..Default::default()
            },
        ),
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    )
    .await;
    assert_eq!(violated_fields(&status), ["description"]);
    refused(
        &app,
        update_details(
            &mut admin,
            pb::UpdateEmergencyLocationDetailsRequest {
                id: "nowhere".into(),
                description: "x".into(),
                ..Default::default()
            },
        ),
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    )
    .await;
    // A location's description may be emptied; a place's may not.
    let cleared = update_details(
        &mut admin,
        pb::UpdateEmergencyLocationDetailsRequest {
            id: office.id.clone(),
            description: String::new(),
            ..Default::default()
        },
    )
    .await
    .expect("clear the location's description");
    assert_eq!(cleared.description, "");
    assert_eq!(cleared.etag, "2");
}

async fn a_location_is_deleted_only_when_nothing_uses_it(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let office = create_location(&mut admin, bellevue())
        .await
        .expect("location");
    let floor = create_place(&mut admin, &office.id, "3rd floor")
        .await
        .expect("place");
    admin
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: CP_0103.into(),
            emergency_location_id: floor.id.clone(),
            ..Default::default()
        })
        .await
        .expect("register the number at the place");

    for id in [&office.id, &floor.id] {
        let status = refused(
            &app,
            delete(&mut admin, deletion(id)),
            Code::FailedPrecondition,
            "EMERGENCY_LOCATION_IN_USE",
        )
        .await;
        assert!(status.message().contains("1 number"), "{status:?}");
    }
    let status = refused(
        &app,
        delete(&mut admin, deletion(REDMOND_HQ)),
        Code::FailedPrecondition,
        "EMERGENCY_LOCATION_IN_USE",
    )
    .await;
    let info = status
        .get_error_details()
        .error_info()
        .expect("info")
        .clone();
    assert!(info.metadata["uses"].parse::<i64>().expect("a count") >= 1);

    admin
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: CP_0103.into(),
            ..Default::default()
        })
        .await
        .expect("clear the number's location");
    refused(
        &app,
        delete(
            &mut admin,
            pb::DeleteEmergencyLocationRequest {
                etag: "7".into(),
                ..deletion(&office.id)
            },
        ),
        Code::Aborted,
        "ETAG_MISMATCH",
    )
    .await;
    let before = State::read(&app).await;
    let rehearsed = delete(
        &mut admin,
        pb::DeleteEmergencyLocationRequest {
            validate_only: true,
            ..deletion(&office.id)
        },
    )
    .await
    .expect("validate");
    assert_eq!(rehearsed.id, office.id);
    before.assert_unchanged(&app).await;
    assert!(get_location(&mut admin, &office.id).await.is_ok());

    let deleted = delete(
        &mut admin,
        pb::DeleteEmergencyLocationRequest {
            etag: office.etag.clone(),
            ..deletion(&office.id)
        },
    )
    .await
    .expect("delete the location and its place");
    assert_eq!(deleted.id, office.id);
    for id in [&office.id, &floor.id] {
        assert_error(
            get_location(&mut admin, id).await,
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        );
    }
    assert_eq!(events_of(&mut admin, DELETE_EVENT).await.len(), 2);
    assert!(
        get_number(&mut admin, CP_0103)
            .await
            .emergency_location_id
            .is_empty()
    );
}

async fn addresses_are_corrected_for_the_admin(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let given = pb::CivicAddress {
        state_or_province: "Washington".into(),
        postal_code: "980046399".into(),
        street_suffix: "Avenue".into(),
        ..bellevue()
    };

    let check = validate(&mut app.reader(TENANT), given.clone()).await;
    assert_eq!(check.verdict, pb::AddressVerdict::Corrected as i32);
    let corrected = check.address.clone().expect("the corrected address");
    assert_eq!(corrected.state_or_province, "WA");
    assert_eq!(corrected.postal_code, "98004-6399");
    assert_eq!(corrected.street_suffix, "Ave");
    let changes: Vec<(&str, &str, &str, bool)> = check
        .corrections
        .iter()
        .map(|c| {
            (
                c.field.as_str(),
                c.given.as_str(),
                c.corrected.as_str(),
                c.required,
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("street_suffix", "Avenue", "Ave", false),
            ("state_or_province", "Washington", "WA", true),
            ("postal_code", "980046399", "98004-6399", true),
        ]
    );
    let problems: Vec<&str> = check.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        problems,
        ["address.state_or_province", "address.postal_code"]
    );

    // Creating it as given is refused, with the corrections to accept.
    let status = refused(
        &app,
        create_location(&mut admin, given),
        Code::InvalidArgument,
        "INVALID_ADDRESS",
    )
    .await;
    assert_eq!(
        violated_fields(&status),
        [
            "emergency_location.address.state_or_province",
            "emergency_location.address.postal_code"
        ]
    );
    assert!(
        status.message().contains("did you mean \"WA\""),
        "{status:?}"
    );
    let info = status
        .get_error_details()
        .error_info()
        .expect("info")
        .clone();
    assert_eq!(info.metadata["correctedStateOrProvince"], "WA");
    assert_eq!(info.metadata["correctedPostalCode"], "98004-6399");

    // Accepted as corrected.
    let created = create_location(&mut admin, corrected)
        .await
        .expect("the corrected address");
    assert_eq!(created.address.expect("address").postal_code, "98004-6399");

    // A valid address is VALID; a standardisation alone refuses nothing, and is stored.
    let valid = validate(&mut admin, bellevue()).await;
    assert_eq!(valid.verdict, pb::AddressVerdict::Valid as i32);
    assert!(valid.corrections.is_empty() && valid.problems.is_empty());
    let spelled = pb::CivicAddress {
        street_suffix: "AVENUE".into(),
        ..bellevue()
    };
    assert_eq!(
        validate(&mut admin, spelled.clone()).await.verdict,
        pb::AddressVerdict::Valid as i32
    );
    let stored = create_location(&mut admin, spelled)
        .await
        .expect("standardised");
    assert_eq!(stored.address.expect("address").street_suffix, "Ave");

    // What cannot be corrected is INVALID, with what is wrong.
    let invalid = validate(
        &mut admin,
        pb::CivicAddress {
            state_or_province: "Narnia".into(),
            ..bellevue()
        },
    )
    .await;
    assert_eq!(invalid.verdict, pb::AddressVerdict::Invalid as i32);
    assert_eq!(invalid.problems.len(), 1, "{invalid:#?}");
    assert_eq!(invalid.problems[0].field, "address.state_or_province");
}

on_both_stores!(
    places_are_listed_with_their_location_and_registered_with_numbers,
    details_change_under_an_etag,
    a_location_is_deleted_only_when_nothing_uses_it,
    addresses_are_corrected_for_the_admin,
);
