//! The bulk calls' edge: reading a stream of messages of items into the service's bulk entries.
//!
//! Each message is within the limits of any request (at most [`super::MAX_ITEMS`] items and
//! [`super::MAX_MESSAGE_BYTES`]); the stream carries up to [`MAX_BULK_ITEMS`]. An item is read
//! exactly as its single call reads its request; an item that does not read (a malformed
//! number, a request id that is not a UUID) gets its error as its result, with its fields under
//! `items[i]` counted across the whole stream, and the others still run. The call's own
//! `request_id` and `validate_only` come with the first message; later messages repeat them or
//! leave them unset.

use prost::Message;
use sha2::{Digest as _, Sha256};
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::limits;
use super::mutation::{MutationRequest, request_id, request_options};
use crate::auth::Caller;
use crate::error::{Error, Reason};
use crate::proto::v1 as pb;
use crate::service::{BulkItem, BulkItems, BulkMethod, MAX_BULK_ITEMS, RequestOptions, Service};

/// One message of a bulk call's stream.
pub(crate) trait BulkMessage: Message + prost::Name + Default {
    /// The single call's request.
    type Item: MutationRequest + Default;

    /// The call's request id, as given.
    fn request_id(&self) -> &str;
    /// Whether the call is a plan.
    fn validate_only(&self) -> bool;
    /// The message's items.
    fn take_items(&mut self) -> Vec<Self::Item>;
    /// An item, read as the single call reads its request.
    fn read(item: &Self::Item) -> Result<BulkItem, Error>;
}

macro_rules! bulk_message {
    ($($message:ty => $item:ty, $read:expr;)+) => {
        $(impl BulkMessage for $message {
            type Item = $item;

            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn validate_only(&self) -> bool {
                self.validate_only
            }
            fn take_items(&mut self) -> Vec<Self::Item> {
                std::mem::take(&mut self.items)
            }
            fn read(item: &Self::Item) -> Result<BulkItem, Error> {
                $read(item)
            }
        })+
    };
}

bulk_message! {
    pb::BulkUpsertUsersRequest => pb::UpsertUserRequest,
        |item: &pb::UpsertUserRequest| convert::user_upsert(item.user.clone())
            .map(BulkItem::UpsertUser).map_err(|e| e.under("user"));
    pb::BulkAssignPhoneNumbersRequest => pb::AssignPhoneNumberRequest,
        |item| convert::assign_request(item).map(BulkItem::Assign);
    pb::BulkRemovePhoneNumbersRequest => pb::RemovePhoneNumberRequest,
        |item| convert::remove_request(item).map(BulkItem::Remove);
    pb::BulkUpdateEmergencyLocationsRequest => pb::UpdateEmergencyLocationRequest,
        |item| convert::location_update(item).map(BulkItem::UpdateLocation);
}

/// Reads a bulk call's stream and starts its operation.
pub(crate) async fn accept<M: BulkMessage>(
    service: &Service,
    method: BulkMethod,
    request: Request<Streaming<M>>,
) -> Result<Response<pb::Operation>, Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Error::new(Reason::Unauthenticated, "the request was not authenticated"))?;
    let mut stream = request.into_inner();
    let mut items = BulkItems::new(read_item::<M>);
    let mut call: Option<(String, bool)> = None;
    // The call's content, to tell a retry of the call from a reuse of its id.
    let mut fingerprint = Sha256::new();
    while let Some(mut message) = stream.message().await? {
        limits::check(&message)?;
        match &call {
            None => call = Some((message.request_id().to_owned(), message.validate_only())),
            Some((id, validate_only)) => {
                if !message.request_id().is_empty() && message.request_id() != id {
                    return Err(repeated_differently("request_id").into());
                }
                if message.validate_only() && !validate_only {
                    return Err(repeated_differently("validate_only").into());
                }
            }
        }
        for item in message.take_items() {
            if items.len() == MAX_BULK_ITEMS {
                return Err(Error::invalid_field(
                    Reason::InvalidArgument,
                    "items",
                    format!("a bulk call takes at most {MAX_BULK_ITEMS} items"),
                )
                .into());
            }
            let encoded = item.encode_to_vec();
            fingerprint.update((encoded.len() as u64).to_be_bytes());
            fingerprint.update(&encoded);
            items.push(&encoded);
        }
    }
    let (id, validate_only) = call.unwrap_or_default();
    let options = RequestOptions {
        request_id: request_id(&id)?,
        fingerprint: fingerprint.finalize().to_vec(),
        validate_only,
    };
    let operation = service.start_bulk(&caller, method, items, &options).await?;
    Ok(Response::new(convert::bulk_operation(
        operation,
        Vec::new(),
        String::new(),
    )))
}

/// Reads item `index` of a call of `M` from its encoded message, as its single call reads its
/// request: the item's own request id, and the request with its options or why it is refused.
fn read_item<M: BulkMessage>(
    index: usize,
    encoded: &[u8],
) -> (Option<String>, Result<(BulkItem, RequestOptions), Error>) {
    let item = match M::Item::decode(encoded) {
        Ok(item) => item,
        // It was encoded in this process, from a message that decoded.
        Err(error) => return (None, Err(Error::internal(error))),
    };
    let request_id =
        Some(item.request_id().trim().to_ascii_lowercase()).filter(|id| !id.is_empty());
    let read = request_options(&item)
        .and_then(|options| Ok((M::read(&item)?, options)))
        .map_err(|e| e.under(&format!("items[{index}]")));
    (request_id, read)
}

fn repeated_differently(field: &str) -> Error {
    Error::invalid_field(
        Reason::InvalidArgument,
        field,
        "is the call's, set in the first message; later messages repeat it or leave it unset",
    )
}
