//! The admin command line: `numbers assign`, `numbers list`, `numbers import` and the rest,
//! talking to a running server over gRPC as any other client does. The commands mirror the
//! Teams cmdlets the seeds use (the README has the mapping table).
//!
//! Every command prints a table or sentence by default and the API's JSON with `-o json`. A
//! failure prints the server's message with its gRPC code and `ErrorInfo.reason`, and exits
//! with a code that says what kind of failure it was ([`Exit`]).

mod connection;
mod directory;
mod import;
mod numbers;
mod operations;
mod output;
mod tools;

use std::process::ExitCode;

use tonic_types::StatusExt as _;

pub use connection::ConnectionArgs;
use connection::{DEFAULT_SERVER, Saved};
pub use output::{Format, OutputArgs};

/// The flags every command that calls the server takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The admin commands, each one call (or a few) to the server.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Keep the server, token and TLS settings for later commands (in ~/.config/numbers/cli.toml,
    /// or NUMBERS_CLI_CONFIG), after checking that the server accepts them.
    Login(Common),
    /// Forget what `numbers login` kept.
    Logout,
    /// Assign a number to a user or resource account (Set-CsPhoneNumberAssignment).
    Assign(numbers::AssignArgs),
    /// Change a user's primary number to another (Set-CsPhoneNumberAssignment on a user who has
    /// one).
    Change(numbers::ChangeArgs),
    /// Remove a number, or all, from a user (Remove-CsPhoneNumberAssignment).
    Remove(numbers::RemoveArgs),
    /// Show one number (Get-CsPhoneNumberAssignment -TelephoneNumber).
    Get(numbers::GetArgs),
    /// List numbers, filtered (Get-CsPhoneNumberAssignment with filters).
    List(numbers::ListArgs),
    /// Get numbers from the Calling Plan catalogue into the tenant (New-CsPhoneNumberOrder).
    Acquire(numbers::AcquireArgs),
    /// Give Calling Plan numbers back (Remove-CsPhoneNumber).
    Release(numbers::ReleaseArgs),
    /// Users of the directory (Get-CsOnlineUser).
    #[command(subcommand)]
    Users(directory::UsersCommand),
    /// Emergency locations (Get-CsOnlineLisLocation, New-CsOnlineLisLocation).
    #[command(subcommand)]
    Locations(directory::LocationsCommand),
    /// The audit trail of numbers and users (Get-CsPhoneNumberAssignment's history).
    Audit(directory::AuditArgs),
    /// Asynchronous changes: show, list, wait for, retry or cancel them.
    #[command(subcommand)]
    Operation(operations::OperationCommand),
    /// Register an emergency location with a number, or clear it (Set-CsPhoneNumberAssignment
    /// -LocationId).
    SetLocation(tools::LocateArgs),
    /// Block an unassigned number from assignment (Set-CsPhoneNumberAssignmentBlock).
    Block(tools::BlockArgs),
    /// Lift a number's block (Remove-CsPhoneNumberAssignmentBlock).
    Unblock(tools::UnblockArgs),
    /// Move a number from one holder to another in one step.
    Transfer(tools::TransferArgs),
    /// Tags on numbers (Set-CsPhoneNumberTag, Remove-CsPhoneNumberTag, Get-CsPhoneNumberTag).
    #[command(subcommand)]
    Tags(tools::TagsCommand),
    /// The tenant's defaults: emails on assignment and removal, a removal's block.
    #[command(subcommand)]
    Config(tools::ConfigCommand),
    /// Assign numbers from a CSV file (identity, number, type, location, category): checks every
    /// row first and changes nothing unless all pass, then runs them as one bulk operation.
    Import(import::ImportArgs),
    /// Write the inventory, or a filtered part, as CSV (Get-CsPhoneNumberAssignment | Export-Csv).
    Export(numbers::ExportArgs),
}

impl Command {
    /// The flags the command shares with the others; none for `logout`.
    fn common(&self) -> Option<&Common> {
        Some(match self {
            Command::Login(common) => common,
            Command::Logout => return None,
            Command::Assign(a) => &a.common,
            Command::Change(a) => &a.common,
            Command::Remove(a) => &a.common,
            Command::Get(a) => &a.common,
            Command::List(a) => &a.common,
            Command::Acquire(a) => &a.common,
            Command::Release(a) => &a.common,
            Command::Users(c) => c.common(),
            Command::Locations(c) => c.common(),
            Command::Audit(a) => &a.common,
            Command::Operation(c) => c.common(),
            Command::SetLocation(a) => &a.common,
            Command::Block(a) => &a.common,
            Command::Unblock(a) => &a.common,
            Command::Transfer(a) => &a.common,
            Command::Tags(c) => c.common(),
            Command::Config(c) => c.common(),
            Command::Import(a) => &a.common,
            Command::Export(a) => &a.common,
        })
    }
}

