//! Bulk assignments a batch at a time: a chunk of BulkAssignPhoneNumbers items in one write
//! transaction, their records loaded and written a set at a time.
//!
//! One item run as its single call costs a transaction of several round trips; a chunk of a
//! thousand costs a few statements, each over the whole chunk: claim every request id, lock
//! every user the items name (in id order) and every number on their base numbers (in number
//! order), read the emergency locations; then check each item against those records with the
//! single call's own rules, in the items' order ([`Service::assign_locked`]); then insert the
//! Direct Routing numbers that enter the inventory, write every change a few hundred items per
//! statement, give back the request ids of the items refused (as a refused single call leaves
//! none) and record the chunk's results, all before one commit.
//!
//! An item runs in the batch only if nothing before it in the chunk touches its user or its
//! number's base: each record is changed once per batch, at the version it was read at. The
//! other items (a second number for the same user, an item that only validates, a number
//! whose provider runs in another process and is asked outside any lock, a request id given
//! twice) run afterwards as single calls, in their order. If the batch cannot be written as
//! planned (a concurrent change, a Direct Routing number that another tenant took meanwhile,
//! an unavailable provider), nothing of it is written and every item runs as a single call.

use std::collections::{HashMap, HashSet};

use super::assignment::Locked;
use super::bulk::{BulkItem, StoredItem, item_options};
use super::{Actor, AssignRequest, Assigned, RequestOptions, Service, answer_of};
use crate::auth::Caller;
use crate::domain::{
    BulkProgress, EmergencyLocation, Identity, ItemFailure, ItemOutcome, ItemResult, PhoneNumber,
};
use crate::error::{Code, Error, Reason, Result};
use crate::store::{Changes, Claim, PendingItem, RequestClaim, Tx};

/// The single call whose request ids the batch claims.
const METHOD: &str = "AssignPhoneNumber";

/// A chunk of assignments checked in its transaction, which holds their claims and locks;
/// nothing is written until [`Service::write_batch`].
pub(super) struct Prepared {
    /// The checked items' transaction and changes; none when no item runs in the chunk's
    /// transaction (or checking it failed, and everything runs one by one).
    checked: Option<Checked>,
    /// The items to run one by one after the chunk, in order.
    pub rest: Vec<PendingItem>,
    /// The last item read, if any.
    pub last: Option<u32>,
}

/// What checking a chunk produced, to write and commit.
struct Checked {
    tx: Tx,
    tenant: String,
    written: Vec<Changes>,
    created: Vec<PhoneNumber>,
    released: Vec<String>,
    results: Vec<ItemResult>,
    /// The items of `results`, to run one by one if the chunk cannot be written.
    items: Vec<PendingItem>,
}

/// An item the batch may run.
struct Candidate {
    pending: PendingItem,
    request: AssignRequest,
    options: RequestOptions,
    /// Whether the batch may run it: it does not only validate, its provider is not asked
    /// over the network, and its request id is its own in the chunk.
    batched: bool,
}

/// How a request names its user, as a map key: ids as given, names without case.
fn identity_key(identity: &Identity) -> (u8, String) {
    match identity {
        Identity::Id(id) => (0, id.clone()),
        Identity::UserPrincipalName(upn) => (1, upn.to_lowercase()),
        Identity::SipAddress(sip) => (2, sip.to_lowercase()),
    }
}

impl Service {
    /// Checks `items` of the bulk operation `operation` (BulkAssignPhoneNumbers items) as one
    /// chunk where it can (see the module's documentation), in a transaction left open.
    pub(super) async fn prepare_batch(
        &self,
        caller: &Caller,
        operation: uuid::Uuid,
        items: Vec<PendingItem>,
    ) -> Prepared {
        let last = items.last().map(|p| p.index);
        let mut candidates = Vec::with_capacity(items.len());
        let mut rest = Vec::new();
        let mut request_ids = HashSet::new();
        for pending in items {
            match serde_json::from_str::<StoredItem>(&pending.request) {
                Ok(StoredItem {
                    item: BulkItem::Assign(request),
                    options,
                }) => {
                    let options = item_options(operation, &pending, options);
                    let batched = !options.validate_only
                        && !self.may_ask_over_network(request.number_type)
                        && options
                            .request_id
                            .as_ref()
                            .is_some_and(|id| request_ids.insert(id.clone()));
                    candidates.push(Candidate {
                        pending,
                        request,
                        options,
                        batched,
                    });
                }
                _ => rest.push(pending),
            }
        }
        let checked = match self.check_batch(caller, &candidates).await {
            Ok(checked) => checked,
            Err(error) => {
                tracing::info!(%error, items = candidates.len(), "bulk chunk given up; its items run one by one");
                None
            }
        };
        let ran: HashSet<u32> = checked
            .iter()
            .flat_map(|c| c.results.iter().map(|r| r.index))
            .collect();
        let (ran, left): (Vec<PendingItem>, Vec<PendingItem>) = candidates
            .into_iter()
            .map(|c| c.pending)
            .partition(|p| ran.contains(&p.index));
        rest.extend(left);
        rest.sort_by_key(|p| p.index);
        Prepared {
            checked: checked.map(|c| Checked { items: ran, ..c }),
            rest,
            last,
        }
    }

