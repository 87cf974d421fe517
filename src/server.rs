//! Assembles the gRPC server: the public API behind authentication, health and reflection in
//! the open, and request logging around everything.
//!
//! [`run`] takes a bound listener and a shutdown future, so `main` and the integration tests
//! start the very same server (tests on `127.0.0.1:0`).

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::{Authenticate, NumberManagementApi, OperatorConnectApi};
use crate::auth::SigningKey;
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

/// Serves the API on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    service: Service,
    key: SigningKey,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<NumberManagementServer<NumberManagementApi>>()
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building reflection")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection")?;

    health
        .set_serving::<OperatorConnectServer<OperatorConnectApi>>()
        .await;
    let api = NumberManagementServer::with_interceptor(
        NumberManagementApi::new(service.clone()),
        Authenticate::tenants(key.clone()),
    );
    let operator_api = OperatorConnectServer::with_interceptor(
        OperatorConnectApi::new(service),
        Authenticate::operators(key),
    );

    let address = listener.local_addr()?;
    tracing::info!(%address, "serving numbers.v1");
    tonic::transport::Server::builder()
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        .add_service(operator_api)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            health
                .set_not_serving::<NumberManagementServer<NumberManagementApi>>()
                .await;
            health
                .set_not_serving::<OperatorConnectServer<OperatorConnectApi>>()
                .await;
        })
        .await
        .context("serving gRPC")?;
    Ok(())
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
