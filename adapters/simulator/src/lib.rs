//! The operator simulator: an Operator Connect carrier behind the remote adapter protocol, in
//! its own process or in-process, for demos and for the tests of everything that talks to a
//! carrier over a network.
//!
//! It behaves like a real operator: it refuses what the in-process operator adapter refuses,
//! accepts provisioning changes with a ticket and completes them after a delay, keeps its
//! promises across repeated requests (idempotency keys) and, with a state file, across
//! restarts, and it tells which numbers it holds (ListNumbers) from that state. And it
//! misbehaves on demand, which a real operator does without asking: it can fail requests
//! (transiently or for good), be slow, lose its state, or change what it holds behind the
//! service's back, from start-up flags or at run time through its `SimulatorControl` service,
//! and it reports what it saw.
//!
//! [`run`] serves it on a listener until a shutdown signal (the binary and in-process users
//! alike); [`RunningSimulator`] starts it on a free local port for tests and demos.

mod adapter;
mod control;
mod faults;
mod operator;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

pub use faults::{FailureCode, FailureRule, NUMBER_NOT_PROVISIONED, Rpc};
pub use numbers_operator_connect::OperatorSettings;
pub use operator::IDEMPOTENCY_KEY_REQUIRED;

use crate::adapter::FaultyAdapter;
use crate::control::Control;
use crate::faults::Faults;
use crate::operator::SimulatedOperator;

/// The generated code of the control protocol, package `numbers.simulator.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("numbers.simulator.v1");
}

/// A client of a simulator's `SimulatorControl` service.
pub type ControlClient = proto::simulator_control_client::SimulatorControlClient<Channel>;

/// What the simulator is and how it behaves at start; the control service changes the
/// behaviour later.
#[derive(Clone, Debug)]
pub struct SimulatorSettings {
    /// The operator it plays: id, name, countries served, and whether tenants may change the
    /// emergency location of its numbers.
    pub operator: OperatorSettings,
    /// How long after it was accepted a provisioning change completes; zero answers "done" at
    /// once.
    pub activation_delay: Duration,
    /// Added before every adapter request is answered.
    pub latency: Duration,
    /// Failures to inject from the start.
    pub failures: Option<FailureRule>,
    /// Where to keep the state across restarts; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            operator: OperatorSettings {
                id: "simulated-operator".into(),
                display_name: "Simulated Operator".into(),
                countries: vec!["US".into(), "CA".into()],
                tenant_location_update_allowed: false,
            },
            activation_delay: Duration::from_secs(2),
            latency: Duration::ZERO,
            failures: None,
            state_file: None,
        }
    }
}

/// A simulator ready to serve: its state loaded.
struct Simulator {
    operator: Arc<SimulatedOperator>,
    faults: Arc<Faults>,
}

impl Simulator {
    fn open(settings: SimulatorSettings) -> anyhow::Result<Self> {
        let faults = Faults::new(
            settings.operator.id.clone(),
            settings.latency,
            settings.failures,
        );
        let operator = SimulatedOperator::open(
            settings.operator,
            settings.activation_delay,
            settings.state_file,
        )?;
        Ok(Self {
            operator: Arc::new(operator),
            faults: Arc::new(faults),
        })
    }

    async fn serve(self, listener: TcpListener, shutdown: impl Future) -> anyhow::Result<()> {
        let address = listener.local_addr()?;
        tracing::info!(%address, "operator simulator listening");
        Server::builder()
            .add_service(FaultyAdapter::server(
                self.operator.clone(),
                self.faults.clone(),
            ))
            .add_service(Control::server(self.operator, self.faults))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                shutdown.await;
            })
            .await
            .context("serving the simulator")?;
        tracing::info!(%address, "operator simulator stopped");
        Ok(())
    }
}

/// Serves the simulator `settings` describe on `listener` (its `ProviderAdapter` and its
/// `SimulatorControl`), until `shutdown` completes. Fails at once when the state file cannot
/// be read.
pub async fn run(
    listener: TcpListener,
    settings: SimulatorSettings,
    shutdown: impl Future,
) -> anyhow::Result<()> {
    Simulator::open(settings)?.serve(listener, shutdown).await
}

/// A simulator serving on a free port of 127.0.0.1, in a task of the current runtime: the way
/// tests and demos start one. Dropping it stops the simulator.
#[derive(Debug)]
pub struct RunningSimulator {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningSimulator {
    /// Starts the simulator `settings` describe.
    pub async fn start(settings: SimulatorSettings) -> anyhow::Result<Self> {
        let simulator = Simulator::open(settings)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(simulator.serve(listener, stopped));
        Ok(Self {
            address,
            stop: Some(stop),
            task,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its URI, for `RemoteSettings::endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A client of its control service (connects on first use).
    pub fn control(&self) -> ControlClient {
        let channel = Endpoint::from_shared(self.endpoint())
            .expect("a socket address is a valid URI")
            .connect_lazy();
        ControlClient::new(channel)
    }

    /// Stops it and waits until it stopped: gracefully, or after a second by aborting it, as
    /// a killed carrier would stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(1), &mut self.task).await {
            Ok(result) => result.context("the simulator task panicked")?,
            Err(_) => {
                self.task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
