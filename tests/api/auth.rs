//! Who may call what: bearer tokens, roles, the open health and reflection services, and tenant
//! isolation.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use number_management::auth::{Role, SigningKey};
use number_management::demo;
use number_management::domain::{AssignmentCategory, NumberType};
use number_management::proto::v1 as pb;
use number_management::proto::v1::number_management_client::NumberManagementClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt as _;

use crate::helpers::{
    Backend, TestApp, TestConfig, assert_error, assigned, number, violated_fields,
};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam-corp";
const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";

/// Sends `authorization` exactly as given (or not at all).
#[derive(Clone)]
struct Authorization(Option<MetadataValue<Ascii>>);

impl Interceptor for Authorization {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type RawClient = NumberManagementClient<InterceptedService<Channel, Authorization>>;

fn raw_client(app: &TestApp, authorization: Option<&str>) -> RawClient {
    let value = authorization.map(|text| text.parse().expect("an ASCII header value"));
    NumberManagementClient::with_interceptor(app.channel(), Authorization(value))
}

fn new_user(upn: &str, display_name: &str) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            user_principal_name: upn.into(),
            display_name: display_name.into(),
            usage_location: "US".into(),
            licenses: vec![
                pb::user::License::PhoneSystem as i32,
                pb::user::License::CallingPlan as i32,
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn new_location() -> pb::CreateEmergencyLocationRequest {
    pb::CreateEmergencyLocationRequest {
        emergency_location: Some(pb::EmergencyLocation {
            address: Some(pb::CivicAddress {
                company_name: "Contoso".into(),
                house_number: "1".into(),
                street_name: "Microsoft Way".into(),
                city: "Redmond".into(),
                state_or_province: "WA".into(),
                postal_code: "98052".into(),
                country: "US".into(),
                ..Default::default()
            }),
            description: "Headquarters".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Calls every RPC of the API once with `client`, and returns each outcome by name.
async fn call_everything(client: &mut RawClient) -> Vec<(&'static str, Result<(), Status>)> {
    vec![
        (
            "UpsertUser",
            client
                .upsert_user(new_user("eve@contoso.com", "Eve"))
                .await
                .map(drop),
        ),
        (
            "GetUser",
            client
                .get_user(pb::GetUserRequest {
                    identity: "john@contoso.com".into(),
                })
                .await
                .map(drop),
        ),
        (
            "ListUsers",
            client
                .list_users(pb::ListUsersRequest::default())
                .await
                .map(drop),
        ),
        (
            "CreateEmergencyLocation",
            client
                .create_emergency_location(new_location())
                .await
                .map(drop),
        ),
        (
            "GetEmergencyLocation",
            client
                .get_emergency_location(pb::GetEmergencyLocationRequest {
                    id: "redmond-hq".into(),
                })
                .await
                .map(drop),
        ),
        (
            "ListEmergencyLocations",
            client
                .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
                .await
                .map(drop),
        ),
        (
            "GetPhoneNumber",
            client
                .get_phone_number(pb::GetPhoneNumberRequest {
                    phone_number: "+14255550101".into(),
                })
                .await
                .map(drop),
        ),
        (
            "ListPhoneNumbers",
            client
                .list_phone_numbers(pb::ListPhoneNumbersRequest::default())
                .await
                .map(drop),
        ),
        (
            "ListOperators",
            client
                .list_operators(pb::ListOperatorsRequest::default())
                .await
                .map(drop),
        ),
    ]
}

/// Asserts that every RPC answers UNAUTHENTICATED / UNAUTHENTICATED to `client`.
async fn assert_every_call_unauthenticated(client: &mut RawClient, what: &str) {
    for (rpc, result) in call_everything(client).await {
        if let Err(status) = &result {
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{what}: {rpc}: {status:?}"
            );
        }
        let status = assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
        assert!(
            !status.message().is_empty(),
            "{what}: {rpc}: the answer explains nothing"
        );
    }
}

/// A JWT signed with `secret` (HS256) carrying `claims`.
fn jwt(secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encode a JWT")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn bad_credentials_are_unauthenticated_on_every_rpc(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let valid = app.token(TENANT, Role::Admin);
    let other_key = SigningKey::from_secret(&[9; 32])
        .mint(TENANT, "mallory", Role::Admin, Duration::from_secs(600))
        .unwrap();
    let now = unix_now();
    // Signed with a key of our own choosing: the service must not accept it, whatever it says.
    let expired_other_key = jwt(
        &[9; 32],
        &serde_json::json!({
            "iss": "numbers", "aud": "numbers", "sub": "mallory", "tenant": TENANT,
            "role": "ADMIN", "iat": now - 1200, "exp": now - 600,
        }),
    );
    // A valid token whose claims were swapped for another tenant's, keeping the signature.
    let parts: Vec<&str> = valid.split('.').collect();
    assert_eq!(parts.len(), 3);
    let forged_payload = URL_SAFE_NO_PAD.encode(
        serde_json::json!({
            "iss": "numbers", "aud": "numbers", "sub": "mallory", "tenant": OTHER_TENANT,
            "role": "ADMIN", "iat": now, "exp": now + 600,
        })
        .to_string(),
    );
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    // An unsigned token.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(
            serde_json::json!({
                "iss": "numbers", "aud": "numbers", "sub": "mallory", "tenant": TENANT,
                "role": "ADMIN", "iat": now, "exp": now + 600,
            })
            .to_string()
        )
    );
    let mut tampered = valid.clone();
    tampered.insert(tampered.len() / 2, 'x');

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no authorization metadata", None),
        ("a Basic scheme", Some("Basic dXNlcjpwYXNzd29yZA==".into())),
        (
            "a valid token under another scheme",
            Some(format!("Token {valid}")),
        ),
        ("a valid token without a scheme", Some(valid.clone())),
        ("Bearer and no token", Some("Bearer".into())),
        ("a malformed token", Some("Bearer not-a-token".into())),
        (
            "a token of three garbage parts",
            Some("Bearer aaa.bbb.ccc".into()),
        ),
        ("a tampered token", Some(format!("Bearer {tampered}"))),
        (
            "a token signed by another key",
            Some(format!("Bearer {other_key}")),
        ),
        (
            "an expired token signed by another key",
            Some(format!("Bearer {expired_other_key}")),
        ),
        (
            "a token with forged claims",
            Some(format!("Bearer {forged}")),
        ),
        ("an unsigned token", Some(format!("Bearer {unsigned}"))),
    ];
    for (what, header) in &cases {
        let mut client = raw_client(&app, header.as_deref());
        assert_every_call_unauthenticated(&mut client, what).await;
    }
    // Helper clients without a token, too.
    let mut anonymous = app.client_with_token(None);
    assert_error(
        anonymous
            .get_user(pb::GetUserRequest {
                identity: "john@contoso.com".into(),
            })
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    let mut wrong = app.client_with_token(Some(&other_key));
    assert_error(
        wrong
            .list_phone_numbers(pb::ListPhoneNumbersRequest::default())
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );

    // A different message for each failure, so administrators know what to fix.
    let message = |status: Status| status.message().to_owned();
    let mut client = raw_client(&app, None);
    let missing = message(
        client
            .list_users(pb::ListUsersRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(missing.contains("authorization"), "{missing}");
    let mut client = raw_client(&app, Some(&format!("Bearer {other_key}")));
    let foreign = message(
        client
            .list_users(pb::ListUsersRequest::default())
            .await
            .unwrap_err(),
    );
    assert!(foreign.contains("not signed by this service"), "{foreign}");

    // None of the refused calls changed anything.
    let mut admin = app.admin(TENANT);
    assert_error(
        admin
            .get_user(pb::GetUserRequest {
                identity: "eve@contoso.com".into(),
            })
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let locations = admin
        .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        locations.emergency_locations.len(),
        4,
        "only the demo locations"
    );

    // The scheme is case-insensitive, and the right token works with it.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut client = raw_client(&app, Some(&format!("{scheme} {valid}")));
        let john = client
            .get_user(pb::GetUserRequest {
                identity: "john@contoso.com".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("{scheme}: {s:?}"))
            .into_inner();
        assert_eq!(john.id, JOHN_ID);
    }
}

async fn expired_tokens_stop_working(backend: Backend) {
    let app = TestApp::start_with_manual_clock(backend, TestConfig::default()).await;
    demo::load(app.store.as_ref())
        .await
        .expect("the demo tenant");
    let token = app
        .key
        .mint(TENANT, "short-lived", Role::Admin, Duration::from_secs(60))
        .unwrap();
    let mut client = raw_client(&app, Some(&format!("Bearer {token}")));
    // The service allows 30 seconds of clock skew beyond the token's lifetime.
    app.advance(Duration::from_secs(85));
    let john = client
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .expect("the token works within its lifetime and the skew allowance")
        .into_inner();
    assert_eq!(john.id, JOHN_ID);

    app.advance(Duration::from_secs(10));
    let status = assert_error(
        client
            .get_user(pb::GetUserRequest {
                identity: "john@contoso.com".into(),
            })
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert!(status.message().contains("expired"), "{status:?}");
    assert_every_call_unauthenticated(&mut client, "an expired token").await;
}

async fn health_answers_serving_without_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", "numbers.v1.NumberManagement"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?}: {s:?}"))
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");

        let mut watch = health
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("watch of {service:?}: {s:?}"))
            .into_inner();
        let first = watch
            .next()
            .await
            .expect("a first status")
            .expect("a status");
        assert_eq!(first.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "numbers.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

async fn reflection_lists_the_services_without_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wanted = ["numbers.v1.NumberManagement", "grpc.health.v1.Health"];

    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let mut client = ServerReflectionClient::new(app.channel());
        let requests = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(
                    "numbers.v1.NumberManagement".into(),
                )),
            },
        ];
        let mut answers = client
            .server_reflection_info(futures::stream::iter(requests))
            .await
            .expect("reflection v1")
            .into_inner();
        let listed = answers
            .message()
            .await
            .unwrap()
            .expect("a list of services");
        let names: Vec<String> = match listed.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("v1: not a list of services: {other:?}"),
        };
        for name in wanted {
            assert!(
                names.iter().any(|n| n == name),
                "v1 lacks {name}: {names:?}"
            );
        }
        let file = answers.message().await.unwrap().expect("a file descriptor");
        match file.message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                assert!(!files.file_descriptor_proto.is_empty());
            }
            other => panic!("v1: not a file descriptor: {other:?}"),
        }
    }

    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

        let mut client = ServerReflectionClient::new(app.channel());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter(vec![request]))
            .await
            .expect("reflection v1alpha")
            .into_inner();
        let listed = answers
            .message()
            .await
            .unwrap()
            .expect("a list of services");
        let names: Vec<String> = match listed.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("v1alpha: not a list of services: {other:?}"),
        };
        for name in wanted {
            assert!(
                names.iter().any(|n| n == name),
                "v1alpha lacks {name}: {names:?}"
            );
        }
    }
}

