//! Assembles the gRPC server: the public API behind authentication and the role matrix
//! ([`Guarded`]), health and reflection in the open, and around everything the call's metrics
//! (by RPC and status code), its request id and its span (request id and trace id on every
//! line it logs).
//!
//! [`run`] takes a bound listener and a shutdown future, so `main` and the integration tests
//! start the very same server (tests on `127.0.0.1:0`).
//!
//! Health follows the database: a probe pings the store every [`HealthSettings::interval`],
//! and the server and its services answer NOT_SERVING while the database does not answer, so a
//! load balancer stops sending requests that could only fail.
//!
//! With [`Tls`], connections are TLS (the certificate reloaded as its files change), and with
//! mutual TLS the public services refuse callers without a client certificate while health and
//! reflection still answer them.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::limit::ConcurrencyLimitLayer;
use tower::util::{MapRequestLayer, MapResponseLayer};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::{Guarded, MAX_MESSAGE_BYTES, NumberManagementApi, OperatorConnectApi, TenantRate};
use crate::auth::Authenticator;
use crate::error::{Error, Reason};
use crate::metrics::GrpcMetricsLayer;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::number_management_server::NumberManagementServer;
use crate::proto::v1::operator_connect_server::OperatorConnectServer;
use crate::service::Service;
use crate::telemetry;
use crate::tls::{ClientCertificate, Tls};

/// The longest a call may take, waiting for its turn included; a client's shorter deadline
/// (`grpc-timeout`) applies instead. Past it the call answers CANCELLED and its work stops.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Calls one HTTP/2 connection may have open at once (announced to the client, which queues
/// the rest itself).
const MAX_CALLS_PER_CONNECTION: u32 = 100;
/// Calls the server works on at once, over all connections; the rest wait their turn (within
/// their timeout), so a flood queues rather than exhausting memory or the database pool.
const MAX_CALLS_IN_FLIGHT: usize = 1024;
/// How often an idle connection is pinged, and how long the server waits for the answer before
/// it drops a connection whose peer went away without closing it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a call whose handler panicked: INTERNAL, with the panic in the log. The
/// connection and its other calls carry on.
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> http::Response<tonic::body::Body> {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    let status: tonic::Status =
        Error::internal(anyhow::anyhow!("a handler panicked: {what}")).into();
    status.into_http()
}

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

/// Serves the API on `listener`, over TLS when `tls` is given, until `shutdown` completes, then
/// lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    tls: Option<Tls>,
    service: Service,
    authenticator: Authenticator,
    health_settings: HealthSettings,
    rate: TenantRate,
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

    // The client certificate is checked before the token: without one, nothing is looked at.
    // Then the token, the role matrix and the caller's rate, in `Guarded`.
    let client_certificate =
        ClientCertificate::required(tls.as_ref().is_some_and(Tls::requires_client_certificates));
    let api = NumberManagementServer::new(
        NumberManagementApi::new(service.clone())
            .await
            .context("reading the page tokens' key")?,
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let api = InterceptedService::new(
        Guarded::new(api, authenticator.clone(), rate.clone()),
        client_certificate,
    );
    let operator_api = OperatorConnectServer::new(OperatorConnectApi::new(service.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let operator_api = InterceptedService::new(
        Guarded::new(operator_api, authenticator, rate),
        client_certificate,
    );

    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        tls = tls.is_some(),
        mutual_tls = client_certificate.is_required(),
        "serving numbers.v1"
    );
    // Every call is counted and timed by its status, outermost so that the wait for a turn
    // counts and a panic counts as the INTERNAL it is answered with. It gets a request id (the
    // client's x-request-id when sane, else a fresh one), answered back in x-request-id, and a
    // span (the RPC, the request id, the trace id) around what it logs; a line for each answer
    // only at debug level: changes log a line of their own, failures a warning, and a line per
    // read would cost more than many reads.
    let router = tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION))
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(GrpcMetricsLayer)
        .layer(MapRequestLayer::new(telemetry::sanitize_request_id))
        .layer(SetRequestIdLayer::new(
            http::HeaderName::from_static(telemetry::REQUEST_ID),
            telemetry::MakeRequestId,
        ))
        .layer(PropagateRequestIdLayer::new(http::HeaderName::from_static(
            telemetry::REQUEST_ID,
        )))
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(ConcurrencyLimitLayer::new(MAX_CALLS_IN_FLIGHT))
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(telemetry::call_span as fn(&http::Request<_>) -> tracing::Span)
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .layer(MapResponseLayer::new(explain_oversized))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        .add_service(operator_api);
    let reload = tls.clone().map(|tls| tokio::spawn(tls.reload_on_change()));
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        probe.abort();
        if let Some(reload) = reload {
            reload.abort();
        }
        report(&health, ServingStatus::NotServing).await;
    };
    match tls {
        None => {
            router
                .serve_with_incoming_shutdown(incoming(listener), shutdown)
                .await
        }
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), shutdown)
                .await
        }
    }
    .context("serving gRPC")
}

/// A request over [`MAX_MESSAGE_BYTES`] is refused by tonic as it starts decoding it, with
/// OUT_OF_RANGE and no reason; it is answered as the other limits are, with a reason:
/// RESOURCE_EXHAUSTED (gRPC's own code for a message too large), `MESSAGE_TOO_LARGE`.
fn explain_oversized(
    response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let oversized = response
        .extensions()
        .get::<tonic::Status>()
        .is_some_and(|status| {
            status.code() == tonic::Code::OutOfRange
                && status
                    .message()
                    .starts_with("Error, decoded message length too large")
        });
    if !oversized {
        return response;
    }
    let error = Error::new(
        Reason::MessageTooLarge,
        format!(
            "the request is larger than the {MAX_MESSAGE_BYTES} bytes the server reads; send \
             less in each request"
        ),
    )
    .with("limit", MAX_MESSAGE_BYTES);
    tonic::Status::from(error).into_http()
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

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_internal() {
        let handler = tower::service_fn(|_: http::Request<tonic::body::Body>| async {
            if std::hint::black_box(true) {
                panic!("a bug");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let response = CatchPanicLayer::custom(answer_panic)
            .layer(handler)
            .oneshot(http::Request::new(tonic::body::Body::empty()))
            .await
            .expect("an answer");
        let status = tonic::Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::Internal);
        let info = status.get_error_details();
        assert_eq!(info.error_info().expect("ErrorInfo").reason, "INTERNAL");
        assert!(!status.message().contains("a bug"), "{status:?}");
    }
}
