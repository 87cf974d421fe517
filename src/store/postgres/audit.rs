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

impl PgTx {
    /// Records events, in one statement.
    pub(super) async fn insert_audit(
        &mut self,
        tenant: &TenantId,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let ids = events
            .iter()
            .map(|e| uuid(&e.id).ok_or_else(|| StoreError::corrupt("audit event", "not a UUID")))
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, id, time, actor, action, phone_number, \
             user_id, request_id, before, after) \
             SELECT $1, e.* FROM unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[]) AS e",
        )
        .bind(tenant) // $1
        .bind(ids) // $2
        .bind(events.iter().map(|e| timestamp(e.time)).collect::<Vec<_>>()) // $3
        .bind(events.iter().map(|e| &e.actor).collect::<Vec<_>>()) // $4
        .bind(events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>()) // $5
        .bind(
            events
                .iter()
                .map(|e| e.phone_number.as_deref())
                .collect::<Vec<_>>(),
        ) // $6
        .bind(
            events
                .iter()
                .map(|e| e.user_id.as_deref())
                .collect::<Vec<_>>(),
        ) // $7
        .bind(
            events
                .iter()
                .map(|e| e.request_id.as_deref())
                .collect::<Vec<_>>(),
        ) // $8
        .bind(
            events
                .iter()
                .map(|e| e.before.as_ref().map(Json))
                .collect::<Vec<_>>(),
        ) // $9
        .bind(
            events
                .iter()
                .map(|e| e.after.as_ref().map(Json))
                .collect::<Vec<_>>(),
        ) // $10
        .execute(self.conn())
        .await?;
        Ok(())
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
        let rows: Vec<AuditRow> = sql.build_query_as().fetch_all(self.conn()).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
