//! The audit trail on PostgreSQL.

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::{PgTx, system_time, timestamp, uuid};
use crate::domain::{AuditEvent, AuditFilter, TenantId};
use crate::store::{AuditRepository, StoreError, StoreResult};

#[derive(FromRow)]
struct AuditRow {
    id: uuid::Uuid,
    time: OffsetDateTime,
    actor: String,
    action: String,
    phone_number: Option<String>,
    user_id: Option<String>,
    request_id: Option<String>,
    before: Option<Json<serde_json::Value>>,
    after: Option<Json<serde_json::Value>>,
}

/// An event with its position in the tenant's commit order.
#[derive(FromRow)]
struct SequencedRow {
    seq: i64,
    #[sqlx(flatten)]
    event: AuditRow,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> StoreResult<Self> {
        Ok(AuditEvent {
            action: row
                .action
                .parse()
                .map_err(|e| StoreError::corrupt(format!("audit event {}", row.id), e))?,
            id: row.id.to_string(),
            time: system_time(row.time),
            actor: row.actor,
            phone_number: row.phone_number,
            user_id: row.user_id,
            request_id: row.request_id,
            before: row.before.map(|json| json.0),
            after: row.after.map(|json| json.0),
        })
    }
}

#[async_trait]
impl AuditRepository for PgTx {
    async fn list_audit(
        &mut self,
        tenant: &TenantId,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT id, time, actor, action, phone_number, user_id, request_id, before, after \
             FROM audit_events WHERE tenant_id = ",
        );
        sql.push_bind(tenant);
        if let Some(number) = &filter.phone_number {
            sql.push(" AND phone_number = ").push_bind(number);
        }
        if let Some(user) = &filter.user_id {
            sql.push(" AND user_id = ").push_bind(user);
        }
        if let Some(start) = filter.start {
            sql.push(" AND time >= ").push_bind(timestamp(start));
        }
        if let Some(end) = filter.end {
            sql.push(" AND time < ").push_bind(timestamp(end));
        }
        if let Some(before) = before {
            let Some(before) = uuid(before) else {
                return Ok(Vec::new());
            };
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<AuditRow> = sql
            .build_query_as()
            .fetch_all(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
    async fn change_cursor(&mut self, tenant: &TenantId) -> StoreResult<i64> {
        // The tenant's gate, taken for the statement: every change of the tenant holding a
        // position has committed (or rolled back) once it is granted.
        let last: i64 = sqlx::query_scalar(
            "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END \
             FROM change_positions) \
             FROM (SELECT pg_advisory_xact_lock(7301, hashtext($1))) AS gate",
        )
        .bind(tenant)
        .fetch_one(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(last)
    }

    async fn changes_after(
        &mut self,
        tenant: &TenantId,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, AuditEvent)>> {
        // Up to what every change has settled, then read in a statement of its own, whose
        // snapshot comes after the gate.
        let settled = self.change_cursor(tenant).await?;
        let rows: Vec<SequencedRow> = sqlx::query_as(
            "SELECT seq, id, time, actor, action, phone_number, user_id, request_id, before, \
             after FROM audit_events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(tenant)
        .bind(after)
        .bind(settled)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|row| Ok((row.seq, row.event.try_into()?)))
            .collect()
    }
}
