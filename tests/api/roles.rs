//! The role matrix, walked whole: every RPC of the compiled service descriptors is called over a
//! real connection by every role, and answers as the table below (the README's) says. An RPC
//! added to the API without a row here fails the walk, and one without a row in the service's
//! own matrix is refused to everyone, which fails it too.
//!
//! Roles are decided before the request is read, whatever the store, so the walk runs on
//! SQLite only.

use std::collections::BTreeSet;
use std::time::Duration;

use number_management::auth::Role;
use number_management::proto::FILE_DESCRIPTOR_SET;
use number_management::proto::v1 as pb;
use prost::Message as _;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

use crate::calls::{assign, assign_request, remove, remove_request};
use crate::helpers::{Backend, TestApp, assert_error};

const TENANT: &str = "contoso";

/// Who may call what, as the README's table says: `A` admin, `H` helpdesk, `R` reader, `O`
/// operator (OperatorConnect only).
const EXPECTED: &[(&str, &str)] = &[
    ("NumberManagement/GetUser", "AHR"),
    ("NumberManagement/ListUsers", "AHR"),
    ("NumberManagement/GetEmergencyLocation", "AHR"),
    ("NumberManagement/ListEmergencyLocations", "AHR"),
    ("NumberManagement/GetPhoneNumber", "AHR"),
    ("NumberManagement/ListPhoneNumbers", "AHR"),
    ("NumberManagement/ListOperators", "AHR"),
    ("NumberManagement/ListAuditEvents", "AHR"),
    ("NumberManagement/GetOperation", "AHR"),
    ("NumberManagement/ExportPhoneNumbers", "AHR"),
    ("NumberManagement/GetNotificationSettings", "AHR"),
    ("NumberManagement/GetTenantConfiguration", "AHR"),
    ("NumberManagement/ListTags", "AHR"),
    ("NumberManagement/GetEmergencyReadiness", "AHR"),
    ("NumberManagement/ListOperations", "AHR"),
    ("NumberManagement/WatchChanges", "AHR"),
    ("NumberManagement/ValidateEmergencyAddress", "AHR"),
    ("NumberManagement/AssignPhoneNumber", "AH"),
    ("NumberManagement/ChangePhoneNumber", "AH"),
    ("NumberManagement/RemovePhoneNumber", "AH"),
    ("NumberManagement/UpdateEmergencyLocation", "AH"),
    ("NumberManagement/SetAssignmentBlock", "AH"),
    ("NumberManagement/RemoveAssignmentBlock", "AH"),
    ("NumberManagement/TransferPhoneNumber", "AH"),
    ("NumberManagement/AddPhoneNumberTags", "AH"),
    ("NumberManagement/RemovePhoneNumberTags", "AH"),
    ("NumberManagement/RetryOperation", "AH"),
    ("NumberManagement/CancelOperation", "AH"),
    ("NumberManagement/UpsertUser", "A"),
    ("NumberManagement/CreateEmergencyLocation", "A"),
    ("NumberManagement/CreateEmergencyPlace", "A"),
    ("NumberManagement/UpdateEmergencyLocationDetails", "A"),
    ("NumberManagement/DeleteEmergencyLocation", "A"),
    ("NumberManagement/AcquirePhoneNumbers", "A"),
    ("NumberManagement/ReleasePhoneNumbers", "A"),
    ("NumberManagement/UploadDirectRoutingNumbers", "A"),
    ("NumberManagement/ReleaseDirectRoutingNumbers", "A"),
    ("NumberManagement/EnableOperator", "A"),
    ("NumberManagement/DisableOperator", "A"),
    ("NumberManagement/UpdateNotificationSettings", "A"),
    ("NumberManagement/UpdateTenantConfiguration", "A"),
    ("NumberManagement/BulkUpsertUsers", "A"),
    ("NumberManagement/BulkAssignPhoneNumbers", "A"),
    ("NumberManagement/BulkRemovePhoneNumbers", "A"),
    ("NumberManagement/BulkUpdateEmergencyLocations", "A"),
    ("OperatorConnect/UploadNumbers", "O"),
    ("OperatorConnect/ReleaseNumbers", "O"),
];

/// Every RPC of the compiled descriptors of package `numbers.v1`, as `Service/Method`.
fn every_rpc() -> Vec<String> {
    let files = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set");
    let rpcs: Vec<String> = files
        .file
        .iter()
        .filter(|file| file.package() == "numbers.v1")
        .flat_map(|file| &file.service)
        .flat_map(|service| {
            service
                .method
                .iter()
                .map(move |method| format!("{}/{}", service.name(), method.name()))
        })
        .collect();
    assert!(rpcs.len() >= 20, "too few RPCs found: {rpcs:?}");
    rpcs
}

