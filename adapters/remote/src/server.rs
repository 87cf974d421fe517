//! [`AdapterService`]: any [`Provider`] served over the adapter protocol.
//!
//! The mirror of [`RemoteProvider`](crate::RemoteProvider): a carrier that writes its adapter
//! in Rust implements the trait and serves it with this, and the operator simulator does the
//! same. Handlers only convert, call the provider (in a span that continues the caller's trace)
//! and map its error.

use std::sync::Arc;

use numbers_provider::{
    AssignmentCheck, LocationCheck, NumberQuery, Provider, ProviderResult, Provisioning,
};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::convert::{Malformed, required};
use crate::proto;
use crate::proto::provider_adapter_server::{ProviderAdapter, ProviderAdapterServer};
use crate::status::status_from_error;

/// Serves the provider `P` as a `numbers.adapter.v1.ProviderAdapter`.
#[derive(Debug)]
pub struct AdapterService<P: ?Sized> {
    provider: Arc<P>,
}

impl<P: Provider + ?Sized + 'static> AdapterService<P> {
    /// The service of `provider`.
    pub fn new(provider: Arc<P>) -> Self {
        Self { provider }
    }

    /// The provider served.
    pub fn provider(&self) -> &Arc<P> {
        &self.provider
    }

    /// The tonic service, to add to a `tonic::transport::Server`.
    pub fn into_server(self) -> ProviderAdapterServer<Self> {
        ProviderAdapterServer::new(self)
    }
}

impl From<Malformed> for Status {
    fn from(error: Malformed) -> Self {
        Status::invalid_argument(error.to_string())
    }
}

/// The span of a call served, named after its RPC, a child of the caller's span when the
/// request carries a W3C `traceparent` (and the process has set the propagator, as `numbers
/// serve` does), with the caller's trace id on its log lines.
fn served<T>(request: &Request<T>, rpc: &'static str) -> tracing::Span {
    let span = tracing::info_span!(
        "adapter_served",
        otel.name = rpc,
        otel.kind = "server",
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Metadata(request.metadata()))
    });
    let trace_id = parent.span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
        let _ = span.set_parent(parent);
    }
    span
}

/// Request metadata as OpenTelemetry's propagators read it.
struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The provider's answer as a response, or its error as the protocol's status.
fn answer<T, U: From<T>>(result: ProviderResult<T>) -> Result<Response<U>, Status> {
    result
        .map(|value| Response::new(value.into()))
        .map_err(|error| status_from_error(&error))
}

fn change(
    change: Option<proto::Provisioning>,
    request: &'static str,
) -> Result<Provisioning, Status> {
    Ok(required(change, request, "change")?.into())
}

#[tonic::async_trait]
impl<P: Provider + ?Sized + 'static> ProviderAdapter for AdapterService<P> {
    async fn describe(
        &self,
        _request: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::Descriptor>, Status> {
        Ok(Response::new(self.provider.descriptor().into()))
    }

    async fn check_assignment(
        &self,
        request: Request<proto::CheckAssignmentRequest>,
    ) -> Result<Response<proto::CheckAssignmentResponse>, Status> {
        let span = served(
            &request,
            "numbers.adapter.v1.ProviderAdapter/CheckAssignment",
        );
        let check = required(
            request.into_inner().check,
            "CheckAssignmentRequest",
            "check",
        )?;
        let check = AssignmentCheck::try_from(check)?;
        let result = self
            .provider
            .check_assignment(&check)
            .instrument(span)
            .await;
        answer(result.map(|()| proto::CheckAssignmentResponse {}))
    }

    async fn check_location_update(
        &self,
        request: Request<proto::CheckLocationUpdateRequest>,
    ) -> Result<Response<proto::CheckLocationUpdateResponse>, Status> {
        let span = served(
            &request,
            "numbers.adapter.v1.ProviderAdapter/CheckLocationUpdate",
        );
        let check = required(
            request.into_inner().check,
            "CheckLocationUpdateRequest",
            "check",
        )?;
        let check = LocationCheck::try_from(check)?;
        let result = self
            .provider
            .check_location_update(&check)
            .instrument(span)
            .await;
        answer(result.map(|()| proto::CheckLocationUpdateResponse {}))
    }

    async fn activate(
        &self,
        request: Request<proto::ActivateRequest>,
    ) -> Result<Response<proto::Progress>, Status> {
        let span = served(&request, "numbers.adapter.v1.ProviderAdapter/Activate");
        let change = change(request.into_inner().change, "ActivateRequest")?;
        answer(self.provider.activate(&change).instrument(span).await)
    }

    async fn deactivate(
        &self,
        request: Request<proto::DeactivateRequest>,
    ) -> Result<Response<proto::Progress>, Status> {
        let span = served(&request, "numbers.adapter.v1.ProviderAdapter/Deactivate");
        let change = change(request.into_inner().change, "DeactivateRequest")?;
        answer(self.provider.deactivate(&change).instrument(span).await)
    }

    async fn update_location(
        &self,
        request: Request<proto::UpdateLocationRequest>,
    ) -> Result<Response<proto::Progress>, Status> {
        let span = served(
            &request,
            "numbers.adapter.v1.ProviderAdapter/UpdateLocation",
        );
        let change = change(request.into_inner().change, "UpdateLocationRequest")?;
        answer(
            self.provider
                .update_location(&change)
                .instrument(span)
                .await,
        )
    }

    async fn poll(
        &self,
        request: Request<proto::PollRequest>,
    ) -> Result<Response<proto::Progress>, Status> {
        let span = served(&request, "numbers.adapter.v1.ProviderAdapter/Poll");
        answer(
            self.provider
                .poll(&request.into_inner().ticket)
                .instrument(span)
                .await,
        )
    }

    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let span = served(&request, "numbers.adapter.v1.ProviderAdapter/Search");
        let request = request.into_inner();
        let query = NumberQuery::try_from(required(request.query, "SearchRequest", "query")?)?;
        let offset = usize::try_from(request.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let result = self
            .provider
            .search(&query, offset, limit)
            .instrument(span)
            .await;
        answer(result.map(|numbers| proto::SearchResponse {
            numbers: numbers.into_iter().map(Into::into).collect(),
        }))
    }

    async fn acquire(
        &self,
        request: Request<proto::AcquireRequest>,
    ) -> Result<Response<proto::AcquireResponse>, Status> {
        let span = served(&request, "numbers.adapter.v1.ProviderAdapter/Acquire");
        let request = request.into_inner();
        let result = self
            .provider
            .acquire(&request.tenant_id, &request.phone_numbers)
            .instrument(span)
            .await;
        answer(result.map(|()| proto::AcquireResponse {}))
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ReleaseResponse>, Status> {
        let span = served(&request, "numbers.adapter.v1.ProviderAdapter/Release");
        let request = request.into_inner();
        let result = self
            .provider
            .release(&request.tenant_id, &request.phone_numbers)
            .instrument(span)
            .await;
        answer(result.map(|()| proto::ReleaseResponse {}))
    }

    async fn list_numbers(
        &self,
        request: Request<proto::ListNumbersRequest>,
    ) -> Result<Response<proto::ListNumbersResponse>, Status> {
        let request = request.into_inner();
        let after = (!request.after.is_empty()).then_some(request.after.as_str());
        // 0 lets the adapter choose: no limit beyond the provider's own.
        let limit = match request.page_size {
            0 => usize::MAX,
            size => usize::try_from(size).unwrap_or(usize::MAX),
        };
        let result = self
            .provider
            .list_numbers(&request.tenant_id, after, limit)
            .await;
        answer(result)
    }
}
