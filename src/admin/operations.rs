//! Asynchronous changes: `numbers operation get` shows one, `numbers operation wait` polls it
//! with a spinner (a progress bar for a bulk call) until it ends.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::numbers::{Paging, more};
use super::output::{Format, json, name, operation_text, print_json, table, time};
use super::{Common, Exit, Failure, connection, request_id};
use crate::proto::v1 as pb;

#[derive(Debug, clap::Subcommand)]
pub enum OperationCommand {
    /// Show an operation: its state, each provider step, a bulk call's progress.
    Get {
        /// The operation's id, as the change that started it answered.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Wait until an operation ends; exits 0 when it succeeded, 3 when it failed.
    Wait {
        /// The operation's id, as the change that started it answered.
        id: String,
        /// How long to wait before giving up (the operation goes on), such as 30s or 10m.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        common: Common,
    },
    /// Operations, newest first, filtered: the stuck and failed ones to act on.
    List {
        /// Only operations in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Only operations of this number.
        #[arg(long)]
        phone_number: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        common: Common,
    },
    /// Try a failed operation's failed steps again (the numbers wait again).
    Retry {
        /// The operation's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// End an operation no provider has taken up yet.
    Cancel {
        /// The operation's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// An operation's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum State {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl From<State> for pb::operation::State {
    fn from(value: State) -> Self {
        match value {
            State::Pending => Self::Pending,
            State::Running => Self::Running,
            State::Succeeded => Self::Succeeded,
            State::Failed => Self::Failed,
        }
    }
}

impl OperationCommand {
    pub(super) fn common(&self) -> &Common {
        match self {
            Self::Get { common, .. }
            | Self::Wait { common, .. }
            | Self::List { common, .. }
            | Self::Retry { common, .. }
            | Self::Cancel { common, .. } => common,
        }
    }
}

/// Prints an operation as `format` asks.
fn print(operation: &pb::Operation, format: Format) {
    match format {
        Format::Json => print_json(&json(operation)),
        Format::Table => println!("{}", operation_text(operation)),
    }
}

pub(super) async fn run(command: OperationCommand) -> Result<(), Failure> {
    let format = command.common().output.output;
    let mut client = connection::client(&command.common().connection.resolved()?)?;
    match command {
        OperationCommand::Get { id, .. } => {
            let operation = client
                .get_operation(pb::GetOperationRequest {
                    id,
                    ..Default::default()
                })
                .await?
                .into_inner();
            print(&operation, format);
            Ok(())
        }
        OperationCommand::Wait { id, timeout, .. } => {
            let operation = wait(&mut client, &id, timeout, "waiting for the provider").await?;
            print(&operation, format);
            if operation.state() == pb::operation::State::Failed {
                return Err(Failure::Reported(Exit::Refused));
            }
            Ok(())
        }
        OperationCommand::List {
            state,
            phone_number,
            paging,
            ..
        } => {
            let (operations, next_page_token) = paging
                .read(|page_size, page_token| {
                    let mut client = client.clone();
                    let request = pb::ListOperationsRequest {
                        state: state.map(pb::operation::State::from).unwrap_or_default() as i32,
                        phone_number: phone_number.clone().unwrap_or_default(),
                        page_size,
                        page_token,
                        ..Default::default()
                    };
                    async move {
                        let page = client.list_operations(request).await?.into_inner();
                        Ok((page.operations, page.next_page_token))
                    }
                })
                .await?;
            match format {
                Format::Json => print_json(&json(&pb::ListOperationsResponse {
                    operations,
                    next_page_token,
                })),
                Format::Table => {
                    let mut listed = table(["id", "kind", "state", "created", "numbers", "error"]);
                    for o in &operations {
                        let mut numbers: Vec<&str> =
                            o.steps.iter().map(|s| s.phone_number.as_str()).collect();
                        numbers.dedup();
                        listed.add_row([
                            o.id.clone(),
                            name(o.kind().as_str_name()),
                            name(o.state().as_str_name()),
                            time(o.create_time.as_ref()),
                            numbers.join(", "),
                            o.error.clone(),
                        ]);
                    }
                    println!("{listed}");
                    more(&next_page_token);
                }
            }
            Ok(())
        }
        OperationCommand::Retry { id, .. } => {
            let operation = client
                .retry_operation(pb::RetryOperationRequest {
                    id,
                    request_id: request_id(),
                    validate_only: false,
                })
                .await?
                .into_inner();
            print(&operation, format);
            Ok(())
        }
        OperationCommand::Cancel { id, .. } => {
            let operation = client
                .cancel_operation(pb::CancelOperationRequest {
                    id,
                    request_id: request_id(),
                    validate_only: false,
                })
                .await?
                .into_inner();
            print(&operation, format);
            Ok(())
        }
    }
}

/// Whether an operation has ended.
pub(super) fn ended(operation: &pb::Operation) -> bool {
    matches!(
        operation.state(),
        pb::operation::State::Succeeded | pb::operation::State::Failed
    )
}

/// Polls operation `id` until it ends, showing a spinner with `message` on a terminal (a bar
/// once the operation reports progress). Gives up after `timeout` with UNAVAILABLE's exit code.
pub(super) async fn wait(
    client: &mut connection::Client,
    id: &str,
    timeout: Duration,
    message: &'static str,
) -> Result<pb::Operation, Failure> {
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner().with_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut pause = Duration::from_millis(100);
    let operation = loop {
        let operation = client
            .get_operation(pb::GetOperationRequest {
                id: id.to_owned(),
                page_size: 1,
                page_token: String::new(),
                failed_only: true,
            })
            .await
            .inspect_err(|_| spinner.finish_and_clear())?
            .into_inner();
        if let Some(progress) = &operation.progress {
            if spinner.length() != Some(progress.total.unsigned_abs()) {
                spinner.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
                    )
                    .expect("the template is valid")
                    .progress_chars("=> "),
                );
                spinner.set_length(progress.total.unsigned_abs());
            }
            spinner.set_position(progress.done.unsigned_abs());
        }
        if ended(&operation) {
            break operation;
        }
        if started.elapsed() >= timeout {
            spinner.finish_and_clear();
            eprintln!(
                "error: operation {id} has not ended after {}; it goes on (`numbers operation \
                 wait {id}` waits again)",
                humantime::format_duration(timeout)
            );
            return Err(Failure::Reported(Exit::Unavailable));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    };
    spinner.finish_and_clear();
    Ok(operation)
}
