//! The `numbers.v1.NumberManagement` handlers: each converts the request, calls one use case
//! of the service, and converts the answer. No rules live here.

use tonic::{Request, Response, Status, Streaming};

use super::auth::caller;
use super::bulk;
use super::changes;
use super::convert;
use super::export;
use super::mutation::request_options;
use super::pagination::PageTokens;
use crate::domain::{AuditFilter, UserFilter};
use crate::error::{Error, Reason};
use crate::proto::v1 as pb;
use crate::proto::v1::number_management_server::NumberManagement;
use crate::service::{
    AcquireRequest, BulkMethod, ChangeRequest, MAX_NUMBERS_PER_REQUEST, ResultsPage, Service,
    TagEdit,
};
use crate::store::StoreError;

/// The tenant-facing API.
#[derive(Debug, Clone)]
pub struct NumberManagementApi {
    service: Service,
    tokens: PageTokens,
}

impl NumberManagementApi {
    /// Serves `service`, signing page tokens with the key its store keeps for every replica.
    pub async fn new(service: Service) -> Result<Self, StoreError> {
        let tokens = PageTokens::shared(service.store().as_ref()).await?;
        Ok(Self { service, tokens })
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl NumberManagement for NumberManagementApi {
    async fn upsert_user(&self, request: Request<pb::UpsertUserRequest>) -> Answer<pb::User> {
        let caller = caller(&request)?;
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
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let search = request.search.trim();
        let filter = UserFilter {
            search: (!search.is_empty()).then(|| search.to_lowercase()),
        };
        let users = self.service.list_users(&caller, &filter, &page).await?;
        Ok(Response::new(pb::ListUsersResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &users),
            users: users.items.into_iter().map(convert::user).collect(),
        }))
    }

