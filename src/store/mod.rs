//! Storage: the repositories the service reads and writes through, and the two stores that
//! implement them.
//!
//! [`SqliteStore`] keeps everything in one local file and needs nothing installed; it is the
//! default. [`PostgresStore`] is for production, where several replicas share one database.
//! Each runs on its own database's typed sqlx driver, in its own SQL and its own database's
//! types (see `migrations/`); storage formats never leave the store. The service sees only the
//! traits below, and the same conformance suite (`tests/api/store.rs`) runs against both.
//!
//! A mutation is one write transaction ([`Store::write`]): it claims its request id, reads and
//! locks what it changes (each repository's `lock_*` reads), and ends with one
//! [`Transaction::apply`] of everything it changes, then [`Transaction::commit`]. Reads outside
//! a mutation ([`Store::read`]) run each statement on its own, with no transaction around them;
//! every read that must be consistent is one statement.
//!
//! The store holds no business rules. It loads and writes records, and the database itself
//! enforces the invariants: one row per (tenant, number), a provider number in one tenant only,
//! one holder per number, at most one primary number per target, and every query is scoped by
//! tenant.

mod pool;
mod postgres;
mod sqlite;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::domain::{
    AuditEvent, AuditFilter, BulkProgress, Country, CountryReadiness, Drift, DriftKind,
    EmergencyLocation, Identity, ItemOutcome, ItemResult, Job, NewEmergencyLocation, Notification,
    NotificationSettings, NumberFilter, NumberType, Operation, OperationFilter, OperatorConsent,
    PhoneNumber, Reconciliation, Tag, TagCount, TenantConfiguration, TenantId, User, UserFilter,
    UserUpsert, ValidationStatus,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or check constraint refused the write; names the constraint.
    #[error("constraint {constraint} refused the write")]
    Constraint {
        /// The constraint's name, as in the PostgreSQL migrations.
        constraint: String,
    },
    /// A concurrent transaction got in the way (serialisation failure, deadlock, busy
    /// database); the whole operation may be retried.
    #[error("concurrent transaction conflict: {0}")]
    Conflict(#[source] sqlx::Error),
    /// The database cannot be reached or has no free connection.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A conditional write found the record changed since it was read.
    #[error("{0} changed concurrently")]
    Stale(String),
    /// A stored value does not read back as a domain value (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error(transparent)]
    Database(sqlx::Error),
}

impl StoreError {
    /// Whether this is the named constraint (as in the PostgreSQL migrations) refusing a write.
    pub fn is_constraint(&self, name: &str) -> bool {
        matches!(self, StoreError::Constraint { constraint } if constraint == name)
    }

    /// A stored value that does not read back: `what` names the record.
    pub(crate) fn corrupt(what: impl fmt::Display, error: impl fmt::Display) -> Self {
        StoreError::Corrupt(format!("{what}: {error}"))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &error {
            sqlx::Error::Database(db) => {
                // 23P01: an exclusion constraint (the deferrable one-primary rule).
                if matches!(
                    db.kind(),
                    ErrorKind::UniqueViolation | ErrorKind::CheckViolation
                ) || db.code().as_deref() == Some("23P01")
                {
                    return StoreError::Constraint {
                        constraint: constraint_name(db.constraint(), db.message()),
                    };
                }
                // PostgreSQL: serialization_failure, deadlock_detected. SQLite: BUSY, LOCKED.
                // PostgreSQL going away: connection exceptions (class 08), admin or crash
                // shutdown, cannot connect now (starting up), too many connections.
                match db.code().as_deref() {
                    Some("40001" | "40P01" | "5" | "6" | "517") => StoreError::Conflict(error),
                    Some(code)
                        if code.starts_with("08")
                            || matches!(code, "57P01" | "57P02" | "57P03" | "53300") =>
                    {
                        StoreError::Unavailable(error)
                    }
                    _ => StoreError::Database(error),
                }
            }
            // A connection that breaks during its handshake shows as a protocol error (the
            // reply to the TLS request was cut short): the database is out of reach, not wrong.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            _ => StoreError::Database(error),
        }
    }
}

/// The unique constraints the service reacts to, by their PostgreSQL name and by the columns
/// SQLite names instead ("UNIQUE constraint failed: users.tenant_id, users.upn_key").
const NAMED_CONSTRAINTS: &[(&str, &str)] = &[
    ("users_upn_unique", "users.tenant_id, users.upn_key"),
    (
        "phone_numbers_one_primary_per_target",
        "phone_numbers.tenant_id, phone_numbers.assigned_to",
    ),
];

/// The canonical name of the constraint a database error names.
fn constraint_name(postgres_name: Option<&str>, message: &str) -> String {
    if let Some(name) = postgres_name {
        return name.to_owned();
    }
    NAMED_CONSTRAINTS
        .iter()
        .find(|(_, sqlite_columns)| message.ends_with(sqlite_columns))
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_else(|| message.to_owned())
}

/// The result type of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The work queues that background workers wait on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Provisioning jobs for the provisioning worker.
    Jobs,
    /// Emails for the mail worker.
    Emails,
    /// Bulk operations for the bulk worker.
    Bulk,
}

