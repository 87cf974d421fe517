//! The commands on numbers: assign, change, remove, get, list, acquire, release, export.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use futures::StreamExt as _;

use super::output::{Format, json, numbers_table, print_json};
use super::{Common, Outcome, connection, request_id};
use crate::proto::v1 as pb;

/// A number's type, as the cmdlets' `-PhoneNumberType` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NumberType {
    CallingPlan,
    OperatorConnect,
    DirectRouting,
}

impl From<NumberType> for pb::NumberType {
    fn from(value: NumberType) -> Self {
        match value {
            NumberType::CallingPlan => Self::CallingPlan,
            NumberType::OperatorConnect => Self::OperatorConnect,
            NumberType::DirectRouting => Self::DirectRouting,
        }
    }
}

/// A number's role for its user (`-AssignmentCategory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Category {
    Primary,
    Private,
    Alternate,
}

impl From<Category> for pb::AssignmentCategory {
    fn from(value: Category) -> Self {
        match value {
            Category::Primary => Self::Primary,
            Category::Private => Self::Private,
            Category::Alternate => Self::Alternate,
        }
    }
}

/// Whether a number is assigned (`-PstnAssignmentStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    Unassigned,
    UserAssigned,
    VoiceApplicationAssigned,
}

impl From<Status> for pb::AssignmentStatus {
    fn from(value: Status) -> Self {
        match value {
            Status::Unassigned => Self::Unassigned,
            Status::UserAssigned => Self::UserAssigned,
            Status::VoiceApplicationAssigned => Self::VoiceApplicationAssigned,
        }
    }
}

/// A number's activation state (`-ActivationState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Activation {
    Activated,
    AssignmentPending,
    AssignmentFailed,
    UpdatePending,
    UpdateFailed,
}

impl From<Activation> for pb::ActivationState {
    fn from(value: Activation) -> Self {
        match value {
            Activation::Activated => Self::Activated,
            Activation::AssignmentPending => Self::AssignmentPending,
            Activation::AssignmentFailed => Self::AssignmentFailed,
            Activation::UpdatePending => Self::UpdatePending,
            Activation::UpdateFailed => Self::UpdateFailed,
        }
    }
}

/// What a number may be assigned to (`-Capability`).
// The variants are the API's own names, which are the flag's values.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Capability {
    UserAssignment,
    VoiceApplicationAssignment,
    ConferenceAssignment,
}

impl From<Capability> for pb::Capability {
    fn from(value: Capability) -> Self {
        match value {
            Capability::UserAssignment => Self::UserAssignment,
            Capability::VoiceApplicationAssignment => Self::VoiceApplicationAssignment,
            Capability::ConferenceAssignment => Self::ConferenceAssignment,
        }
    }
}

/// Whether a number is blocked from assignment.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Blocked {
    NotBlocked,
    BlockedUntil,
    BlockedForever,
}

impl From<Blocked> for pb::AssignmentBlockedState {
    fn from(value: Blocked) -> Self {
        match value {
            Blocked::NotBlocked => Self::NotBlocked,
            Blocked::BlockedUntil => Self::BlockedUntil,
            Blocked::BlockedForever => Self::BlockedForever,
        }
    }
}

/// `Some(false)` for `--no-notify`, else the tenant's default.
fn notify(no_notify: bool) -> Option<bool> {
    no_notify.then_some(false)
}

