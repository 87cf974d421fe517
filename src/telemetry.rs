//! Logging and traces: `tracing` to standard error, human-readable or JSON, filtered by
//! `RUST_LOG` (default `info`); and, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the same spans exported as OpenTelemetry traces
//! over OTLP/gRPC, configured by the standard `OTEL_*` variables.
//!
//! Lines are written by a background thread, so a request never waits for a write to the
//! terminal or the log file. The thread writes whatever lines have queued up in one go, and
//! flushes as soon as the queue is empty: under load lines leave in large writes rather than a
//! system call each, and when idle at once. None is dropped: when the queue is full, logging
//! waits.
//!
//! Each call runs in a span carrying its request id and trace id ([`call_span`]), so every line
//! it logs can be found from either; a caller's W3C `traceparent` makes the call's span a child
//! of the caller's, whether or not traces are exported.

use std::io::{BufWriter, IsTerminal as _};
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::codegen::http;
use tracing::Span;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// The request metadata naming a call for the logs; answered back on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// The service name traces carry unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// names another.
const SERVICE_NAME: &str = "numbers";

/// Whether spans are exported: without it, a call's span looks for a trace id only when the
/// caller sent one.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// What keeps logging and trace export going: drop it when the process ends, which exports the
/// spans still queued and writes out the last lines.
#[derive(Debug)]
pub struct Guard {
    tracer: Option<SdkTracerProvider>,
    _writer: WorkerGuard,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take()
            && let Err(error) = tracer.shutdown()
        {
            tracing::warn!(%error, "traces not all exported at shutdown");
        }
    }
}

/// Installs the global subscriber (and the trace exporter the `OTEL_*` variables ask for),
/// answering its [`Guard`]: keep it until the process ends. Calling it again (as tests do)
/// changes nothing and answers `None`. Must run inside the Tokio runtime when traces are
/// exported. An exporter that cannot be built is reported and the service runs without it:
/// traces are not worth refusing to serve for.
pub fn init(format: LogFormat) -> Option<Guard> {
    // 16,384 lines waiting for the writer thread rather than the default 128,000: the queue's
    // slots are allocated up front (4 MB at the default).
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(16_384)
        .lossy(false)
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (tracer, exporter_error) = match tracer_provider() {
        Ok(tracer) => (tracer, None),
        Err(error) => (None, Some(error)),
    };
    let otel = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("numbers"))
            .with_threads(false)
            .with_tracked_inactivity(false)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    // The JSON lines carry the fields of the current span and of every span above it, the
    // request id and trace id among them.
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if !installed {
        return None;
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(error) = exporter_error {
        tracing::warn!(%error, "traces are not exported: the OTLP exporter could not be built");
    }
    if tracer.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!("exporting traces over OTLP");
    }
    Some(Guard {
        tracer,
        _writer: guard,
    })
}

/// The trace exporter the `OTEL_*` variables describe, when they name an endpoint.
fn tracer_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    let configured = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if !configured("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    {
        return Ok(None);
    }
    // The specification's two ways of turning export off whatever the endpoint says.
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
    if disabled {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(name) {
            anyhow::ensure!(
                protocol.is_empty() || protocol == "grpc",
                "{name}={protocol}: only grpc is supported"
            );
        }
    }
    // The endpoint, headers, timeout and compression come from the OTEL_EXPORTER_OTLP_*
    // variables, the batching from OTEL_BSP_*, the sampler from OTEL_TRACES_SAMPLER.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = configured("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .is_ok_and(|attributes| attributes.contains("service.name="));
    if !named {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The span of one gRPC call: named after the RPC (`numbers.v1.NumberManagement/AssignPhoneNumber`,
/// in traces too), with the call's request id (read from [`REQUEST_ID`], which the layers in
/// front of it have made sure is there) and its trace id, a child of the caller's trace when
/// the request carries a `traceparent`.
pub fn call_span<B>(request: &http::Request<B>) -> Span {
    let headers = request.headers();
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "grpc",
        otel.name = request.uri().path().trim_start_matches('/'),
        request_id,
        trace_id = tracing::field::Empty,
    );
    let exporting = EXPORTING.load(Ordering::Relaxed);
    if !exporting && !headers.contains_key("traceparent") {
        return span;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let parent_trace = parent.span().span_context().trace_id();
    let mut trace_id = parent_trace;
    if exporting {
        let _ = span.set_parent(parent);
        let own = span.context().span().span_context().trace_id();
        if own != opentelemetry::trace::TraceId::INVALID {
            trace_id = own;
        }
    }
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// A request id a client may choose: 1 to 64 letters, digits and `-_.:`; anything else is
/// replaced by one of the server's, so the logs hold nothing a client could forge into them.
pub fn is_sane_request_id(value: &http::HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Drops a request id not [`is_sane_request_id`], for the server to make its own.
pub fn sanitize_request_id<B>(mut request: http::Request<B>) -> http::Request<B> {
    if request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|value| !is_sane_request_id(value))
    {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// Makes a request id for a call that came without one: a random UUID, from the thread's
/// generator rather than a system call.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let value = http::HeaderValue::from_str(&id.to_string()).ok()?;
        Some(tower_http::request_id::RequestId::new(value))
    }
}

/// Request headers as OpenTelemetry's propagators read them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        let sane = |text: &str| is_sane_request_id(&http::HeaderValue::from_str(text).unwrap());
        assert!(sane("req-42"));
        assert!(sane("0f8e3a1c-5b2d-4e7f-9a6b-1c2d3e4f5a6b"));
        assert!(!sane(""));
        assert!(!sane("two words"));
        assert!(!sane("a\"quote"));
        assert!(!sane(&"x".repeat(65)));
    }
}
