//! The `numbers.v1.OperatorConnect` handlers: operators put numbers into tenants and take them
//! back.

use tonic::{Request, Response, Status};

use super::auth::operator;
use super::convert;
use super::mutation::request_options;
use crate::error::{Error, Reason};
use crate::proto::v1 as pb;
use crate::proto::v1::operator_connect_server::OperatorConnect;
use crate::service::{MAX_NUMBERS_PER_REQUEST, Service};

/// The operator-facing API.
#[derive(Debug, Clone)]
pub struct OperatorConnectApi {
    service: Service,
}

impl OperatorConnectApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

fn tenant(field: &str, value: &str) -> Result<String, Error> {
    match value.trim() {
        "" => Err(Error::invalid_field(
            Reason::InvalidArgument,
            field,
            "is required",
        )),
        id if !crate::domain::is_tenant_id(id) => Err(Error::invalid_field(
            Reason::InvalidArgument,
            field,
            "is not a tenant id",
        )),
        id => Ok(id.to_owned()),
    }
}

#[tonic::async_trait]
impl OperatorConnect for OperatorConnectApi {
    async fn upload_numbers(
        &self,
        request: Request<pb::UploadNumbersRequest>,
    ) -> Result<Response<pb::UploadNumbersResponse>, Status> {
        let caller = operator(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let tenant = tenant("tenant_id", &request.tenant_id)?;
        let uploads = convert::uploads(request.numbers, MAX_NUMBERS_PER_REQUEST)?;
        let saved = self
            .service
            .upload_numbers(&caller, &tenant, &uploads, &options)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::UploadNumbersResponse {
            phone_numbers: saved
                .0
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    async fn release_numbers(
        &self,
        request: Request<pb::ReleaseNumbersRequest>,
    ) -> Result<Response<pb::ReleaseNumbersResponse>, Status> {
        let caller = operator(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let tenant = tenant("tenant_id", &request.tenant_id)?;
        let numbers = convert::phone_numbers(
            "phone_numbers",
            &request.phone_numbers,
            MAX_NUMBERS_PER_REQUEST,
        )?;
        let released = self
            .service
            .operator_release_numbers(&caller, &tenant, &numbers, &options)
            .await?;
        Ok(Response::new(pb::ReleaseNumbersResponse {
            phone_numbers: released.0,
        }))
    }
}