#[derive(Debug, clap::Args)]
pub struct AssignArgs {
    /// The user or resource account: user principal name, id or sip: address (-Identity).
    #[arg(long)]
    identity: String,
    /// The number, such as +14255550101 (-PhoneNumber).
    #[arg(long)]
    phone_number: String,
    /// The number's type (-PhoneNumberType); the inventory knows it, so it may be left out
    /// unless it is a Direct Routing number new to the inventory.
    #[arg(long = "type", value_enum)]
    number_type: Option<NumberType>,
    /// The emergency location to register with the number (-LocationId).
    #[arg(long)]
    location: Option<String>,
    /// The number's role for the user (-AssignmentCategory) [default: primary].
    #[arg(long, value_enum)]
    category: Option<Category>,
    /// Do not email the user about the number (the tenant's default otherwise).
    #[arg(long)]
    no_notify: bool,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Prints where an asynchronous change stands, and how to wait for it.
fn pending(operation: Option<&pb::Operation>) {
    if let Some(operation) = operation
        && matches!(
            operation.state(),
            pb::operation::State::Pending | pb::operation::State::Running
        )
    {
        println!(
            "the provider has not confirmed yet: `numbers operation wait {}` waits until it has",
            operation.id
        );
    }
}

pub(super) async fn assign(args: AssignArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let answer = client
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: args.identity,
            phone_number: args.phone_number,
            phone_number_type: args
                .number_type
                .map(pb::NumberType::from)
                .unwrap_or_default() as i32,
            emergency_location_id: args.location.unwrap_or_default(),
            assignment_category: args
                .category
                .map(pb::AssignmentCategory::from)
                .unwrap_or_default() as i32,
            notify_user: notify(args.no_notify),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&answer)),
        Format::Table => {
            let number = answer.phone_number.unwrap_or_default();
            let user = answer.user.unwrap_or_default();
            if args.validate_only {
                println!(
                    "{} can be assigned to {} (nothing changed)",
                    number.phone_number, user.user_principal_name
                );
            } else {
                println!(
                    "assigned {} to {}",
                    number.phone_number, user.user_principal_name
                );
                println!("{}", numbers_table(&[number]));
                pending(answer.operation.as_ref());
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// The user or resource account whose primary number changes (-Identity).
    #[arg(long)]
    identity: String,
    /// The new number (-PhoneNumber).
    #[arg(long)]
    phone_number: String,
    /// The new number's type (-PhoneNumberType).
    #[arg(long = "type", value_enum)]
    number_type: Option<NumberType>,
    /// The emergency location to register with the new number (-LocationId).
    #[arg(long)]
    location: Option<String>,
    /// Do not email the user about the change.
    #[arg(long)]
    no_notify: bool,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

pub(super) async fn change(args: ChangeArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let answer = client
        .change_phone_number(pb::ChangePhoneNumberRequest {
            identity: args.identity,
            phone_number: args.phone_number,
            phone_number_type: args
                .number_type
                .map(pb::NumberType::from)
                .unwrap_or_default() as i32,
            emergency_location_id: args.location.unwrap_or_default(),
            notify_user: notify(args.no_notify),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&answer)),
        Format::Table => {
            let previous = answer.previous_phone_number.unwrap_or_default();
            let number = answer.phone_number.unwrap_or_default();
            let user = answer.user.unwrap_or_default();
            let verb = if args.validate_only {
                "can change"
            } else {
                "changed"
            };
            println!(
                "{verb} {}'s number from {} to {}{}",
                user.user_principal_name,
                previous.phone_number,
                number.phone_number,
                if args.validate_only {
                    " (nothing changed)"
                } else {
                    ""
                }
            );
            if !args.validate_only {
                println!("{}", numbers_table(&[previous, number]));
                pending(answer.operation.as_ref());
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["phone_number", "all"])))]
pub struct RemoveArgs {
    /// The user or resource account (-Identity).
    #[arg(long)]
    identity: String,
    /// The number to remove (-PhoneNumber).
    #[arg(long)]
    phone_number: Option<String>,
    /// Remove every number the user holds (-RemoveAll).
    #[arg(long)]
    all: bool,
    /// The number's type (-PhoneNumberType); when given it must match.
    #[arg(long = "type", value_enum)]
    number_type: Option<NumberType>,
    /// Block the removed numbers from assignment for this many days, 1 to 365 (0: no block)
    /// [default: the tenant's configuration].
    #[arg(long, conflicts_with = "block_forever", value_parser = clap::value_parser!(i32).range(0..=365))]
    block_days: Option<i32>,
    /// Block the removed numbers from assignment until the block is lifted.
    #[arg(long)]
    block_forever: bool,
    /// Do not email the user about the removal.
    #[arg(long)]
    no_notify: bool,
    /// Check everything, change nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

pub(super) async fn remove(args: RemoveArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let answer = client
        .remove_phone_number(pb::RemovePhoneNumberRequest {
            identity: args.identity.clone(),
            phone_number: args.phone_number.unwrap_or_default(),
            phone_number_type: args
                .number_type
                .map(pb::NumberType::from)
                .unwrap_or_default() as i32,
            remove_all: args.all,
            block_days: args.block_days,
            block_forever: args.block_forever,
            notify_user: notify(args.no_notify),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&answer)),
        Format::Table => {
            let removed: Vec<&str> = answer
                .phone_numbers
                .iter()
                .map(|n| n.phone_number.as_str())
                .collect();
            let verb = if args.validate_only {
                "can remove"
            } else {
                "removed"
            };
            if removed.is_empty() {
                println!("{} holds no number to remove", args.identity);
            } else {
                println!(
                    "{verb} {} from {}{}",
                    removed.join(", "),
                    args.identity,
                    if args.validate_only {
                        " (nothing changed)"
                    } else {
                        ""
                    }
                );
            }
            if !args.validate_only && !answer.phone_numbers.is_empty() {
                println!("{}", numbers_table(&answer.phone_numbers));
                pending(answer.operation.as_ref());
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The number, such as +14255550101 (-TelephoneNumber).
    phone_number: String,
    #[command(flatten)]
    pub common: Common,
}

pub(super) async fn get(args: GetArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let number = client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: args.phone_number,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&number)),
        Format::Table => println!("{}", numbers_table(&[number])),
    }
    Ok(())
}

/// The filters of ListPhoneNumbers and ExportPhoneNumbers, as Get-CsPhoneNumberAssignment's.
#[derive(Debug, Default, clap::Args)]
pub(super) struct NumberFilters {
    /// Only numbers assigned to this user (-AssignedPstnTargetId).
    #[arg(long)]
    assigned_to: Option<String>,
    /// Only numbers of this type (-NumberType).
    #[arg(long = "type", value_enum)]
    number_type: Option<NumberType>,
    /// Only numbers in this assignment status (-PstnAssignmentStatus).
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Only numbers in this activation state (-ActivationState).
    #[arg(long, value_enum)]
    activation: Option<Activation>,
    /// Only numbers of this ISO 3166-1 country, such as US (-IsoCountryCode).
    #[arg(long)]
    country: Option<String>,
    /// Only numbers of this Operator Connect operator.
    #[arg(long)]
    operator: Option<String>,
    /// Only numbers with this capability; repeat for several (-Capability).
    #[arg(long, value_enum)]
    capability: Vec<Capability>,
    /// Only numbers starting with these digits, such as +1425 (-TelephoneNumberStartsWith).
    #[arg(long)]
    prefix: Option<String>,
    /// Only numbers whose digits contain these (-TelephoneNumberContain).
    #[arg(long)]
    contains: Option<String>,
    /// Only numbers registered with this emergency location (-LocationId).
    #[arg(long)]
    location: Option<String>,
    /// Only numbers in this block state, as it stands now.
    #[arg(long, value_enum)]
    blocked: Option<Blocked>,
    /// Only numbers with this tag (-NumberTag).
    #[arg(long)]
    tag: Option<String>,
    /// Only numbers held in this role (-AssignmentCategory).
    #[arg(long, value_enum)]
    category: Option<Category>,
    /// Only numbers of this city (-City).
    #[arg(long)]
    city: Option<String>,
}

impl NumberFilters {
    fn list_request(&self) -> pb::ListPhoneNumbersRequest {
        pb::ListPhoneNumbersRequest {
            assigned_to: self.assigned_to.clone().unwrap_or_default(),
            number_type: self
                .number_type
                .map(pb::NumberType::from)
                .unwrap_or_default() as i32,
            assignment_status: self
                .status
                .map(pb::AssignmentStatus::from)
                .unwrap_or_default() as i32,
            activation_state: self
                .activation
                .map(pb::ActivationState::from)
                .unwrap_or_default() as i32,
            country: self.country.clone().unwrap_or_default(),
            operator_id: self.operator.clone().unwrap_or_default(),
            capabilities: self
                .capability
                .iter()
                .map(|c| pb::Capability::from(*c) as i32)
                .collect(),
            number_prefix: self.prefix.clone().unwrap_or_default(),
            emergency_location_id: self.location.clone().unwrap_or_default(),
            assignment_blocked_state: self
                .blocked
                .map(pb::AssignmentBlockedState::from)
                .unwrap_or_default() as i32,
            tag: self.tag.clone().unwrap_or_default(),
            assignment_category: self
                .category
                .map(pb::AssignmentCategory::from)
                .unwrap_or_default() as i32,
            city: self.city.clone().unwrap_or_default(),
            number_contains: self.contains.clone().unwrap_or_default(),
            page_size: 0,
            page_token: String::new(),
        }
    }

    fn export_request(
        &self,
        format: pb::export_phone_numbers_request::Format,
    ) -> pb::ExportPhoneNumbersRequest {
        let list = self.list_request();
        pb::ExportPhoneNumbersRequest {
            assigned_to: list.assigned_to,
            number_type: list.number_type,
            assignment_status: list.assignment_status,
            activation_state: list.activation_state,
            country: list.country,
            operator_id: list.operator_id,
            capabilities: list.capabilities,
            number_prefix: list.number_prefix,
            emergency_location_id: list.emergency_location_id,
            format: format as i32,
            assignment_blocked_state: list.assignment_blocked_state,
            tag: list.tag,
            assignment_category: list.assignment_category,
            city: list.city,
            number_contains: list.number_contains,
        }
    }
}

/// How much of a listing to read.
#[derive(Debug, Default, clap::Args)]
pub struct Paging {
    /// Numbers per page, 1 to 1000 [default: 100].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1000))]
    page_size: Option<i32>,
    /// The page after the one that printed this token.
    #[arg(long, conflicts_with = "all")]
    page_token: Option<String>,
    /// Follow the pages to the end.
    #[arg(long)]
    all: bool,
}

impl Paging {
    /// Reads the pages `fetch` answers, from this paging's token on: one, or with `--all` every
    /// one. Answers the items and the token of the page after them (empty at the end).
    pub(super) async fn read<T, F, Fut>(
        &self,
        mut fetch: F,
    ) -> Result<(Vec<T>, String), tonic::Status>
    where
        F: FnMut(i32, String) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
    {
        let size = self.page_size.unwrap_or(0);
        let mut token = self.page_token.clone().unwrap_or_default();
        let mut items = Vec::new();
        loop {
            let (page, next) = fetch(size, token).await?;
            items.extend(page);
            token = next;
            if token.is_empty() || !self.all {
                return Ok((items, token));
            }
        }
    }
}

/// Tells on standard error how to read on, when there is more.
pub(super) fn more(next_page_token: &str) {
    if !next_page_token.is_empty() {
        eprintln!("more: --page-token {next_page_token} (or --all)");
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    filters: NumberFilters,
    #[command(flatten)]
    paging: Paging,
    #[command(flatten)]
    pub common: Common,
}

pub(super) async fn list(args: ListArgs) -> Outcome {
    let client = connection::client(&args.common.connection.resolved()?)?;
    let request = args.filters.list_request();
    let (numbers, next_page_token) = args
        .paging
        .read(|page_size, page_token| {
            let mut client = client.clone();
            let request = pb::ListPhoneNumbersRequest {
                page_size,
                page_token,
                ..request.clone()
            };
            async move {
                let page = client.list_phone_numbers(request).await?.into_inner();
                Ok((page.phone_numbers, page.next_page_token))
            }
        })
        .await?;
    match args.common.output.output {
        Format::Json => print_json(&json(&pb::ListPhoneNumbersResponse {
            phone_numbers: numbers,
            next_page_token,
        })),
        Format::Table => {
            println!("{}", numbers_table(&numbers));
            more(&next_page_token);
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AcquireArgs {
    /// ISO 3166-1 country, such as US.
    #[arg(long)]
    country: String,
    /// Only numbers of this area code.
    #[arg(long)]
    area_code: Option<String>,
    /// Only numbers of this city.
    #[arg(long)]
    city: Option<String>,
    /// Only numbers starting with these digits.
    #[arg(long)]
    prefix: Option<String>,
    /// What the numbers will be assigned to.
    #[arg(long, value_enum, default_value = "user-assignment")]
    capability: Capability,
    /// How many numbers.
    #[arg(long, default_value_t = 1)]
    quantity: i32,
    /// The emergency location to register with the numbers.
    #[arg(long)]
    location: Option<String>,
    /// Check everything, acquire nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

pub(super) async fn acquire(args: AcquireArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let answer = client
        .acquire_phone_numbers(pb::AcquirePhoneNumbersRequest {
            country: args.country,
            area_code: args.area_code.unwrap_or_default(),
            city: args.city.unwrap_or_default(),
            number_prefix: args.prefix.unwrap_or_default(),
            capability: pb::Capability::from(args.capability) as i32,
            quantity: args.quantity,
            emergency_location_id: args.location.unwrap_or_default(),
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&answer)),
        Format::Table => {
            let verb = if args.validate_only {
                "can acquire (nothing changed)"
            } else {
                "acquired"
            };
            println!("{verb} {} numbers", answer.phone_numbers.len());
            println!("{}", numbers_table(&answer.phone_numbers));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The numbers to give back to the catalogue.
    #[arg(required = true)]
    phone_numbers: Vec<String>,
    /// Check everything, release nothing.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    pub common: Common,
}

pub(super) async fn release(args: ReleaseArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let answer = client
        .release_phone_numbers(pb::ReleasePhoneNumbersRequest {
            phone_numbers: args.phone_numbers,
            request_id: request_id(),
            validate_only: args.validate_only,
        })
        .await?
        .into_inner();
    match args.common.output.output {
        Format::Json => print_json(&json(&answer)),
        Format::Table => {
            let verb = if args.validate_only {
                "can release (nothing changed)"
            } else {
                "released"
            };
            println!("{verb} {}", answer.phone_numbers.join(", "));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filters: NumberFilters,
    /// Write to this file rather than standard output.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// Streams the inventory as the server's CSV (or, with `-o json`, one JSON number per line)
/// to the file or standard output.
pub(super) async fn export(args: ExportArgs) -> Outcome {
    let mut client = connection::client(&args.common.connection.resolved()?)?;
    let format = match args.common.output.output {
        Format::Table => pb::export_phone_numbers_request::Format::Csv,
        Format::Json => pb::export_phone_numbers_request::Format::Messages,
    };
    let mut out: Box<dyn std::io::Write> = match &args.file {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut stream = client
        .export_phone_numbers(args.filters.export_request(format))
        .await?
        .into_inner();
    let mut count = 0usize;
    while let Some(message) = stream.next().await {
        let message = message?;
        let written = if message.csv.is_empty() {
            message.phone_numbers.iter().try_for_each(|n| {
                count += 1;
                writeln!(out, "{}", json(n))
            })
        } else {
            count += message.csv.lines().count();
            out.write_all(message.csv.as_bytes())
        };
        written.context("cannot write the export")?;
    }
    out.flush().context("cannot write the export")?;
    if let Some(path) = &args.file {
        // The CSV's header line is not a number.
        let numbers = if format == pb::export_phone_numbers_request::Format::Csv {
            count.saturating_sub(1)
        } else {
            count
        };
        eprintln!("wrote {numbers} numbers to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::output::name;

    #[test]
    fn the_flags_values_are_the_apis_names() {
        assert_eq!(
            name(pb::NumberType::from(NumberType::CallingPlan).as_str_name()),
            "calling-plan"
        );
        assert_eq!(
            name(pb::ActivationState::from(Activation::AssignmentPending).as_str_name()),
            "assignment-pending"
        );
    }
}