/// Calls `path` with an empty request, sending `token`: any RPC, whatever its messages (an
/// empty message is zero bytes, and the answer is not read past its start).
async fn call(channel: Channel, path: &str, token: &str) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("an ASCII token"),
    );
    let path = PathAndQuery::try_from(path.to_owned()).expect("a gRPC path");
    // Read as a stream, and only its start: a stream that never ends (WatchChanges) answers
    // its headers at once, and a refusal comes without a body.
    grpc.server_streaming::<(), (), _>(request, path, tonic_prost::ProstCodec::default())
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rpc_answers_every_role_as_the_matrix_says() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let callers = [
        ('A', "ADMIN", app.token(TENANT, Role::Admin)),
        ('H', "HELPDESK", app.token(TENANT, Role::Helpdesk)),
        ('R', "READER", app.token(TENANT, Role::Reader)),
        (
            'O',
            "OPERATOR",
            app.key
                .mint_operator("fabrikam-telecom", "test", Duration::from_secs(600))
                .expect("an operator token"),
        ),
    ];
    let rpcs = every_rpc();
    let listed: BTreeSet<&str> = EXPECTED.iter().map(|(rpc, _)| *rpc).collect();
    let found: BTreeSet<&str> = rpcs.iter().map(String::as_str).collect();
    let stale: Vec<_> = listed.difference(&found).collect();
    assert!(
        stale.is_empty(),
        "rows for RPCs that do not exist: {stale:?}"
    );

    for rpc in &rpcs {
        let allowed = EXPECTED
            .iter()
            .find(|(row, _)| row == rpc)
            .map(|(_, roles)| *roles)
            .unwrap_or_else(|| {
                panic!("{rpc} has no row in the role matrix: decide who may call it")
            });
        let path = format!("/numbers.v1.{rpc}");
        for (letter, role, token) in &callers {
            let result = call(app.channel(), &path, token).await;
            if allowed.contains(*letter) {
                if let Err(status) = &result {
                    assert!(
                        !matches!(
                            status.code(),
                            Code::PermissionDenied | Code::Unauthenticated
                        ),
                        "{role} may call {rpc}, but: {status:?}"
                    );
                }
            } else {
                let status = assert_error(result, Code::PermissionDenied, "PERMISSION_DENIED");
                let details = status.get_error_details();
                let info = details.error_info().expect("ErrorInfo");
                assert_eq!(
                    info.metadata.get("role").map(String::as_str),
                    Some(*role),
                    "{rpc}: {status:?}"
                );
                assert_eq!(
                    info.metadata.get("method").map(String::as_str),
                    Some(path.as_str()),
                    "{rpc}: {status:?}"
                );
            }
        }
    }

    // A method the matrix does not know is nobody's, the admin's included.
    for path in [
        "/numbers.v1.NumberManagement/DeleteTenant",
        "/numbers.v1.OperatorConnect/DeleteTenant",
    ] {
        assert_error(
            call(app.channel(), path, &callers[0].2).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_helpdesk_assigns_and_removes_but_does_not_buy_or_write_the_directory() {
    let app = TestApp::spawn_demo(Backend::Sqlite).await;
    let mut helpdesk = app.client_with_token(Some(&app.token(TENANT, Role::Helpdesk)));
    let assigned = assign(
        &mut helpdesk,
        pb::AssignPhoneNumberRequest {
            phone_number_type: pb::NumberType::OperatorConnect as i32,
            ..assign_request("jack@contoso.com", "+14255550102")
        },
    )
    .await
    .expect("the helpdesk assigns a number");
    assert_eq!(
        assigned.user.expect("the user").phone_numbers,
        ["+14255550102"]
    );
    let removed = remove(
        &mut helpdesk,
        pb::RemovePhoneNumberRequest {
            phone_number_type: pb::NumberType::OperatorConnect as i32,
            ..remove_request("jack@contoso.com", "+14255550102")
        },
    )
    .await
    .expect("the helpdesk removes it");
    assert!(removed.user.expect("the user").phone_numbers.is_empty());

    let status = assert_error(
        helpdesk
            .acquire_phone_numbers(pb::AcquirePhoneNumbersRequest {
                country: "US".into(),
                quantity: 1,
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_eq!(
        status.message(),
        "test has the helpdesk role, which may not call AcquirePhoneNumbers"
    );
    assert_error(
        helpdesk
            .upsert_user(pb::UpsertUserRequest {
                user: Some(pb::User {
                    user_principal_name: "eve@contoso.com".into(),
                    usage_location: "US".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        helpdesk
            .get_user(pb::GetUserRequest {
                identity: "eve@contoso.com".into(),
            })
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
}
