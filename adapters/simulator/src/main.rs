//! The `operator-simulator` command: a simulated Operator Connect carrier on a TCP port, until
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use numbers_operator_simulator::{
    FailureCode, FailureRule, OperatorSettings, Rpc, SimulatorSettings, run,
};
use tracing_subscriber::EnvFilter;

/// Serves a simulated Operator Connect carrier over the numbers adapter protocol
/// (numbers.adapter.v1.ProviderAdapter), with a control service (numbers.simulator.v1) to
/// inject failures, add latency, change the activation delay, reset and read statistics.
#[derive(Debug, Parser)]
#[command(name = "operator-simulator", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50071")]
    listen: SocketAddr,
    /// The operator's id.
    #[arg(long, default_value = "simulated-operator")]
    operator_id: String,
    /// The operator's name.
    #[arg(long, default_value = "Simulated Operator")]
    display_name: String,
    /// ISO 3166-1 alpha-2 countries served, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "US,CA")]
    countries: Vec<String>,
    /// Let tenants change the emergency location of the operator's numbers.
    #[arg(long)]
    allow_tenant_location_update: bool,
    /// How long a provisioning change takes to complete ("0s" completes at once).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    activation_delay: Duration,
    /// Latency added to every request.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    latency: Duration,
    /// Fraction of requests (0.0 to 1.0) that fail with --fail-code.
    #[arg(long, value_parser = fraction)]
    fail_rate: Option<f64>,
    /// Fail the next N requests with --fail-code.
    #[arg(long, value_name = "N")]
    fail_next: Option<u64>,
    /// The code injected failures answer with.
    #[arg(long, value_enum, default_value = "unavailable")]
    fail_code: FailureCode,
    /// The ErrorInfo reason of injected failures (default NUMBER_NOT_PROVISIONED for
    /// failed-precondition).
    #[arg(long, default_value = "")]
    fail_reason: String,
    /// Inject failures into this RPC only.
    #[arg(long, value_enum)]
    fail_rpc: Option<Rpc>,
    /// Keep the state (tickets, idempotency keys, statistics) in this JSON file across
    /// restarts.
    #[arg(long)]
    state_file: Option<PathBuf>,
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text} is not a fraction between 0.0 and 1.0")),
    }
}

impl Cli {
    fn settings(self) -> SimulatorSettings {
        let failures =
            (self.fail_rate.is_some() || self.fail_next.is_some()).then(|| FailureRule {
                rpc: self.fail_rpc,
                reason: self.fail_reason,
                count: self.fail_next,
                rate: self.fail_rate.unwrap_or(1.0),
                ..FailureRule::always(self.fail_code)
            });
        SimulatorSettings {
            operator: OperatorSettings {
                id: self.operator_id,
                display_name: self.display_name,
                countries: self
                    .countries
                    .iter()
                    .map(|c| c.trim().to_uppercase())
                    .collect(),
                tenant_location_update_allowed: self.allow_tenant_location_update,
            },
            activation_delay: self.activation_delay,
            latency: self.latency,
            failures,
            state_file: self.state_file,
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let listen = cli.listen;
    let result = async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        run(listener, cli.settings(), shutdown_signal()).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
