//! The use cases: one function per request, each loading what it needs, applying the domain's
//! rules and writing in one transaction.
//!
//! Mutations share one shape, so idempotency and `validate_only` work the same everywhere:
//! answer a retry at once ([`Service::replay`]); check what can be checked before writing,
//! including the provider's own rules, which may take a network call; then open the write
//! transaction ([`Service::begin`], which claims the request id), lock what changes, check the
//! rules again against what is now there, write the change with its audit event, and
//! [`Service::finish`], which stores the answer with the change and commits (or, for
//! `validate_only`, rolls everything back after every check ran).

mod acquisition;
mod assignment;
mod audit;
mod batch;
mod blocks;
mod bulk;
mod changes;
mod configuration;
mod direct_routing;
mod directory;
mod housekeeping;
mod inventory;
mod locations;
mod notifications;
mod operations;
mod operator_connect;
mod operators;
mod provisioning;
mod tags;
mod transfer;

pub use acquisition::{AcquireRequest, MAX_NUMBERS_PER_REQUEST, Numbers, Released};
pub use assignment::{AssignRequest, Assigned, ChangeRequest, Changed, RemoveRequest, Removed};
pub use blocks::BlockRequest;
pub use bulk::{BulkItem, BulkItems, BulkMethod, MAX_BULK_ITEMS, ReadItem, ResultsPage};
pub use changes::ChangeChunk;
pub use configuration::ConfigurationUpdate;
pub use direct_routing::DirectRoutingUpload;
pub use inventory::EXPORT_CHUNK;
pub use locations::{AddressValidator, LocationUpdate, OfflineAddressRules};
use notifications::EmailRate;
pub use notifications::{Mailer, SmtpSettings, SmtpTls};
pub use operator_connect::Upload;
pub use operators::TenantOperator;
pub use provisioning::WorkerSettings;
pub use tags::TagEdit;
pub use transfer::{TransferRequest, Transferred};

use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, principal_name};
use crate::clock::Clock;
use crate::config::{DEFAULT_CALLING_PLAN_QUOTA, DEFAULT_EMAILS_PER_TENANT_PER_HOUR};
use crate::domain::{AuditAction, AuditEvent, Operator, TenantConfiguration};
use crate::error::{Error, Reason, Result};
use crate::routing::Providers;
use crate::store::{Changes, Claim, Store, StoreError, Tx};

/// Largest page any listing returns.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Page size when the caller names none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The service: the store, the configured providers, and the clock.
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    operators: Arc<[Operator]>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    calling_plan_quota: usize,
    email_rate: EmailRate,
    addresses: Arc<dyn AddressValidator>,
    /// Set when the server shuts down: change streams end.
    streams_closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The tenants' configurations as last read, with when (see `configuration::DEFAULTS_KEPT`).
    configurations:
        Arc<quick_cache::sync::Cache<String, (std::time::Instant, TenantConfiguration)>>,
}

/// How a mutation may be retried or rehearsed (AIP-155 and AIP-163).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOptions {
    /// The client's id for this request, if it gave one.
    pub request_id: Option<String>,
    /// The request's content, to tell a retry from a reuse of the id for something else.
    #[serde(with = "hex_bytes")]
    pub fingerprint: Vec<u8>,
    /// Check everything, change nothing.
    pub validate_only: bool,
}

/// Bytes as hexadecimal text, for fingerprints kept in JSON.
mod hex_bytes {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hexadecimal"))
            })
            .collect()
    }
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

/// Who makes a change, and in which tenant: a tenant's administrator, or an operator acting on
/// a tenant that enabled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The tenant whose records change.
    pub tenant_id: String,
    /// The name the audit trail records: the principal, its issuer included
    /// ([`principal_name`]).
    pub name: String,
}

impl Actor {
    /// What makes a request the same request: its content and who sends it, so one caller's
    /// request id never answers another caller's request.
    fn fingerprint(&self, options: &RequestOptions) -> Vec<u8> {
        let mut fingerprint = options.fingerprint.clone();
        fingerprint.push(0);
        fingerprint.extend_from_slice(self.name.as_bytes());
        fingerprint
    }

    /// A tenant's caller. Whether its role may make the change was decided before the request
    /// reached the service, by the role matrix at the API edge.
    pub fn tenant(caller: &Caller) -> Self {
        Self {
            tenant_id: caller.tenant_id.clone(),
            name: principal_name(&caller.issuer, &caller.subject),
        }
    }
}

