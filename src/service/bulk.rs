//! Bulk calls: up to [`MAX_BULK_ITEMS`] items of one single call (UpsertUser,
//! AssignPhoneNumber, RemovePhoneNumber, UpdateEmergencyLocation) in one operation.
//!
//! The call records the operation with its items and answers at once; a bulk worker on any
//! replica claims the operation with a lease and runs its items a chunk at a time, each exactly
//! as the single call with the caller's identity: the same rules, the same transaction, the same
//! request-id claim (so a racing single call and a bulk item never both win a number), the same
//! audit events. Items naming the same user (or, for locations, the same number) run one after
//! another in the order given; others run side by side, [`WorkerSettings::bulk_concurrency`] at
//! a time. Each chunk's results are recorded while the lease holds.
//!
//! An item without a request id gets one derived from the operation and its index, so an item
//! that ran before a replica stopped (and before its result was recorded) answers its first
//! answer when another replica runs it again. A plan (`validate_only`) runs every item with
//! `validate_only`: each is checked against the inventory as it is, not as earlier items of the
//! plan would leave it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::batch::{Lease, Prepared};
use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service, WorkerSettings};
use super::{AssignRequest, LocationUpdate, RemoveRequest};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, BulkProgress, Identity, ItemFailure, ItemOutcome, ItemResult, Operation, TenantId,
    UserUpsert,
};
use crate::error::{Code, Error, Reason, Result};
use crate::store::{ClaimedBulk, NewBulk, NewBulkItem, NewOperation, PendingItem, Queue};

/// The most items one bulk call takes.
pub const MAX_BULK_ITEMS: usize = 100_000;
/// Items a worker reads and records at a time.
const CHUNK: usize = 1000;
/// Attempts at an item that a concurrent change got in the way of.
const ATTEMPTS: usize = 3;
/// How long a worker waits when the database or a provider is unavailable.
const STALLED_WAIT: Duration = Duration::from_secs(1);

/// The single call a bulk call repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkMethod {
    /// BulkUpsertUsers.
    UpsertUsers,
    /// BulkAssignPhoneNumbers.
    AssignPhoneNumbers,
    /// BulkRemovePhoneNumbers.
    RemovePhoneNumbers,
    /// BulkUpdateEmergencyLocations.
    UpdateEmergencyLocations,
}

impl BulkMethod {
    const ALL: [BulkMethod; 4] = [
        BulkMethod::UpsertUsers,
        BulkMethod::AssignPhoneNumbers,
        BulkMethod::RemovePhoneNumbers,
        BulkMethod::UpdateEmergencyLocations,
    ];

    /// The bulk call's name, under which its request id is claimed.
    fn call(self) -> &'static str {
        match self {
            BulkMethod::UpsertUsers => "BulkUpsertUsers",
            BulkMethod::AssignPhoneNumbers => "BulkAssignPhoneNumbers",
            BulkMethod::RemovePhoneNumbers => "BulkRemovePhoneNumbers",
            BulkMethod::UpdateEmergencyLocations => "BulkUpdateEmergencyLocations",
        }
    }

    /// The single call each item is, as recorded with the operation.
    fn single(self) -> &'static str {
        match self {
            BulkMethod::UpsertUsers => "UpsertUser",
            BulkMethod::AssignPhoneNumbers => "AssignPhoneNumber",
            BulkMethod::RemovePhoneNumbers => "RemovePhoneNumber",
            BulkMethod::UpdateEmergencyLocations => "UpdateEmergencyLocation",
        }
    }

    /// The operation's kind and the audit action of the call.
    fn kind(self) -> AuditAction {
        match self {
            BulkMethod::UpsertUsers => AuditAction::BulkUpsertUsers,
            BulkMethod::AssignPhoneNumbers => AuditAction::BulkAssignPhoneNumbers,
            BulkMethod::RemovePhoneNumbers => AuditAction::BulkRemovePhoneNumbers,
            BulkMethod::UpdateEmergencyLocations => AuditAction::BulkUpdateEmergencyLocations,
        }
    }
}

/// What one item of a bulk call asks: the single call's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkItem {
    /// An UpsertUser.
    UpsertUser(UserUpsert),
    /// An AssignPhoneNumber.
    Assign(AssignRequest),
    /// A RemovePhoneNumber.
    Remove(RemoveRequest),
    /// An UpdateEmergencyLocation.
    UpdateLocation(LocationUpdate),
}

