//! Bulk operations, their items and their leases on PostgreSQL.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::types::Json;

use super::{EVERY_TENANT, PgTx, timestamp, uuid};
use crate::domain::{BulkProgress, ItemOutcome, ItemResult, OperationState, TenantId};
use crate::store::{
    BulkRepository, ClaimedBulk, NewBulk, NewBulkItem, PendingItem, StoreError, StoreResult,
};

/// Items written per statement when a bulk call is recorded: the statement's encoded binds
/// stay in the connection's buffer afterwards, so a chunk of 1,000 (about 1 MB) rather than more.
const INSERT_CHUNK: usize = 1000;

/// A count or index as its column holds it.
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Progress as counted in `bulk_operations`.
type ProgressRow = (i32, i32, i32, bool);

fn progress((total, succeeded, failed, validate_only): ProgressRow) -> BulkProgress {
    BulkProgress {
        total: total.into(),
        succeeded: succeeded.into(),
        failed: failed.into(),
        validate_only,
    }
}

fn operation_key(id: &str) -> StoreResult<uuid::Uuid> {
    uuid(id).ok_or_else(|| StoreError::corrupt(format!("operation {id}"), "not a UUID"))
}

fn index(item: u32) -> i32 {
    i32::try_from(item).unwrap_or(i32::MAX)
}

