//! The audit trail.

use sqlx::FromRow;

use super::sql::Sql;
use super::{StoreError, StoreResult, Tx, from_micros, to_micros};
use crate::domain::{AuditEvent, AuditFilter};

#[derive(FromRow)]
struct AuditRow {
    id: String,
    time: i64,
    actor: String,
    action: String,
    phone_number: Option<String>,
    user_id: Option<String>,
    request_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> StoreResult<Self> {
        let corrupt = |e: String| StoreError::Corrupt(format!("audit event {}: {e}", row.id));
        let json = |text: Option<String>| {
            text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(e.to_string())))
                .transpose()
        };
        Ok(AuditEvent {
            action: row
                .action
                .parse()
                .map_err(|e: numbers_provider::ParseEnumError| corrupt(e.to_string()))?,
            before: json(row.before)?,
            after: json(row.after)?,
            id: row.id,
            time: from_micros(row.time),
            actor: row.actor,
            phone_number: row.phone_number,
            user_id: row.user_id,
            request_id: row.request_id,
        })
    }
}

impl Tx {
    /// Records an event.
    pub async fn insert_audit(&mut self, tenant: &str, event: &AuditEvent) -> StoreResult<()> {
        let mut sql = Sql::new(
            "INSERT INTO audit_events (tenant_id, id, time, actor, action, phone_number, \
             user_id, request_id, before, after) VALUES (",
        );
        sql.bind(tenant.to_owned())
            .push(", ")
            .bind(event.id.clone())
            .push(", ")
            .bind(to_micros(event.time))
            .push(", ")
            .bind(event.actor.clone())
            .push(", ")
            .bind(event.action.as_str().to_owned())
            .push(", ")
            .bind(event.phone_number.clone())
            .push(", ")
            .bind(event.user_id.clone())
            .push(", ")
            .bind(event.request_id.clone())
            .push(", ")
            .bind(event.before.as_ref().map(ToString::to_string))
            .push(", ")
            .bind(event.after.as_ref().map(ToString::to_string))
            .push(")");
        sql.execute(&mut self.conn).await?;
        Ok(())
    }

    /// Lists events matching `filter`, newest first, before the event id `before`.
    pub async fn list_audit(
        &mut self,
        tenant: &str,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut sql = Sql::new(
            "SELECT id, time, actor, action, phone_number, user_id, request_id, before, after \
             FROM audit_events WHERE tenant_id = ",
        );
        sql.bind(tenant.to_owned())
            .and_eq("phone_number", filter.phone_number.clone())
            .and_eq("user_id", filter.user_id.clone());
        if let Some(start) = filter.start {
            sql.push(" AND time >= ").bind(to_micros(start));
        }
        if let Some(end) = filter.end {
            sql.push(" AND time < ").bind(to_micros(end));
        }
        if let Some(before) = before {
            sql.push(" AND id < ").bind(before.to_owned());
        }
        sql.push(" ORDER BY id DESC LIMIT ").bind(limit as i64);
        let rows: Vec<AuditRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