async fn readers_read_but_do_not_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let john = app
        .user(TENANT, "john@contoso.com", "John Smith", "US")
        .await;
    app.seed_numbers(
        TENANT,
        &[assigned(
            number("+14255550101", NumberType::CallingPlan),
            &john.id,
            AssignmentCategory::Primary,
        )],
    )
    .await;
    let mut reader = app.reader(TENANT);

    let read = reader
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .expect("a reader may get a user")
        .into_inner();
    assert_eq!(read.id, john.id);
    assert_eq!(read.display_name, "John Smith");
    assert_eq!(read.phone_numbers, ["+14255550101"]);
    let users = reader
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("a reader may list users")
        .into_inner();
    assert_eq!(users.users.len(), 1);
    let numbers = reader
        .list_phone_numbers(pb::ListPhoneNumbersRequest::default())
        .await
        .expect("a reader may list numbers")
        .into_inner();
    assert_eq!(numbers.phone_numbers.len(), 1);
    assert_eq!(numbers.phone_numbers[0].assigned_to, john.id);
    assert_eq!(
        numbers.phone_numbers[0].assigned_to_user_principal_name,
        "john@contoso.com"
    );
    let number = reader
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: "+14255550101".into(),
        })
        .await
        .expect("a reader may get a number")
        .into_inner();
    assert_eq!(number.assigned_to, john.id);
    reader
        .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
        .await
        .expect("a reader may list locations");
    let operators = reader
        .list_operators(pb::ListOperatorsRequest::default())
        .await
        .expect("a reader may list operators")
        .into_inner();
    assert_eq!(operators.operators.len(), 2);

    // Changes are refused, also when only validating, and before the request is validated.
    let mut change_john = new_user("john@contoso.com", "Johnny");
    change_john.user.as_mut().unwrap().id = john.id.clone();
    let upserts = [
        ("a new user", new_user("eve@contoso.com", "Eve")),
        ("a change of john", change_john),
        (
            "validate_only",
            pb::UpsertUserRequest {
                validate_only: true,
                ..new_user("eve@contoso.com", "Eve")
            },
        ),
        (
            "with a request id",
            pb::UpsertUserRequest {
                request_id: "3f2b8e1c-5d4a-4f6e-9b7a-0c1d2e3f4a5b".into(),
                ..new_user("eve@contoso.com", "Eve")
            },
        ),
        ("no user at all", pb::UpsertUserRequest::default()),
        ("a bad user principal name", new_user("not a upn", "Eve")),
    ];
    for (what, request) in upserts {
        let status = assert_error(
            reader.upsert_user(request).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert!(violated_fields(&status).is_empty(), "{what}: {status:?}");
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(
            info.metadata.get("role").map(String::as_str),
            Some("READER"),
            "{what}"
        );
    }
    let locations = [
        ("a valid location", new_location()),
        (
            "validate_only",
            pb::CreateEmergencyLocationRequest {
                validate_only: true,
                ..new_location()
            },
        ),
        (
            "an empty location",
            pb::CreateEmergencyLocationRequest::default(),
        ),
    ];
    for (what, request) in locations {
        let status = assert_error(
            reader.create_emergency_location(request).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert!(violated_fields(&status).is_empty(), "{what}: {status:?}");
    }

    // Nothing changed.
    let mut admin = app.admin(TENANT);
    assert_error(
        admin
            .get_user(pb::GetUserRequest {
                identity: "eve@contoso.com".into(),
            })
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let john_now = admin
        .get_user(pb::GetUserRequest {
            identity: john.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(john_now.display_name, "John Smith");
    assert_eq!(john_now.etag, john.etag);
    let locations = admin
        .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(locations.emergency_locations.is_empty());

    // The admin may do what the reader may not; and the request id the reader sent was not
    // consumed.
    let eve = admin
        .upsert_user(pb::UpsertUserRequest {
            request_id: "3f2b8e1c-5d4a-4f6e-9b7a-0c1d2e3f4a5b".into(),
            ..new_user("eve@contoso.com", "Eve")
        })
        .await
        .expect("an admin may upsert")
        .into_inner();
    assert_eq!(eve.user_principal_name, "eve@contoso.com");
    admin
        .create_emergency_location(new_location())
        .await
        .expect("an admin may create a location");
}

async fn tenants_see_only_their_own_records(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut contoso = app.admin(TENANT);
    let mut fabrikam = app.admin(OTHER_TENANT);

    // The records exist, in contoso.
    let john = contoso
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(john.id, JOHN_ID);
    assert_eq!(john.display_name, "John Smith");
    contoso
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: "+14255550101".into(),
        })
        .await
        .unwrap();
    contoso
        .get_emergency_location(pb::GetEmergencyLocationRequest {
            id: "redmond-hq".into(),
        })
        .await
        .unwrap();
    let contoso_users = contoso
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(contoso_users.len(), 6);

    // ... and not in fabrikam.
    for identity in [
        "john@contoso.com",
        JOHN_ID,
        "sip:john@contoso.com",
        "JOHN@CONTOSO.COM",
    ] {
        assert_error(
            fabrikam
                .get_user(pb::GetUserRequest {
                    identity: identity.into(),
                })
                .await,
            Code::NotFound,
            "USER_NOT_FOUND",
        );
    }
    for phone_number in [
        "+14255550101",
        "+14255550102",
        "+18005550100",
        "+33140000001",
    ] {
        assert_error(
            fabrikam
                .get_phone_number(pb::GetPhoneNumberRequest {
                    phone_number: phone_number.into(),
                })
                .await,
            Code::NotFound,
            "NUMBER_NOT_FOUND",
        );
    }
    for id in ["redmond-hq", "paris-office"] {
        assert_error(
            fabrikam
                .get_emergency_location(pb::GetEmergencyLocationRequest { id: id.into() })
                .await,
            Code::NotFound,
            "EMERGENCY_LOCATION_NOT_FOUND",
        );
    }
    let users = fabrikam
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(users.users.is_empty());
    assert!(users.next_page_token.is_empty());
    let numbers = fabrikam
        .list_phone_numbers(pb::ListPhoneNumbersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(numbers.phone_numbers.is_empty());
    assert!(numbers.next_page_token.is_empty());
    let by_location = fabrikam
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            emergency_location_id: "redmond-hq".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_location.phone_numbers.is_empty());
    assert_error(
        fabrikam
            .list_phone_numbers(pb::ListPhoneNumbersRequest {
                assigned_to: "john@contoso.com".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let locations = fabrikam
        .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(locations.emergency_locations.is_empty());
    assert!(locations.next_page_token.is_empty());
    // Consents belong to contoso: fabrikam sees the operators, none enabled.
    let operators = fabrikam
        .list_operators(pb::ListOperatorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .operators;
    assert_eq!(operators.len(), 2);
    assert!(
        operators
            .iter()
            .all(|o| !o.enabled && o.enabled_countries.is_empty()),
        "{operators:?}"
    );
    let contoso_operators = contoso
        .list_operators(pb::ListOperatorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .operators;
    assert!(
        contoso_operators.iter().all(|o| o.enabled),
        "{contoso_operators:?}"
    );

    // Fabrikam may have its own john@contoso.com, and its own user with john's id: contoso's john
    // does not change.
    let fabrikam_john = fabrikam
        .upsert_user(new_user("john@contoso.com", "Fabrikam's John"))
        .await
        .expect("the same user principal name in another tenant")
        .into_inner();
    assert_ne!(fabrikam_john.id, JOHN_ID);
    assert_eq!(fabrikam_john.display_name, "Fabrikam's John");
    let mut impostor = new_user("impostor@fabrikam.com", "Impostor");
    impostor.user.as_mut().unwrap().id = JOHN_ID.into();
    let fabrikam_impostor = fabrikam
        .upsert_user(impostor)
        .await
        .expect("the same id in another tenant")
        .into_inner();
    assert_eq!(fabrikam_impostor.id, JOHN_ID);
    assert_eq!(
        fabrikam_impostor.user_principal_name,
        "impostor@fabrikam.com"
    );

    let john_after = contoso
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(john_after.id, JOHN_ID);
    assert_eq!(john_after.display_name, "John Smith");
    assert_eq!(john_after.user_principal_name, "john@contoso.com");
    assert_eq!(john_after.etag, john.etag);
    assert_eq!(john_after.update_time, john.update_time);
    let john_by_id = contoso
        .get_user(pb::GetUserRequest {
            identity: JOHN_ID.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(john_by_id.user_principal_name, "john@contoso.com");
    assert_eq!(
        contoso
            .list_users(pb::ListUsersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .users
            .len(),
        6
    );

    let seen_by_fabrikam = fabrikam
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen_by_fabrikam.id, fabrikam_john.id);
    assert_eq!(seen_by_fabrikam.display_name, "Fabrikam's John");
    let fabrikam_users = fabrikam
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let upns: Vec<&str> = fabrikam_users
        .users
        .iter()
        .map(|u| u.user_principal_name.as_str())
        .collect();
    assert_eq!(upns, ["impostor@fabrikam.com", "john@contoso.com"]);
}

on_both_stores!(
    bad_credentials_are_unauthenticated_on_every_rpc,
    expired_tokens_stop_working,
    health_answers_serving_without_a_token,
    reflection_lists_the_services_without_a_token,
    readers_read_but_do_not_change,
    tenants_see_only_their_own_records,
);
