//! [`RemoteProvider`]: the [`Provider`] trait, answered by a carrier's adapter process over the
//! protocol.
//!
//! Each call crosses a network, so each call gets a deadline, retries when (and only when) the
//! error says a retry can help, and goes through a circuit breaker that fails fast while the
//! carrier is down. The descriptor comes from the service's configuration and the channel
//! connects lazily, so constructing the provider never waits for the carrier: the service
//! starts, and serves everything else, while a carrier is unreachable. Each call runs in a
//! client span whose W3C `traceparent` goes with every attempt, so the carrier's spans join the
//! service's trace, and the breaker's state is a gauge (`numbers_adapter_circuit_state`).

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use numbers_provider::{
    ActivationMode, AssignmentCheck, CarrierPage, Descriptor, ErrorKind, LocationCheck,
    NumberQuery, OfferedNumber, Progress, Provider, ProviderError, ProviderResult, Provisioning,
};
use opentelemetry::propagation::Injector;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::breaker::{CircuitBreaker, Open};
use crate::convert::{Malformed, carrier_page};
use crate::proto;
use crate::proto::provider_adapter_client::ProviderAdapterClient;
use crate::status::error_from_status;

type Client = ProviderAdapterClient<Channel>;

/// How to reach a carrier's adapter, and how patient to be with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSettings {
    /// The adapter's address, such as `http://127.0.0.1:50071` (a bare `host:port` means
    /// `http://host:port`); `https://` speaks TLS, as [`RemoteSettings::tls`] says.
    pub endpoint: String,
    /// The deadline of each attempt of a call; an attempt that takes longer fails as
    /// unavailable (retryable). Default 5 s.
    pub timeout: Duration,
    /// How many times a call is tried again after a retryable failure. Default 2.
    pub retries: u32,
    /// The first pause between attempts; each next one doubles, with jitter. Default 50 ms.
    pub backoff: Duration,
    /// Consecutive retryable failures that open the circuit; 0 never opens it. Default 5.
    pub breaker_threshold: u32,
    /// How long an open circuit fails calls at once before it lets a trial call through.
    /// Default 10 s.
    pub breaker_cooldown: Duration,
    /// Whom to trust, and what to present, at `https://` endpoints.
    pub tls: ClientTls,
}

/// TLS towards adapters at `https://` endpoints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM certificates of the authorities that sign adapters' certificates; none trusts the
    /// Web PKI's roots.
    pub ca: Option<Vec<u8>>,
    /// The PEM certificate chain and private key to present to adapters that ask for a client
    /// certificate (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    fn config(&self) -> ClientTlsConfig {
        let config = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// Never prints the private key.
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50071".into(),
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(50),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
            tls: ClientTls::default(),
        }
    }
}

impl RemoteSettings {
    /// The default settings for the adapter at `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ..Self::default()
        }
    }
}

/// The configured endpoint is not a URI.
#[derive(Debug, thiserror::Error)]
#[error("invalid adapter endpoint {endpoint:?}: {source}")]
pub struct InvalidEndpoint {
    endpoint: String,
    #[source]
    source: tonic::transport::Error,
}

/// A provider whose adapter runs as its own process, reached over the adapter protocol.
#[derive(Debug)]
pub struct RemoteProvider {
    descriptor: Descriptor,
    settings: RemoteSettings,
    client: Client,
    breaker: CircuitBreaker,
}

impl RemoteProvider {
    /// The provider `descriptor` declares (from configuration), reached at
    /// `settings.endpoint`. Its activation mode is always asynchronous, whatever the
    /// descriptor says: a carrier behind a network may always answer "pending".
    ///
    /// Does not connect: the first call does. Must be called within a Tokio runtime.
    pub fn new(
        mut descriptor: Descriptor,
        settings: RemoteSettings,
    ) -> Result<Self, InvalidEndpoint> {
        descriptor.activation = ActivationMode::Asynchronous;
        let uri = if settings.endpoint.contains("://") {
            settings.endpoint.clone()
        } else {
            format!("http://{}", settings.endpoint)
        };
        let invalid = |source| InvalidEndpoint {
            endpoint: settings.endpoint.clone(),
            source,
        };
        let mut endpoint = Endpoint::from_shared(uri.clone()).map_err(invalid)?;
        if uri.starts_with("https://") {
            endpoint = endpoint
                .tls_config(settings.tls.config())
                .map_err(invalid)?;
        }
        let channel = endpoint.connect_timeout(settings.timeout).connect_lazy();
        Ok(Self {
            breaker: CircuitBreaker::with_gauge(
                settings.breaker_threshold,
                settings.breaker_cooldown,
                metrics::gauge!(crate::CIRCUIT_STATE_METRIC, "provider" => descriptor.id.clone()),
            ),
            client: ProviderAdapterClient::new(channel),
            descriptor,
            settings,
        })
    }

