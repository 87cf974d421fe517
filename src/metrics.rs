//! Metrics: what the service counts and measures, served for Prometheus on a port of its own
//! (`--metrics-listen`). Every metric is named and described here, in [`describe`], so this
//! module is the list of what there is; `docs/architecture.md` says why each one exists.
//!
//! Recording goes through the `metrics` facade: without `--metrics-listen` no recorder is
//! installed and every call is a no-op. The calls on a request's path hold their handles (one
//! per RPC and status code, made on first use), so counting a call costs a lookup of its path
//! and a few atomic additions, never an allocation.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use metrics::{Counter, Histogram, Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use numbers_provider::{
    AssignmentCheck, CarrierPage, Descriptor, ErrorKind, LocationCheck, NumberQuery, OfferedNumber,
    Progress, Provider, ProviderResult, Provisioning,
};
use tonic::codegen::http;

use crate::store::Store;

/// Calls answered, by `service`, `method` and gRPC `code`.
pub const GRPC_REQUESTS: &str = "numbers_grpc_requests_total";
/// How long calls took, from arrival to the status sent (a stream: to its end), by `service`,
/// `method` and `code`.
pub const GRPC_DURATION: &str = "numbers_grpc_request_duration_seconds";
/// Operations not finished: those with provisioning jobs still to do.
pub const OPERATIONS_PENDING: &str = "numbers_operations_pending";
/// Provisioning jobs not finished (waiting, retrying or running).
pub const JOBS_QUEUED: &str = "numbers_provisioning_jobs_queued";
/// Calls to the providers' adapters, by `provider`, `call` and `outcome`.
pub const ADAPTER_CALLS: &str = "numbers_adapter_calls_total";
/// How long adapter calls took, by `provider` and `call`.
pub const ADAPTER_DURATION: &str = "numbers_adapter_call_duration_seconds";
/// The circuit breaker of each out-of-process adapter, by `provider`: 0 closed, 1 half-open
/// (a trial call out), 2 open. Recorded by the remote adapter's client, under this name.
pub const ADAPTER_CIRCUIT: &str = numbers_remote::CIRCUIT_STATE_METRIC;
/// Database connections lent out, by `pool`.
pub const POOL_IN_USE: &str = "numbers_db_pool_connections_in_use";
/// Database connections open and waiting to be lent, by `pool`.
pub const POOL_IDLE: &str = "numbers_db_pool_connections_idle";
/// The most connections a pool opens, by `pool`.
pub const POOL_SIZE: &str = "numbers_db_pool_connections_max";
/// Requests waiting for a connection, by `pool`.
pub const POOL_WAITING: &str = "numbers_db_pool_waiting";
/// Emails handled by the mail worker, by `outcome`: `sent` (to the SMTP server, or to the log
/// without one), `failed` (an attempt that failed, retried or not) or `skipped` (the tenant's
/// settings refuse the recipient).
pub const NOTIFICATIONS: &str = "numbers_notifications_total";

/// How often the gauges read from the store (queue depths, pools) are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Histogram buckets for durations, in seconds: from a cached read (under a millisecond) to a
/// slow carrier (tens of seconds).
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Installs the Prometheus recorder and serves `/metrics` on `address`. Fails when the port is
/// taken, or when a recorder is installed already (the process may serve one set of metrics).
pub fn install(address: SocketAddr) -> anyhow::Result<()> {
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .context("setting the histograms' buckets")?
        .build()
        .with_context(|| format!("cannot serve metrics on {address}"))?;
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("a metrics recorder is installed already"))?;
    tokio::spawn(async move {
        if let Err(error) = exporter.await {
            tracing::error!(?error, "the metrics endpoint stopped");
        }
    });
    describe();
    tracing::info!(%address, "serving metrics at /metrics");
    Ok(())
}

/// Describes every metric, for the `# HELP` lines.
fn describe() {
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC calls answered, by service, method and status code"
    );
    describe_histogram!(
        GRPC_DURATION,
        Unit::Seconds,
        "How long gRPC calls took, from arrival to their status, by service, method and code"
    );
    describe_gauge!(
        OPERATIONS_PENDING,
        "Operations with provisioning jobs still to do"
    );
    describe_gauge!(
        JOBS_QUEUED,
        "Provisioning jobs waiting, retrying or running"
    );
    describe_counter!(
        ADAPTER_CALLS,
        "Provider adapter calls, by provider, call and outcome"
    );
    describe_histogram!(
        ADAPTER_DURATION,
        Unit::Seconds,
        "How long provider adapter calls took, by provider and call"
    );
    describe_gauge!(
        ADAPTER_CIRCUIT,
        "Circuit breaker of each remote adapter: 0 closed, 1 half-open, 2 open"
    );
    describe_gauge!(POOL_IN_USE, "Database connections lent out, by pool");
    describe_gauge!(POOL_IDLE, "Database connections open and idle, by pool");
    describe_gauge!(POOL_SIZE, "The most connections a pool opens, by pool");
    describe_gauge!(
        POOL_WAITING,
        "Requests waiting for a database connection, by pool"
    );
    describe_counter!(
        NOTIFICATIONS,
        "Emails handled by the mail worker, by outcome: sent, failed or skipped"
    );
}