/// One wake-up per queue, for this process's workers.
#[derive(Debug, Default)]
struct Wakeups {
    jobs: tokio::sync::Notify,
    emails: tokio::sync::Notify,
    bulk: tokio::sync::Notify,
}

impl Wakeups {
    fn of(&self, queue: Queue) -> &tokio::sync::Notify {
        match queue {
            Queue::Jobs => &self.jobs,
            Queue::Emails => &self.emails,
            Queue::Bulk => &self.bulk,
        }
    }

    fn all(&self) {
        self.jobs.notify_one();
        self.emails.notify_one();
        self.bulk.notify_one();
    }
}

/// A database holding the service's records.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Which database this is: `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Reads, outside any transaction: each statement sees what was committed when it began.
    async fn read(&self) -> StoreResult<Tx>;

    /// Starts a write transaction. On SQLite writers queue for the one writer; on PostgreSQL
    /// they run concurrently and conflict on row locks and constraints.
    async fn write(&self) -> StoreResult<Tx>;

    /// Starts a read-only transaction whose statements all see the database as it was at the
    /// first of them: for reads of many statements that must agree, such as an export.
    async fn snapshot(&self) -> StoreResult<Tx>;

    /// Checks the database answers (for health checks).
    async fn ping(&self) -> StoreResult<()>;

    /// The secret named `name` that every replica shares: `generated` if this is the first
    /// call for it on this database, whatever was stored first otherwise.
    async fn shared_secret(&self, name: &str, generated: &[u8]) -> StoreResult<Vec<u8>>;

    /// Completes once work may be waiting on `queue`: written since the last call by this
    /// process or, on PostgreSQL, by any replica. Workers wait on this between their polls.
    async fn work_written(&self, queue: Queue);

    /// Closes every connection.
    async fn close(&self);

    /// How each of the store's connection pools is used right now (for metrics).
    fn pools(&self) -> Vec<PoolUse>;
}

/// How one connection pool is used at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUse {
    /// The pool: `main` on PostgreSQL, `writer` or `readers` on SQLite.
    pub name: &'static str,
    /// The most connections it opens.
    pub max: usize,
    /// Connections open.
    pub open: usize,
    /// Open connections not lent out.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

impl PoolUse {
    /// Connections lent out.
    pub fn in_use(&self) -> usize {
        self.open.saturating_sub(self.idle)
    }
}

/// An open transaction (or, from [`Store::read`], a connection for single-statement reads).
pub type Tx = Box<dyn Transaction>;

/// A transaction on one of the stores: every repository, and the end of the transaction.
///
/// Dropping a transaction without [`Transaction::commit`] rolls it back.
#[async_trait]
pub trait Transaction:
    NumberRepository
    + UserRepository
    + LocationRepository
    + ConsentRepository
    + RequestRepository
    + OperationRepository
    + AuditRepository
    + NotificationRepository
    + ConfigurationRepository
    + TagRepository
    + BulkRepository
    + ReconciliationRepository
    + Send
    + fmt::Debug
{
    /// Writes everything a mutation changes, as few statements as the database needs. Its
    /// audit events take their positions in the change stream here (on PostgreSQL under the
    /// tenant's change gate, held shared until the commit), so a transaction applies its
    /// changes after taking every row lock it needs, just before it commits.
    async fn apply(&mut self, tenant: &TenantId, changes: &Changes) -> StoreResult<()>;

    /// Writes the changes of many mutations (a batch of bulk items), each as
    /// [`Transaction::apply`] writes it, in as few statements as suit the database.
    async fn apply_all(&mut self, tenant: &TenantId, changes: Vec<Changes>) -> StoreResult<()> {
        for one in &changes {
            self.apply(tenant, one).await?;
        }
        Ok(())
    }

    /// Makes the transaction's writes durable.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// What a mutation writes at the end of its transaction, once every rule has passed: records
/// as they will be, so the answer is built from them without reading anything back.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Numbers as they will be; each is written only if the stored record is still at the
    /// version before (else [`StoreError::Stale`]). Written in this order.
    pub numbers: Vec<PhoneNumber>,
    /// Users whose numbers or enterprise voice flag change, as they will be (same version
    /// rule). Every change to which numbers a user holds writes the user: a new version of it
    /// tells a transaction waiting to lock the user that what it read is stale.
    pub users: Vec<User>,
    /// New operations with their provisioning jobs (one per mutation; a batch of bulk items
    /// writes one per item).
    pub operations: Vec<NewOperation>,
    /// The audit events of the change.
    pub audit: Vec<AuditEvent>,
    /// Emails to send about the change.
    pub notifications: Vec<Notification>,
    /// The answers to store under claimed request ids, as JSON text (one per mutation, or per
    /// item of a batch): a batch holds a thousand of them, and text is a fraction of a parsed
    /// document's size.
    pub responses: Vec<(String, String)>,
}

impl Changes {
    /// Many mutations' changes merged `size` mutations at a time: the groups a store writes
    /// one statement (or batch of statements) each.
    fn grouped(changes: Vec<Changes>, size: usize) -> impl Iterator<Item = Changes> {
        let mut changes = changes.into_iter().peekable();
        std::iter::from_fn(move || {
            changes.peek()?;
            let mut group = Changes::default();
            for one in changes.by_ref().take(size.max(1)) {
                group.extend(one);
            }
            Some(group)
        })
    }

