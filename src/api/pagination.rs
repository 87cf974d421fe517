//! Page tokens (AIP-158): opaque to clients, they carry the sort key to continue after and the
//! query they belong to, so a token used with different filters is refused rather than
//! silently answering a different question.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

use crate::error::{Error, Reason};
use crate::service::{Page, PageRequest, page_size};

/// What a page token holds.
#[derive(Clone, PartialEq, prost::Message)]
struct PageToken {
    /// The sort key of the last item returned.
    #[prost(string, tag = "1")]
    after: String,
    /// The request that produced it, without its paging fields.
    #[prost(bytes = "vec", tag = "2")]
    query: Vec<u8>,
    /// The listing it belongs to, such as `ListUsers`: two listings' queries may encode alike.
    #[prost(string, tag = "3")]
    listing: String,
}

/// A list request: its paging fields, and itself without them (the query).
pub(crate) trait ListRequest: Message + Clone {
    /// The name of the listing, such as `ListUsers`.
    const LISTING: &'static str;

    /// The requested page size.
    fn page_size(&self) -> i32;
    /// The page token, empty for the first page.
    fn page_token(&self) -> &str;
    /// Clears the paging fields, leaving the query.
    fn clear_paging(&mut self);

    /// The request's query, encoded.
    fn query(&self) -> Vec<u8> {
        let mut query = self.clone();
        query.clear_paging();
        query.encode_to_vec()
    }
}

/// Reads the paging fields of a list request.
pub(crate) fn page_request<R: ListRequest>(request: &R) -> Result<PageRequest, Error> {
    let size = usize::try_from(request.page_size()).map_err(|_| {
        Error::invalid_field(Reason::InvalidArgument, "page_size", "must not be negative")
    })?;
    let after = match request.page_token() {
        "" => None,
        token => {
            let invalid =
                |why: &str| Error::invalid_field(Reason::InvalidPageToken, "page_token", why);
            let bytes = URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| invalid("is not a page token of this service"))?;
            let token = PageToken::decode(bytes.as_slice())
                .map_err(|_| invalid("is not a page token of this service"))?;
            if token.listing != R::LISTING || token.query != request.query() {
                return Err(invalid(
                    "belongs to a request with other filters; repeat the first request's filters",
                ));
            }
            Some(token.after)
        }
    };
    Ok(PageRequest {
        after,
        size: page_size(size),
    })
}

/// The token of the page after `page`, empty when it was the last.
pub(crate) fn next_page_token<R: ListRequest, T>(request: &R, page: &Page<T>) -> String {
    match &page.next_after {
        None => String::new(),
        Some(after) => URL_SAFE_NO_PAD.encode(
            PageToken {
                after: after.clone(),
                query: request.query(),
                listing: R::LISTING.to_owned(),
            }
            .encode_to_vec(),
        ),
    }
}

/// Implements [`ListRequest`] for request messages with `page_size` and `page_token` fields.
macro_rules! list_request {
    ($($request:ty => $listing:literal),+ $(,)?) => {
        $(impl ListRequest for $request {
            const LISTING: &'static str = $listing;

            fn page_size(&self) -> i32 {
                self.page_size
            }
            fn page_token(&self) -> &str {
                &self.page_token
            }
            fn clear_paging(&mut self) {
                self.page_size = 0;
                self.page_token.clear();
            }
        })+
    };
}

use crate::proto::v1 as pb;

list_request!(
    pb::ListUsersRequest => "ListUsers",
    pb::ListEmergencyLocationsRequest => "ListEmergencyLocations",
    pb::ListPhoneNumbersRequest => "ListPhoneNumbers",
    pb::ListOperatorsRequest => "ListOperators",
    pb::ListAuditEventsRequest => "ListAuditEvents",
);

#[cfg(test)]
mod tests {
    use super::*;

    fn page(next_after: Option<&str>) -> Page<()> {
        Page {
            items: vec![],
            next_after: next_after.map(str::to_owned),
        }
    }

    #[test]
    fn a_token_continues_the_same_query() {
        let first = pb::ListPhoneNumbersRequest {
            country: "US".into(),
            page_size: 10,
            ..Default::default()
        };
        let token = next_page_token(&first, &page(Some("+14255550110")));
        let second = pb::ListPhoneNumbersRequest {
            page_token: token.clone(),
            page_size: 50,
            ..first
        };
        let request = page_request(&second).unwrap();
        assert_eq!(request.after.as_deref(), Some("+14255550110"));
        assert_eq!(request.size, 50);

        let other_filter = pb::ListPhoneNumbersRequest {
            country: "GB".into(),
            page_token: token,
            ..Default::default()
        };
        assert_eq!(
            page_request(&other_filter).unwrap_err().reason(),
            Reason::InvalidPageToken
        );
    }

    #[test]
    fn a_token_of_another_listing_is_refused() {
        let users_token = next_page_token(&pb::ListUsersRequest::default(), &page(Some("a")));
        let numbers = pb::ListPhoneNumbersRequest {
            page_token: users_token,
            ..Default::default()
        };
        assert_eq!(
            page_request(&numbers).unwrap_err().reason(),
            Reason::InvalidPageToken
        );
    }

    #[test]
    fn the_last_page_has_no_token_and_garbage_is_refused() {
        assert_eq!(
            next_page_token(&pb::ListUsersRequest::default(), &page(None)),
            ""
        );
        let garbage = pb::ListUsersRequest {
            page_token: "not a token!".into(),
            ..Default::default()
        };
        assert_eq!(
            page_request(&garbage).unwrap_err().reason(),
            Reason::InvalidPageToken
        );
        let negative = pb::ListUsersRequest {
            page_size: -1,
            ..Default::default()
        };
        assert_eq!(
            page_request(&negative).unwrap_err().reason(),
            Reason::InvalidArgument
        );
    }

    #[test]
    fn page_sizes_default_and_cap() {
        let size = |n| {
            page_request(&pb::ListUsersRequest {
                page_size: n,
                ..Default::default()
            })
            .unwrap()
            .size
        };
        assert_eq!(size(0), 100);
        assert_eq!(size(5000), 1000);
        assert_eq!(size(7), 7);
    }
}
