//! Request ids (AIP-155): the record that makes a retried mutation return its first answer.
//!
//! A mutation claims its request id first thing in its transaction. On PostgreSQL a concurrent
//! duplicate blocks on the primary key until the first commits, then finds the stored answer;
//! on SQLite writers are serialised anyway. The answer is stored in the same transaction as the
//! change, so either both exist or neither does.

use std::time::SystemTime;

use super::sql::Sql;
use super::{StoreResult, Tx, to_micros};

/// What claiming a request id found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The id is new: go ahead, then [`Tx::save_response`].
    New,
    /// The same request ran before; here is its answer.
    Replay(String),
    /// The id was used for a different request (or another method).
    Reused {
        /// The method that used it.
        method: String,
    },
}

impl Tx {
    /// Claims `request_id` for a request of `method` whose content is `fingerprint`.
    pub async fn claim_request(
        &mut self,
        tenant: &str,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
        now: SystemTime,
    ) -> StoreResult<Claim> {
        let mut insert = Sql::new(
            "INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, response, \
             create_time) VALUES (",
        );
        insert
            .bind(tenant.to_owned())
            .push(", ")
            .bind(request_id.to_owned())
            .push(", ")
            .bind(method.to_owned())
            .push(", ")
            .bind(fingerprint.to_vec())
            .push(", '', ")
            .bind(to_micros(now))
            .push(") ON CONFLICT (tenant_id, request_id) DO NOTHING");
        if insert.execute(&mut self.conn).await? == 1 {
            return Ok(Claim::New);
        }

        // The id exists: claimed by a committed transaction (or, on PostgreSQL, by one that
        // committed while this insert waited on the key).
        Ok(self
            .find_request(tenant, request_id, method, fingerprint)
            .await?
            .unwrap_or(Claim::Reused {
                method: String::new(),
            }))
    }

    /// Looks a request id up without claiming it: what a retry would find.
    pub async fn find_request(
        &mut self,
        tenant: &str,
        request_id: &str,
        method: &str,
        fingerprint: &[u8],
    ) -> StoreResult<Option<Claim>> {
        let mut select =
            Sql::new("SELECT method, fingerprint, response FROM request_ids WHERE tenant_id = ");
        select
            .bind(tenant.to_owned())
            .and_eq("request_id", Some(request_id.to_owned()));
        let found: Option<(String, Vec<u8>, String)> =
            select.fetch_optional(&mut self.conn).await?;
        Ok(found.map(|(stored_method, stored_fingerprint, response)| {
            if stored_method == method && stored_fingerprint == fingerprint {
                Claim::Replay(response)
            } else {
                Claim::Reused {
                    method: stored_method,
                }
            }
        }))
    }

    /// Deletes up to `limit` request ids created before `before`, answering how many: after
    /// that a retry runs again, and the id may be used for another request.
    pub async fn purge_requests(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64> {
        let mut sql = Sql::new(
            "DELETE FROM request_ids WHERE (tenant_id, request_id) IN \
             (SELECT tenant_id, request_id FROM request_ids WHERE create_time < ",
        );
        sql.bind(to_micros(before))
            .push(" ORDER BY create_time LIMIT ")
            .bind(limit)
            .push(")");
        sql.execute(&mut self.conn).await
    }

    /// Stores the answer to a claimed request id.
    pub async fn save_response(
        &mut self,
        tenant: &str,
        request_id: &str,
        response: &str,
    ) -> StoreResult<()> {
        let mut sql = Sql::new("UPDATE request_ids SET response = ");
        sql.bind(response.to_owned())
            .push(" WHERE tenant_id = ")
            .bind(tenant.to_owned())
            .and_eq("request_id", Some(request_id.to_owned()));
        sql.execute(&mut self.conn).await?;
        Ok(())
    }
}
