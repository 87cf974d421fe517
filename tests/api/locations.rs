//! Emergency locations through the API: CreateEmergencyLocation with its address validation,
//! GetEmergencyLocation and ListEmergencyLocations, request ids, `validate_only` and permissions.

use std::collections::HashSet;

use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

const VALIDATED: i32 = pb::ValidationStatus::Validated as i32;

fn redmond() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso".into(),
        house_number: "1".into(),
        street_name: "Microsoft Way".into(),
        city: "Redmond".into(),
        state_or_province: "WA".into(),
        postal_code: "98052".into(),
        country: "US".into(),
        ..Default::default()
    }
}

fn seattle() -> pb::CivicAddress {
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

fn paris() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso France".into(),
        house_number: "39".into(),
        street_name: "Avenue des Champs-Élysées".into(),
        city: "Paris".into(),
        postal_code: "75008".into(),
        country: "FR".into(),
        ..Default::default()
    }
}

fn london() -> pb::CivicAddress {
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

fn munich() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso GmbH".into(),
        house_number: "1".into(),
        street_name: "Marienplatz".into(),
        city: "München".into(),
        postal_code: "80331".into(),
        country: "DE".into(),
        ..Default::default()
    }
}

fn ottawa() -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: "Contoso Canada".into(),
        house_number: "111".into(),
        street_name: "Wellington".into(),
        street_suffix: "St".into(),
        city: "Ottawa".into(),
        state_or_province: "ON".into(),
        postal_code: "K1A 0B1".into(),
        country: "CA".into(),
        ..Default::default()
    }
}

