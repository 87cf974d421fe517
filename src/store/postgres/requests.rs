//! Request ids on PostgreSQL (AIP-155).

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::types::Json;

use super::{EVERY_TENANT, PgTx, timestamp};
use crate::domain::TenantId;
use crate::store::{Claim, RequestRepository, StoreResult};

#[async_trait]
impl RequestRepository for PgTx {
    async fn claim_request(
        &mut self,
        tenant: &TenantId,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
        now: SystemTime,
    ) -> StoreResult<Claim> {
        let claimed = sqlx::query(
            "INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, create_time) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, request_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(request_id)
        .bind(method)
        .bind(fingerprint)
        .bind(timestamp(now))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        if claimed.rows_affected() == 1 {
            return Ok(Claim::New);
        }
        // Claimed by a committed transaction (or by one that committed while this insert
        // waited on the key).
        Ok(self
            .find_request(tenant, request_id, method, fingerprint)
            .await?
            .unwrap_or(Claim::Reused {
                method: String::new(),
            }))
    }

    async fn find_request(
        &mut self,
        tenant: &TenantId,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
    ) -> StoreResult<Option<Claim>> {
        let found: Option<(String, Vec<u8>, Option<Json<serde_json::Value>>)> = sqlx::query_as(
            "SELECT method, fingerprint, response FROM request_ids \
             WHERE tenant_id = $1 AND request_id = $2",
        )
        .bind(tenant)
        .bind(request_id)
        .fetch_optional(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(found.map(|(stored_method, stored_fingerprint, response)| {
            if stored_method == method && stored_fingerprint == fingerprint {
                Claim::Replay(response.map(|r| r.0).unwrap_or_default())
            } else {
                Claim::Reused {
                    method: stored_method,
                }
            }
        }))
    }

    async fn purge_requests(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64> {
        let purged = sqlx::query(
            "DELETE FROM request_ids WHERE (tenant_id, request_id) IN (\
             SELECT tenant_id, request_id FROM request_ids WHERE create_time < $1 \
             ORDER BY create_time LIMIT $2)",
        )
        .bind(timestamp(before))
        .bind(limit)
        .execute(self.scoped(EVERY_TENANT).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(purged.rows_affected())
    }
}