impl BulkItem {
    /// What the item changes, for running items on the same thing in order: the user, or
    /// for a location update the number.
    fn key(&self) -> String {
        let identity = |identity: &Identity| identity.to_string().to_lowercase();
        match self {
            BulkItem::UpsertUser(user) => user
                .id
                .clone()
                .unwrap_or_else(|| user.user_principal_name.to_lowercase()),
            BulkItem::Assign(request) => identity(&request.identity),
            BulkItem::Remove(request) => identity(&request.identity),
            BulkItem::UpdateLocation(update) => update.number.canonical(),
        }
    }
}

/// How the edge reads one item of a bulk call, given its index and its encoded message: the
/// item's own request id, and the single call's request with its options, or why it was
/// refused (read exactly as the single call reads its request).
pub type ReadItem = fn(
    usize,
    &[u8],
) -> (
    Option<String>,
    std::result::Result<(BulkItem, RequestOptions), Error>,
);

/// A bulk call's items as they arrived, each kept as its encoded message: tens of bytes, where
/// the item as it runs is hundreds, and a call holds up to 100,000 until it is recorded. Each
/// is read only as it is recorded, a chunk at a time.
#[derive(Debug)]
pub struct BulkItems {
    /// The encoded messages, one after another.
    encoded: Vec<u8>,
    /// Where each ends in `encoded`.
    ends: Vec<usize>,
    /// How the edge reads one.
    read: ReadItem,
}

impl BulkItems {
    /// No items yet, each to be read with `read`.
    pub fn new(read: ReadItem) -> Self {
        Self {
            encoded: Vec::new(),
            ends: Vec::new(),
            read,
        }
    }

    /// Keeps the next item's encoded message.
    pub fn push(&mut self, encoded: &[u8]) {
        self.encoded.extend_from_slice(encoded);
        self.ends.push(self.encoded.len());
    }

    /// How many items there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Item `index` as it will be stored, in a call whose `validate_only` is `plan`: the
    /// request with its options, or why it was refused as it was read.
    fn stored(&self, index: usize, plan: bool) -> Result<NewBulkItem> {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        let (request_id, read) = (self.read)(index, &self.encoded[start..self.ends[index]]);
        let (request, outcome) = match read {
            Ok((item, mut options)) => {
                options.validate_only |= plan;
                let stored = StoredItem { item, options };
                (
                    serde_json::to_string(&stored).map_err(Error::internal)?,
                    None,
                )
            }
            Err(refused) => (
                "null".to_owned(),
                Some(Box::new(ItemOutcome::Failed(ItemFailure::from(&refused)))),
            ),
        };
        Ok(NewBulkItem {
            request_id,
            request,
            outcome,
        })
    }
}

/// An item as stored with its operation.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredItem {
    /// The single call's request.
    pub item: BulkItem,
    /// Its options, as the caller gave them.
    pub options: RequestOptions,
}

/// An item's options as it runs: an item without a request id gets one derived from the
/// operation and its index (unless it only validates), so that running it again answers its
/// first answer.
pub(super) fn item_options(
    operation: uuid::Uuid,
    pending: &PendingItem,
    mut options: RequestOptions,
) -> RequestOptions {
    if options.request_id.is_none() && !options.validate_only {
        let derived = uuid::Uuid::new_v5(&operation, &pending.index.to_be_bytes());
        options.request_id = Some(derived.to_string());
    }
    options
}

impl From<&Error> for ItemFailure {
    fn from(error: &Error) -> Self {
        ItemFailure {
            reason: error.reason().as_str().to_owned(),
            message: error.message().to_owned(),
            metadata: error
                .metadata()
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
            violations: error
                .violations()
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect(),
        }
    }
}

