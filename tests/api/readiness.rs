//! GetEmergencyReadiness over the socket, on the Contoso demo tenant with numbers in every
//! state: the counts per country, the numbers not ready with why, page by page and for one
//! country, and a number fixed dropping out.

use number_management::domain::{self, ActivationState, AssignmentCategory, NumberType};
use number_management::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{Backend, Client, TestApp, assert_error, assigned, number, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
const JACK_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000002";
const AMELIE_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000003";

const WITHOUT: &str = "+14255550170";
const LOCKED: &str = "+14255550171";
const FAILED: &str = "+14255550172";
const READY: &str = "+14255550173";
const FRENCH: &str = "+33140000099";

/// Numbers in every state of readiness.
fn numbers() -> Vec<domain::PhoneNumber> {
    let without = assigned(
        number(WITHOUT, NumberType::DirectRouting),
        JOHN_ID,
        AssignmentCategory::Private,
    );
    let mut locked = assigned(
        number(LOCKED, NumberType::OperatorConnect),
        JACK_ID,
        AssignmentCategory::Alternate,
    );
    locked.location_update_supported = false;
    let mut failed = number(FAILED, NumberType::DirectRouting);
    failed.activation_state = ActivationState::UpdateFailed;
    failed.emergency_location_id = Some("redmond-hq".into());
    let mut ready = assigned(
        number(READY, NumberType::DirectRouting),
        JOHN_ID,
        AssignmentCategory::Alternate,
    );
    ready.emergency_location_id = Some("redmond-hq".into());
    let french = assigned(
        number(FRENCH, NumberType::DirectRouting),
        AMELIE_ID,
        AssignmentCategory::Private,
    );
    vec![without, locked, failed, ready, french]
}

async fn readiness(
    client: &mut Client,
    request: pb::GetEmergencyReadinessRequest,
) -> pb::EmergencyReadiness {
    client
        .get_emergency_readiness(request)
        .await
        .expect("GetEmergencyReadiness")
        .into_inner()
}

fn listed(report: &pb::EmergencyReadiness) -> Vec<(String, i32)> {
    report
        .numbers
        .iter()
        .map(|n| {
            (
                n.phone_number
                    .as_ref()
                    .expect("number")
                    .phone_number
                    .clone(),
                n.problem,
            )
        })
        .collect()
}

const WITHOUT_LOCATION: i32 = pb::ReadinessProblem::WithoutLocation as i32;
const LOCKED_BY_OPERATOR: i32 = pb::ReadinessProblem::LockedByOperator as i32;
const UPDATE_FAILED: i32 = pb::ReadinessProblem::LocationUpdateFailed as i32;

async fn numbers_not_ready_are_counted_and_listed(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut reader = app.reader(TENANT);
    let empty = readiness(&mut reader, pb::GetEmergencyReadinessRequest::default()).await;
    assert!(empty.numbers.is_empty(), "{empty:#?}");
    assert!(
        empty
            .countries
            .iter()
            .all(|c| c.assigned == 0 && c.without_location == 0 && c.update_failed == 0),
        "{empty:#?}"
    );

    app.seed_numbers(TENANT, &numbers()).await;
    let report = readiness(
        &mut reader,
        pb::GetEmergencyReadinessRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    let us = report
        .countries
        .iter()
        .find(|c| c.country == "US")
        .expect("US");
    assert_eq!(
        (
            us.assigned,
            us.without_location,
            us.locked_by_operator,
            us.update_failed
        ),
        (3, 1, 1, 1)
    );
    let fr = report
        .countries
        .iter()
        .find(|c| c.country == "FR")
        .expect("FR");
    assert_eq!(
        (
            fr.assigned,
            fr.without_location,
            fr.locked_by_operator,
            fr.update_failed
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(
        listed(&report),
        [
            (WITHOUT.to_owned(), WITHOUT_LOCATION),
            (LOCKED.to_owned(), LOCKED_BY_OPERATOR)
        ]
    );
    let next = readiness(
        &mut reader,
        pb::GetEmergencyReadinessRequest {
            page_size: 2,
            page_token: report.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        listed(&next),
        [
            (FAILED.to_owned(), UPDATE_FAILED),
            (FRENCH.to_owned(), WITHOUT_LOCATION)
        ]
    );
    assert!(next.next_page_token.is_empty());

    let french = readiness(
        &mut reader,
        pb::GetEmergencyReadinessRequest {
            country: "fr".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(french.countries.len(), 1);
    assert_eq!(listed(&french), [(FRENCH.to_owned(), WITHOUT_LOCATION)]);

    // Fixed: it drops out.
    app.admin(TENANT)
        .update_emergency_location(pb::UpdateEmergencyLocationRequest {
            phone_number: WITHOUT.into(),
            emergency_location_id: "redmond-hq".into(),
            ..Default::default()
        })
        .await
        .expect("give it a location");
    let after = readiness(&mut reader, pb::GetEmergencyReadinessRequest::default()).await;
    assert!(
        !listed(&after).iter().any(|(n, _)| n == WITHOUT),
        "{after:#?}"
    );

    let status = reader
        .get_emergency_readiness(pb::GetEmergencyReadinessRequest {
            country: "Narnia".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_error(
            status,
            Code::InvalidArgument,
            "INVALID_ARGUMENT"
        )),
        ["country"]
    );
}

on_both_stores!(numbers_not_ready_are_counted_and_listed);