impl Service {
    /// A service over `store`, with the configured operators and providers, telling the time
    /// by `clock`.
    pub fn new(
        store: Arc<dyn Store>,
        operators: Vec<Operator>,
        providers: Providers,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            operators: operators.into(),
            providers,
            clock,
            calling_plan_quota: DEFAULT_CALLING_PLAN_QUOTA,
            email_rate: EmailRate::per_hour(DEFAULT_EMAILS_PER_TENANT_PER_HOUR),
            addresses: Arc::new(OfflineAddressRules),
            streams_closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            configurations: Arc::new(quick_cache::sync::Cache::new(
                configuration::KEPT_CONFIGURATIONS,
            )),
        }
    }

    /// The same service, validating addresses with `validator` instead of the offline rules.
    pub fn with_address_validator(mut self, validator: Arc<dyn AddressValidator>) -> Self {
        self.addresses = validator;
        self
    }

    /// The same service, sending each tenant's users at most `per_hour` emails an hour (0:
    /// no limit); emails over the rate wait their turn.
    pub fn with_emails_per_tenant_per_hour(mut self, per_hour: u32) -> Self {
        self.email_rate = EmailRate::per_hour(per_hour);
        self
    }

    /// The same service, letting a tenant hold at most `quota` Calling Plan numbers.
    pub fn with_calling_plan_quota(mut self, quota: usize) -> Self {
        self.calling_plan_quota = quota;
        self
    }

    /// The store, for start-up tasks (demo data, health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock the service tells the time by.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The current time, by the service's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Starts reading, outside any transaction.
    async fn read(&self) -> Result<Tx> {
        Ok(self.store.read().await?)
    }

    /// The first answer to a request whose id was used before, if it was: for a request
    /// refused before its write transaction (by a provider asked outside it), which may be a
    /// retry racing its original, refused because of the original's change.
    async fn replay_or<T: DeserializeOwned>(
        &self,
        actor: &Actor,
        method: &str,
        options: &RequestOptions,
        refusal: Error,
    ) -> Result<T> {
        let Some(request_id) = options.claimable_id() else {
            return Err(refusal);
        };
        let found = self
            .read()
            .await?
            .find_request(
                &actor.tenant_id,
                request_id,
                method,
                &actor.fingerprint(options),
            )
            .await?;
        match found {
            Some(claim) => answer_of(claim, request_id),
            None => Err(refusal),
        }
    }

    /// Starts a mutation: opens a write transaction and claims the request id, which may turn
    /// out to be a retry of an earlier request, answered with the first answer.
    async fn begin<T: DeserializeOwned>(
        &self,
        actor: &Actor,
        method: &str,
        options: &RequestOptions,
    ) -> Result<Claimed<T>> {
        let mut tx = self.store.write().await?;
        let Some(request_id) = options.claimable_id() else {
            return Ok(Claimed::Proceed(tx));
        };
        let claim = tx
            .claim_request(
                &actor.tenant_id,
                request_id,
                method,
                &actor.fingerprint(options),
                self.now(),
            )
            .await?;
        match claim {
            Claim::New => Ok(Claimed::Proceed(tx)),
            claim => answer_of(claim, request_id).map(Claimed::Replay),
        }
    }

    /// Ends a mutation: writes its changes with the answer under the request id, and commits;
    /// or, when the request only validates, rolls back and changes nothing.
    async fn finish<T: Serialize>(
        &self,
        mut tx: Tx,
        actor: &Actor,
        options: &RequestOptions,
        mut changes: Changes,
        answer: T,
    ) -> Result<T> {
        if options.validate_only {
            return Ok(answer);
        }
        if let Some(request_id) = &options.request_id {
            let stored = serde_json::to_string(&answer).map_err(Error::internal)?;
            changes.responses.push((request_id.clone(), stored));
        }
        tx.apply(&actor.tenant_id, &changes).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// An audit event of a change, at the service's current time.
    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        actor: &Actor,
        options: &RequestOptions,
        action: AuditAction,
        phone_number: Option<String>,
        user_id: Option<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            time: self.now(),
            actor: actor.name.clone(),
            action,
            phone_number,
            user_id,
            request_id: options.request_id.clone(),
            before,
            after,
        }
    }
}

impl RequestOptions {
    /// The request id to claim: none for requests that only validate.
    fn claimable_id(&self) -> Option<&str> {
        self.request_id.as_deref().filter(|_| !self.validate_only)
    }
}

/// The answer a claim found, or the refusal of a reused id.
fn answer_of<T: DeserializeOwned>(claim: Claim, request_id: &str) -> Result<T> {
    match claim {
        Claim::Replay(answer) => serde_json::from_value(answer).map_err(Error::internal),
        Claim::Reused { method } => Err(Error::new(
            Reason::RequestIdReused,
            format!(
                "request_id {request_id} was already used for a different {method} request; \
                 use a new request_id for a new request"
            ),
        )
        .with("requestId", request_id)
        .with("method", method)),
        Claim::New => Err(Error::internal(anyhow::anyhow!(
            "request id {request_id} claimed twice"
        ))),
    }
}

/// What starting a mutation found.
enum Claimed<T> {
    /// A new request: here is its transaction.
    Proceed(Tx),
    /// A retry: here is the first answer.
    Replay(T),
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
            StoreError::Conflict(_) | StoreError::Stale(_) => Error::new(
                Reason::ConcurrentChange,
                "a concurrent change to the same records won; retry the request",
            ),
            other => Error::internal(other),
        }
    }
}