fn create_request(
    address: pb::CivicAddress,
    description: &str,
) -> pb::CreateEmergencyLocationRequest {
    pb::CreateEmergencyLocationRequest {
        emergency_location: Some(pb::EmergencyLocation {
            address: Some(address),
            description: description.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(
    client: &mut Client,
    request: pb::CreateEmergencyLocationRequest,
) -> Result<pb::EmergencyLocation, Status> {
    client
        .create_emergency_location(request)
        .await
        .map(|r| r.into_inner())
}

async fn get(client: &mut Client, id: &str) -> Result<pb::EmergencyLocation, Status> {
    client
        .get_emergency_location(pb::GetEmergencyLocationRequest { id: id.into() })
        .await
        .map(|r| r.into_inner())
}

async fn list(
    client: &mut Client,
    request: pb::ListEmergencyLocationsRequest,
) -> Result<pb::ListEmergencyLocationsResponse, Status> {
    client
        .list_emergency_locations(request)
        .await
        .map(|r| r.into_inner())
}

/// Every location of one listing (a single page of 1000).
async fn list_all(client: &mut Client, city: &str, country: &str) -> Vec<pb::EmergencyLocation> {
    let response = list(
        client,
        pb::ListEmergencyLocationsRequest {
            city: city.into(),
            country: country.into(),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await
    .expect("list emergency locations");
    assert_eq!(
        response.next_page_token, "",
        "one page holds every location"
    );
    response.emergency_locations
}

fn descriptions(locations: &[pb::EmergencyLocation]) -> Vec<&str> {
    locations.iter().map(|l| l.description.as_str()).collect()
}

// ---- CreateEmergencyLocation -----------------------------------------------------------------

async fn create_validates_and_stores_the_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let created = create(
        &mut admin,
        create_request(
            pb::CivicAddress {
                country: "us".into(),
                state_or_province: "wa".into(),
                postal_code: "98052-6399".into(),
                pre_directional: "NE".into(),
                street_suffix: "Ave".into(),
                ..redmond()
            },
            "Building 92, 1st floor",
        ),
    )
    .await
    .expect("create the location");

    assert!(!created.id.is_empty(), "the service sets the id");
    assert_eq!(
        created.address,
        Some(pb::CivicAddress {
            company_name: "Contoso".into(),
            house_number: "1".into(),
            pre_directional: "NE".into(),
            street_name: "Microsoft Way".into(),
            street_suffix: "Ave".into(),
            city: "Redmond".into(),
            state_or_province: "WA".into(),
            postal_code: "98052-6399".into(),
            country: "US".into(),
            ..Default::default()
        })
    );
    assert_eq!(created.description, "Building 92, 1st floor");
    assert_eq!(created.validation_status, VALIDATED);
    assert!(created.create_time.is_some());

    assert_eq!(get(&mut admin, &created.id).await.expect("get"), created);
    let listed = list(&mut admin, pb::ListEmergencyLocationsRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.emergency_locations, vec![created.clone()]);
    assert_eq!(listed.next_page_token, "");

    // A reader may read it too.
    let mut reader = app.reader(TENANT);
    assert_eq!(
        get(&mut reader, &created.id).await.expect("reader gets"),
        created
    );
    assert_eq!(list_all(&mut reader, "", "").await, vec![created]);
}

async fn create_normalises_other_countries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let in_ottawa = create(
        &mut admin,
        create_request(
            pb::CivicAddress {
                state_or_province: "on".into(),
                postal_code: "k1a 0b1".into(),
                country: "ca".into(),
                ..ottawa()
            },
            "",
        ),
    )
    .await
    .expect("create in Canada");
    let address = in_ottawa.address.expect("address");
    assert_eq!(address.country, "CA");
    assert_eq!(address.state_or_province, "ON");
    assert_eq!(address.postal_code, "K1A 0B1");
    assert_eq!(in_ottawa.description, "");

    // A country without specific rules needs no postal code or house number.
    let in_sao_paulo = create(
        &mut admin,
        create_request(
            pb::CivicAddress {
                company_name: "Contoso Brasil".into(),
                street_name: "Avenida Paulista".into(),
                city: "São Paulo".into(),
                country: "br".into(),
                ..Default::default()
            },
            "São Paulo office",
        ),
    )
    .await
    .expect("create in Brazil");
    assert_eq!(in_sao_paulo.address.expect("address").country, "BR");
    assert_eq!(in_sao_paulo.validation_status, VALIDATED);
    assert_eq!(list_all(&mut admin, "", "").await.len(), 2);
}

async fn create_rejects_invalid_addresses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let cases: Vec<(&str, Option<pb::CivicAddress>, Vec<&str>)> = vec![
        (
            "unknown country",
            Some(pb::CivicAddress {
                country: "ZZ".into(),
                ..redmond()
            }),
            vec!["country"],
        ),
        (
            "country that is not a code",
            Some(pb::CivicAddress {
                country: "USA".into(),
                ..redmond()
            }),
            vec!["country"],
        ),
        (
            "missing country",
            Some(pb::CivicAddress {
                country: String::new(),
                ..redmond()
            }),
            vec!["country"],
        ),
        (
            "missing company name",
            Some(pb::CivicAddress {
                company_name: "   ".into(),
                ..redmond()
            }),
            vec!["company_name"],
        ),
        (
            "US without a state",
            Some(pb::CivicAddress {
                state_or_province: String::new(),
                ..redmond()
            }),
            vec!["state_or_province"],
        ),
        (
            "US with a state name instead of its code",
            Some(pb::CivicAddress {
                state_or_province: "Washington".into(),
                ..redmond()
            }),
            vec!["state_or_province"],
        ),
        (
            "US with a four-digit ZIP code",
            Some(pb::CivicAddress {
                postal_code: "9805".into(),
                ..redmond()
            }),
            vec!["postal_code"],
        ),
        (
            "US without a ZIP code",
            Some(pb::CivicAddress {
                postal_code: String::new(),
                ..redmond()
            }),
            vec!["postal_code"],
        ),
        (
            "US without a house number",
            Some(pb::CivicAddress {
                house_number: String::new(),
                ..redmond()
            }),
            vec!["house_number"],
        ),
        (
            "US with a bad state and a bad ZIP code",
            Some(pb::CivicAddress {
                state_or_province: "Washington".into(),
                postal_code: "9805".into(),
                ..redmond()
            }),
            vec!["state_or_province", "postal_code"],
        ),
        (
            "Canada with a US-style postal code",
            Some(pb::CivicAddress {
                postal_code: "12345".into(),
                ..ottawa()
            }),
            vec!["postal_code"],
        ),
        (
            "Canada with a US state",
            Some(pb::CivicAddress {
                state_or_province: "WA".into(),
                ..ottawa()
            }),
            vec!["state_or_province"],
        ),
        (
            "Great Britain with a US-style postal code",
            Some(pb::CivicAddress {
                postal_code: "12345".into(),
                ..london()
            }),
            vec!["postal_code"],
        ),
        (
            "Great Britain without a postal code",
            Some(pb::CivicAddress {
                postal_code: String::new(),
                ..london()
            }),
            vec!["postal_code"],
        ),
        (
            "missing street name and city",
            Some(pb::CivicAddress {
                street_name: String::new(),
                city: " ".into(),
                ..redmond()
            }),
            vec!["street_name", "city"],
        ),
        (
            "control character in a part",
            Some(pb::CivicAddress {
                street_name: "Microsoft\u{0}Way".into(),
                ..redmond()
            }),
            vec!["street_name"],
        ),
        (
            "overlong part",
            Some(pb::CivicAddress {
                company_name: "C".repeat(201),
                ..redmond()
            }),
            vec!["company_name"],
        ),
        ("no address at all", None, vec!["company_name", "country"]),
    ];

    for (case, address, fields) in cases {
        let request = pb::CreateEmergencyLocationRequest {
            emergency_location: Some(pb::EmergencyLocation {
                address,
                description: "Somewhere".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = assert_error(
            create(&mut admin, request).await,
            Code::InvalidArgument,
            "INVALID_ADDRESS",
        );
        let expected: Vec<String> = fields
            .iter()
            .map(|f| format!("emergency_location.address.{f}"))
            .collect();
        assert_eq!(violated_fields(&status), expected, "{case}: {status:?}");
    }

    // No location at all in the request.
    let status = assert_error(
        create(&mut admin, pb::CreateEmergencyLocationRequest::default()).await,
        Code::InvalidArgument,
        "INVALID_ADDRESS",
    );
    assert_eq!(
        violated_fields(&status),
        [
            "emergency_location.address.company_name",
            "emergency_location.address.country"
        ]
    );

    assert_eq!(
        list_all(&mut admin, "", "").await,
        vec![],
        "nothing was created"
    );
}

async fn create_reports_a_bad_description_at_its_own_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    // `description` is a field of the location, not of its address.
    let status = assert_error(
        create(&mut admin, create_request(redmond(), &"x".repeat(201))).await,
        Code::InvalidArgument,
        "INVALID_ADDRESS",
    );
    assert_eq!(violated_fields(&status), ["emergency_location.description"]);
    assert_eq!(
        list_all(&mut admin, "", "").await,
        vec![],
        "nothing was created"
    );
}

async fn create_refuses_a_request_id_that_is_not_a_uuid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let status = assert_error(
        create(
            &mut admin,
            pb::CreateEmergencyLocationRequest {
                request_id: "retry-1".into(),
                ..create_request(redmond(), "HQ")
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["request_id"]);
    assert_eq!(list_all(&mut admin, "", "").await, vec![]);
}

async fn create_with_request_id_returns_the_first_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let request_id = uuid::Uuid::new_v4().to_string();
    let request = pb::CreateEmergencyLocationRequest {
        request_id: request_id.clone(),
        ..create_request(redmond(), "HQ")
    };

    let first = create(&mut admin, request.clone()).await.expect("first");
    let retry = create(&mut admin, request.clone()).await.expect("retry");
    assert_eq!(retry, first, "the retry answers the first location");
    assert_eq!(
        list_all(&mut admin, "", "").await,
        vec![first.clone()],
        "one location"
    );

    // The same id for another location is refused, and creates nothing.
    let status = assert_error(
        create(
            &mut admin,
            pb::CreateEmergencyLocationRequest {
                request_id: request_id.clone(),
                ..create_request(seattle(), "Store")
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert!(status.message().contains(&request_id), "{status:?}");
    // Even a different description is a different request.
    assert_error(
        create(
            &mut admin,
            pb::CreateEmergencyLocationRequest {
                request_id: request_id.clone(),
                ..create_request(redmond(), "HQ, 2nd floor")
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(list_all(&mut admin, "", "").await, vec![first.clone()]);

    // Without a request id, the same body creates a second location.
    let second = create(&mut admin, create_request(redmond(), "HQ"))
        .await
        .expect("second");
    assert_ne!(second.id, first.id);
    assert_eq!(
        list_all(&mut admin, "", "")
            .await
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        [first.id.as_str(), second.id.as_str()]
    );
    // And the retry still answers the first.
    assert_eq!(
        create(&mut admin, request).await.expect("late retry"),
        first
    );
    assert_eq!(list_all(&mut admin, "", "").await.len(), 2);
}

async fn concurrent_retries_with_one_request_id_create_one_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin(TENANT);
    let request = pb::CreateEmergencyLocationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..create_request(redmond(), "HQ")
    };

    let answers = futures::future::join_all((0..8).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { create(&mut client, request).await }
    }))
    .await;
    let answers: Vec<pb::EmergencyLocation> = answers
        .into_iter()
        .map(|a| a.expect("every retry succeeds"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");

    let mut admin = admin;
    assert_eq!(
        list_all(&mut admin, "", "").await,
        vec![answers[0].clone()],
        "one location"
    );
}

async fn create_validate_only_creates_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let request_id = uuid::Uuid::new_v4().to_string();

    let would_be = create(
        &mut admin,
        pb::CreateEmergencyLocationRequest {
            validate_only: true,
            request_id: request_id.clone(),
            ..create_request(
                pb::CivicAddress {
                    country: "us".into(),
                    ..redmond()
                },
                "HQ",
            )
        },
    )
    .await
    .expect("validate");
    assert!(!would_be.id.is_empty());
    assert_eq!(would_be.address.as_ref().expect("address").country, "US");
    assert_eq!(would_be.description, "HQ");
    assert_eq!(would_be.validation_status, VALIDATED);

    assert_eq!(
        list_all(&mut admin, "", "").await,
        vec![],
        "nothing was created"
    );
    assert_error(
        get(&mut admin, &would_be.id).await,
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );

    // validate_only still validates.
    let status = assert_error(
        create(
            &mut admin,
            pb::CreateEmergencyLocationRequest {
                validate_only: true,
                ..create_request(
                    pb::CivicAddress {
                        postal_code: "9805".into(),
                        ..redmond()
                    },
                    "HQ",
                )
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ADDRESS",
    );
    assert_eq!(
        violated_fields(&status),
        ["emergency_location.address.postal_code"]
    );

    // The rehearsal did not use up the request id.
    let created = create(
        &mut admin,
        pb::CreateEmergencyLocationRequest {
            request_id,
            ..create_request(
                pb::CivicAddress {
                    country: "us".into(),
                    ..redmond()
                },
                "HQ",
            )
        },
    )
    .await
    .expect("then create");
    assert_eq!(list_all(&mut admin, "", "").await, vec![created]);
}

async fn reader_may_not_create_a_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut reader = app.reader(TENANT);
    let mut admin = app.admin(TENANT);

    let requests = [
        create_request(redmond(), "HQ"),
        pb::CreateEmergencyLocationRequest {
            validate_only: true,
            ..create_request(redmond(), "HQ")
        },
        // Permission comes first: an invalid request is refused for the role, not the address.
        pb::CreateEmergencyLocationRequest::default(),
        create_request(
            pb::CivicAddress {
                country: "ZZ".into(),
                ..redmond()
            },
            "HQ",
        ),
        pb::CreateEmergencyLocationRequest {
            request_id: "not-a-uuid".into(),
            ..create_request(redmond(), "HQ")
        },
    ];
    for request in requests {
        let status = assert_error(
            create(&mut reader, request).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert!(violated_fields(&status).is_empty(), "{status:?}");
    }
    assert_eq!(
        list_all(&mut admin, "", "").await,
        vec![],
        "nothing was created"
    );
}

// ---- GetEmergencyLocation --------------------------------------------------------------------

async fn get_unknown_or_foreign_location_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let ours = create(&mut admin, create_request(redmond(), "HQ"))
        .await
        .expect("ours");
    let mut other = app.admin(OTHER_TENANT);
    let theirs = create(&mut other, create_request(seattle(), "Their store"))
        .await
        .expect("theirs");

    for id in [
        "no-such-location",
        "0190f2a4-0000-7000-8000-000000000000",
        theirs.id.as_str(),
    ] {
        let status = assert_error(
            get(&mut admin, id).await,
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        );
        assert!(status.message().contains(id), "{status:?}");
    }
    assert_error(
        get(&mut other, &ours.id).await,
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );

    // Each tenant lists its own only.
    assert_eq!(list_all(&mut admin, "", "").await, vec![ours.clone()]);
    assert_eq!(list_all(&mut other, "", "").await, vec![theirs.clone()]);
    assert_eq!(get(&mut admin, &ours.id).await.expect("ours"), ours);
    assert_eq!(get(&mut other, &theirs.id).await.expect("theirs"), theirs);
}

// ---- ListEmergencyLocations ------------------------------------------------------------------

async fn list_filters_by_city_and_country(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for (address, description) in [
        (redmond(), "Redmond HQ"),
        (seattle(), "Seattle store"),
        (paris(), "Paris office"),
        (london(), "London office"),
        (redmond(), "Redmond building 92"),
        (munich(), "Munich office"),
        (ottawa(), "Ottawa office"),
    ] {
        create(&mut admin, create_request(address, description))
            .await
            .unwrap_or_else(|e| panic!("create {description}: {e:?}"));
    }
    create(
        &mut app.admin(OTHER_TENANT),
        create_request(redmond(), "Someone else's Redmond"),
    )
    .await
    .expect("another tenant's location");

    let all = list_all(&mut admin, "", "").await;
    assert_eq!(
        descriptions(&all),
        [
            "Redmond HQ",
            "Seattle store",
            "Paris office",
            "London office",
            "Redmond building 92",
            "Munich office",
            "Ottawa office",
        ],
        "oldest first, this tenant only"
    );

    let cases: &[(&str, &str, &[&str])] = &[
        ("Redmond", "", &["Redmond HQ", "Redmond building 92"]),
        ("REDMOND", "", &["Redmond HQ", "Redmond building 92"]),
        ("  redmond ", "", &["Redmond HQ", "Redmond building 92"]),
        ("seattle", "", &["Seattle store"]),
        ("MÜNCHEN", "", &["Munich office"]),
        // The whole city, not a prefix.
        ("Red", "", &[]),
        (
            "",
            "US",
            &["Redmond HQ", "Seattle store", "Redmond building 92"],
        ),
        (
            "",
            "us",
            &["Redmond HQ", "Seattle store", "Redmond building 92"],
        ),
        ("", "FR", &["Paris office"]),
        ("", "gb", &["London office"]),
        ("", "JP", &[]),
        ("redmond", "US", &["Redmond HQ", "Redmond building 92"]),
        ("Redmond", "GB", &[]),
        ("London", "GB", &["London office"]),
    ];
    for (city, country, expected) in cases {
        let found = list_all(&mut admin, city, country).await;
        assert_eq!(
            descriptions(&found),
            *expected,
            "city {city:?}, country {country:?}"
        );
    }

    for country in ["ZZ", "USA", "1"] {
        let status = assert_error(
            list(
                &mut admin,
                pb::ListEmergencyLocationsRequest {
                    country: country.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), ["country"], "{country:?}");
    }
}

async fn list_puts_new_locations_after_the_demo_ones(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);

    let hq = get(&mut admin, "redmond-hq")
        .await
        .expect("a demo location");
    assert_eq!(hq.description, "Headquarters");
    assert_eq!(hq.validation_status, VALIDATED);
    assert_eq!(hq.address.as_ref().expect("address").city, "Redmond");
    let unvalidated = get(&mut admin, "seattle-unvalidated")
        .await
        .expect("a demo location");
    assert_eq!(
        unvalidated.validation_status,
        pb::ValidationStatus::NotValidated as i32
    );
    assert_error(
        get(&mut app.admin(OTHER_TENANT), "redmond-hq").await,
        Code::NotFound,
        "EMERGENCY_LOCATION_NOT_FOUND",
    );

    // Created after the demo data was loaded, so listed after it: the listing is oldest first.
    let created = create(&mut admin, create_request(london(), "London office"))
        .await
        .expect("create");
    let all = list_all(&mut admin, "", "").await;
    let ids: Vec<&str> = all.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    let mut demo_ids = ids[..ids.len().min(4)].to_vec();
    demo_ids.sort_unstable();
    assert_eq!(
        (demo_ids, ids.last().copied()),
        (
            vec![
                "paris-office",
                "redmond-building-92",
                "redmond-hq",
                "seattle-unvalidated"
            ],
            Some(created.id.as_str())
        ),
        "the four demo locations, then the new one: {ids:?}"
    );
}

async fn list_pages_oldest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let mut created = Vec::new();
    for i in 0..12 {
        let address = if i % 3 == 0 { seattle() } else { redmond() };
        let location = create(&mut admin, create_request(address, &format!("Floor {i}")))
            .await
            .expect("create");
        created.push(location);
    }

    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &mut admin,
            pb::ListEmergencyLocationsRequest {
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("list a page");
        page_sizes.push(page.emergency_locations.len());
        seen.extend(page.emergency_locations);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "the pages never end");
    }
    assert_eq!(page_sizes, [5, 5, 2]);
    assert_eq!(seen, created, "every location once, oldest first");
    assert_eq!(
        seen.iter()
            .map(|l| l.id.as_str())
            .collect::<HashSet<_>>()
            .len(),
        12,
        "no duplicates"
    );

    // Paging a filtered listing: the 8 Redmond locations by 3.
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &mut admin,
            pb::ListEmergencyLocationsRequest {
                city: "redmond".into(),
                country: "US".into(),
                page_size: 3,
                page_token: token.clone(),
            },
        )
        .await
        .expect("list a page");
        page_sizes.push(page.emergency_locations.len());
        seen.extend(page.emergency_locations);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "the pages never end");
    }
    assert_eq!(page_sizes, [3, 3, 2]);
    let redmond_only: Vec<_> = created
        .iter()
        .filter(|l| l.address.as_ref().is_some_and(|a| a.city == "Redmond"))
        .cloned()
        .collect();
    assert_eq!(seen, redmond_only);

    // A token belongs to its query.
    let first = list(
        &mut admin,
        pb::ListEmergencyLocationsRequest {
            page_size: 5,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    let status = assert_error(
        list(
            &mut admin,
            pb::ListEmergencyLocationsRequest {
                city: "Seattle".into(),
                page_size: 5,
                page_token: first.next_page_token,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
    assert_error(
        list(
            &mut admin,
            pb::ListEmergencyLocationsRequest {
                page_token: "garbage!".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
}

on_both_stores!(
    create_validates_and_stores_the_location,
    create_normalises_other_countries,
    create_rejects_invalid_addresses,
    create_reports_a_bad_description_at_its_own_path,
    create_refuses_a_request_id_that_is_not_a_uuid,
    create_with_request_id_returns_the_first_location,
    concurrent_retries_with_one_request_id_create_one_location,
    create_validate_only_creates_nothing,
    reader_may_not_create_a_location,
    get_unknown_or_foreign_location_is_not_found,
    list_filters_by_city_and_country,
    list_pages_oldest_first,
    list_puts_new_locations_after_the_demo_ones,
);
