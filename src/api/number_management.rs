//! The `numbers.v1.NumberManagement` handlers: each converts the request, calls one use case
//! of the service, and converts the answer. No rules live here.

use std::time::SystemTime;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::convert;
use super::mutation::request_options;
use super::pagination::{next_page_token, page_request};
use crate::domain::UserFilter;
use crate::error::{Error, Reason};
use crate::proto::v1 as pb;
use crate::proto::v1::number_management_server::NumberManagement;
use crate::service::Service;

/// The tenant-facing API.
#[derive(Debug, Clone)]
pub struct NumberManagementApi {
    service: Service,
}

impl NumberManagementApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl NumberManagement for NumberManagementApi {
    async fn upsert_user(&self, request: Request<pb::UpsertUserRequest>) -> Answer<pb::User> {
        let caller = caller(&request)?;
        // Permission comes before validation (AIP-193): a reader learns nothing from errors.
        caller.require_admin()?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let user = convert::user_upsert(request.user)?;
        let saved = self.service.upsert_user(&caller, user, &options).await?;
        Ok(Response::new(convert::user(saved)))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Answer<pb::User> {
        let caller = caller(&request)?;
        let identity = convert::identity("identity", &request.get_ref().identity)?;
        let user = self.service.get_user(&caller, &identity).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Answer<pb::ListUsersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = page_request(&request)?;
        let search = request.search.trim();
        let filter = UserFilter {
            search: (!search.is_empty()).then(|| search.to_lowercase()),
        };
        let users = self.service.list_users(&caller, &filter, &page).await?;
        Ok(Response::new(pb::ListUsersResponse {
            next_page_token: next_page_token(&request, &users),
            users: users.items.into_iter().map(convert::user).collect(),
        }))
    }

    async fn create_emergency_location(
        &self,
        request: Request<pb::CreateEmergencyLocationRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
        caller.require_admin()?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let location = request.emergency_location.unwrap_or_default();
        let address = convert::civic_address(location.address);
        let created = self
            .service
            .create_location(&caller, &address, &location.description, &options)
            .await
            .map_err(|e| e.under("emergency_location"))?;
        Ok(Response::new(convert::location(created)))
    }

    async fn get_emergency_location(
        &self,
        request: Request<pb::GetEmergencyLocationRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
        let id = request.get_ref().id.trim();
        if id.is_empty() {
            return Err(Error::invalid_field(Reason::InvalidArgument, "id", "is required").into());
        }
        let location = self.service.get_location(&caller, id).await?;
        Ok(Response::new(convert::location(location)))
    }

    async fn list_emergency_locations(
        &self,
        request: Request<pb::ListEmergencyLocationsRequest>,
    ) -> Answer<pb::ListEmergencyLocationsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = page_request(&request)?;
        let country = convert::country_filter("country", &request.country)?;
        let city = Some(request.city.trim()).filter(|c| !c.is_empty());
        let locations = self
            .service
            .list_locations(&caller, city, country, &page)
            .await?;
        Ok(Response::new(pb::ListEmergencyLocationsResponse {
            next_page_token: next_page_token(&request, &locations),
            emergency_locations: locations.items.into_iter().map(convert::location).collect(),
        }))
    }

    async fn get_phone_number(
        &self,
        request: Request<pb::GetPhoneNumberRequest>,
    ) -> Answer<pb::PhoneNumber> {
        let caller = caller(&request)?;
        let number = convert::phone_number("phone_number", &request.get_ref().phone_number)?;
        let found = self.service.get_number(&caller, &number).await?;
        Ok(Response::new(convert::phone_number_out(
            found,
            SystemTime::now(),
        )))
    }

    async fn list_phone_numbers(
        &self,
        request: Request<pb::ListPhoneNumbersRequest>,
    ) -> Answer<pb::ListPhoneNumbersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = page_request(&request)?;
        let (assigned_to, filter) = convert::number_filter(&request)?;
        let numbers = self
            .service
            .list_numbers(&caller, assigned_to.as_ref(), filter, &page)
            .await?;
        let now = SystemTime::now();
        Ok(Response::new(pb::ListPhoneNumbersResponse {
            next_page_token: next_page_token(&request, &numbers),
            phone_numbers: numbers
                .items
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    async fn list_operators(
        &self,
        request: Request<pb::ListOperatorsRequest>,
    ) -> Answer<pb::ListOperatorsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = page_request(&request)?;
        let operators = self.service.list_operators(&caller, &page).await?;
        Ok(Response::new(pb::ListOperatorsResponse {
            next_page_token: next_page_token(&request, &operators),
            operators: operators.items.into_iter().map(convert::operator).collect(),
        }))
    }
}
