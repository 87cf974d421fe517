//! Bulk operations, their items and their leases on SQLite.
//!
//! Statements run in this process, so an item is one statement: writing 100,000 items costs a
//! fraction of a second, inside the writer's transaction.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{SqliteTx, micros};
use crate::domain::{BulkProgress, ItemResult, TenantId};
use crate::store::{
    BulkRepository, ClaimedBulk, NewBulk, NewBulkItem, PendingItem, Queue, StoreError, StoreResult,
};

/// Progress as counted in `bulk_operations`.
type ProgressRow = (i64, i64, i64, bool);

fn progress((total, succeeded, failed, validate_only): ProgressRow) -> BulkProgress {
    BulkProgress {
        total,
        succeeded,
        failed,
        validate_only,
    }
}

/// A count or index as its column holds it.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A JSON column read back.
fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e))
}

/// A value as the JSON text SQLite keeps.
fn text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt("a bulk item", e))
}

#[async_trait]
impl BulkRepository for SqliteTx {
    async fn insert_bulk(&mut self, tenant: &TenantId, bulk: &NewBulk) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO bulk_operations (tenant_id, operation_id, method, validate_only, caller, \
             total) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(&bulk.operation_id)
        .bind(&bulk.method)
        .bind(bulk.validate_only)
        .bind(text(&bulk.caller)?)
        .bind(count(bulk.total))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        self.wrote.push(Queue::Bulk);
        Ok(())
    }

    async fn insert_bulk_items(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        first: usize,
        items: &[NewBulkItem],
    ) -> StoreResult<()> {
        let (mut succeeded, mut failed) = (0, 0);
        for (index, item) in (first..).zip(items) {
            let outcome = item.outcome.as_ref().map(text).transpose()?;
            match item.outcome.as_ref().map(|o| o.failed()) {
                Some(true) => failed += 1,
                Some(false) => succeeded += 1,
                None => {}
            }
            sqlx::query(
                "INSERT INTO bulk_items (tenant_id, operation_id, item, request_id, request, \
                 outcome, failed) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant)
            .bind(operation_id)
            .bind(count(index))
            .bind(&item.request_id)
            .bind(&item.request)
            .bind(outcome)
            .bind(item.outcome.as_ref().map(|o| o.failed()))
            .execute(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        }
        // The items with an outcome already (refused as they were read) are counted.
        if succeeded + failed > 0 {
            sqlx::query(
                "UPDATE bulk_operations SET succeeded = succeeded + $3, failed = failed + $4 \
                 WHERE tenant_id = $1 AND operation_id = $2",
            )
            .bind(tenant)
            .bind(operation_id)
            .bind(succeeded)
            .bind(failed)
            .execute(self.conn())
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
        let row: Option<ProgressRow> = sqlx::query_as(
            "SELECT total, succeeded, failed, validate_only FROM bulk_operations \
             WHERE tenant_id = $1 AND operation_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.conn())
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
        let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(if failed_only {
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
        .bind(id)
        .bind(after.map_or(-1, i64::from))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|(item, request_id, outcome)| {
                let what = format!("item {item} of {id}");
                Ok(ItemResult {
                    index: u32::try_from(item).map_err(|e| StoreError::corrupt(&what, e))?,
                    request_id,
                    outcome: json(&what, &outcome)?,
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
        let row: Option<(String, String, String, String, i64, i64, i64, bool)> = sqlx::query_as(
            "UPDATE bulk_operations SET lease_owner = $1, lease_expires = $2 \
             WHERE (tenant_id, operation_id) IN (SELECT tenant_id, operation_id \
             FROM bulk_operations WHERE succeeded + failed < total \
             AND (lease_expires IS NULL OR lease_expires <= $3) \
             ORDER BY lease_expires NULLS FIRST, operation_id LIMIT 1) \
             RETURNING tenant_id, operation_id, method, caller, total, succeeded, failed, \
             validate_only",
        )
        .bind(owner)
        .bind(micros(now + lease))
        .bind(micros(now))
        .fetch_optional(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        let Some((tenant_id, id, method, caller, total, succeeded, failed, validate_only)) = row
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE operations SET state = 'RUNNING', update_time = $3 \
             WHERE tenant_id = $1 AND id = $2 AND state = 'PENDING'",
        )
        .bind(&tenant_id)
        .bind(&id)
        .bind(micros(now))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(Some(ClaimedBulk {
            caller: json(&format!("bulk operation {id}"), &caller)?,
            tenant_id,
            operation_id: id,
            method,
            progress: progress((total, succeeded, failed, validate_only)),
        }))
    }

    async fn pending_items(
        &mut self,
        tenant: &TenantId,
        id: &str,
        after: Option<u32>,
        limit: usize,
    ) -> StoreResult<Vec<PendingItem>> {
        let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(
            "SELECT item, request_id, request FROM bulk_items \
             WHERE tenant_id = $1 AND operation_id = $2 AND item > $3 AND failed IS NULL \
             ORDER BY item LIMIT $4",
        )
        .bind(tenant)
        .bind(id)
        .bind(after.map_or(-1, i64::from))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|(item, request_id, request)| {
                let what = format!("item {item} of {id}");
                Ok(PendingItem {
                    index: u32::try_from(item).map_err(|e| StoreError::corrupt(&what, e))?,
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
        let held = sqlx::query(
            "UPDATE bulk_operations SET lease_expires = $4 \
             WHERE tenant_id = $1 AND operation_id = $2 AND lease_owner = $3",
        )
        .bind(tenant)
        .bind(id)
        .bind(owner)
        .bind(micros(now + lease))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        if held.rows_affected() == 0 {
            return Ok(None);
        }
        let (mut succeeded, mut failed) = (0_i64, 0_i64);
        for result in results {
            let written = sqlx::query(
                "UPDATE bulk_items SET outcome = $4, failed = $5 \
                 WHERE tenant_id = $1 AND operation_id = $2 AND item = $3 AND failed IS NULL",
            )
            .bind(tenant)
            .bind(id)
            .bind(i64::from(result.index))
            .bind(text(&result.outcome)?)
            .bind(result.outcome.failed())
            .execute(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
            if written.rows_affected() == 1 {
                if result.outcome.failed() {
                    failed += 1;
                } else {
                    succeeded += 1;
                }
            }
        }
        let row: ProgressRow = sqlx::query_as(
            "UPDATE bulk_operations SET succeeded = succeeded + $3, failed = failed + $4 \
             WHERE tenant_id = $1 AND operation_id = $2 \
             RETURNING total, succeeded, failed, validate_only",
        )
        .bind(tenant)
        .bind(id)
        .bind(succeeded)
        .bind(failed)
        .fetch_one(self.conn())
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
            .bind(id)
            .execute(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        }
        sqlx::query(
            "UPDATE operations SET state = $3, error = $4, update_time = $5 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(state.as_str())
        .bind(progress.error())
        .bind(micros(now))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(Some(progress))
    }
}