/// Samples the gauges read from the store every few seconds until `stop` completes: the pools'
/// use (no query) and the provisioning queue (one count over the unfinished jobs' index).
pub async fn sample_store(store: Arc<dyn Store>, stop: impl Future<Output = ()>) {
    let sampling = async {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            for pool in store.pools() {
                let labels = [("pool", pool.name)];
                metrics::gauge!(POOL_IN_USE, &labels).set(pool.in_use() as f64);
                metrics::gauge!(POOL_IDLE, &labels).set(pool.idle as f64);
                metrics::gauge!(POOL_SIZE, &labels).set(pool.max as f64);
                metrics::gauge!(POOL_WAITING, &labels).set(pool.waiting as f64);
            }
            let depths = async {
                let mut tx = store.read().await?;
                tx.work_in_hand().await
            };
            match depths.await {
                Ok((operations, jobs)) => {
                    metrics::gauge!(OPERATIONS_PENDING).set(operations as f64);
                    metrics::gauge!(JOBS_QUEUED).set(jobs as f64);
                }
                Err(error) => tracing::debug!(%error, "queue depths not sampled"),
            }
        }
    };
    tokio::select! {
        () = sampling => {}
        () = stop => {}
    }
}

/// Counts an email the mail worker handled.
pub fn notification(outcome: &'static str) {
    metrics::counter!(NOTIFICATIONS, "outcome" => outcome).increment(1);
}

// gRPC calls ------------------------------------------------------------------------------

/// gRPC status codes as Prometheus labels, indexed by their number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// One RPC's metric handles, one pair per status code, made on first use.
#[derive(Debug)]
struct Rpc {
    service: &'static str,
    method: &'static str,
    by_code: [OnceLock<(Counter, Histogram)>; CODES.len()],
}

impl Rpc {
    fn new(service: &'static str, method: &'static str) -> Self {
        Self {
            service,
            method,
            by_code: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn record(&self, code: usize, elapsed: Duration) {
        let code = code.min(CODES.len() - 1);
        let (calls, duration) = self.by_code[code].get_or_init(|| {
            let labels = [
                ("service", self.service),
                ("method", self.method),
                ("code", CODES[code]),
            ];
            (
                metrics::counter!(GRPC_REQUESTS, &labels),
                metrics::histogram!(GRPC_DURATION, &labels),
            )
        });
        calls.increment(1);
        duration.record(elapsed);
    }
}

/// The RPCs the server answers, by path, and the one all other paths count as (so a client
/// cannot make up label values).
struct Rpcs {
    by_path: HashMap<&'static str, Rpc>,
    unknown: Rpc,
}

/// The table of [`Rpcs`], built from the services' descriptors on first use.
fn rpcs() -> &'static Rpcs {
    static RPCS: OnceLock<Rpcs> = OnceLock::new();
    RPCS.get_or_init(|| {
        let mut names: Vec<(String, String)> = [
            ("grpc.health.v1.Health", "Check"),
            ("grpc.health.v1.Health", "Watch"),
            (
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo",
            ),
            (
                "grpc.reflection.v1alpha.ServerReflection",
                "ServerReflectionInfo",
            ),
        ]
        .iter()
        .map(|(s, m)| ((*s).to_owned(), (*m).to_owned()))
        .collect();
        if let Ok(pool) = prost_reflect::DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET) {
            for service in pool.services() {
                for method in service.methods() {
                    names.push((service.full_name().to_owned(), method.name().to_owned()));
                }
            }
        }
        // Leaked once: a fixed set of names, labels for the life of the process.
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let by_path = names
            .into_iter()
            .map(|(service, method)| {
                let path = leak(format!("/{service}/{method}"));
                (path, Rpc::new(leak(service), leak(method)))
            })
            .collect();
        Rpcs {
            by_path,
            unknown: Rpc::new("unknown", "unknown"),
        }
    })
}