    /// Gives back the room its lists keep for more records: a list's first record makes room
    /// for four, and a batch holds a thousand mutations' changes until it writes them.
    pub fn shrink_to_fit(&mut self) {
        self.numbers.shrink_to_fit();
        self.users.shrink_to_fit();
        self.operations.shrink_to_fit();
        self.audit.shrink_to_fit();
        self.notifications.shrink_to_fit();
        self.responses.shrink_to_fit();
    }

    /// Adds another mutation's changes to these, to be written in the same statement.
    pub fn extend(&mut self, other: Changes) {
        self.numbers.extend(other.numbers);
        self.users.extend(other.users);
        self.operations.extend(other.operations);
        self.audit.extend(other.audit);
        self.notifications.extend(other.notifications);
        self.responses.extend(other.responses);
    }
}

/// An operation as a mutation records it: once, with its jobs, in its state so far.
#[derive(Clone, Debug)]
pub struct NewOperation {
    /// The operation; its steps are its jobs'.
    pub operation: Operation,
    /// One provider call per number.
    pub jobs: Vec<Job>,
    /// The request id of the mutation, if any.
    pub request_id: Option<String>,
    /// Who asked.
    pub actor: String,
}

/// A user and the numbers it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The user, its list of numbers as read with them.
    pub user: User,
    /// The numbers it holds, in [`User::phone_numbers`] order: primary first, then by number.
    pub numbers: Vec<PhoneNumber>,
}

impl Holder {
    /// The user holding `numbers`, ordered as [`User::phone_numbers`] lists them.
    fn new(mut user: User, mut numbers: Vec<PhoneNumber>) -> Self {
        numbers.sort_by_key(|n| (!n.is_primary(), n.number.canonical()));
        user.phone_numbers = numbers.iter().map(|n| n.number.canonical()).collect();
        Self { user, numbers }
    }
}

/// The holder of each of `identities`, in order (none where no user has it), from the users
/// they name and the numbers those users hold: how `lock_users` answers. A SIP address names
/// its oldest holder, as [`UserRepository::find_user`] finds it.
fn holders_of(
    identities: &[Identity],
    mut users: Vec<User>,
    held: Vec<PhoneNumber>,
) -> Vec<Option<Holder>> {
    let mut numbers_of: HashMap<String, Vec<PhoneNumber>> = HashMap::new();
    for number in held {
        if let Some(holder) = number.assignment.as_ref().map(|a| a.target_id.clone()) {
            numbers_of.entry(holder).or_default().push(number);
        }
    }
    users.sort_by(|a, b| (a.create_time, &a.id).cmp(&(b.create_time, &b.id)));
    let mut by_key: HashMap<(u8, String), usize> = HashMap::new();
    for (at, user) in users.iter().enumerate() {
        by_key.entry((0, user.id.clone())).or_insert(at);
        by_key
            .entry((1, key(&user.user_principal_name)))
            .or_insert(at);
        by_key.entry((2, key(&user.sip_address))).or_insert(at);
    }
    identities
        .iter()
        .map(|identity| {
            let wanted = match identity {
                Identity::Id(id) => (0, id.clone()),
                Identity::UserPrincipalName(upn) => (1, key(upn)),
                Identity::SipAddress(sip) => (2, key(sip)),
            };
            let user = &users[*by_key.get(&wanted)?];
            let numbers = numbers_of.get(&user.id).cloned().unwrap_or_default();
            Some(Holder::new(user.clone(), numbers))
        })
        .collect()
}

/// The phone number inventory.
#[async_trait]
pub trait NumberRepository: Send {
    /// Finds a number by its canonical form.
    async fn get_number(
        &mut self,
        tenant: &TenantId,
        number: &str,
    ) -> StoreResult<Option<PhoneNumber>>;

    /// Finds numbers by their canonical forms, ordered by number.
    async fn get_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>>;

    /// Finds numbers and locks them until the transaction ends, ordered by number, so that
    /// transactions locking several numbers never wait on each other in a cycle.
    async fn lock_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>>;

    /// Locks, ordered by number, every number on the base number `base` (the number itself
    /// and its extensions) and `also`, a number elsewhere the caller changes too.
    async fn lock_numbers_on_base(
        &mut self,
        tenant: &TenantId,
        base: &str,
        also: Option<&str>,
    ) -> StoreResult<Vec<PhoneNumber>>;

    /// Adds a number unless a tenant, this one or another, has it already; answers whether it
    /// was added (and is now locked by this transaction). On PostgreSQL a concurrent insert of
    /// the same number waits for the other transaction first.
    async fn insert_number(&mut self, tenant: &TenantId, number: &PhoneNumber)
    -> StoreResult<bool>;

    /// Locks, ordered by number, every number on the base numbers `bases`: what
    /// [`NumberRepository::lock_numbers_on_base`] locks for each, for a batch of bulk items.
    async fn lock_numbers_on_bases(
        &mut self,
        tenant: &TenantId,
        bases: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        let mut locked = Vec::new();
        for base in bases {
            locked.extend(self.lock_numbers_on_base(tenant, base, None).await?);
        }
        locked.sort_by_key(|n| n.number.canonical());
        Ok(locked)
    }

