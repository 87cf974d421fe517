//! OpenTelemetry traces: a real `numbers serve`, told by `OTEL_EXPORTER_OTLP_ENDPOINT` where a
//! collector listens, exports the span of a call to a loopback OTLP collector (a tonic server of
//! the OTLP TraceService), as a child of the trace the caller's `traceparent` names; the call's
//! log lines carry its request id and that trace id; and a call to a remote adapter carries the
//! trace on to the adapter.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use numbers_operator_connect::{OperatorConnect, OperatorSettings};
use numbers_provider::Provider as _;
use numbers_remote::AdapterService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::helpers::client_at;
use crate::metrics::start_demo_server;

/// The trace the test's caller is part of, and the caller's span in it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// A span as the collector received it.
#[derive(Clone, Debug)]
struct Received {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: SpanKind,
    service_name: Option<String>,
}

/// An OTLP trace collector on loopback that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|resource| {
                resource.attributes.iter().find_map(|kv| {
                    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(name)) if kv.key == "service.name" => {
                            Some(name.clone())
                        }
                        _ => None,
                    }
                })
            });
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        name: span.name,
                        service_name: service_name.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Starts the collector on a loopback port, answering its endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(TraceServiceServer::new(self.clone()))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        format!("http://{address}")
    }

    /// Waits until a span satisfies `wanted`, answering it.
    async fn wait_for(&self, wanted: impl Fn(&Received) -> bool) -> Received {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(span) = self.spans.lock().unwrap().iter().find(|s| wanted(s)) {
                return span.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such span arrived; received: {:#?}",
                self.spans.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A request carrying the test's trace and request id.
fn traced<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
            .parse()
            .unwrap(),
    );
    metadata.insert("x-request-id", request_id.parse().unwrap());
    request
}

/// The environment that sends the server's spans to `endpoint`, in batches a tenth of a
/// second apart.
fn otel_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("RUST_LOG", "info,tower_http=debug".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_exported_as_a_span_of_the_callers_trace_and_logged_with_its_ids() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = otel_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (server, token) =
        start_demo_server(dir.path(), None, &["--log-format", "json"], &env).await;
    let mut client = client_at(server.address, &token).await;
    let answer = client
        .get_user(traced(
            pb::GetUserRequest {
                identity: "john@contoso.com".into(),
            },
            "trace-test-1",
        ))
        .await
        .expect("get the user");
    assert_eq!(
        answer.metadata().get("x-request-id").unwrap(),
        "trace-test-1",
        "the client's request id is answered back"
    );

    let span = collector
        .wait_for(|s| s.name == "numbers.v1.NumberManagement/GetUser")
        .await;
    assert_eq!(span.trace_id, TRACE_ID, "{span:?}");
    assert_eq!(span.parent_span_id, PARENT_SPAN_ID, "{span:?}");
    assert_eq!(span.service_name.as_deref(), Some("numbers"), "{span:?}");

    // A request id that could forge a log line is replaced by the server's own.
    let mut request = tonic::Request::new(pb::GetUserRequest {
        identity: "john@contoso.com".into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "two words".parse().unwrap());
    let answer = client.get_user(request).await.expect("get the user");
    let replaced = answer.metadata().get("x-request-id").unwrap();
    assert_ne!(replaced, "two words");
    assert_eq!(replaced.len(), 36, "a UUID: {replaced:?}");

    // The call's lines, JSON, carry its request id and trace id in its span.
    let log = server.stop_and_read_log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let of_the_call: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == "trace-test-1")
        .collect();
    assert!(!of_the_call.is_empty(), "no line of the call in {log}");
    for line in of_the_call {
        assert_eq!(line["span"]["trace_id"], TRACE_ID, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_adapter_call_carries_the_trace() {
    // The demo's simulated operator, served by the test over the adapter protocol; the test
    // keeps the traceparent of every call it receives.
    let operator = OperatorConnect::new(OperatorSettings {
        id: "litware-mobile".into(),
        display_name: "Litware Mobile".into(),
        countries: vec!["US".into()],
        tenant_location_update_allowed: true,
    });
    assert_eq!(operator.descriptor().id, "litware-mobile");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let adapter_address = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                AdapterService::new(Arc::new(operator)).into_server(),
                move |request: tonic::Request<()>| {
                    if let Some(parent) = request.metadata().get("traceparent") {
                        let parent = parent.to_str().unwrap_or_default().to_owned();
                        keep.lock().unwrap().push(parent);
                    }
                    Ok(request)
                },
            ))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("numbers.toml");
    std::fs::write(
        &config,
        format!(
            "[[operators]]\nid = \"litware-mobile\"\ndisplay_name = \"Litware Mobile\"\n\
             countries = [\"US\"]\ntenant_location_update_allowed = true\n\
             endpoint = \"http://{adapter_address}\"\n"
        ),
    )
    .unwrap();

    let collector = Collector::default();
    let endpoint = collector.start().await;
    let env = otel_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = config.display().to_string();
    let (server, token) = start_demo_server(dir.path(), None, &["--config", &config], &env).await;
    let mut client = client_at(server.address, &token).await;
    client
        .assign_phone_number(traced(
            pb::AssignPhoneNumberRequest {
                identity: "john@contoso.com".into(),
                phone_number: "+14255550301".into(),
                ..Default::default()
            },
            "remote-trace-1",
        ))
        .await
        .expect("assign the operator's number");

    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parents = seen.lock().unwrap().clone();
    assert!(!parents.is_empty(), "the adapter was not called");
    let first = &parents[0];
    let fields: Vec<&str> = first.split('-').collect();
    assert_eq!(fields.len(), 4, "a W3C traceparent: {first}");
    assert_eq!(fields[1], TRACE_ID, "{first}");
    // The adapter's parent is the service's client span, which the collector receives.
    let client_span = collector.wait_for(|s| s.span_id == fields[2]).await;
    assert_eq!(client_span.trace_id, TRACE_ID, "{client_span:?}");
    assert!(
        client_span
            .name
            .starts_with("numbers.adapter.v1.ProviderAdapter/"),
        "{client_span:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_simulator_serves_its_calls_in_the_callers_trace() {
    // The simulator runs inside numbers serve (--demo without an endpoint for it): its spans
    // go out with the service's, children of the client spans of the calls it serves.
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let env = otel_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = start_demo_server(dir.path(), None, &[], &env).await;
    let mut client = client_at(server.address, &token).await;
    client
        .assign_phone_number(traced(
            pb::AssignPhoneNumberRequest {
                identity: "john@contoso.com".into(),
                phone_number: "+14255550301".into(),
                ..Default::default()
            },
            "simulated-trace-1",
        ))
        .await
        .expect("assign the simulated operator's number");
    let name = "numbers.adapter.v1.ProviderAdapter/CheckAssignment";
    let served = collector
        .wait_for(|s| s.name == name && s.kind == SpanKind::Server)
        .await;
    assert_eq!(served.trace_id, TRACE_ID, "{served:?}");
    let calling = collector
        .wait_for(|s| s.span_id == served.parent_span_id)
        .await;
    assert_eq!(calling.name, name, "{calling:?}");
    assert_eq!(calling.kind, SpanKind::Client, "{calling:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_queued_are_exported_when_the_server_stops() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let dir = tempfile::tempdir().unwrap();
    // Batches a minute apart: only the shutdown sends this one.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("OTEL_SERVICE_NAME", "numbers-eu"),
    ];
    let (server, token) = start_demo_server(dir.path(), None, &[], &env).await;
    let mut client = client_at(server.address, &token).await;
    client
        .get_user(traced(
            pb::GetUserRequest {
                identity: "john@contoso.com".into(),
            },
            "shutdown-trace-1",
        ))
        .await
        .expect("get the user");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        collector.spans.lock().unwrap().is_empty(),
        "spans were sent before the batch was due"
    );
    let log = server.stop_and_read_log();
    assert!(log.contains("stopped"), "{log}");
    let span = collector
        .wait_for(|s| s.name == "numbers.v1.NumberManagement/GetUser")
        .await;
    assert_eq!(span.trace_id, TRACE_ID, "{span:?}");
    assert_eq!(span.service_name.as_deref(), Some("numbers-eu"), "{span:?}");
}