    /// Writes a prepared chunk, records its items' results under `lease` in the same
    /// transaction, and commits. Answers the operation's progress once recorded (none when
    /// the lease was lost: then nothing was written), or nothing when nothing was written; and
    /// the items to run one by one after it, in order: the chunk's rest, or every item of the
    /// chunk if it could not be written.
    pub(super) async fn write_batch(
        &self,
        prepared: Prepared,
        lease: &Lease<'_>,
    ) -> (Option<Option<BulkProgress>>, Vec<PendingItem>) {
        let Prepared {
            checked, mut rest, ..
        } = prepared;
        let Some(checked) = checked else {
            return (None, rest);
        };
        let items = checked.items.clone();
        match self.write_checked(checked, lease).await {
            Ok(progress) => (Some(progress), rest),
            Err(error) => {
                tracing::info!(%error, items = items.len(), "bulk chunk given up; its items run one by one");
                rest.extend(items);
                rest.sort_by_key(|p| p.index);
                (None, rest)
            }
        }
    }

    /// Checks the candidates the chunk may run, in a transaction left open with their claims
    /// and locks; none when there are none. An item without a result runs as a single call.
    async fn check_batch(
        &self,
        caller: &Caller,
        candidates: &[Candidate],
    ) -> Result<Option<Checked>> {
        let batched: Vec<&Candidate> = candidates.iter().filter(|c| c.batched).collect();
        if batched.is_empty() {
            return Ok(None);
        }
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = self.store.write().await?;
        let claims = tx
            .claim_requests(
                tenant,
                &batched
                    .iter()
                    .map(|c| RequestClaim {
                        request_id: c.options.request_id.clone().unwrap_or_default(),
                        method: METHOD.to_owned(),
                        fingerprint: actor.fingerprint(&c.options),
                    })
                    .collect::<Vec<_>>(),
                self.now(),
            )
            .await?;

        let mut identities: Vec<Identity> = Vec::new();
        let mut seen = HashSet::new();
        for candidate in candidates {
            if seen.insert(identity_key(&candidate.request.identity)) {
                identities.push(candidate.request.identity.clone());
            }
        }
        let holders: HashMap<(u8, String), _> = identities
            .iter()
            .map(identity_key)
            .zip(tx.lock_users(tenant, &identities).await?)
            .collect();
        let bases: Vec<String> = candidates
            .iter()
            .map(|c| c.request.number.base().to_owned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut near: HashMap<String, Vec<PhoneNumber>> = HashMap::new();
        for number in tx.lock_numbers_on_bases(tenant, &bases).await? {
            near.entry(number.number.base().to_owned())
                .or_default()
                .push(number);
        }
        let location_ids: HashSet<String> = candidates
            .iter()
            .filter_map(|c| c.request.emergency_location_id.clone())
            .chain(
                near.values()
                    .flatten()
                    .filter_map(|n| n.emergency_location_id.clone()),
            )
            .collect();
        let mut locations: HashMap<String, EmergencyLocation> = HashMap::new();
        for id in location_ids {
            if let Some(location) = tx.get_location(tenant, &id).await? {
                locations.insert(id, location);
            }
        }

        let defaults = self
            .defaults(
                &mut tx,
                tenant,
                candidates.iter().any(|c| c.request.notify_user.is_none()),
            )
            .await?;

        let mut written: Vec<Changes> = Vec::new();
        let mut created = Vec::new();
        let mut results = Vec::with_capacity(candidates.len());
        let mut released = Vec::new();
        let mut touched: HashSet<String> = HashSet::new();
        let no_numbers = Vec::new();
        let mut claims = claims.into_iter();
        for candidate in candidates {
            let request = &candidate.request;
            let request_id = candidate.options.request_id.clone().unwrap_or_default();
            let holder = holders
                .get(&identity_key(&request.identity))
                .and_then(Option::as_ref);
            let keys = [
                format!("identity {:?}", identity_key(&request.identity)),
                format!("base {}", request.number.base()),
            ]
            .into_iter()
            .chain(holder.map(|h| format!("user {}", h.user.id)))
            .collect::<Vec<_>>();
            if !candidate.batched {
                touched.extend(keys);
                continue;
            }
            let claim = claims
                .next()
                .ok_or_else(|| Error::internal(anyhow::anyhow!("a claim short")))?;
            let outcome = match claim {
                Claim::New if keys.iter().any(|k| touched.contains(k)) => {
                    released.push(request_id);
                    touched.extend(keys);
                    continue;
                }
                Claim::New => {
                    let base = request.number.base();
                    let mut item = Changes::default();
                    let ran = self
                        .assign_locked(
                            &actor,
                            &candidate.options,
                            request,
                            &Locked {
                                holder,
                                near: near.get(base).unwrap_or(&no_numbers),
                                locations: &locations,
                                defaults: &defaults,
                            },
                            &mut item,
                        )
                        .await;
                    match ran {
                        Ok((assigned, new_number)) => {
                            let stored =
                                serde_json::to_string(&assigned).map_err(Error::internal)?;
                            item.responses.push((request_id, stored));
                            item.shrink_to_fit();
                            written.push(item);
                            created.extend(new_number);
                            touched.extend(keys);
                            ItemOutcome::Succeeded {
                                operation_id: assigned.operation.map(|o| o.id),
                            }
                        }
                        // What a single call would retry, or wait for: the batch gives way.
                        Err(error)
                            if error.code() == Code::Unavailable
                                || error.reason() == Reason::ConcurrentChange =>
                        {
                            return Err(error);
                        }
                        Err(error) => {
                            released.push(request_id);
                            ItemOutcome::Failed(ItemFailure::from(&error))
                        }
                    }
                }
                claim => match answer_of::<Assigned>(claim, &request_id) {
                    Ok(first) => ItemOutcome::Succeeded {
                        operation_id: first.operation.map(|o| o.id),
                    },
                    Err(error) => ItemOutcome::Failed(ItemFailure::from(&error)),
                },
            };
            results.push(ItemResult {
                index: candidate.pending.index,
                request_id: candidate.pending.request_id.clone(),
                outcome,
            });
        }

        Ok(Some(Checked {
            tx,
            tenant: tenant.to_owned(),
            written,
            created,
            released,
            results,
            items: Vec::new(),
        }))
    }

    /// Writes a checked chunk's changes, records its results and commits: the Direct Routing
    /// numbers that enter the inventory first, then every change, then the refused items'
    /// request ids given back, then the results (which checks the lease). Recording with the
    /// changes, the worker needs no other connection while the next chunk holds its locks.
    async fn write_checked(
        &self,
        checked: Checked,
        lease: &Lease<'_>,
    ) -> Result<Option<BulkProgress>> {
        let Checked {
            mut tx,
            tenant,
            written,
            created,
            released,
            results,
            ..
        } = checked;
        let tenant = tenant.as_str();
        if !created.is_empty() {
            let added = tx.insert_numbers(tenant, &created).await?;
            if added.iter().any(|added| !added) {
                return Err(Error::new(
                    Reason::ConcurrentChange,
                    "a Direct Routing number of the batch entered an inventory meanwhile",
                ));
            }
        }
        tx.apply_all(tenant, written).await?;
        tx.release_requests(tenant, &released).await?;
        let progress = tx
            .record_results(
                tenant,
                lease.operation_id,
                lease.owner,
                &results,
                self.now(),
                lease.duration,
            )
            .await?;
        // A lease lost: the replica that holds it now runs these items; this writes nothing.
        if progress.is_some() {
            tx.commit().await?;
        }
        Ok(progress)
    }
}

/// The lease under which a worker runs a bulk operation's items.
pub(super) struct Lease<'a> {
    /// The operation.
    pub operation_id: &'a str,
    /// The worker.
    pub owner: &'a str,
    /// How long the lease lasts from each recording.
    pub duration: std::time::Duration,
}