    /// The emergency readiness of the tenant's numbers per country (only `country`'s when
    /// given), ordered by country.
    async fn emergency_readiness(
        &mut self,
        tenant: &TenantId,
        country: Option<Country>,
    ) -> StoreResult<Vec<CountryReadiness>>;

    /// Adds Direct Routing numbers as [`NumberRepository::insert_number`] adds one, for a
    /// batch of bulk items; answers whether each was added.
    async fn insert_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[PhoneNumber],
    ) -> StoreResult<Vec<bool>> {
        let mut added = Vec::with_capacity(numbers.len());
        for number in numbers {
            added.push(self.insert_number(tenant, number).await?);
        }
        Ok(added)
    }

    /// Removes numbers from the tenant's inventory.
    async fn delete_numbers(&mut self, tenant: &TenantId, numbers: &[String]) -> StoreResult<()>;

    /// Which of `numbers` some tenant holds. This is the one query that looks across tenants:
    /// a number is in one tenant's inventory at a time.
    async fn numbers_taken(&mut self, numbers: &[String]) -> StoreResult<HashSet<String>>;

    /// How many numbers of `number_type` the tenant holds, counted once the tenant's
    /// concurrent inserts of provider numbers (see `insert_number`) have ended: the transaction
    /// takes its turn first, and keeps it.
    async fn count_numbers_taking_turn(
        &mut self,
        tenant: &TenantId,
        number_type: NumberType,
    ) -> StoreResult<i64>;

    /// How many of the operator's numbers in the tenant are assigned.
    async fn assigned_numbers_of_operator(
        &mut self,
        tenant: &TenantId,
        operator_id: &str,
    ) -> StoreResult<i64>;

    /// Lists numbers matching `filter`, ordered by number, after the number `after`.
    async fn list_numbers(
        &mut self,
        tenant: &TenantId,
        filter: &NumberFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PhoneNumber>>;
}