    /// The settings the provider was built with.
    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// Whether calls currently fail fast because the carrier kept failing.
    pub fn is_circuit_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// The descriptor the carrier's adapter declares for itself, to compare with the configured
    /// one (a health check, a start-up warning). Goes through the deadline, retries and breaker
    /// like any call.
    pub async fn describe(&self) -> ProviderResult<Descriptor> {
        let descriptor = self
            .call(
                "Describe",
                proto::DescribeRequest {},
                |mut c, r| async move { c.describe(r).await },
            )
            .await?;
        Descriptor::try_from(descriptor).map_err(|e| self.malformed("Describe", &e))
    }

    /// Sends one call: attempts it until it succeeds, fails for good, runs out of retries or
    /// finds the circuit open.
    async fn call<M, T, F, Fut>(&self, rpc: &'static str, message: M, send: F) -> ProviderResult<T>
    where
        M: Clone + Send + Sync,
        T: Send,
        F: Fn(Client, Request<M>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<Response<T>, Status>> + Send,
    {
        // A client span, the parent of the carrier's spans when it reads `traceparent`.
        let span = tracing::info_span!(
            "adapter",
            otel.name = format!("numbers.adapter.v1.ProviderAdapter/{rpc}"),
            otel.kind = "client",
            provider = %self.descriptor.id,
        );
        self.call_in_span(rpc, message, send).instrument(span).await
    }

    async fn call_in_span<M, T, F, Fut>(
        &self,
        rpc: &'static str,
        message: M,
        send: F,
    ) -> ProviderResult<T>
    where
        M: Clone + Send + Sync,
        T: Send,
        F: Fn(Client, Request<M>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<Response<T>, Status>> + Send,
    {
        let mut attempt = 0;
        let mut last_error = None;
        loop {
            if let Err(open) = self.breaker.admit(Instant::now()) {
                // A retry refused by the circuit reports what actually went wrong.
                return Err(last_error.unwrap_or_else(|| self.circuit_open(open)));
            }
            let error = match self.attempt(rpc, &message, &send).await {
                Ok(answer) => {
                    self.breaker.record_success();
                    return Ok(answer);
                }
                Err(error) if !error.is_retryable() => {
                    // The carrier answered: it is alive, whatever it said.
                    self.breaker.record_success();
                    return Err(error);
                }
                Err(error) => error,
            };
            if self.breaker.record_failure(Instant::now()) {
                tracing::warn!(
                    provider = %self.descriptor.id,
                    rpc,
                    %error,
                    cooldown_ms = self.settings.breaker_cooldown.as_millis(),
                    "circuit open: calls to the carrier fail fast",
                );
            }
            let Some(wait) = self.backoff(attempt, &error) else {
                return Err(error);
            };
            tracing::debug!(
                provider = %self.descriptor.id,
                rpc,
                attempt,
                wait_ms = wait.as_millis(),
                %error,
                "retrying",
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
            last_error = Some(error);
        }
    }

    /// One attempt of a call, under the deadline.
    async fn attempt<M, T, F, Fut>(&self, rpc: &str, message: &M, send: &F) -> ProviderResult<T>
    where
        M: Clone,
        F: Fn(Client, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let mut request = Request::new(message.clone());
        inject_trace(request.metadata_mut());
        // The deadline is enforced here rather than sent as `grpc-timeout`: a tonic server
        // answers an expired `grpc-timeout` with CANCELLED, which would race with this and
        // read as a non-retryable failure.
        match tokio::time::timeout(self.settings.timeout, send(self.client.clone(), request)).await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(error_from_status(&self.descriptor.id, &status)),
            Err(_elapsed) => Err(ProviderError::new(
                self.descriptor.id.clone(),
                ErrorKind::Unavailable { retry_after: None },
                format!(
                    "{} did not answer {rpc} within {} ms",
                    self.descriptor.display_name,
                    self.settings.timeout.as_millis()
                ),
            )),
        }
    }

    /// How long to wait before attempt `attempt + 1` after `error`, or `None` to give up: no
    /// retries left, or the carrier asks for a longer pause than a deadline (the caller, not
    /// this call, should come back later).
    fn backoff(&self, attempt: u32, error: &ProviderError) -> Option<Duration> {
        if attempt >= self.settings.retries {
            return None;
        }
        let ceiling = self
            .settings
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt));
        let jittered = ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        let hint = match error.kind {
            ErrorKind::Unavailable {
                retry_after: Some(hint),
            } => hint,
            _ => Duration::ZERO,
        };
        let wait = jittered.max(hint);
        (wait <= self.settings.timeout).then_some(wait)
    }

    fn circuit_open(&self, open: Open) -> ProviderError {
        ProviderError::new(
            self.descriptor.id.clone(),
            ErrorKind::Unavailable {
                retry_after: Some(open.retry_after),
            },
            format!(
                "circuit open: {} failed {} times in a row; calls fail at once for the next {} ms",
                self.descriptor.display_name,
                self.settings.breaker_threshold,
                open.retry_after.as_millis()
            ),
        )
    }

    fn malformed(&self, rpc: &str, error: &Malformed) -> ProviderError {
        ProviderError::new(
            self.descriptor.id.clone(),
            ErrorKind::Failed,
            format!(
                "{} answered {rpc} with a {error}",
                self.descriptor.display_name
            ),
        )
    }

    /// The progress a provisioning call or a poll answered.
    fn progress(
        &self,
        rpc: &str,
        answer: ProviderResult<proto::Progress>,
    ) -> ProviderResult<Progress> {
        Progress::try_from(answer?).map_err(|e| self.malformed(rpc, &e))
    }
}

#[async_trait]
impl Provider for RemoteProvider {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        let request = proto::CheckAssignmentRequest {
            check: Some(check.into()),
        };
        self.call("CheckAssignment", request, |mut c, r| async move {
            c.check_assignment(r).await
        })
        .await
        .map(drop)
    }

    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()> {
        let request = proto::CheckLocationUpdateRequest {
            check: Some(check.into()),
        };
        self.call("CheckLocationUpdate", request, |mut c, r| async move {
            c.check_location_update(r).await
        })
        .await
        .map(drop)
    }

