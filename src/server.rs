//! Assembles the gRPC server: the public API behind authentication and the role matrix
//! ([`Guarded`]), health and reflection in the open, and request logging around everything.
//!
//! [`run`] takes a bound listener and a shutdown future, so `main` and the integration tests
//! start the very same server (tests on `127.0.0.1:0`).
//!
//! Health follows the database: a probe pings the store every [`HealthSettings::interval`],
//! and the server and its services answer NOT_SERVING while the database does not answer, so a
//! load balancer stops sending requests that could only fail.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::{Guarded, NumberManagementApi, OperatorConnectApi};
use crate::auth::Authenticator;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::number_management_server::NumberManagementServer;
use crate::proto::v1::operator_connect_server::OperatorConnectServer;
use crate::service::Service;

/// Binds `address`, with a message that says what to do when the port is taken.
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {address}: the port is in use by another process \
                 (stop it, or pass --listen with another address)"
            )
        } else {
            anyhow::anyhow!("cannot listen on {address}: {e}")
        }
    })
}

/// How often, and how patiently, health checks ask the database.
#[derive(Clone, Debug)]
pub struct HealthSettings {
    /// Time between two pings of the database.
    pub interval: Duration,
    /// How long a ping may take before the database counts as not answering.
    pub timeout: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
        }
    }
}

/// The names health answers for: the server as a whole (`""`) and each public service.
const HEALTH_NAMES: [&str; 3] = [
    "",
    <NumberManagementServer<NumberManagementApi> as NamedService>::NAME,
    <OperatorConnectServer<OperatorConnectApi> as NamedService>::NAME,
];

/// Sets every name in [`HEALTH_NAMES`] to `status`.
async fn report(health: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Pings the database every `settings.interval` and reports the answer as the server's health,
/// logging each change. Runs until aborted.
async fn probe_database(service: Service, health: HealthReporter, settings: HealthSettings) {
    let mut answering = true;
    loop {
        tokio::time::sleep(settings.interval).await;
        let outcome = tokio::time::timeout(settings.timeout, service.store().ping()).await;
        let now_answering = matches!(outcome, Ok(Ok(())));
        if now_answering == answering {
            continue;
        }
        answering = now_answering;
        if answering {
            tracing::info!("the database answers again: serving");
            report(&health, ServingStatus::Serving).await;
        } else {
            match outcome {
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the database does not answer: not serving");
                }
                _ => tracing::warn!(
                    timeout = ?settings.timeout,
                    "the database did not answer in time: not serving"
                ),
            }
            report(&health, ServingStatus::NotServing).await;
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    service: Service,
    authenticator: Authenticator,
    health_settings: HealthSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    report(&health, ServingStatus::Serving).await;
    let probe = tokio::spawn(probe_database(
        service.clone(),
        health.clone(),
        health_settings,
    ));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building reflection")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection")?;

    let api = Guarded::new(
        NumberManagementServer::new(NumberManagementApi::new(service.clone())),
        authenticator.clone(),
    );
    let operator_api = Guarded::new(
        OperatorConnectServer::new(OperatorConnectApi::new(service.clone())),
        authenticator,
    );

    let address = listener.local_addr()?;
    tracing::info!(%address, "serving numbers.v1");
    // Every request gets a span (method and path) around what it logs; a line for each
    // answer only at debug level: changes log a line of their own, failures a warning, and a
    // line per read would cost more than many reads.
    tonic::transport::Server::builder()
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        .add_service(operator_api)
        .serve_with_incoming_shutdown(incoming(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            probe.abort();
            report(&health, ServingStatus::NotServing).await;
        })
        .await
        .context("serving gRPC")?;
    Ok(())
}

/// The connections `listener` accepts, with Nagle's algorithm off. A unary response leaves in
/// two writes (the message, then the trailers); with Nagle on, the trailers wait for the
/// client's delayed ACK, about 40 ms on Linux, after every call. tonic sets TCP_NODELAY only on
/// listeners it binds itself, so the accepted sockets of a listener bound here need it set.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