/// What an admin command's exit code says. Usage mistakes exit with 2, as clap does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Anything else: the server failed, a file could not be read or written.
    Failure = 1,
    /// The command line itself was wrong.
    Usage = 2,
    /// The server refused: a rule, bad input, a conflict, or rows of an import.
    Refused = 3,
    /// What the command names does not exist.
    NotFound = 4,
    /// The server could not be reached or was too busy: try again later.
    Unavailable = 5,
    /// The token was missing, invalid or not allowed to do this.
    NotAllowed = 6,
}

impl Exit {
    /// The exit code for a call that failed with `code`.
    pub fn for_code(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::Aborted
            | Code::OutOfRange => Self::Refused,
            Code::NotFound => Self::NotFound,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                Self::Unavailable
            }
            Code::Unauthenticated | Code::PermissionDenied => Self::NotAllowed,
            _ => Self::Failure,
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// A call answered with an error.
    Status(tonic::Status),
    /// The command ran and found something wrong, already explained on standard error.
    Reported(Exit),
    /// Something outside the server: a file, a setting.
    Other(anyhow::Error),
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Other(error)
    }
}

/// What a command comes to.
pub type Outcome = Result<(), Failure>;

/// The `ErrorInfo.reason` of a failed call; empty when it has none.
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// Prints why a call failed: its message, code and reason, and each bad field.
fn report_status(status: &tonic::Status, format: Format) {
    let details = status.get_error_details();
    let reason = reason(status);
    let violations: Vec<(String, String)> = details
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    match format {
        Format::Json => {
            let fields: Vec<_> = violations
                .iter()
                .map(|(field, description)| {
                    serde_json::json!({"field": field, "description": description})
                })
                .collect();
            eprintln!(
                "{}",
                serde_json::json!({
                    "code": crate::proto::code_name(status.code()),
                    "reason": reason,
                    "message": status.message(),
                    "fieldViolations": fields,
                })
            );
        }
        Format::Table => {
            let code = crate::proto::code_name(status.code());
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(", {reason}")
            };
            eprintln!("error: {} ({code}{reason})", status.message());
            // Each bad field the message does not already say.
            for (field, description) in violations {
                let line = format!("{field}: {description}");
                if !status.message().contains(&line) {
                    eprintln!("  {line}");
                }
            }
            if status.code() == tonic::Code::Unavailable && reason.is_empty() {
                eprintln!(
                    "  is the server running? (--server, NUMBERS_SERVER or `numbers login`; \
                     default {DEFAULT_SERVER})"
                );
            }
        }
    }
}

/// Runs one admin command, printing what it did or why it failed, and answers the exit code.
pub async fn run(command: Command) -> ExitCode {
    let format = command.common().map_or(Format::Table, |c| c.output.output);
    let outcome = match command {
        Command::Login(common) => directory::login(common).await,
        Command::Logout => directory::logout(),
        Command::Assign(args) => numbers::assign(args).await,
        Command::Change(args) => numbers::change(args).await,
        Command::Remove(args) => numbers::remove(args).await,
        Command::Get(args) => numbers::get(args).await,
        Command::List(args) => numbers::list(args).await,
        Command::Acquire(args) => numbers::acquire(args).await,
        Command::Release(args) => numbers::release(args).await,
        Command::Users(command) => directory::users(command).await,
        Command::Locations(command) => directory::locations(command).await,
        Command::Audit(args) => directory::audit(args).await,
        Command::Operation(command) => operations::run(command).await,
        Command::Import(args) => import::run(args).await,
        Command::SetLocation(args) => tools::locate(args).await,
        Command::Block(args) => tools::block(args).await,
        Command::Unblock(args) => tools::unblock(args).await,
        Command::Transfer(args) => tools::transfer(args).await,
        Command::Tags(command) => tools::tags(command).await,
        Command::Config(command) => tools::config(command).await,
        Command::Export(args) => numbers::export(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Status(status)) => {
            report_status(&status, format);
            ExitCode::from(Exit::for_code(status.code()) as u8)
        }
        Err(Failure::Reported(exit)) => ExitCode::from(exit as u8),
        Err(Failure::Other(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(Exit::Failure as u8)
        }
    }
}

/// A fresh request id: each command's call is safe to retry by the client library.
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_exit_code() {
        assert_eq!(
            Exit::for_code(tonic::Code::FailedPrecondition),
            Exit::Refused
        );
        assert_eq!(Exit::for_code(tonic::Code::NotFound), Exit::NotFound);
        assert_eq!(Exit::for_code(tonic::Code::Unavailable), Exit::Unavailable);
        assert_eq!(
            Exit::for_code(tonic::Code::Unauthenticated),
            Exit::NotAllowed
        );
        assert_eq!(Exit::for_code(tonic::Code::Internal), Exit::Failure);
    }
}