    async fn activate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        let request = proto::ActivateRequest {
            change: Some(change.into()),
        };
        let answer = self
            .call("Activate", request, |mut c, r| async move {
                c.activate(r).await
            })
            .await;
        self.progress("Activate", answer)
    }

    async fn deactivate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        let request = proto::DeactivateRequest {
            change: Some(change.into()),
        };
        let answer = self
            .call("Deactivate", request, |mut c, r| async move {
                c.deactivate(r).await
            })
            .await;
        self.progress("Deactivate", answer)
    }

    async fn update_location(&self, change: &Provisioning) -> ProviderResult<Progress> {
        let request = proto::UpdateLocationRequest {
            change: Some(change.into()),
        };
        let answer = self
            .call("UpdateLocation", request, |mut c, r| async move {
                c.update_location(r).await
            })
            .await;
        self.progress("UpdateLocation", answer)
    }

    async fn poll(&self, ticket: &str) -> ProviderResult<Progress> {
        let request = proto::PollRequest {
            ticket: ticket.to_owned(),
        };
        let answer = self
            .call("Poll", request, |mut c, r| async move { c.poll(r).await })
            .await;
        self.progress("Poll", answer)
    }

    async fn search(
        &self,
        query: &NumberQuery,
        offset: usize,
        limit: usize,
    ) -> ProviderResult<Vec<OfferedNumber>> {
        let request = proto::SearchRequest {
            query: Some(query.into()),
            offset: u64::try_from(offset).unwrap_or(u64::MAX),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        };
        let answer = self
            .call(
                "Search",
                request,
                |mut c, r| async move { c.search(r).await },
            )
            .await?;
        answer
            .numbers
            .into_iter()
            .map(OfferedNumber::try_from)
            .collect::<Result<_, _>>()
            .map_err(|e| self.malformed("Search", &e))
    }

    async fn acquire(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        let request = proto::AcquireRequest {
            tenant_id: tenant_id.to_owned(),
            phone_numbers: numbers.to_vec(),
        };
        self.call(
            "Acquire",
            request,
            |mut c, r| async move { c.acquire(r).await },
        )
        .await
        .map(drop)
    }

    async fn release(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        let request = proto::ReleaseRequest {
            tenant_id: tenant_id.to_owned(),
            phone_numbers: numbers.to_vec(),
        };
        self.call(
            "Release",
            request,
            |mut c, r| async move { c.release(r).await },
        )
        .await
        .map(drop)
    }

    /// Asks the carrier whatever the configured descriptor says: like Search, the carrier's
    /// adapter is the one that knows, and one that cannot list answers UNIMPLEMENTED, which
    /// reads as [`ErrorKind::Unsupported`].
    async fn list_numbers(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ProviderResult<CarrierPage> {
        // A limit beyond the protocol's range asks for "as many as the adapter likes" (0), as
        // does a limit of 0 itself, which no caller that wants a page sends.
        let page_size = u32::try_from(limit).unwrap_or(0);
        let request = proto::ListNumbersRequest {
            tenant_id: tenant_id.to_owned(),
            after: after.unwrap_or_default().to_owned(),
            page_size,
        };
        let answer = self
            .call("ListNumbers", request, |mut c, r| async move {
                c.list_numbers(r).await
            })
            .await?;
        carrier_page(answer, after, page_size).map_err(|e| self.malformed("ListNumbers", &e))
    }
}

/// Puts the W3C trace context of the current span (when traces are exported) into outgoing
/// metadata, so the carrier's spans join the service's trace.
fn inject_trace(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Metadata(metadata));
    });
}

/// Outgoing metadata as OpenTelemetry's propagators write it.
struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}
