//! The use cases: one function per request, each loading what it needs, applying the domain's
//! rules and writing in one transaction.
//!
//! Mutations share one shape, so idempotency and `validate_only` work the same everywhere:
//! begin a write transaction, [`Service::claim`] the request id, do the work, then
//! [`Service::finish`], which stores the answer with the change and commits (or, for
//! `validate_only`, rolls everything back after every check ran).

mod directory;
mod inventory;
mod locations;
mod operators;

pub use operators::TenantOperator;

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::domain::Operator;
use crate::error::{Error, Reason, Result};
use crate::store::{Claim, Store, StoreError, Tx};

/// Largest page any listing returns.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Page size when the caller names none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The service: the store, and the configured providers.
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    operators: Arc<[Operator]>,
}

/// How a mutation may be retried or rehearsed (AIP-155 and AIP-163).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// The client's id for this request, if it gave one.
    pub request_id: Option<String>,
    /// The request's content, to tell a retry from a reuse of the id for something else.
    pub fingerprint: Vec<u8>,
    /// Check everything, change nothing.
    pub validate_only: bool,
}

/// Where a listing starts and how much it returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// The sort key of the last item of the previous page.
    pub after: Option<String>,
    /// How many items at most.
    pub size: usize,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The sort key to continue after, when there are more items.
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// Cuts `items` (fetched with one extra) to `size`, keeping the key of the last item kept
    /// when there were more.
    fn from_overfetch(mut items: Vec<T>, size: usize, key: impl Fn(&T) -> String) -> Self {
        let next_after = if items.len() > size {
            items.truncate(size);
            items.last().map(key)
        } else {
            None
        };
        Self { items, next_after }
    }
}

impl Service {
    /// A service over `store`, with the configured operators.
    pub fn new(store: Arc<dyn Store>, operators: Vec<Operator>) -> Self {
        Self {
            store,
            operators: operators.into(),
        }
    }

    /// The store, for start-up tasks (demo data, health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Starts a read transaction.
    async fn read(&self) -> Result<Tx> {
        Ok(self.store.read().await?)
    }

    /// Starts a mutation: checks the caller may change records, opens a write transaction and
    /// claims the request id, which may turn out to be a retry of an earlier request.
    async fn begin<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        method: &str,
        options: &RequestOptions,
    ) -> Result<Claimed<T>> {
        caller.require_admin()?;
        let mut tx = self.store.write().await?;
        let Some(request_id) = options
            .request_id
            .as_deref()
            .filter(|_| !options.validate_only)
        else {
            return Ok(Claimed::Proceed(tx));
        };
        let claim = tx
            .claim_request(
                &caller.tenant_id,
                request_id,
                method,
                &options.fingerprint,
                now(),
            )
            .await?;
        match claim {
            Claim::New => Ok(Claimed::Proceed(tx)),
            Claim::Replay(answer) => {
                let answer = serde_json::from_str(&answer).map_err(Error::internal)?;
                Ok(Claimed::Replay(answer))
            }
            Claim::Reused { method: used_by } => Err(Error::new(
                Reason::RequestIdReused,
                format!(
                    "request_id {request_id} was already used for a different {used_by} request; \
                     use a new request_id for a new request"
                ),
            )
            .with("requestId", request_id)
            .with("method", used_by)),
        }
    }

    /// Ends a mutation: stores the answer under the request id and commits, or rolls back when
    /// the request only validates.
    async fn finish<T: Serialize>(
        &self,
        mut tx: Tx,
        caller: &Caller,
        options: &RequestOptions,
        answer: T,
    ) -> Result<T> {
        if options.validate_only {
            drop(tx);
            return Ok(answer);
        }
        if let Some(request_id) = &options.request_id {
            let stored = serde_json::to_string(&answer).map_err(Error::internal)?;
            tx.save_response(&caller.tenant_id, request_id, &stored)
                .await?;
        }
        tx.commit().await?;
        Ok(answer)
    }
}

/// What starting a mutation found.
enum Claimed<T> {
    /// A new request: here is its transaction.
    Proceed(Tx),
    /// A retry: here is the first answer.
    Replay(T),
}

/// The current time; one place, so tests and logs agree on where time comes from.
fn now() -> SystemTime {
    SystemTime::now()
}

/// Clamps a requested page size: 0 means the default, and nothing exceeds the maximum.
pub fn page_size(requested: usize) -> usize {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Error::new(
                Reason::StoreUnavailable,
                "the database is unavailable; retry later",
            ),
            StoreError::Conflict(_) => Error::new(
                Reason::ConcurrentChange,
                "a concurrent change to the same records won; retry the request",
            ),
            other => Error::internal(other),
        }
    }
}