impl Service {
    /// Records a bulk call of `method` with its items, and answers its operation; the items
    /// run in the background. A retry with the call's request id answers the same operation,
    /// as it is now.
    pub async fn start_bulk(
        &self,
        caller: &Caller,
        method: BulkMethod,
        items: BulkItems,
        options: &RequestOptions,
    ) -> Result<Operation> {
        if items.is_empty() || items.len() > MAX_BULK_ITEMS {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                "items",
                format!(
                    "has {} items; a bulk call takes 1 to {MAX_BULK_ITEMS}",
                    items.len()
                ),
            ));
        }
        let actor = Actor::tenant(caller);
        let mut tx = match self
            .begin::<Operation>(&actor, method.call(), options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => {
                return self
                    .get_operation(caller, &first.id, &ResultsPage::default())
                    .await
                    .map(|(operation, _)| operation);
            }
        };
        let tenant = actor.tenant_id.as_str();
        let now = self.now();
        let id = uuid::Uuid::now_v7().to_string();
        let mut progress = BulkProgress {
            total: items.len() as i64,
            succeeded: 0,
            failed: 0,
            validate_only: options.validate_only,
        };
        let mut operation = Operation {
            id: id.clone(),
            kind: method.kind(),
            state: progress.state(false),
            error: None,
            steps: Vec::new(),
            create_time: now,
            update_time: now,
            progress: None,
        };
        let recorded = crate::store::Changes {
            operations: vec![NewOperation {
                operation: operation.clone(),
                jobs: Vec::new(),
                request_id: options.request_id.clone(),
                actor: actor.name.clone(),
            }],
            ..Default::default()
        };
        tx.apply(tenant, &recorded).await?;
        tx.insert_bulk(
            tenant,
            &NewBulk {
                operation_id: id.clone(),
                method: method.single().to_owned(),
                validate_only: options.validate_only,
                caller: serde_json::to_value(caller).map_err(Error::internal)?,
                total: items.len(),
            },
        )
        .await?;
        // The items are read and recorded a chunk at a time, counting those refused as read.
        let mut chunk = Vec::with_capacity(CHUNK);
        for first in (0..items.len()).step_by(CHUNK) {
            chunk.clear();
            for index in first..items.len().min(first + CHUNK) {
                chunk.push(items.stored(index, options.validate_only)?);
            }
            progress.failed += chunk.iter().filter(|i| i.outcome.is_some()).count() as i64;
            tx.insert_bulk_items(tenant, &id, first, &chunk).await?;
        }
        drop(items);
        operation.state = progress.state(false);
        operation.error = progress.error();
        // Every item was refused as it was read: the operation has ended already.
        if operation.state.is_final() {
            tx.update_operation(tenant, &operation).await?;
        }
        operation.progress = Some(progress.clone());
        let mut changes = crate::store::Changes::default();
        // A plan changes nothing but its own record, and is not audited.
        if !options.validate_only {
            changes.audit.push(self.audit(
                &actor,
                options,
                method.kind(),
                None,
                None,
                None,
                Some(serde_json::json!({
                    "operationId": id,
                    "items": progress.total,
                })),
            ));
        }
        if let Some(request_id) = options.claimable_id() {
            let stored = serde_json::to_string(&operation).map_err(Error::internal)?;
            changes.responses.push((request_id.to_owned(), stored));
        }
        tx.apply(tenant, &changes).await?;
        tx.commit().await?;
        tracing::info!(%tenant, operation = %operation.id, call = method.call(), items = progress.total, refused = progress.failed, "bulk call accepted");
        Ok(operation)
    }

    /// Runs bulk operations, one at a time, until `shutdown`.
    pub async fn run_bulk(
        &self,
        owner: &str,
        settings: &WorkerSettings,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let claimed = async {
                let mut tx = self.store.write().await?;
                let claimed = tx.claim_bulk(owner, self.now(), settings.lease).await?;
                tx.commit().await?;
                Ok::<_, Error>(claimed)
            };
            let worked = match claimed.await {
                Ok(Some(bulk)) => {
                    let id = bulk.operation_id.clone();
                    tokio::select! {
                        () = &mut shutdown => break,
                        ran = self.run_claimed(owner, settings, bulk) => {
                            if let Err(error) = ran {
                                tracing::warn!(operation = %id, %error, "bulk operation interrupted; it resumes once its lease expires");
                            }
                        }
                    }
                    true
                }
                Ok(None) => false,
                Err(error) => {
                    tracing::warn!(%error, "bulk worker could not claim work");
                    false
                }
            };
            if worked {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.store.work_written(Queue::Bulk) => {}
                () = tokio::time::sleep(settings.idle_poll) => {}
            }
        }
        tracing::info!(%owner, "bulk worker stopped");
    }

    /// Runs a claimed bulk operation's items, a chunk at a time, until every item ran or the
    /// lease is lost.
    async fn run_claimed(
        &self,
        owner: &str,
        settings: &WorkerSettings,
        bulk: ClaimedBulk,
    ) -> Result<()> {
        let tenant = bulk.tenant_id.as_str();
        let caller: Caller = serde_json::from_value(bulk.caller).map_err(Error::internal)?;
        let method = BulkMethod::ALL
            .into_iter()
            .find(|m| m.single() == bulk.method)
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!("unknown bulk method {}", bulk.method))
            })?;
        let operation = uuid::Uuid::parse_str(&bulk.operation_id).map_err(Error::internal)?;
        let id = bulk.operation_id.as_str();
        // Chunks are read after the last item read. A chunk of assignments is written while the
        // next one is checked, when none of its items is left to run one by one (the next
        // chunk's locks wait for this one's commit wherever they meet, which keeps the order).
        let mut after: Option<u32> = None;
        let mut ahead: Option<Prepared> = None;
        let lease = Lease {
            operation_id: id,
            owner,
            duration: settings.lease,
        };
        loop {
            let (recorded, singles, read_nothing) = if method == BulkMethod::AssignPhoneNumbers {
                let current = match ahead.take() {
                    Some(prepared) => prepared,
                    None => {
                        let items = self.pending(tenant, id, after).await?;
                        self.prepare_batch(&caller, operation, items).await
                    }
                };
                let read_nothing = current.last.is_none();
                after = current.last.or(after);
                if current.rest.is_empty() && !read_nothing {
                    // The next chunk is read inside the join too: while this chunk holds its
                    // locks, single calls waiting on them may hold every connection.
                    let next = async {
                        let items = self.pending(tenant, id, after).await?;
                        Ok::<_, Error>(self.prepare_batch(&caller, operation, items).await)
                    };
                    let ((recorded, singles), next) =
                        tokio::join!(self.write_batch(current, &lease), next);
                    // A chunk that could not be written runs one by one first; the next one,
                    // rolled back, is read again after it.
                    if let (true, Ok(next)) = (singles.is_empty(), next) {
                        ahead = Some(next);
                    }
                    (recorded, singles, false)
                } else {
                    let (recorded, singles) = self.write_batch(current, &lease).await;
                    (recorded, singles, read_nothing)
                }
            } else {
                let items = self.pending(tenant, id, after).await?;
                let read_nothing = items.is_empty();
                after = items.last().map(|p| p.index).or(after);
                (None, items, read_nothing)
            };
            let (progress, stalled) = match recorded {
                // The lease was lost: nothing of the chunk was written.
                Some(None) => (None, false),
                Some(progress) if singles.is_empty() => (progress, false),
                _ => {
                    let (results, stalled) = self
                        .run_items(&caller, operation, singles, settings.bulk_concurrency)
                        .await;
                    let mut tx = self.store.write().await?;
                    let progress = tx
                        .record_results(tenant, id, owner, &results, self.now(), settings.lease)
                        .await?;
                    tx.commit().await?;
                    (progress, stalled)
                }
            };
            let Some(progress) = progress else {
                tracing::warn!(operation = %bulk.operation_id, "bulk operation taken over by another replica");
                return Ok(());
            };
            if progress.state(true).is_final() {
                tracing::info!(%tenant, operation = %bulk.operation_id, call = method.call(), succeeded = progress.succeeded, failed = progress.failed, "bulk operation finished");
                return Ok(());
            }
            if read_nothing {
                if after.is_none() {
                    return Err(Error::internal(anyhow::anyhow!(
                        "bulk operation {} has no item left to run, but counts {} of {} done",
                        bulk.operation_id,
                        progress.done(),
                        progress.total
                    )));
                }
                // Items left behind (that found something unavailable) are read again.
                after = None;
            }
            if stalled {
                ahead = None;
                after = None;
                tokio::time::sleep(STALLED_WAIT).await;
            }
        }
    }

    /// Up to a chunk of a bulk operation's items still to run, after the item `after`.
    async fn pending(
        &self,
        tenant: &TenantId,
        id: &str,
        after: Option<u32>,
    ) -> Result<Vec<PendingItem>> {
        Ok(self
            .read()
            .await?
            .pending_items(tenant, id, after, CHUNK)
            .await?)
    }

    /// Runs `items`: those on the same user (or number) in order, the others side by side.
    /// Answers the results, and whether an item stopped because something it needs is
    /// unavailable (it has no result, and runs again later).
    async fn run_items(
        &self,
        caller: &Caller,
        operation: uuid::Uuid,
        items: Vec<PendingItem>,
        concurrency: usize,
    ) -> (Vec<ItemResult>, bool) {
        let mut lanes: Vec<Vec<(PendingItem, Option<StoredItem>)>> = Vec::new();
        let mut lane_of: HashMap<String, usize> = HashMap::new();
        let mut results = Vec::with_capacity(items.len());
        for pending in items {
            match serde_json::from_str::<StoredItem>(&pending.request) {
                Ok(stored) => {
                    let lane = *lane_of.entry(stored.item.key()).or_insert_with(|| {
                        lanes.push(Vec::new());
                        lanes.len() - 1
                    });
                    lanes[lane].push((pending, Some(stored)));
                }
                Err(error) => results.push(ItemResult {
                    index: pending.index,
                    request_id: pending.request_id,
                    outcome: ItemOutcome::Failed(ItemFailure::from(&Error::internal(error))),
                }),
            }
        }
        let ran: Vec<(Vec<ItemResult>, bool)> = futures::stream::iter(lanes)
            .map(|lane| async move {
                let mut results = Vec::with_capacity(lane.len());
                for (pending, stored) in lane {
                    let Some(stored) = stored else { continue };
                    match self.run_item(caller, operation, &pending, stored).await {
                        Some(outcome) => results.push(ItemResult {
                            index: pending.index,
                            request_id: pending.request_id,
                            outcome,
                        }),
                        // The lane's later items wait for this one.
                        None => return (results, true),
                    }
                }
                (results, false)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut stalled = false;
        for (lane, lane_stalled) in ran {
            results.extend(lane);
            stalled |= lane_stalled;
        }
        (results, stalled)
    }

    /// Runs one item as its single call; none when something it needs is unavailable.
    async fn run_item(
        &self,
        caller: &Caller,
        operation: uuid::Uuid,
        pending: &PendingItem,
        stored: StoredItem,
    ) -> Option<ItemOutcome> {
        let options = item_options(operation, pending, stored.options);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = match &stored.item {
                BulkItem::UpsertUser(user) => self
                    .upsert_user(caller, user.clone(), &options)
                    .await
                    .map(|_| None),
                BulkItem::Assign(request) => self
                    .assign(caller, request, &options)
                    .await
                    .map(|a| a.operation.map(|o| o.id)),
                BulkItem::Remove(request) => self
                    .remove(caller, request, &options)
                    .await
                    .map(|r| r.operation.map(|o| o.id)),
                BulkItem::UpdateLocation(update) => self
                    .update_number_location(caller, update, &options)
                    .await
                    .map(|n| n.operation_id),
            };
            return match answer {
                Ok(operation_id) => Some(ItemOutcome::Succeeded { operation_id }),
                Err(error) if error.code() == Code::Unavailable => None,
                Err(error) if error.reason() == Reason::ConcurrentChange && attempt < ATTEMPTS => {
                    continue;
                }
                Err(error) => Some(ItemOutcome::Failed(ItemFailure::from(&error))),
            };
        }
    }
}