/// The directory of users.
#[async_trait]
pub trait UserRepository: Send {
    /// Finds a user by id, user principal name or SIP address, with the numbers it holds.
    async fn find_user(
        &mut self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> StoreResult<Option<User>>;

    /// Finds a user like [`UserRepository::find_user`], with the numbers it holds, and locks
    /// the user until the transaction ends, so changes to one user's numbers happen one after
    /// another. The numbers are not locked: whoever changes one locks it, in number order.
    async fn lock_user(
        &mut self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> StoreResult<Option<Holder>>;

    /// Locks users as [`UserRepository::lock_user`] locks one, for a batch of bulk items:
    /// answers each identity's user with its numbers, in order (none where no user has it).
    /// Names the same user only once.
    async fn lock_users(
        &mut self,
        tenant: &TenantId,
        identities: &[Identity],
    ) -> StoreResult<Vec<Option<Holder>>> {
        let mut holders = Vec::with_capacity(identities.len());
        for identity in identities {
            holders.push(self.lock_user(tenant, identity).await?);
        }
        Ok(holders)
    }

    /// Creates or updates a user: by id when the feed gives one, otherwise by user principal
    /// name (a new user gets `new_id`). Fails with the `users_upn_unique` constraint when the
    /// user principal name belongs to another user. The numbers the user holds follow a change
    /// of its kind.
    async fn upsert_user(
        &mut self,
        tenant: &TenantId,
        user: &UserUpsert,
        new_id: &str,
        now: SystemTime,
    ) -> StoreResult<User>;

    /// Lists users ordered by lower-cased user principal name, after the one whose key is
    /// `after`.
    async fn list_users(
        &mut self,
        tenant: &TenantId,
        filter: &UserFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>>;
}

/// Emergency locations.
#[async_trait]
pub trait LocationRepository: Send {
    /// Stores a new location with id `id`.
    async fn insert_location(
        &mut self,
        tenant: &TenantId,
        id: &str,
        location: &NewEmergencyLocation,
        status: ValidationStatus,
        now: SystemTime,
    ) -> StoreResult<EmergencyLocation>;

    /// Finds a location by id.
    async fn get_location(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<EmergencyLocation>>;

    /// The places inside the locations `parents`, oldest first.
    async fn places(
        &mut self,
        tenant: &TenantId,
        parents: &[String],
    ) -> StoreResult<Vec<EmergencyLocation>>;

    /// Writes a location's new description and version, over the version before it:
    /// [`StoreError::Stale`] when it changed since.
    async fn update_location(
        &mut self,
        tenant: &TenantId,
        location: &EmergencyLocation,
    ) -> StoreResult<()>;

    /// Locks the locations `ids` (a location and its places) and counts what uses them:
    /// numbers registered with one, and provisioning jobs not ended that name one.
    async fn lock_location_uses(&mut self, tenant: &TenantId, ids: &[String]) -> StoreResult<i64>;

    /// Deletes the locations `ids`.
    async fn delete_locations(&mut self, tenant: &TenantId, ids: &[String]) -> StoreResult<()>;

    /// Lists locations (not their places), optionally in one city (compared
    /// case-insensitively) and country, oldest first, after `after`.
    async fn list_locations(
        &mut self,
        tenant: &TenantId,
        city: Option<&str>,
        country: Option<Country>,
        after: Option<&LocationCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EmergencyLocation>>;
}

/// Operator consents: which operators a tenant has enabled, for which countries.
#[async_trait]
pub trait ConsentRepository: Send {
    /// The tenant's consents, ordered by operator id.
    async fn consents(&mut self, tenant: &TenantId) -> StoreResult<Vec<OperatorConsent>>;

    /// Records (or replaces) the tenant's consent to an operator.
    async fn put_consent(
        &mut self,
        tenant: &TenantId,
        consent: &OperatorConsent,
        now: SystemTime,
    ) -> StoreResult<()>;

    /// Withdraws the tenant's consent to an operator.
    async fn delete_consent(&mut self, tenant: &TenantId, operator_id: &str) -> StoreResult<()>;
}

/// A request id to claim, with what makes the request the same request.
#[derive(Clone, Debug)]
pub struct RequestClaim {
    /// The request id.
    pub request_id: String,
    /// The method the request calls.
    pub method: String,
    /// The request's content and who sent it.
    pub fingerprint: Vec<u8>,
}

/// What claiming a request id found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The id is new: go ahead, and store the answer with the change.
    New,
    /// The same request ran before; here is its answer.
    Replay(serde_json::Value),
    /// The id was used for a different request (or another method).
    Reused {
        /// The method that used it.
        method: String,
    },
}

/// Request ids (AIP-155): the record that makes a retried mutation return its first answer.
///
/// A mutation claims its request id first thing in its transaction. On PostgreSQL a concurrent
/// duplicate blocks on the primary key until the first commits, then finds the stored answer;
/// on SQLite writers are serialised anyway. The answer is stored in the same transaction as the
/// change, so either both exist or neither does.
#[async_trait]
pub trait RequestRepository: Send {
    /// Claims `request_id` for a request of `method` whose content is `fingerprint`.
    async fn claim_request(
        &mut self,
        tenant: &TenantId,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
        now: SystemTime,
    ) -> StoreResult<Claim>;

    /// Claims request ids as [`RequestRepository::claim_request`] claims one, for a batch of
    /// bulk items; answers each one's claim, in order.
    async fn claim_requests(
        &mut self,
        tenant: &TenantId,
        requests: &[RequestClaim],
        now: SystemTime,
    ) -> StoreResult<Vec<Claim>> {
        let mut claims = Vec::with_capacity(requests.len());
        for request in requests {
            claims.push(
                self.claim_request(
                    tenant,
                    &request.request_id,
                    &request.method,
                    &request.fingerprint,
                    now,
                )
                .await?,
            );
        }
        Ok(claims)
    }

    /// Gives back request ids this transaction claimed, for items of a batch that were
    /// refused: as a refused single call leaves no claim, a retry of the item runs again.
    async fn release_requests(
        &mut self,
        tenant: &TenantId,
        request_ids: &[String],
    ) -> StoreResult<()>;

    /// Looks a request id up without claiming it: what a retry would find.
    async fn find_request(
        &mut self,
        tenant: &TenantId,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
    ) -> StoreResult<Option<Claim>>;

    /// Deletes up to `limit` request ids created before `before`, oldest first, answering how
    /// many: after that a retry runs again, and the id may be used for another request.
    async fn purge_requests(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64>;
}

/// How a provider call of a job ended, as the worker records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The provider confirmed.
    Succeeded,
    /// The provider refused or failed for good.
    Failed {
        /// Why, in the provider's words.
        reason: String,
    },
    /// Ask again later: the provider is still working (with its ticket), or failed in a way a
    /// retry may fix.
    Later {
        /// When to ask again.
        at: SystemTime,
        /// The provider's ticket of the pending change.
        ticket: Option<String>,
        /// Consecutive retryable failures so far.
        failures: i64,
        /// The last transient error, if the call failed.
        reason: Option<String>,
    },
}

/// Operations, their provisioning jobs, and the leases workers claim jobs with.
///
/// A worker claims due jobs by setting a lease (its id and an expiry) on them in one statement;
/// on PostgreSQL the rows are chosen with `FOR UPDATE SKIP LOCKED`, so replicas claiming at once
/// take different jobs, and on SQLite the one writer does the same by construction. A job's
/// outcome is written only while the lease is still the worker's: a worker that lost its lease
/// (it was too slow, and another replica took the job over) changes nothing.
#[async_trait]
pub trait OperationRepository: Send {
    /// An operation of the tenant, with its steps ordered by number.
    async fn get_operation(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Operation>>;

    /// Locks an operation and answers it with its jobs' current states: two transactions
    /// finishing different jobs of one operation then settle it one after the other.
    async fn lock_operation(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Operation>>;

    /// Writes an operation's state and error.
    async fn update_operation(
        &mut self,
        tenant: &TenantId,
        operation: &Operation,
    ) -> StoreResult<()>;

    /// Claims up to `limit` due jobs for `owner` until `now + lease`: jobs never tried, and jobs
    /// whose next attempt is due, that no live lease holds. Their operations turn RUNNING.
    async fn claim_jobs(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Job>>;

    /// Records how a provider call of a claimed job ended, and releases the lease. Answers
    /// false, changing nothing, when `owner` no longer holds the job's lease.
    async fn finish_job(
        &mut self,
        job: &Job,
        owner: &str,
        outcome: &JobOutcome,
        now: SystemTime,
    ) -> StoreResult<bool>;

    /// The ids of the tenant's operations matching `filter`, newest first, before the id
    /// `before`.
    async fn operation_ids(
        &mut self,
        tenant: &TenantId,
        filter: &OperationFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    /// The tenant's operations matching `filter`, with their steps, newest first, before the
    /// id `before`.
    async fn list_operations(
        &mut self,
        tenant: &TenantId,
        filter: &OperationFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Operation>> {
        let ids = self.operation_ids(tenant, filter, before, limit).await?;
        let mut operations = Vec::with_capacity(ids.len());
        for id in ids {
            operations.extend(self.get_operation(tenant, &id).await?);
        }
        Ok(operations)
    }

    /// Puts an operation's failed jobs back to be tried now, their consecutive failures
    /// forgotten (their attempts still count), and wakes the workers; answers the jobs.
    async fn retry_jobs(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        now: SystemTime,
    ) -> StoreResult<Vec<Job>>;

    /// Ends an operation's unfinished jobs, failed for `reason`, unless one is in a provider's
    /// hands (it holds a ticket) or a worker's (a live lease): then none, changing nothing.
    async fn cancel_jobs(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        reason: &str,
        now: SystemTime,
    ) -> StoreResult<Option<Vec<Job>>>;

    /// How many provisioning jobs are unfinished (for tests and health).
    async fn unfinished_jobs(&mut self) -> StoreResult<i64>;

    /// Work in hand, counted over the unfinished jobs' index (for metrics): operations with
    /// provisioning jobs still to do, and those jobs.
    async fn work_in_hand(&mut self) -> StoreResult<(i64, i64)>;

    /// Deletes up to `limit` finished operations (succeeded or failed) last updated before
    /// `before`, oldest first, with their jobs; answers how many operations.
    async fn purge_operations(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64>;
}

/// A bulk operation as its call records it, after the operation itself
/// ([`Changes::operation`]) in the same transaction.
#[derive(Clone, Debug)]
pub struct NewBulk {
    /// The operation's id.
    pub operation_id: String,
    /// The single call each item is, such as `AssignPhoneNumber`.
    pub method: String,
    /// Whether the call is a plan.
    pub validate_only: bool,
    /// Who asked, as the service runs the items (opaque to the store).
    pub caller: serde_json::Value,
    /// How many items it has; they are written after it, by `insert_bulk_items`.
    pub total: usize,
}

/// One item of a bulk call.
#[derive(Clone, Debug)]
pub struct NewBulkItem {
    /// The item's own request id, if the caller gave one.
    pub request_id: Option<String>,
    /// The item as the service runs it, as JSON text (opaque to the store): text, since
    /// 100,000 items parsed into JSON values would take far more memory.
    pub request: String,
    /// Its outcome, for an item refused as it was read (malformed): it never runs. Boxed, as
    /// few items have one and a call holds 100,000 items.
    pub outcome: Option<Box<ItemOutcome>>,
}

/// A bulk operation a worker claimed.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedBulk {
    /// Its tenant.
    pub tenant_id: String,
    /// Its operation's id.
    pub operation_id: String,
    /// The single call each item is.
    pub method: String,
    /// Who asked.
    pub caller: serde_json::Value,
    /// How far it has come.
    pub progress: BulkProgress,
}

/// An item of a bulk operation still to run.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingItem {
    /// Its index in the call.
    pub index: u32,
    /// Its own request id, if the caller gave one.
    pub request_id: Option<String>,
    /// The item as the service runs it, as JSON text.
    pub request: String,
}

/// Bulk operations: their items, their results, and the leases workers run them under.
///
/// A worker claims one bulk operation at a time with a lease, runs its items a chunk at a time,
/// and records each chunk's results while its lease still holds, extending it; a replica that
/// stops leaves the rest to another once the lease expires. Results are written only for items
/// that have none, so an item is counted once.
#[async_trait]
pub trait BulkRepository: Send {
    /// Records a bulk operation, with nothing done yet; its operation row is written first, by
    /// `apply`.
    async fn insert_bulk(&mut self, tenant: &TenantId, bulk: &NewBulk) -> StoreResult<()>;

    /// Records items of a bulk operation, numbered from `first`, in the transaction that
    /// recorded the operation; those with an outcome (refused as they were read) count as done.
    async fn insert_bulk_items(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        first: usize,
        items: &[NewBulkItem],
    ) -> StoreResult<()>;

    /// How far a bulk operation has come; none when `id` is not a bulk operation.
    async fn bulk_progress(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<BulkProgress>>;

    /// Up to `limit` results of a bulk operation's items that ran, in index order after the
    /// index `after`; only the failed ones when `failed_only`.
    async fn bulk_results(
        &mut self,
        tenant: &TenantId,
        id: &str,
        after: Option<u32>,
        limit: usize,
        failed_only: bool,
    ) -> StoreResult<Vec<ItemResult>>;

    /// Claims for `owner`, until `now + lease`, the oldest bulk operation with items still to
    /// run that no live lease holds, of any tenant; its operation turns RUNNING.
    async fn claim_bulk(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedBulk>>;

    /// Up to `limit` items of a bulk operation that have not run, in index order, after the
    /// item `after` when given.
    async fn pending_items(
        &mut self,
        tenant: &TenantId,
        id: &str,
        after: Option<u32>,
        limit: usize,
    ) -> StoreResult<Vec<PendingItem>>;

    /// Records the results of items that ran, counts them, extends `owner`'s lease to
    /// `now + lease` (or releases it once every item ran, settling the operation), and answers
    /// the progress; none, changing nothing, when `owner` no longer holds the lease.
    async fn record_results(
        &mut self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        results: &[ItemResult],
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<Option<BulkProgress>>;
}

/// Reconciliation runs and the drift they found.
///
/// A run is asked for (by an administrator or the schedule), claimed by one worker under a
/// lease, fed its drift a page at a time while the lease holds, and ended. At most one run of a
/// tenant and provider is open at a time.
#[async_trait]
pub trait ReconciliationRepository: Send {
    /// Records a run asked for; false, changing nothing, when a run of the same tenant and
    /// provider is still open (pending or running).
    async fn insert_reconciliation(
        &mut self,
        tenant: &TenantId,
        run: &Reconciliation,
    ) -> StoreResult<bool>;

    /// A run of the tenant, with its counts.
    async fn get_reconciliation(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reconciliation>>;

    /// The tenant's runs, newest first, of `provider` when given, before the run `before`.
    async fn list_reconciliations(
        &mut self,
        tenant: &TenantId,
        provider: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Reconciliation>>;

    /// Up to `limit` drift items of a run, of `kind` when given, ordered by number then kind,
    /// after the item `after`.
    async fn drift_items(
        &mut self,
        tenant: &TenantId,
        id: &str,
        kind: Option<DriftKind>,
        after: Option<(&str, DriftKind)>,
        limit: usize,
    ) -> StoreResult<Vec<Drift>>;

    /// Claims for `owner`, until `now + lease`, the oldest open run that no live lease holds,
    /// of any tenant; it turns RUNNING. Answers its tenant and the run.
    async fn claim_reconciliation(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<Option<(String, Reconciliation)>>;

    /// Records drift found and numbers compared, and extends `owner`'s lease to `now + lease`;
    /// false, changing nothing, when `owner` no longer holds the run.
    #[allow(clippy::too_many_arguments)]
    async fn record_drift(
        &mut self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        drift: &[Drift],
        checked: i64,
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// Ends a run `owner` holds, SUCCEEDED or (with `error`) FAILED, and releases its lease;
    /// false, changing nothing, when `owner` no longer holds it.
    async fn finish_reconciliation(
        &mut self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        error: Option<&str>,
        now: SystemTime,
    ) -> StoreResult<bool>;
}

/// The audit trail.
#[async_trait]
pub trait AuditRepository: Send {
    /// Lists events matching `filter`, newest first, before the event id `before`.
    async fn list_audit(
        &mut self,
        tenant: &TenantId,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// The position, in the tenant's commit order, of its latest committed event: a change
    /// stream that starts now starts after it.
    async fn change_cursor(&mut self, tenant: &TenantId) -> StoreResult<i64>;

    /// Up to `limit` of the tenant's events after the position `after`, in commit order, each
    /// with its position. Every event before the last one answered has been answered.
    async fn changes_after(
        &mut self,
        tenant: &TenantId,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, AuditEvent)>>;
}

/// A notification claimed for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// The email.
    pub notification: Notification,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Emails waiting to be delivered, and their delivery.
#[async_trait]
pub trait NotificationRepository: Send {
    /// Every notification ever queued for a tenant, delivered or not, oldest first; only the
    /// ones still waiting when `pending_only`.
    async fn notifications(
        &mut self,
        tenant: &TenantId,
        pending_only: bool,
    ) -> StoreResult<Vec<Notification>>;

    /// Claims up to `limit` due notifications for `owner` until `now + lease`.
    async fn claim_notifications(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;

    /// Records how the delivery of a claimed notification went, and releases the lease;
    /// answers false, changing nothing, when `owner` no longer holds it.
    async fn finish_delivery(
        &mut self,
        delivery: &Delivery,
        owner: &str,
        outcome: &Delivered<'_>,
    ) -> StoreResult<bool>;

    /// Deletes up to `limit` notifications done with (sent, failed or skipped) and queued
    /// before `before`, oldest first; answers how many.
    async fn purge_notifications(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64>;

    /// The tenant's notification settings: the defaults (no verified domain) if never set.
    async fn notification_settings(
        &mut self,
        tenant: &TenantId,
    ) -> StoreResult<NotificationSettings>;

    /// Replaces the tenant's notification settings.
    async fn put_notification_settings(
        &mut self,
        tenant: &TenantId,
        settings: &NotificationSettings,
    ) -> StoreResult<()>;
}

/// A tenant's configuration: its defaults for what requests leave unsaid.
#[async_trait]
pub trait ConfigurationRepository: Send {
    /// The tenant's configuration: the defaults (version 0) if it was never updated.
    async fn tenant_configuration(&mut self, tenant: &TenantId)
    -> StoreResult<TenantConfiguration>;

    /// Writes the tenant's configuration, whose version is one more than the one it replaces:
    /// a configuration updated since that one was read is left as it is, [`StoreError::Stale`].
    async fn put_tenant_configuration(
        &mut self,
        tenant: &TenantId,
        configuration: &TenantConfiguration,
    ) -> StoreResult<()>;
}

/// A number's tags as a tag call leaves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagChange {
    /// The number, canonical.
    pub phone_number: String,
    /// Its tags, all of them, as [`PhoneNumber::tags`] keeps them.
    pub tags: Vec<String>,
    /// The tags it gained.
    pub added: Vec<Tag>,
    /// The keys of the tags it lost.
    pub removed: Vec<String>,
}

/// Tags on numbers.
#[async_trait]
pub trait TagRepository: Send {
    /// The spellings the tenant's tags of `keys` were first written with, by key; a key the
    /// tenant never used is absent.
    async fn tag_names(
        &mut self,
        tenant: &TenantId,
        keys: &[String],
    ) -> StoreResult<HashMap<String, String>>;

    /// Writes numbers' tags as tag calls change them; a tag new to the tenant is created with
    /// the spelling it is added with.
    async fn write_tags(
        &mut self,
        tenant: &TenantId,
        changes: &[TagChange],
        now: SystemTime,
    ) -> StoreResult<()>;

    /// The tenant's tags that numbers have, ordered by key, after the key `after`, with how
    /// many numbers have each.
    async fn list_tags(
        &mut self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<TagCount>>;
}

/// How the delivery of a notification went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered<'a> {
    /// Sent.
    Sent,
    /// Not sent: tried again at the time given; the attempt counts.
    Retry(&'a str, SystemTime),
    /// Not sent, for good.
    Failed(&'a str),
    /// Not sent, and never to be: the tenant's settings do not allow it (the reason).
    Skipped(&'a str),
    /// Not tried: the tenant is over its sending rate. Tried at the time given; no attempt
    /// counts.
    Postponed(SystemTime),
}

impl Delivered<'_> {
    /// The state it leaves the notification in, the error recorded, whether an attempt counts,
    /// and when to try next, if ever.
    fn record(&self) -> (&'static str, Option<&str>, bool, Option<SystemTime>) {
        match *self {
            Delivered::Sent => ("SENT", None, true, None),
            Delivered::Retry(error, at) => ("PENDING", Some(error), true, Some(at)),
            Delivered::Failed(error) => ("FAILED", Some(error), true, None),
            Delivered::Skipped(reason) => ("SKIPPED", Some(reason), false, None),
            Delivered::Postponed(at) => ("PENDING", None, false, Some(at)),
        }
    }
}

/// Where a listing of locations continues: after this creation time, then this id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationCursor {
    create_time: SystemTime,
    id: String,
}

impl LocationCursor {
    /// The cursor that continues after `location`.
    pub fn after(location: &EmergencyLocation) -> Self {
        Self {
            create_time: location.create_time,
            id: location.id.clone(),
        }
    }

    /// Reads a cursor written by [`LocationCursor::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once(':')?;
        let micros: u64 = micros.parse().ok()?;
        Some(Self {
            create_time: SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros))?,
            id: id.to_owned(),
        })
    }

    /// The cursor as text, for page tokens.
    pub fn encode(&self) -> String {
        let micros = self
            .create_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        format!("{micros}:{}", self.id)
    }
}

/// Opens the store that `url` names (`postgres://...` or `sqlite://...`), creating a SQLite file
/// if needed, and applies the migrations. `pool_size` connections serve requests: on SQLite,
/// the readers beside its one writer.
pub async fn open(url: &str, pool_size: usize) -> anyhow::Result<Box<dyn Store>> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(Box::new(PostgresStore::open(url, pool_size).await?)),
        "sqlite" => Ok(Box::new(SqliteStore::open(url, pool_size).await?)),
        _ => anyhow::bail!(
            "unsupported database URL {:?}: use postgres://user@host/database or sqlite://path",
            redact(url)
        ),
    }
}

/// The URL without its password, fit for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The form a name is compared in: lower-cased, in Rust, so both databases agree.
fn key(text: &str) -> String {
    text.to_lowercase()
}

/// The first string after every string starting with `prefix`: the prefix with its last
/// character incremented. Numbers are ASCII, so this never overflows a character.
fn prefix_upper_bound(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// Escapes `%`, `_` and `\` so `text` matches literally in a `LIKE ... ESCAPE '\'` pattern.
fn like_prefix(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/numbers"),
            "postgres://app:***@db:5432/numbers"
        );
        assert_eq!(redact("sqlite://numbers.db"), "sqlite://numbers.db");
    }

    #[test]
    fn prefix_bounds_enclose_exactly_the_prefixed_numbers() {
        let upper = prefix_upper_bound("+1425");
        assert_eq!(upper, "+1426");
        assert!("+14255550101" < upper.as_str() && "+14255550101" >= "+1425");
        assert!("+1426" >= upper.as_str());
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_prefix("50%_a\\"), "50\\%\\_a\\\\%");
    }

    #[test]
    fn location_cursors_round_trip() {
        let cursor = LocationCursor {
            create_time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            id: "redmond:hq".into(),
        };
        assert_eq!(LocationCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(LocationCursor::decode("x:y"), None);
    }
}