    async fn create_emergency_location(
        &self,
        request: Request<pb::CreateEmergencyLocationRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
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

    async fn create_emergency_place(
        &self,
        request: Request<pb::CreateEmergencyPlaceRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let location_id = required_id("location_id", &request.location_id)?;
        let place = self
            .service
            .create_place(&caller, location_id, &request.description, &options)
            .await?;
        Ok(Response::new(convert::location(place)))
    }

    async fn update_emergency_location_details(
        &self,
        request: Request<pb::UpdateEmergencyLocationDetailsRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let id = required_id("id", &request.id)?;
        let etag = convert::etag("etag", &request.etag)?;
        let updated = self
            .service
            .update_location_details(&caller, id, &request.description, etag, &options)
            .await?;
        Ok(Response::new(convert::location(updated)))
    }

    async fn delete_emergency_location(
        &self,
        request: Request<pb::DeleteEmergencyLocationRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let id = required_id("id", &request.id)?;
        let etag = convert::etag("etag", &request.etag)?;
        let deleted = self
            .service
            .delete_location(&caller, id, etag, &options)
            .await?;
        Ok(Response::new(convert::location(deleted)))
    }

    async fn validate_emergency_address(
        &self,
        request: Request<pb::ValidateEmergencyAddressRequest>,
    ) -> Answer<pb::ValidateEmergencyAddressResponse> {
        caller(&request)?;
        let address = convert::civic_address(request.into_inner().address);
        let check = self.service.check_address(&address).await?;
        Ok(Response::new(convert::address_check(check)))
    }

    async fn get_emergency_location(
        &self,
        request: Request<pb::GetEmergencyLocationRequest>,
    ) -> Answer<pb::EmergencyLocation> {
        let caller = caller(&request)?;
        let id = required_id("id", &request.get_ref().id)?;
        let found = self.service.get_location(&caller, id).await?;
        Ok(Response::new(convert::location_with_places(found)))
    }

    async fn list_emergency_locations(
        &self,
        request: Request<pb::ListEmergencyLocationsRequest>,
    ) -> Answer<pb::ListEmergencyLocationsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let country = convert::country_filter("country", &request.country)?;
        let city = Some(request.city.trim()).filter(|c| !c.is_empty());
        let locations = self
            .service
            .list_locations(&caller, city, country, &page)
            .await?;
        Ok(Response::new(pb::ListEmergencyLocationsResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &locations),
            emergency_locations: locations
                .items
                .into_iter()
                .map(convert::location_with_places)
                .collect(),
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
            self.service.now(),
        )))
    }

    async fn list_phone_numbers(
        &self,
        request: Request<pb::ListPhoneNumbersRequest>,
    ) -> Answer<pb::ListPhoneNumbersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let (assigned_to, filter) = convert::number_filter(&request, self.service.now())?;
        let numbers = self
            .service
            .list_numbers(&caller, assigned_to.as_ref(), filter, &page)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::ListPhoneNumbersResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &numbers),
            phone_numbers: numbers
                .items
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    type WatchChangesStream = changes::ChangeStream;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Answer<Self::WatchChangesStream> {
        let caller = caller(&request)?;
        let after = changes::resume_position(&request.get_ref().resume_token)?;
        let (start, chunks) = self.service.watch_changes(&caller, after).await?;
        Ok(Response::new(changes::messages(
            caller.tenant_id,
            start,
            chunks,
        )))
    }

    type ExportPhoneNumbersStream = export::ExportStream;

    async fn export_phone_numbers(
        &self,
        request: Request<pb::ExportPhoneNumbersRequest>,
    ) -> Answer<Self::ExportPhoneNumbersStream> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let format = request.format();
        let (assigned_to, filter) = convert::export_filter(request, self.service.now())?;
        let chunks = self
            .service
            .export_numbers(&caller, assigned_to.as_ref(), filter)
            .await?;
        Ok(Response::new(export::messages(
            chunks,
            format,
            self.service.now(),
        )))
    }

    async fn get_emergency_readiness(
        &self,
        request: Request<pb::GetEmergencyReadinessRequest>,
    ) -> Answer<pb::EmergencyReadiness> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let country = convert::country_filter("country", &request.country)?;
        let (countries, numbers) = self
            .service
            .emergency_readiness(&caller, country, &page)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::EmergencyReadiness {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &numbers),
            countries: countries
                .into_iter()
                .map(convert::country_readiness)
                .collect(),
            numbers: numbers
                .items
                .into_iter()
                .map(|n| convert::unready_number(n, now))
                .collect(),
        }))
    }

    async fn list_operators(
        &self,
        request: Request<pb::ListOperatorsRequest>,
    ) -> Answer<pb::ListOperatorsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let operators = self.service.list_operators(&caller, &page).await?;
        Ok(Response::new(pb::ListOperatorsResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &operators),
            operators: operators.items.into_iter().map(convert::operator).collect(),
        }))
    }

    async fn assign_phone_number(
        &self,
        request: Request<pb::AssignPhoneNumberRequest>,
    ) -> Answer<pb::AssignPhoneNumberResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let assign = convert::assign_request(&request)?;
        let assigned = self.service.assign(&caller, &assign, &options).await?;
        Ok(Response::new(pb::AssignPhoneNumberResponse {
            phone_number: Some(convert::phone_number_out(
                assigned.number,
                self.service.now(),
            )),
            user: Some(convert::user(assigned.user)),
            operation: assigned.operation.map(convert::operation),
        }))
    }

    async fn change_phone_number(
        &self,
        request: Request<pb::ChangePhoneNumberRequest>,
    ) -> Answer<pb::ChangePhoneNumberResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let change = ChangeRequest {
            identity: convert::identity("identity", &request.identity)?,
            number: convert::phone_number("phone_number", &request.phone_number)?,
            number_type: convert::number_type("phone_number_type", request.phone_number_type)?,
            emergency_location_id: convert::optional_id(&request.emergency_location_id),
            notify_user: request.notify_user,
        };
        let changed = self.service.change(&caller, &change, &options).await?;
        let now = self.service.now();
        Ok(Response::new(pb::ChangePhoneNumberResponse {
            previous_phone_number: Some(convert::phone_number_out(changed.previous, now)),
            phone_number: Some(convert::phone_number_out(changed.number, now)),
            user: Some(convert::user(changed.user)),
            operation: changed.operation.map(convert::operation),
        }))
    }

    async fn remove_phone_number(
        &self,
        request: Request<pb::RemovePhoneNumberRequest>,
    ) -> Answer<pb::RemovePhoneNumberResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let remove = convert::remove_request(&request)?;
        let removed = self.service.remove(&caller, &remove, &options).await?;
        let now = self.service.now();
        Ok(Response::new(pb::RemovePhoneNumberResponse {
            phone_numbers: removed
                .numbers
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
            user: Some(convert::user(removed.user)),
            operation: removed.operation.map(convert::operation),
        }))
    }

    async fn update_emergency_location(
        &self,
        request: Request<pb::UpdateEmergencyLocationRequest>,
    ) -> Answer<pb::PhoneNumber> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let update = convert::location_update(&request)?;
        let updated = self
            .service
            .update_number_location(&caller, &update, &options)
            .await?;
        Ok(Response::new(convert::phone_number_out(
            updated,
            self.service.now(),
        )))
    }

    async fn add_phone_number_tags(
        &self,
        request: Request<pb::AddPhoneNumberTagsRequest>,
    ) -> Answer<pb::AddPhoneNumberTagsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let (numbers, tags) = convert::tag_edit(&request.phone_numbers, &request.tags)?;
        let tagged = self
            .service
            .edit_tags(&caller, TagEdit::Add, &numbers, &tags, &options)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::AddPhoneNumberTagsResponse {
            phone_numbers: tagged
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    async fn remove_phone_number_tags(
        &self,
        request: Request<pb::RemovePhoneNumberTagsRequest>,
    ) -> Answer<pb::RemovePhoneNumberTagsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let (numbers, tags) = convert::tag_edit(&request.phone_numbers, &request.tags)?;
        let untagged = self
            .service
            .edit_tags(&caller, TagEdit::Remove, &numbers, &tags, &options)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::RemovePhoneNumberTagsResponse {
            phone_numbers: untagged
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    async fn list_tags(
        &self,
        request: Request<pb::ListTagsRequest>,
    ) -> Answer<pb::ListTagsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let tags = self.service.list_tags(&caller, &page).await?;
        Ok(Response::new(pb::ListTagsResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &tags),
            tags: tags.items.into_iter().map(convert::tag).collect(),
        }))
    }

    async fn get_tenant_configuration(
        &self,
        request: Request<pb::GetTenantConfigurationRequest>,
    ) -> Answer<pb::TenantConfiguration> {
        let caller = caller(&request)?;
        let configuration = self.service.tenant_configuration(&caller).await?;
        Ok(Response::new(convert::tenant_configuration(configuration)))
    }

    async fn update_tenant_configuration(
        &self,
        request: Request<pb::UpdateTenantConfigurationRequest>,
    ) -> Answer<pb::TenantConfiguration> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let update = convert::configuration_update(&request)?;
        let updated = self
            .service
            .update_tenant_configuration(&caller, &update, &options)
            .await?;
        Ok(Response::new(convert::tenant_configuration(updated)))
    }

    async fn transfer_phone_number(
        &self,
        request: Request<pb::TransferPhoneNumberRequest>,
    ) -> Answer<pb::TransferPhoneNumberResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let transfer = convert::transfer_request(&request)?;
        let moved = self.service.transfer(&caller, &transfer, &options).await?;
        Ok(Response::new(pb::TransferPhoneNumberResponse {
            phone_number: Some(convert::phone_number_out(moved.number, self.service.now())),
            previous_user: Some(convert::user(moved.previous_user)),
            user: Some(convert::user(moved.user)),
            operation: moved.operation.map(convert::operation),
        }))
    }

    async fn set_assignment_block(
        &self,
        request: Request<pb::SetAssignmentBlockRequest>,
    ) -> Answer<pb::PhoneNumber> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let block = convert::block_request(&request)?;
        let blocked = self.service.set_block(&caller, &block, &options).await?;
        Ok(Response::new(convert::phone_number_out(
            blocked,
            self.service.now(),
        )))
    }

    async fn remove_assignment_block(
        &self,
        request: Request<pb::RemoveAssignmentBlockRequest>,
    ) -> Answer<pb::PhoneNumber> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let number = convert::phone_number("phone_number", &request.phone_number)?;
        let etag = convert::etag("etag", &request.etag)?;
        let lifted = self
            .service
            .remove_block(&caller, &number, etag, &options)
            .await?;
        Ok(Response::new(convert::phone_number_out(
            lifted,
            self.service.now(),
        )))
    }

    async fn acquire_phone_numbers(
        &self,
        request: Request<pb::AcquirePhoneNumbersRequest>,
    ) -> Answer<pb::AcquirePhoneNumbersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let country = convert::country_filter("country", &request.country)?.ok_or_else(|| {
            Error::invalid_field(Reason::InvalidArgument, "country", "is required, like US")
        })?;
        let quantity = usize::try_from(request.quantity)
            .ok()
            .filter(|q| (1..=MAX_NUMBERS_PER_REQUEST).contains(q))
            .ok_or_else(|| {
                Error::invalid_field(
                    Reason::InvalidArgument,
                    "quantity",
                    format!("must be 1 to {MAX_NUMBERS_PER_REQUEST}"),
                )
            })?;
        let acquire = AcquireRequest {
            country,
            area_code: convert::digits("area_code", &request.area_code, 6)?,
            city: convert::optional_id(&request.city),
            prefix: convert::number_prefix("number_prefix", &request.number_prefix)?,
            capability: convert::acquired_capability("capability", request.capability)?,
            quantity,
            emergency_location_id: convert::optional_id(&request.emergency_location_id),
        };
        let acquired = self
            .service
            .acquire_numbers(&caller, &acquire, &options)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::AcquirePhoneNumbersResponse {
            phone_numbers: acquired
                .0
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    async fn release_phone_numbers(
        &self,
        request: Request<pb::ReleasePhoneNumbersRequest>,
    ) -> Answer<pb::ReleasePhoneNumbersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let numbers = convert::phone_numbers(
            "phone_numbers",
            &request.phone_numbers,
            MAX_NUMBERS_PER_REQUEST,
        )?;
        let released = self
            .service
            .release_numbers(&caller, &numbers, &options)
            .await?;
        Ok(Response::new(pb::ReleasePhoneNumbersResponse {
            phone_numbers: released.0,
        }))
    }

    async fn upload_direct_routing_numbers(
        &self,
        request: Request<pb::UploadDirectRoutingNumbersRequest>,
    ) -> Answer<pb::UploadDirectRoutingNumbersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let uploads = convert::direct_routing_uploads(request.numbers, MAX_NUMBERS_PER_REQUEST)?;
        let uploaded = self
            .service
            .upload_direct_routing(&caller, &uploads, &options)
            .await?;
        let now = self.service.now();
        Ok(Response::new(pb::UploadDirectRoutingNumbersResponse {
            phone_numbers: uploaded
                .0
                .into_iter()
                .map(|n| convert::phone_number_out(n, now))
                .collect(),
        }))
    }

    async fn release_direct_routing_numbers(
        &self,
        request: Request<pb::ReleaseDirectRoutingNumbersRequest>,
    ) -> Answer<pb::ReleaseDirectRoutingNumbersResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let numbers = convert::phone_numbers(
            "phone_numbers",
            &request.phone_numbers,
            MAX_NUMBERS_PER_REQUEST,
        )?;
        let released = self
            .service
            .release_direct_routing(&caller, &numbers, &options)
            .await?;
        Ok(Response::new(pb::ReleaseDirectRoutingNumbersResponse {
            phone_numbers: released.0,
        }))
    }

    async fn enable_operator(
        &self,
        request: Request<pb::EnableOperatorRequest>,
    ) -> Answer<pb::Operator> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let countries = request
            .countries
            .iter()
            .enumerate()
            .map(|(i, c)| {
                convert::country_filter(&format!("countries[{i}]"), c)?.ok_or_else(|| {
                    Error::invalid_field(
                        Reason::InvalidArgument,
                        format!("countries[{i}]"),
                        "is empty",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let enabled = self
            .service
            .enable_operator(&caller, request.operator_id.trim(), &countries, &options)
            .await?;
        Ok(Response::new(convert::operator(enabled)))
    }

    async fn disable_operator(
        &self,
        request: Request<pb::DisableOperatorRequest>,
    ) -> Answer<pb::Operator> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let disabled = self
            .service
            .disable_operator(&caller, request.operator_id.trim(), &options)
            .await?;
        Ok(Response::new(convert::operator(disabled)))
    }

    async fn get_notification_settings(
        &self,
        request: Request<pb::GetNotificationSettingsRequest>,
    ) -> Answer<pb::NotificationSettings> {
        let caller = caller(&request)?;
        let settings = self.service.notification_settings(&caller).await?;
        Ok(Response::new(convert::notification_settings(settings)))
    }

    async fn update_notification_settings(
        &self,
        request: Request<pb::UpdateNotificationSettingsRequest>,
    ) -> Answer<pb::NotificationSettings> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let settings = self
            .service
            .update_notification_settings(&caller, &request.verified_email_domains, &options)
            .await?;
        Ok(Response::new(convert::notification_settings(settings)))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Answer<pb::ListAuditEventsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let number = match request.phone_number.trim() {
            "" => None,
            text => Some(convert::phone_number("phone_number", text)?),
        };
        let user = match request.user.trim() {
            "" => None,
            text => Some(convert::identity("user", text)?),
        };
        let filter = AuditFilter {
            start: convert::time("start_time", request.start_time)?,
            end: convert::time("end_time", request.end_time)?,
            ..AuditFilter::default()
        };
        let events = self
            .service
            .list_audit_events(&caller, number.as_ref(), user.as_ref(), filter, &page)
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &events),
            audit_events: events
                .items
                .into_iter()
                .map(|e| convert::audit_event(e, &caller.tenant_id))
                .collect(),
        }))
    }

    async fn get_operation(
        &self,
        request: Request<pb::GetOperationRequest>,
    ) -> Answer<pb::Operation> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = required_id("id", &request.id)?;
        let results = ResultsPage {
            page: self.tokens.page_request(&caller.tenant_id, &request)?,
            failed_only: request.failed_only,
        };
        let (operation, page) = self.service.get_operation(&caller, id, &results).await?;
        let next_page_token = self
            .tokens
            .next_page_token(&caller.tenant_id, &request, &page);
        Ok(Response::new(convert::bulk_operation(
            operation,
            page.items,
            next_page_token,
        )))
    }

    async fn list_operations(
        &self,
        request: Request<pb::ListOperationsRequest>,
    ) -> Answer<pb::ListOperationsResponse> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page = self.tokens.page_request(&caller.tenant_id, &request)?;
        let filter = convert::operation_filter(&request)?;
        let operations = self
            .service
            .list_operations(&caller, &filter, &page)
            .await?;
        Ok(Response::new(pb::ListOperationsResponse {
            next_page_token: self
                .tokens
                .next_page_token(&caller.tenant_id, &request, &operations),
            operations: operations
                .items
                .into_iter()
                .map(convert::operation)
                .collect(),
        }))
    }

    async fn retry_operation(
        &self,
        request: Request<pb::RetryOperationRequest>,
    ) -> Answer<pb::Operation> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let id = required_id("id", &request.id)?;
        let retried = self.service.retry_operation(&caller, id, &options).await?;
        Ok(Response::new(convert::operation(retried)))
    }

    async fn cancel_operation(
        &self,
        request: Request<pb::CancelOperationRequest>,
    ) -> Answer<pb::Operation> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let options = request_options(&request)?;
        let id = required_id("id", &request.id)?;
        let cancelled = self.service.cancel_operation(&caller, id, &options).await?;
        Ok(Response::new(convert::operation(cancelled)))
    }

    async fn bulk_upsert_users(
        &self,
        request: Request<Streaming<pb::BulkUpsertUsersRequest>>,
    ) -> Answer<pb::Operation> {
        bulk::accept(&self.service, BulkMethod::UpsertUsers, request).await
    }

    async fn bulk_assign_phone_numbers(
        &self,
        request: Request<Streaming<pb::BulkAssignPhoneNumbersRequest>>,
    ) -> Answer<pb::Operation> {
        bulk::accept(&self.service, BulkMethod::AssignPhoneNumbers, request).await
    }

    async fn bulk_remove_phone_numbers(
        &self,
        request: Request<Streaming<pb::BulkRemovePhoneNumbersRequest>>,
    ) -> Answer<pb::Operation> {
        bulk::accept(&self.service, BulkMethod::RemovePhoneNumbers, request).await
    }

    async fn bulk_update_emergency_locations(
        &self,
        request: Request<Streaming<pb::BulkUpdateEmergencyLocationsRequest>>,
    ) -> Answer<pb::Operation> {
        bulk::accept(&self.service, BulkMethod::UpdateEmergencyLocations, request).await
    }
}

/// An id the request must give.
fn required_id<'a>(field: &'static str, value: &'a str) -> Result<&'a str, Error> {
    match value.trim() {
        "" => Err(Error::invalid_field(
            Reason::InvalidArgument,
            field,
            "is required",
        )),
        id => Ok(id),
    }
}
