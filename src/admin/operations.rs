//! Asynchronous changes: `numbers operation get` shows one, `numbers operation wait` polls it
//! with a spinner (a progress bar for a bulk call) until it ends.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::output::{Format, json, operation_text, print_json};
use super::{Common, Exit, Failure, connection};
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
}

impl OperationCommand {
    pub(super) fn common(&self) -> &Common {
        match self {
            Self::Get { common, .. } | Self::Wait { common, .. } => common,
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
