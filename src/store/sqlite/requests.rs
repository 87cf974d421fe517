//! Request ids on SQLite (AIP-155). A claimed id holds the JSON `null` until its answer is
//! stored.

use std::collections::HashSet;
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::types::Json;

use super::{SqliteTx, json_list, micros};
use crate::domain::TenantId;
use crate::store::{Claim, RequestClaim, RequestRepository, StoreResult};

#[async_trait]
impl RequestRepository for SqliteTx {
    async fn claim_request(
        &mut self,
        tenant: &TenantId,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
        now: SystemTime,
    ) -> StoreResult<Claim> {
        let claimed = sqlx::query(
            "INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, response, \
             create_time) VALUES ($1, $2, $3, $4, 'null', $5) \
             ON CONFLICT (tenant_id, request_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(request_id)
        .bind(method)
        .bind(fingerprint)
        .bind(micros(now))
        .execute(self.conn())
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
        let found: Option<(String, Vec<u8>, Json<serde_json::Value>)> = sqlx::query_as(
            "SELECT method, fingerprint, response FROM request_ids \
             WHERE tenant_id = $1 AND request_id = $2",
        )
        .bind(tenant)
        .bind(request_id)
        .fetch_optional(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(found.map(|(stored_method, stored_fingerprint, response)| {
            if stored_method == method && stored_fingerprint == fingerprint {
                Claim::Replay(response.0)
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
        let claims: Vec<serde_json::Value> = requests
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.request_id,
                    "method": r.method,
                    "fingerprint": hex(&r.fingerprint),
                })
            })
            .collect();
        let claimed: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, response, \
             create_time) \
             SELECT $1, value ->> 'id', value ->> 'method', unhex(value ->> 'fingerprint'), \
             'null', $3 FROM json_each($2) WHERE true \
             ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING request_id",
        )
        .bind(tenant)
        .bind(serde_json::Value::from(claims).to_string())
        .bind(micros(now))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        let claimed: HashSet<String> = claimed.into_iter().map(|(id,)| id).collect();
        let mut claims = Vec::with_capacity(requests.len());
        for request in requests {
            claims.push(if claimed.contains(&request.request_id) {
                Claim::New
            } else {
                self.find_request(
                    tenant,
                    &request.request_id,
                    &request.method,
                    &request.fingerprint,
                )
                .await?
                .unwrap_or(Claim::Reused {
                    method: String::new(),
                })
            });
        }
        Ok(claims)
    }

    async fn release_requests(
        &mut self,
        tenant: &TenantId,
        request_ids: &[String],
    ) -> StoreResult<()> {
        if request_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "DELETE FROM request_ids WHERE tenant_id = $1 \
             AND request_id IN (SELECT value FROM json_each($2))",
        )
        .bind(tenant)
        .bind(json_list(request_ids.iter().map(String::as_str)))
        .execute(self.conn())
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
        .bind(micros(before))
        .bind(limit)
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(purged.rows_affected())
    }
}

/// Bytes as hexadecimal text, which SQLite's `unhex` reads back.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
