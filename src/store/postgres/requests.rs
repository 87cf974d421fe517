//! Request ids on PostgreSQL (AIP-155).

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::types::Json;

use super::{EVERY_TENANT, PgTx, timestamp};
use crate::domain::TenantId;
use crate::store::{Claim, RequestClaim, RequestRepository, StoreResult};

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

    async fn claim_requests(
        &mut self,
        tenant: &TenantId,
        requests: &[RequestClaim],
        now: SystemTime,
    ) -> StoreResult<Vec<Claim>> {
        // One insert claims every new id; an id claimed by a concurrent transaction waits for
        // it, as a single claim does. The ids that were there already are read in one go.
        let ids: Vec<&str> = requests.iter().map(|r| r.request_id.as_str()).collect();
        let claimed: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, create_time) \
             SELECT $1, r.request_id, r.method, r.fingerprint, $5 \
             FROM unnest($2::text[], $3::text[], $4::bytea[]) AS r(request_id, method, fingerprint) \
             ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING request_id",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(requests.iter().map(|r| r.method.as_str()).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.fingerprint.as_slice()).collect::<Vec<_>>())
        .bind(timestamp(now))
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let claimed: HashSet<String> = claimed.into_iter().map(|(id,)| id).collect();
        let earlier: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !claimed.contains(*id))
            .collect();
        let mut found: HashMap<String, (String, Vec<u8>, Option<Json<serde_json::Value>>)> =
            HashMap::new();
        if !earlier.is_empty() {
            let rows: Vec<(String, String, Vec<u8>, Option<Json<serde_json::Value>>)> =
                sqlx::query_as(
                    "SELECT request_id, method, fingerprint, response FROM request_ids \
                     WHERE tenant_id = $1 AND request_id = ANY($2)",
                )
                .bind(tenant)
                .bind(&earlier)
                .fetch_all(self.scoped(tenant).await?)
                .await
                .map_err(|e| self.failed(e))?;
            found = rows
                .into_iter()
                .map(|(id, method, fingerprint, response)| (id, (method, fingerprint, response)))
                .collect();
        }
        Ok(requests
            .iter()
            .map(|request| {
                if claimed.contains(&request.request_id) {
                    return Claim::New;
                }
                match found.get(&request.request_id) {
                    Some((method, fingerprint, response))
                        if *method == request.method && *fingerprint == request.fingerprint =>
                    {
                        Claim::Replay(response.as_ref().map(|r| r.0.clone()).unwrap_or_default())
                    }
                    Some((method, _, _)) => Claim::Reused {
                        method: method.clone(),
                    },
                    None => Claim::Reused {
                        method: String::new(),
                    },
                }
            })
            .collect())
    }

    async fn release_requests(
        &mut self,
        tenant: &TenantId,
        request_ids: &[String],
    ) -> StoreResult<()> {
        if request_ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM request_ids WHERE tenant_id = $1 AND request_id = ANY($2)")
            .bind(tenant)
            .bind(request_ids)
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
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