#[async_trait]
impl BulkRepository for PgTx {
    async fn insert_bulk(&mut self, tenant: &TenantId, bulk: &NewBulk) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO bulk_operations (tenant_id, operation_id, method, validate_only, caller, \
             total) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(operation_key(&bulk.operation_id)?)
        .bind(&bulk.method)
        .bind(bulk.validate_only)
        .bind(Json(&bulk.caller))
        .bind(count(bulk.total))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn insert_bulk_items(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        first: usize,
        items: &[NewBulkItem],
    ) -> StoreResult<()> {
        let id = operation_key(operation_id)?;
        for (chunk_index, chunk) in items.chunks(INSERT_CHUNK).enumerate() {
            let first = first + chunk_index * INSERT_CHUNK;
            // The items with an outcome already (refused as they were read) are counted.
            sqlx::query(
                "WITH written AS (\
                 INSERT INTO bulk_items (tenant_id, operation_id, item, request_id, request, \
                 outcome, failed) \
                 SELECT $1, $2, i.item, i.request_id, i.request::jsonb, i.outcome, i.failed \
                 FROM unnest($3::integer[], $4::text[], $5::text[], $6::jsonb[], $7::boolean[]) \
                 AS i(item, request_id, request, outcome, failed) \
                 RETURNING failed) \
                 UPDATE bulk_operations SET \
                 succeeded = succeeded + (SELECT count(*) FROM written WHERE NOT failed), \
                 failed = failed + (SELECT count(*) FROM written WHERE failed) \
                 WHERE tenant_id = $1 AND operation_id = $2 \
                 AND EXISTS (SELECT 1 FROM written WHERE failed IS NOT NULL)",
            )
            .bind(tenant)
            .bind(id)
            .bind((first..first + chunk.len()).map(count).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|i| i.request_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|i| i.request.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|i| i.outcome.as_ref().map(Json))
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|i| i.outcome.as_ref().map(|o| o.failed()))
                    .collect::<Vec<_>>(),
            )
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    async fn bulk_progress(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<BulkProgress>> {
        let Some(key) = uuid(id) else {
            return Ok(None);
        };
        let row: Option<ProgressRow> = sqlx::query_as(
            "SELECT total, succeeded, failed, validate_only FROM bulk_operations \
             WHERE tenant_id = $1 AND operation_id = $2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(row.map(progress))
    }

    async fn bulk_results(
        &mut self,
        tenant: &TenantId,
        id: &str,
        after: Option<u32>,
        limit: usize,
        failed_only: bool,
    ) -> StoreResult<Vec<ItemResult>> {
        let Some(key) = uuid(id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i32, Option<String>, Json<ItemOutcome>)> = sqlx::query_as(if failed_only {
            // The index of failed items (see the migrations) answers these.
            "SELECT item, request_id, outcome FROM bulk_items \
             WHERE tenant_id = $1 AND operation_id = $2 AND item > $3 AND failed \
             ORDER BY item LIMIT $4"
        } else {
            "SELECT item, request_id, outcome FROM bulk_items \
             WHERE tenant_id = $1 AND operation_id = $2 AND item > $3 AND failed IS NOT NULL \
             ORDER BY item LIMIT $4"
        })
        .bind(tenant)
        .bind(key)
        .bind(after.map_or(-1, index))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|(item, request_id, value)| {
                Ok(ItemResult {
                    index: u32::try_from(item)
                        .map_err(|e| StoreError::corrupt(format!("item {item} of {id}"), e))?,
                    request_id,
                    outcome: value.0,
                })
            })
            .collect()
    }

    async fn claim_bulk(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedBulk>> {
        let row: Option<(
            String,
            uuid::Uuid,
            String,
            Json<serde_json::Value>,
            i32,
            i32,
            i32,
            bool,
        )> = sqlx::query_as(
            "WITH claimed AS (\
                 UPDATE bulk_operations SET lease_owner = $1, lease_expires = $2 \
                 WHERE (tenant_id, operation_id) IN (SELECT tenant_id, operation_id \
                 FROM bulk_operations WHERE succeeded + failed < total \
                 AND (lease_expires IS NULL OR lease_expires <= $3) \
                 ORDER BY lease_expires NULLS FIRST, operation_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING *), \
                 running AS (UPDATE operations o SET state = 'RUNNING', update_time = $3 \
                 FROM claimed c WHERE o.tenant_id = c.tenant_id AND o.id = c.operation_id \
                 AND o.state = 'PENDING') \
                 SELECT tenant_id, operation_id, method, caller, total, succeeded, failed, \
                 validate_only FROM claimed",
        )
        .bind(owner)
        .bind(timestamp(now + lease))
        .bind(timestamp(now))
        .fetch_optional(self.scoped(EVERY_TENANT).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(row.map(
            |(tenant_id, id, method, caller, total, succeeded, failed, validate_only)| {
                ClaimedBulk {
                    tenant_id,
                    operation_id: id.to_string(),
                    method,
                    caller: caller.0,
                    progress: progress((total, succeeded, failed, validate_only)),
                }
            },
        ))
    }

    async fn pending_items(
        &mut self,
        tenant: &TenantId,
        id: &str,
        after: Option<u32>,
        limit: usize,
    ) -> StoreResult<Vec<PendingItem>> {
        let key = operation_key(id)?;
        let rows: Vec<(i32, Option<String>, String)> = sqlx::query_as(
            "SELECT item, request_id, request::text FROM bulk_items \
             WHERE tenant_id = $1 AND operation_id = $2 AND item > $3 AND failed IS NULL \
             ORDER BY item LIMIT $4",
        )
        .bind(tenant)
        .bind(key)
        .bind(after.map_or(-1, index))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|(item, request_id, request)| {
                Ok(PendingItem {
                    index: u32::try_from(item)
                        .map_err(|e| StoreError::corrupt(format!("item {item} of {id}"), e))?,
                    request_id,
                    request,
                })
            })
            .collect()
    }

    async fn record_results(
        &mut self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        results: &[ItemResult],
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<Option<BulkProgress>> {
        let key = operation_key(id)?;
        // The lease first: a worker that lost it writes nothing.
        let held: Option<(i32,)> = sqlx::query_as(
            "SELECT 1 FROM bulk_operations WHERE tenant_id = $1 AND operation_id = $2 \
             AND lease_owner = $3 FOR UPDATE",
        )
        .bind(tenant)
        .bind(key)
        .bind(owner)
        .fetch_optional(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        if held.is_none() {
            return Ok(None);
        }
        let row: ProgressRow = sqlx::query_as(
            "WITH written AS (\
             UPDATE bulk_items b SET outcome = r.outcome, failed = r.failed \
             FROM unnest($3::integer[], $4::jsonb[], $5::boolean[]) AS r(item, outcome, failed) \
             WHERE b.tenant_id = $1 AND b.operation_id = $2 AND b.item = r.item \
             AND b.failed IS NULL RETURNING r.failed) \
             UPDATE bulk_operations SET \
             succeeded = succeeded + (SELECT count(*) FROM written WHERE NOT failed), \
             failed = failed + (SELECT count(*) FROM written WHERE failed), \
             lease_expires = $6 \
             WHERE tenant_id = $1 AND operation_id = $2 \
             RETURNING total, succeeded, failed, validate_only",
        )
        .bind(tenant)
        .bind(key)
        .bind(results.iter().map(|r| index(r.index)).collect::<Vec<_>>())
        .bind(results.iter().map(|r| Json(&r.outcome)).collect::<Vec<_>>())
        .bind(
            results
                .iter()
                .map(|r| r.outcome.failed())
                .collect::<Vec<_>>(),
        )
        .bind(timestamp(now + lease))
        .fetch_one(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let progress = progress(row);
        let state = progress.state(true);
        if state.is_final() {
            sqlx::query(
                "UPDATE bulk_operations SET lease_owner = NULL, lease_expires = NULL \
                 WHERE tenant_id = $1 AND operation_id = $2",
            )
            .bind(tenant)
            .bind(key)
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        }
        sqlx::query(
            "UPDATE operations SET state = $3, error = $4, update_time = $5 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(key)
        .bind(state.as_str())
        .bind(progress.error())
        .bind(timestamp(now))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        debug_assert!(state != OperationState::Pending);
        Ok(Some(progress))
    }
}
