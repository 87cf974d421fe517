//! The simulator's `ProviderAdapter` service: the simulated operator served by the remote
//! crate's [`AdapterService`], with every request passing through the faults first.

use std::sync::Arc;

use numbers_remote::AdapterService;
use numbers_remote::proto;
use numbers_remote::proto::provider_adapter_server::{ProviderAdapter, ProviderAdapterServer};
use tonic::{Request, Response, Status};

use crate::faults::{Faults, Rpc};
use crate::operator::SimulatedOperator;

/// The operator behind its faults.
#[derive(Debug)]
pub(crate) struct FaultyAdapter {
    inner: AdapterService<SimulatedOperator>,
    faults: Arc<Faults>,
}

impl FaultyAdapter {
    pub(crate) fn server(
        operator: Arc<SimulatedOperator>,
        faults: Arc<Faults>,
    ) -> ProviderAdapterServer<Self> {
        ProviderAdapterServer::new(Self {
            inner: AdapterService::new(operator),
            faults,
        })
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ProviderAdapter for FaultyAdapter {
    async fn describe(
        &self,
        request: Request<proto::DescribeRequest>,
    ) -> Answer<proto::Descriptor> {
        self.faults.before(Rpc::Describe).await?;
        self.inner.describe(request).await
    }

    async fn check_assignment(
        &self,
        request: Request<proto::CheckAssignmentRequest>,
    ) -> Answer<proto::CheckAssignmentResponse> {
        self.faults.before(Rpc::CheckAssignment).await?;
        self.inner.check_assignment(request).await
    }

    async fn check_location_update(
        &self,
        request: Request<proto::CheckLocationUpdateRequest>,
    ) -> Answer<proto::CheckLocationUpdateResponse> {
        self.faults.before(Rpc::CheckLocationUpdate).await?;
        self.inner.check_location_update(request).await
    }

    async fn activate(&self, request: Request<proto::ActivateRequest>) -> Answer<proto::Progress> {
        self.faults.before(Rpc::Activate).await?;
        self.inner.activate(request).await
    }

    async fn deactivate(
        &self,
        request: Request<proto::DeactivateRequest>,
    ) -> Answer<proto::Progress> {
        self.faults.before(Rpc::Deactivate).await?;
        self.inner.deactivate(request).await
    }

    async fn update_location(
        &self,
        request: Request<proto::UpdateLocationRequest>,
    ) -> Answer<proto::Progress> {
        self.faults.before(Rpc::UpdateLocation).await?;
        self.inner.update_location(request).await
    }

    async fn poll(&self, request: Request<proto::PollRequest>) -> Answer<proto::Progress> {
        self.faults.before(Rpc::Poll).await?;
        self.inner.poll(request).await
    }

    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Answer<proto::SearchResponse> {
        self.faults.before(Rpc::Search).await?;
        self.inner.search(request).await
    }

    async fn acquire(
        &self,
        request: Request<proto::AcquireRequest>,
    ) -> Answer<proto::AcquireResponse> {
        self.faults.before(Rpc::Acquire).await?;
        self.inner.acquire(request).await
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Answer<proto::ReleaseResponse> {
        self.faults.before(Rpc::Release).await?;
        self.inner.release(request).await
    }

    async fn list_numbers(
        &self,
        request: Request<proto::ListNumbersRequest>,
    ) -> Answer<proto::ListNumbersResponse> {
        self.faults.before(Rpc::ListNumbers).await?;
        self.inner.list_numbers(request).await
    }
}
