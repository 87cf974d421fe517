//! ExportPhoneNumbers streams the inventory in number order, from one snapshot, as messages or
//! as CSV.

use number_management::domain::NumberType;
use number_management::proto::v1 as pb;
use number_management::service::EXPORT_CHUNK;
use pb::export_phone_numbers_request::Format;
use tonic::Code;

use crate::helpers::{Backend, Client, TestApp, assert_error, number};
use crate::on_both_stores;

const TENANT: &str = "contoso";

/// The `i`th number of the seeded inventory, in number order.
fn nth(i: usize) -> String {
    format!("+1425555{i:04}")
}

async fn seeded(backend: Backend, count: usize) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let numbers: Vec<_> = (0..count)
        .map(|i| number(&nth(i), NumberType::DirectRouting))
        .collect();
    app.seed_numbers(TENANT, &numbers).await;
    app
}

async fn export(
    client: &mut Client,
    request: pb::ExportPhoneNumbersRequest,
) -> Vec<pb::ExportPhoneNumbersResponse> {
    let mut stream = client
        .export_phone_numbers(request)
        .await
        .expect("export")
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.expect("a message") {
        messages.push(message);
    }
    messages
}

async fn the_whole_inventory_comes_in_order(backend: Backend) {
    let count = 2 * EXPORT_CHUNK + 500;
    let app = seeded(backend, count).await;
    let mut reader = app.reader(TENANT);
    let messages = export(&mut reader, pb::ExportPhoneNumbersRequest::default()).await;
    let sizes: Vec<usize> = messages.iter().map(|m| m.phone_numbers.len()).collect();
    assert_eq!(sizes, [EXPORT_CHUNK, EXPORT_CHUNK, 500]);
    let exported: Vec<String> = messages
        .into_iter()
        .flat_map(|m| m.phone_numbers)
        .map(|n| n.phone_number)
        .collect();
    let expected: Vec<String> = (0..count).map(nth).collect();
    assert_eq!(exported, expected);

    // The filters of ListPhoneNumbers apply.
    let request = pb::ExportPhoneNumbersRequest {
        number_prefix: "+1425555012".into(),
        ..Default::default()
    };
    let filtered: Vec<String> = export(&mut reader, request)
        .await
        .into_iter()
        .flat_map(|m| m.phone_numbers)
        .map(|n| n.phone_number)
        .collect();
    assert_eq!(filtered, (120..130).map(nth).collect::<Vec<_>>());
    let request = pb::ExportPhoneNumbersRequest {
        assigned_to: "nobody@contoso.com".into(),
        ..Default::default()
    };
    assert_error(
        reader.export_phone_numbers(request).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
}

async fn an_export_is_one_snapshot(backend: Backend) {
    let count = 4 * EXPORT_CHUNK;
    let app = seeded(backend, count).await;
    let mut reader = app.reader(TENANT);
    let mut stream = reader
        .export_phone_numbers(pb::ExportPhoneNumbersRequest::default())
        .await
        .expect("export")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("a message")
        .expect("the first");
    assert_eq!(first.phone_numbers.len(), EXPORT_CHUNK);
    // Numbers added once the export began, after and among those still to come, are not in it.
    app.seed_numbers(
        TENANT,
        &[
            number("+14255559999", NumberType::DirectRouting),
            number(&format!("{};ext=5", nth(3500)), NumberType::DirectRouting),
        ],
    )
    .await;
    let mut exported = first.phone_numbers.len();
    while let Some(message) = stream.message().await.expect("a message") {
        exported += message.phone_numbers.len();
    }
    assert_eq!(
        exported, count,
        "the export saw numbers added after it began"
    );
}

async fn csv_has_a_header_and_a_line_per_number(backend: Backend) {
    let count = EXPORT_CHUNK + 1;
    let app = seeded(backend, count).await;
    let mut admin = app.admin(TENANT);
    let request = pb::ExportPhoneNumbersRequest {
        format: Format::Csv as i32,
        ..Default::default()
    };
    let messages = export(&mut admin, request).await;
    assert!(messages.iter().all(|m| m.phone_numbers.is_empty()));
    let text: String = messages.into_iter().map(|m| m.csv).collect();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().expect("a header").clone();
    assert_eq!(&header[0], "phone_number");
    assert_eq!(&header[1], "number_type");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), count);
    assert_eq!(&rows[0][0], nth(0));
    assert_eq!(&rows[count - 1][0], nth(count - 1));
    assert_eq!(&rows[0][1], "DIRECT_ROUTING");
    assert_eq!(&rows[0][6], "UNASSIGNED");
}

on_both_stores!(
    the_whole_inventory_comes_in_order,
    an_export_is_one_snapshot,
    csv_has_a_header_and_a_line_per_number,
);
