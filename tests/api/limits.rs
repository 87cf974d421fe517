//! Hostile input: every string and list field of every request of every service has a limit.
//! The test walks the API's descriptors, so a field or an RPC added later is covered without
//! anyone writing its case: for each field, it sends a request with that one field over any
//! limit, as raw bytes over a real connection, and expects INVALID_ARGUMENT naming the field.
//! And each tenant's requests a second are limited.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use number_management::api::{MAX_CHARS, MAX_ITEMS, MAX_MESSAGE_BYTES};
use number_management::proto::FILE_DESCRIPTOR_SET;
use number_management::proto::v1 as pb;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic_types::StatusExt as _;

use crate::helpers::{Backend, TestApp, TestConfig, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
/// Longer than any string limit (the longest is a page token's 1024 characters).
const OVERSIZE_CHARS: usize = 4096;

/// A codec that sends and receives messages as they are encoded.
#[derive(Debug, Default, Clone, Copy)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Calls `path` with `message` as an admin of the tenant or as an operator.
async fn call(app: &TestApp, path: &str, message: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let token = if path.starts_with("/numbers.v1.OperatorConnect/") {
        app.key
            .mint_operator(
                "fabrikam-telecom",
                "test",
                std::time::Duration::from_secs(600),
            )
            .expect("mint an operator token")
    } else {
        app.token(TENANT, number_management::auth::Role::Admin)
    };
    let mut grpc = tonic::client::Grpc::new(app.channel());
    grpc.ready().await.expect("the channel is ready");
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token"),
    );
    grpc.unary(request, path.parse().expect("a method path"), Raw)
        .await
        .map(tonic::Response::into_inner)
}

/// A field of a request, by the path of names from the request down to it.
#[derive(Debug, Clone)]
struct FieldPath(Vec<String>);

/// Every string and list field reachable from `message`, below `prefix`. Messages of other
/// packages (timestamps) and fields already on the path (recursion) are not entered.
fn fields(message: &MessageDescriptor, prefix: &[String], found: &mut Vec<FieldPath>) {
    for field in message.fields() {
        let mut path = prefix.to_vec();
        path.push(field.name().to_owned());
        if field.is_list() || matches!(field.kind(), Kind::String | Kind::Bytes) {
            found.push(FieldPath(path.clone()));
        }
        if let Kind::Message(nested) = field.kind()
            && nested.package_name() == "numbers.v1"
            && prefix.len() < 4
        {
            if field.is_list() {
                // The fields of a list's first item: `numbers[0].phone_number`.
                path.last_mut().expect("a path").push_str("[0]");
            }
            fields(&nested, &path, found);
        }
    }
}

/// The field at `path` below `descriptor`.
fn input_field(descriptor: &MessageDescriptor, path: &[String]) -> prost_reflect::FieldDescriptor {
    let name = path[0].trim_end_matches("[0]");
    let field = descriptor
        .get_field_by_name(name)
        .expect("a field of the path");
    match (path.len(), field.kind()) {
        (1, _) => field,
        (_, Kind::Message(nested)) => input_field(&nested, &path[1..]),
        _ => panic!("{path:?} goes through a scalar"),
    }
}

/// A message of type `descriptor` whose field at `path` is over any limit.
fn oversized(descriptor: &MessageDescriptor, path: &[String]) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    let (name, first_item) = match path[0].strip_suffix("[0]") {
        Some(name) => (name, true),
        None => (path[0].as_str(), false),
    };
    let field = descriptor
        .get_field_by_name(name)
        .expect("a field of the path");
    if path.len() > 1 {
        let Kind::Message(nested) = field.kind() else {
            panic!("{path:?} goes through a scalar");
        };
        let inner = Value::Message(oversized(&nested, &path[1..]));
        let value = if first_item {
            Value::List(vec![inner])
        } else {
            inner
        };
        message.set_field(&field, value);
        return message;
    }
    let one = match field.kind() {
        Kind::String => Value::String("x".repeat(OVERSIZE_CHARS)),
        Kind::Bytes => Value::Bytes(vec![0; OVERSIZE_CHARS].into()),
        Kind::Enum(_) => Value::EnumNumber(1),
        Kind::Message(nested) => Value::Message(DynamicMessage::new(nested)),
        _ => Value::I32(1),
    };
    let value = if field.is_list() {
        let one = match one {
            Value::String(_) => Value::String("x".into()),
            other => other,
        };
        Value::List(vec![one; MAX_ITEMS + 1])
    } else {
        one
    };
    message.set_field(&field, value);
    message
}

