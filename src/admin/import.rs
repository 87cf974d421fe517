//! `numbers import`: assignments from a CSV file, as one bulk operation.
//!
//! The whole file is checked first as a plan (BulkAssignPhoneNumbers with `validate_only`):
//! every row gets its verdict and nothing changes. Only when every row passes does the import
//! run, as a bulk operation whose progress shows as a bar. Either way each row's result is
//! written to a results file beside the input, so a failed row can be fixed and imported again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;

use super::numbers::{Category, NumberType};
use super::output::{Format, json, print_json, table};
use super::{Common, Exit, Failure, Outcome, connection, operations, request_id};
use crate::proto::v1 as pb;

/// The most rows one import takes: the bulk call's own limit.
const MAX_ROWS: usize = 100_000;
/// Items per message of the bulk call's stream (its limit).
const ITEMS_PER_MESSAGE: usize = 1_000;
/// Item results per page read back.
const RESULTS_PER_PAGE: i32 = 1_000;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file: a header line naming the columns identity and number, and optionally type
    /// (calling-plan, operator-connect, direct-routing), location (an emergency location id) and
    /// category (primary, private, alternate), in any order; then one assignment per line.
    file: PathBuf,
    /// Where to write each row's result [default: the file's name ending .results.csv].
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Check every row and stop there: change nothing.
    #[arg(long)]
    plan: bool,
    /// Do not email the users about their numbers (the tenant's default otherwise).
    #[arg(long)]
    no_notify: bool,
    /// How long to wait for each of the plan and the run, such as 30m.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    pub common: Common,
}

/// One row of the file.
#[derive(Debug)]
struct Row {
    /// The row's line in the file (the header is line 1).
    line: u64,
    identity: String,
    number: String,
    /// The request, or why the row cannot become one.
    request: Result<pb::AssignPhoneNumberRequest, String>,
}

/// What became of a row.
#[derive(Debug, Default, Clone)]
struct Verdict {
    code: String,
    reason: String,
    message: String,
    operation_id: String,
}

impl Verdict {
    fn ok(&self) -> bool {
        self.code == "OK"
    }

    fn of(status: &tonic_types::pb::Status, operation_id: String) -> Self {
        let reason = status
            .details
            .iter()
            .filter(|any| any.type_url.ends_with("/google.rpc.ErrorInfo"))
            .find_map(|any| tonic_types::pb::ErrorInfo::decode(any.value.as_slice()).ok())
            .map(|info| info.reason)
            .unwrap_or_default();
        Self {
            code: crate::proto::code_name(tonic::Code::from(status.code)),
            reason,
            message: status.message.clone(),
            operation_id,
        }
    }
}

/// Folds a column value into a keyword: `Calling Plan`, `calling_plan` and `CallingPlan` all
/// read `callingplan`.
fn keyword(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn number_type(text: &str) -> Result<Option<NumberType>, String> {
    match keyword(text).as_str() {
        "" => Ok(None),
        "callingplan" => Ok(Some(NumberType::CallingPlan)),
        "operatorconnect" => Ok(Some(NumberType::OperatorConnect)),
        "directrouting" => Ok(Some(NumberType::DirectRouting)),
        _ => Err(format!(
            "type {text:?} is not calling-plan, operator-connect or direct-routing"
        )),
    }
}

fn category(text: &str) -> Result<Option<Category>, String> {
    match keyword(text).as_str() {
        "" => Ok(None),
        "primary" => Ok(Some(Category::Primary)),
        "private" => Ok(Some(Category::Private)),
        "alternate" => Ok(Some(Category::Alternate)),
        _ => Err(format!(
            "category {text:?} is not primary, private or alternate"
        )),
    }
}

/// The columns of the file, found by their header's names.
struct Columns {
    identity: usize,
    number: usize,
    number_type: Option<usize>,
    location: Option<usize>,
    category: Option<usize>,
}

impl Columns {
    fn of(header: &csv::StringRecord) -> anyhow::Result<Self> {
        let find = |names: &[&str]| {
            header
                .iter()
                .position(|h| names.contains(&keyword(h).as_str()))
        };
        let identity = find(&["identity", "user", "userprincipalname", "upn"]);
        let number = find(&["number", "phonenumber", "telephonenumber"]);
        let (Some(identity), Some(number)) = (identity, number) else {
            anyhow::bail!(
                "the first line must name the columns: identity, number, and optionally type, \
                 location and category (it reads {:?})",
                header.iter().collect::<Vec<_>>()
            );
        };
        Ok(Self {
            identity,
            number,
            number_type: find(&["type", "numbertype", "phonenumbertype"]),
            location: find(&["location", "locationid", "emergencylocationid"]),
            category: find(&["category", "assignmentcategory"]),
        })
    }
}

/// Reads the file's rows. A file that is not CSV of the expected columns, or has too many rows,
/// is the command line's mistake (exit 2), said before anything is sent.
fn read_rows(path: &Path, notify_user: Option<bool>) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let columns = Columns::of(reader.headers().context("cannot read the header line")?)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{} is not CSV", path.display()))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        anyhow::ensure!(
            rows.len() < MAX_ROWS,
            "{} has more than {MAX_ROWS} rows: split it",
            path.display()
        );
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").to_owned();
        let identity = cell(Some(columns.identity));
        let number = cell(Some(columns.number));
        let request = number_type(&cell(columns.number_type)).and_then(|number_type| {
            let category = category(&cell(columns.category))?;
            Ok(pb::AssignPhoneNumberRequest {
                identity: identity.clone(),
                phone_number: number.clone(),
                phone_number_type: number_type.map(pb::NumberType::from).unwrap_or_default() as i32,
                emergency_location_id: cell(columns.location),
                assignment_category: category
                    .map(pb::AssignmentCategory::from)
                    .unwrap_or_default() as i32,
                notify_user,
                request_id: String::new(),
                validate_only: false,
            })
        });
        rows.push(Row {
            line: record.position().map_or(0, |p| p.line()),
            identity,
            number,
            request,
        });
    }
    anyhow::ensure!(!rows.is_empty(), "{} has no rows", path.display());
    Ok(rows)
}