/// Which results of a bulk operation GetOperation answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultsPage {
    /// Where the page starts and how many.
    pub page: PageRequest,
    /// Only the failed items'.
    pub failed_only: bool,
}

impl Service {
    /// An operation of the caller's tenant, with a page of its item results when it is a bulk
    /// operation.
    pub async fn get_operation(
        &self,
        caller: &Caller,
        id: &str,
        results: &ResultsPage,
    ) -> Result<(Operation, Page<ItemResult>)> {
        let tenant = &caller.tenant_id;
        let mut tx = self.read().await?;
        let mut operation = tx.get_operation(tenant, id).await?.ok_or_else(|| {
            Error::new(
                Reason::OperationNotFound,
                format!("no operation {id} in this tenant"),
            )
            .with("operationId", id)
        })?;
        operation.progress = tx.bulk_progress(tenant, id).await?;
        let page = if operation.progress.is_some() {
            let after = match results.page.after.as_deref() {
                None => None,
                Some(text) => Some(text.parse::<u32>().map_err(|_| {
                    Error::invalid_field(Reason::InvalidPageToken, "page_token", "is not valid")
                })?),
            };
            let size = results.page.size;
            let items = tx
                .bulk_results(tenant, id, after, size + 1, results.failed_only)
                .await?;
            Page::from_overfetch(items, size, |r| r.index.to_string())
        } else {
            Page {
                items: Vec::new(),
                next_after: None,
            }
        };
        Ok((operation, page))
    }
}
