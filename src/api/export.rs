//! `ExportPhoneNumbers`: the inventory as a stream of messages, or of CSV text, chunk by chunk
//! as the service reads it.

use std::pin::Pin;
use std::time::SystemTime;

use futures::{Stream, StreamExt as _};
use tonic::Status;

use super::convert;
use crate::domain::PhoneNumber;
use crate::error::Result;
use crate::proto::v1 as pb;
use pb::export_phone_numbers_request::Format;

/// The stream ExportPhoneNumbers answers with.
pub(crate) type ExportStream =
    Pin<Box<dyn Stream<Item = Result<pb::ExportPhoneNumbersResponse, Status>> + Send>>;

/// The CSV file's columns, as the header names them.
const CSV_HEADER: [&str; 13] = [
    "phone_number",
    "number_type",
    "country",
    "city",
    "operator_id",
    "capabilities",
    "assignment_status",
    "assigned_to",
    "assigned_to_user_principal_name",
    "assignment_category",
    "activation_state",
    "emergency_location_id",
    "update_time",
];

/// The messages of an export in `format`, from the service's chunks; `now` tells a number's
/// block as the API shows it.
pub(crate) fn messages(
    chunks: impl Stream<Item = Result<Vec<PhoneNumber>>> + Send + 'static,
    format: Format,
    now: SystemTime,
) -> ExportStream {
    let mut header = format == Format::Csv;
    Box::pin(chunks.map(move |chunk| {
        let numbers = chunk.map_err(Status::from)?;
        let numbers = numbers
            .into_iter()
            .map(|n| convert::phone_number_out(n, now));
        Ok(if format == Format::Csv {
            let csv = csv_lines(numbers, std::mem::take(&mut header))?;
            pb::ExportPhoneNumbersResponse {
                csv,
                ..Default::default()
            }
        } else {
            pb::ExportPhoneNumbersResponse {
                phone_numbers: numbers.collect(),
                ..Default::default()
            }
        })
    }))
}

/// The CSV lines of `numbers`, after the header line if `header`.
fn csv_lines(
    numbers: impl Iterator<Item = pb::PhoneNumber>,
    header: bool,
) -> Result<String, Status> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Status::internal(format!("writing CSV: {e}"));
    if header {
        writer.write_record(CSV_HEADER).map_err(failed)?;
    }
    for n in numbers {
        let capabilities: Vec<&str> = n.capabilities().map(|c| c.as_str_name()).collect();
        writer
            .write_record([
                n.phone_number.as_str(),
                n.number_type().as_str_name(),
                &n.country,
                &n.city,
                &n.operator_id,
                &capabilities.join(";"),
                n.assignment_status().as_str_name(),
                &n.assigned_to,
                &n.assigned_to_user_principal_name,
                n.assignment_category().as_str_name(),
                n.activation_state().as_str_name(),
                &n.emergency_location_id,
                &n.update_time.map(|t| t.to_string()).unwrap_or_default(),
            ])
            .map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Status::internal(format!("writing CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Status::internal(format!("writing CSV: {e}")))
}