async fn every_field_of_every_request_has_a_limit(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("the API's descriptors");
    let mut checked = 0;
    for service in pool.services() {
        if service.package_name() != "numbers.v1" {
            continue;
        }
        for method in service.methods() {
            let input = method.input();
            let mut found = Vec::new();
            fields(&input, &[], &mut found);
            let path = format!("/{}/{}", service.full_name(), method.name());
            for FieldPath(field) in found {
                let message = oversized(&input, &field);
                let result = call(&app, &path, message.encode_to_vec()).await;
                let leaf = field.last().expect("a field");
                let is_list = input_field(&input, &field).is_list();
                let reason = match leaf.as_str() {
                    "page_token" => "INVALID_PAGE_TOKEN",
                    "phone_number" | "phone_numbers" if !is_list => "INVALID_PHONE_NUMBER",
                    _ => "INVALID_ARGUMENT",
                };
                let status = assert_error(result, Code::InvalidArgument, reason);
                assert_eq!(
                    violated_fields(&status),
                    [field.join(".")],
                    "{path} with {field:?} over its limit"
                );
                checked += 1;
            }
        }
    }
    // UpsertUser alone has a dozen; a walk that found nothing would prove nothing.
    assert!(checked > 50, "only {checked} fields were checked");

    // At the limit, a string is fine (the request fails for other reasons, or succeeds).
    let search = pb_list_users("s".repeat(MAX_CHARS));
    let answer = call(&app, "/numbers.v1.NumberManagement/ListUsers", search).await;
    assert!(answer.is_ok(), "{answer:?}");

    // A message over the size limit is refused before it is read, and the server serves on.
    let huge = pb_list_users("s".repeat(MAX_MESSAGE_BYTES + 1));
    let status = assert_error(
        call(&app, "/numbers.v1.NumberManagement/ListUsers", huge).await,
        Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
    );
    assert!(status.message().contains("1048576 bytes"), "{status:?}");
    assert!(
        call(
            &app,
            "/numbers.v1.NumberManagement/ListUsers",
            pb_list_users(String::new())
        )
        .await
        .is_ok()
    );
}

/// Each tenant and each operator has its own rate: past it, RESOURCE_EXHAUSTED with a
/// RetryInfo, while the others are served; after the delay, the tenant is served again.
async fn a_tenant_over_its_rate_is_told_when_to_retry(backend: Backend) {
    const RATE: u32 = 5;
    let app = TestApp::start(
        backend,
        TestConfig {
            tenant_requests_per_second: RATE,
            ..TestConfig::default()
        },
    )
    .await;
    let list = |client: &mut crate::helpers::Client| {
        let mut client = client.clone();
        async move { client.list_users(pb::ListUsersRequest::default()).await }
    };
    let mut contoso = app.reader(TENANT);
    let mut limited = None;
    // A second's worth may come at once; the calls after it are refused.
    for _ in 0..RATE * 3 {
        if let Err(status) = list(&mut contoso).await {
            limited = Some(status);
            break;
        }
    }
    let status = limited.expect("a call over the rate is refused");
    let status = assert_error(
        Err::<(), _>(status),
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo with a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );

    // Another tenant, and an operator, are served meanwhile.
    list(&mut app.reader("fabrikam"))
        .await
        .expect("another tenant");
    let mut operator = app.operator("fabrikam-telecom");
    let answer = operator
        .release_numbers(pb::ReleaseNumbersRequest {
            tenant_id: TENANT.into(),
            phone_numbers: vec!["+14255551001".into()],
            ..Default::default()
        })
        .await;
    if let Err(status) = &answer {
        assert_ne!(status.code(), Code::ResourceExhausted, "{status:?}");
    }

    // After the delay, the tenant is served again.
    tokio::time::sleep(delay).await;
    list(&mut contoso).await.expect("served after the delay");
}

/// A ListUsers request searching for `search`, encoded.
fn pb_list_users(search: String) -> Vec<u8> {
    number_management::proto::v1::ListUsersRequest {
        search,
        ..Default::default()
    }
    .encode_to_vec()
}

on_both_stores!(
    every_field_of_every_request_has_a_limit,
    a_tenant_over_its_rate_is_told_when_to_retry,
);