/// Runs the rows' requests as one bulk call (a plan with `validate_only`), waits for it, and
/// answers a verdict per row (rows that could not become a request keep theirs).
async fn bulk(
    client: &mut connection::Client,
    rows: &[Row],
    validate_only: bool,
    timeout: Duration,
) -> Result<(pb::Operation, Vec<Verdict>), Failure> {
    let mut verdicts: Vec<Verdict> = rows
        .iter()
        .map(|row| match &row.request {
            Ok(_) => Verdict::default(),
            Err(why) => Verdict {
                code: "INVALID_ARGUMENT".into(),
                reason: "INVALID_CSV_VALUE".into(),
                message: why.clone(),
                operation_id: String::new(),
            },
        })
        .collect();
    // The bulk call's item index -> the row it came from.
    let sent: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].request.is_ok())
        .collect();
    // Fresh ids for each call: the plan's and the run's items are different requests.
    let items: Vec<pb::AssignPhoneNumberRequest> = sent
        .iter()
        .filter_map(|&i| rows[i].request.clone().ok())
        .map(|item| pb::AssignPhoneNumberRequest {
            request_id: request_id(),
            ..item
        })
        .collect();
    let bulk_id = request_id();
    let messages: Vec<pb::BulkAssignPhoneNumbersRequest> = items
        .chunks(ITEMS_PER_MESSAGE)
        .map(|chunk| pb::BulkAssignPhoneNumbersRequest {
            items: chunk.to_vec(),
            request_id: bulk_id.clone(),
            validate_only,
        })
        .collect();
    if messages.is_empty() {
        return Ok((pb::Operation::default(), verdicts));
    }
    let started = client
        .bulk_assign_phone_numbers(futures::stream::iter(messages))
        .await?
        .into_inner();
    let message = if validate_only {
        "checking every row"
    } else {
        "assigning"
    };
    let operation = operations::wait(client, &started.id, timeout, message).await?;
    let mut page_token = String::new();
    loop {
        let page = client
            .get_operation(pb::GetOperationRequest {
                id: started.id.clone(),
                page_size: RESULTS_PER_PAGE,
                page_token,
                failed_only: false,
            })
            .await?
            .into_inner();
        for result in page.results {
            let row = usize::try_from(result.index)
                .ok()
                .and_then(|index| sent.get(index));
            if let (Some(&row), Some(status)) = (row, &result.status) {
                verdicts[row] = Verdict::of(status, result.operation_id);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok((operation, verdicts))
}

/// Writes each row's result as CSV: line, identity, number, result, code, reason, message,
/// operation.
fn write_results(
    path: &Path,
    rows: &[Row],
    verdicts: &[Verdict],
    validate_only: bool,
) -> anyhow::Result<()> {
    let mut writer =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    writer.write_record([
        "line",
        "identity",
        "number",
        "result",
        "code",
        "reason",
        "message",
        "operation",
    ])?;
    for (row, verdict) in rows.iter().zip(verdicts) {
        let result = match (verdict.ok(), validate_only) {
            (true, true) => "can be assigned",
            (true, false) => "assigned",
            (false, true) => "would be refused",
            (false, false) => "refused",
        };
        writer.write_record([
            row.line.to_string().as_str(),
            &row.identity,
            &row.number,
            result,
            &verdict.code,
            &verdict.reason,
            &verdict.message,
            &verdict.operation_id,
        ])?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The results file beside `input`: `assignments.csv` -> `assignments.results.csv`.
fn results_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    input.with_file_name(format!("{stem}.results.csv"))
}

/// Prints the refused rows and a summary; answers how many were refused.
fn report(
    rows: &[Row],
    verdicts: &[Verdict],
    operation: &pb::Operation,
    validate_only: bool,
    results: &Path,
    format: Format,
) -> usize {
    let refused: Vec<(&Row, &Verdict)> = rows
        .iter()
        .zip(verdicts)
        .filter(|(_, verdict)| !verdict.ok())
        .collect();
    let passed = rows.len() - refused.len();
    match format {
        Format::Json => {
            let rows: Vec<_> = rows
                .iter()
                .zip(verdicts)
                .map(|(row, v)| {
                    serde_json::json!({
                        "line": row.line, "identity": row.identity, "number": row.number,
                        "code": v.code, "reason": v.reason, "message": v.message,
                        "operationId": v.operation_id,
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "validateOnly": validate_only,
                "operation": json(operation),
                "rows": rows,
                "passed": passed,
                "refused": refused.len(),
                "results": results.display().to_string(),
            }));
        }
        Format::Table => {
            if !refused.is_empty() {
                let mut failures =
                    table(["line", "identity", "number", "code", "reason", "message"]);
                for (row, v) in &refused {
                    failures.add_row([
                        row.line.to_string(),
                        row.identity.clone(),
                        row.number.clone(),
                        v.code.clone(),
                        v.reason.clone(),
                        v.message.clone(),
                    ]);
                }
                println!("{failures}");
            }
            let (passed_words, refused_words) = if validate_only {
                ("can be assigned", "would be refused")
            } else {
                ("assigned", "refused")
            };
            println!(
                "{passed} of {} rows {passed_words}, {} {refused_words}; each row's result is in {}",
                rows.len(),
                refused.len(),
                results.display()
            );
        }
    }
    refused.len()
}

pub(super) async fn run(args: ImportArgs) -> Outcome {
    let format = args.common.output.output;
    let rows = match read_rows(&args.file, args.no_notify.then_some(false)) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Err(Failure::Reported(Exit::Usage));
        }
    };
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| results_path(&args.file));
    let mut client = connection::client(&args.common.connection.resolved()?)?;

    let (plan, verdicts) = bulk(&mut client, &rows, true, args.timeout).await?;
    write_results(&results, &rows, &verdicts, true)?;
    let refused = report(&rows, &verdicts, &plan, true, &results, format);
    if refused > 0 {
        if format == Format::Table {
            println!("nothing was changed: fix the refused rows and import the file again");
        }
        return Err(Failure::Reported(Exit::Refused));
    }
    if args.plan {
        return Ok(());
    }

    let (operation, verdicts) = bulk(&mut client, &rows, false, args.timeout).await?;
    write_results(&results, &rows, &verdicts, false)?;
    let refused = report(&rows, &verdicts, &operation, false, &results, format);
    if refused > 0 {
        return Err(Failure::Reported(Exit::Refused));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_values_are_read_as_people_write_them() {
        assert_eq!(
            number_type("Calling Plan"),
            Ok(Some(NumberType::CallingPlan))
        );
        assert_eq!(
            number_type("direct_routing"),
            Ok(Some(NumberType::DirectRouting))
        );
        assert_eq!(number_type(""), Ok(None));
        assert!(number_type("pstn").is_err());
        assert_eq!(category("Primary"), Ok(Some(Category::Primary)));
        assert!(category("main").is_err());
    }

    #[test]
    fn the_results_go_beside_the_input() {
        assert_eq!(
            results_path(Path::new("/tmp/assignments.csv")),
            Path::new("/tmp/assignments.results.csv")
        );
    }
}