/// Counts and times every gRPC call by RPC and status code, the status read where the server
/// sends it: in the response headers (an error answered at once) or in the trailers at the end
/// of the body. A call whose response is dropped before its status (the client went away)
/// counts as CANCELLED.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpcs = rpcs();
        let rpc = rpcs
            .by_path
            .get(request.uri().path())
            .unwrap_or(&rpcs.unknown);
        MeteredFuture {
            inner: self.inner.call(request),
            pending: Some(Pending {
                rpc,
                start: Instant::now(),
                code: tonic::Code::Cancelled as usize,
            }),
        }
    }
}

/// A call not counted yet: counted when dropped, with the code it has by then.
#[derive(Debug)]
struct Pending {
    rpc: &'static Rpc,
    start: Instant,
    code: usize,
}

impl Pending {
    fn finish(mut self, code: usize) {
        self.code = code;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.rpc.record(self.code, self.start.elapsed());
    }
}

/// The gRPC status code in `headers` (response headers or trailers), if there is one.
fn status_code(headers: &http::HeaderMap) -> Option<usize> {
    let value = headers.get("grpc-status")?;
    Some(tonic::Code::from_bytes(value.as_bytes()) as usize)
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcMetrics`].
    #[derive(Debug)]
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, R, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<MeteredBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let pending = this.pending.take();
        Poll::Ready(match result {
            Ok(response) => {
                // An answer with its status in the headers has no trailers to wait for.
                let pending = match (pending, status_code(response.headers())) {
                    (Some(pending), Some(code)) => {
                        pending.finish(code);
                        None
                    }
                    (pending, _) => pending,
                };
                Ok(response.map(|inner| MeteredBody { inner, pending }))
            }
            Err(error) => {
                if let Some(pending) = pending {
                    pending.finish(tonic::Code::Unknown as usize);
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its call when its trailers go out.
    #[derive(Debug)]
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        pending: Option<Pending>,
    }
}

impl<B: http_body::Body> http_body::Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let code = match &frame {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|trailers| status_code(trailers).unwrap_or(tonic::Code::Unknown as usize)),
            Some(Err(_)) | None => Some(tonic::Code::Unknown as usize),
        };
        if let Some(code) = code
            && let Some(pending) = this.pending.take()
        {
            pending.finish(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

// Provider adapters -------------------------------------------------------------------------

/// The calls of the [`Provider`] trait, as labels.
const CALLS: [&str; 10] = [
    "check_assignment",
    "check_location_update",
    "activate",
    "deactivate",
    "update_location",
    "poll",
    "search",
    "acquire",
    "release",
    "list_numbers",
];

/// How an adapter call ended, as labels.
const OUTCOMES: [&str; 7] = [
    "ok",
    "refused",
    "not_found",
    "out_of_stock",
    "unsupported",
    "unavailable",
    "failed",
];

fn outcome<T>(result: &ProviderResult<T>) -> usize {
    match result {
        Ok(_) => 0,
        Err(error) => match error.kind {
            ErrorKind::Refused { .. } => 1,
            ErrorKind::NotFound => 2,
            ErrorKind::OutOfStock => 3,
            ErrorKind::Unsupported => 4,
            ErrorKind::Unavailable { .. } => 5,
            ErrorKind::Failed => 6,
        },
    }
}

/// A provider adapter whose calls are counted and timed, by outcome.
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn Provider>,
    provider: &'static str,
    calls: [[OnceLock<Counter>; OUTCOMES.len()]; CALLS.len()],
    durations: [OnceLock<Histogram>; CALLS.len()],
}

impl Metered {
    /// `inner`, counted under its descriptor's id.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        // Leaked once per configured provider: a label for the life of the process.
        let provider: &'static str = Box::leak(inner.descriptor().id.clone().into_boxed_str());
        Self {
            inner,
            provider,
            calls: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            durations: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    async fn measure<T>(
        &self,
        call: usize,
        work: impl Future<Output = ProviderResult<T>>,
    ) -> ProviderResult<T> {
        let start = Instant::now();
        let result = work.await;
        let outcome = outcome(&result);
        self.calls[call][outcome]
            .get_or_init(|| {
                metrics::counter!(
                    ADAPTER_CALLS,
                    "provider" => self.provider,
                    "call" => CALLS[call],
                    "outcome" => OUTCOMES[outcome]
                )
            })
            .increment(1);
        self.durations[call]
            .get_or_init(|| {
                metrics::histogram!(
                    ADAPTER_DURATION,
                    "provider" => self.provider,
                    "call" => CALLS[call]
                )
            })
            .record(start.elapsed());
        result
    }
}

#[async_trait]
impl Provider for Metered {
    fn descriptor(&self) -> &Descriptor {
        self.inner.descriptor()
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        self.measure(0, self.inner.check_assignment(check)).await
    }

    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()> {
        self.measure(1, self.inner.check_location_update(check))
            .await
    }

    async fn activate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.measure(2, self.inner.activate(change)).await
    }

    async fn deactivate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.measure(3, self.inner.deactivate(change)).await
    }

    async fn update_location(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.measure(4, self.inner.update_location(change)).await
    }

    async fn poll(&self, ticket: &str) -> ProviderResult<Progress> {
        self.measure(5, self.inner.poll(ticket)).await
    }

    async fn search(
        &self,
        query: &NumberQuery,
        offset: usize,
        limit: usize,
    ) -> ProviderResult<Vec<OfferedNumber>> {
        self.measure(6, self.inner.search(query, offset, limit))
            .await
    }

    async fn acquire(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        self.measure(7, self.inner.acquire(tenant_id, numbers))
            .await
    }

    async fn release(&self, tenant_id: &str, numbers: &[String]) -> ProviderResult<()> {
        self.measure(8, self.inner.release(tenant_id, numbers))
            .await
    }

    async fn list_numbers(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ProviderResult<CarrierPage> {
        self.measure(9, self.inner.list_numbers(tenant_id, after, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use numbers_provider::{ActivationMode, CarrierNumber, CarrierState, NumberType};

    use super::*;

    /// A carrier that holds one number and does nothing else: only what `Metered` must pass on.
    #[derive(Debug)]
    struct OneNumber(Descriptor);

    #[async_trait]
    impl Provider for OneNumber {
        fn descriptor(&self) -> &Descriptor {
            &self.0
        }
        async fn check_assignment(&self, _: &AssignmentCheck) -> ProviderResult<()> {
            Ok(())
        }
        async fn check_location_update(&self, _: &LocationCheck) -> ProviderResult<()> {
            Ok(())
        }
        async fn activate(&self, _: &Provisioning) -> ProviderResult<Progress> {
            Ok(Progress::Done)
        }
        async fn deactivate(&self, _: &Provisioning) -> ProviderResult<Progress> {
            Ok(Progress::Done)
        }
        async fn update_location(&self, _: &Provisioning) -> ProviderResult<Progress> {
            Ok(Progress::Done)
        }
        async fn poll(&self, _: &str) -> ProviderResult<Progress> {
            Ok(Progress::Done)
        }
        async fn list_numbers(
            &self,
            _: &str,
            _: Option<&str>,
            _: usize,
        ) -> ProviderResult<CarrierPage> {
            Ok(CarrierPage {
                numbers: vec![CarrierNumber {
                    phone_number: "+14255550301".into(),
                    state: CarrierState::Active,
                    target_id: Some("john".into()),
                    emergency_location_id: None,
                }],
                next_after: None,
            })
        }
    }

    #[tokio::test]
    async fn a_metered_provider_passes_every_call_on() {
        let inner = OneNumber(Descriptor {
            id: "litware-mobile".into(),
            display_name: "Litware Mobile".into(),
            number_type: NumberType::OperatorConnect,
            countries: vec![],
            tenant_location_update_allowed: true,
            activation: ActivationMode::Asynchronous,
            base_and_extensions_exclusive: false,
            catalogue: false,
            lists_numbers: true,
        });
        let expected = inner.list_numbers("contoso", None, 10).await.unwrap();
        let metered = Metered::new(Arc::new(inner));
        assert_eq!(
            metered.list_numbers("contoso", None, 10).await.unwrap(),
            expected
        );
    }

    #[test]
    fn every_public_rpc_has_its_labels() {
        let rpcs = rpcs();
        let rpc = &rpcs.by_path["/numbers.v1.NumberManagement/GetPhoneNumber"];
        assert_eq!(rpc.service, "numbers.v1.NumberManagement");
        assert_eq!(rpc.method, "GetPhoneNumber");
        assert!(rpcs.by_path.contains_key("/grpc.health.v1.Health/Check"));
        assert!(!rpcs.by_path.contains_key("/made.Up/Path"));
    }

    #[test]
    fn codes_are_labelled_by_their_number() {
        assert_eq!(CODES[tonic::Code::Ok as usize], "OK");
        assert_eq!(
            CODES[tonic::Code::FailedPrecondition as usize],
            "FAILED_PRECONDITION"
        );
        assert_eq!(
            CODES[tonic::Code::Unauthenticated as usize],
            "UNAUTHENTICATED"
        );
    }
}
