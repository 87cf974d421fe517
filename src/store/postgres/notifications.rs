//! Notifications waiting to be delivered, on PostgreSQL.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::FromRow;
use time::OffsetDateTime;

use super::{EVERY_TENANT, PgTx, system_time, timestamp, uuid};
use crate::domain::{Notification, NotificationSettings, TenantId};
use crate::store::{Delivered, Delivery, NotificationRepository, StoreResult};

macro_rules! notification_columns {
    () => {
        "tenant_id, id, recipient, subject, body, phone_number, create_time, attempts"
    };
}

#[derive(FromRow)]
struct NotificationRow {
    tenant_id: String,
    id: uuid::Uuid,
    recipient: String,
    subject: String,
    body: String,
    phone_number: String,
    create_time: OffsetDateTime,
    attempts: i64,
}

impl From<NotificationRow> for Delivery {
    fn from(row: NotificationRow) -> Self {
        Delivery {
            tenant_id: row.tenant_id,
            notification: Notification {
                id: row.id.to_string(),
                recipient: row.recipient,
                subject: row.subject,
                body: row.body,
                phone_number: row.phone_number,
                create_time: system_time(row.create_time),
            },
            attempts: row.attempts,
        }
    }
}

#[async_trait]
impl NotificationRepository for PgTx {
    async fn notifications(
        &mut self,
        tenant: &TenantId,
        pending_only: bool,
    ) -> StoreResult<Vec<Notification>> {
        let rows: Vec<NotificationRow> = sqlx::query_as(concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications WHERE tenant_id = $1 AND (state = 'PENDING' OR NOT $2) \
             ORDER BY id"
        ))
        .bind(tenant)
        .bind(pending_only)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .map(|row| Delivery::from(row).notification)
            .collect())
    }

    async fn claim_notifications(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let rows: Vec<NotificationRow> = sqlx::query_as(concat!(
            "UPDATE notifications SET lease_owner = $1, lease_expires = $2 \
             WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM notifications \
             WHERE state = 'PENDING' AND next_attempt_time <= $3 \
             AND (lease_expires IS NULL OR lease_expires <= $3) \
             ORDER BY next_attempt_time LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING ",
            notification_columns!()
        ))
        .bind(owner)
        .bind(timestamp(now + lease))
        .bind(timestamp(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.scoped(EVERY_TENANT).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    async fn finish_delivery(
        &mut self,
        delivery: &Delivery,
        owner: &str,
        outcome: &Delivered<'_>,
    ) -> StoreResult<bool> {
        let (state, error, attempted, next) = outcome.record();
        let Some(id) = uuid(&delivery.notification.id) else {
            return Ok(false);
        };
        let finished = sqlx::query(
            "UPDATE notifications SET state = $4, last_error = $5, attempts = attempts + $6, \
             lease_owner = NULL, lease_expires = NULL, \
             next_attempt_time = coalesce($7, next_attempt_time) \
             WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
        )
        .bind(&delivery.tenant_id) // $1
        .bind(id) // $2
        .bind(owner) // $3
        .bind(state) // $4
        .bind(error) // $5
        .bind(i64::from(attempted)) // $6
        .bind(next.map(timestamp)) // $7
        .execute(self.scoped(&delivery.tenant_id).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(finished.rows_affected() == 1)
    }

    async fn purge_notifications(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64> {
        let purged = sqlx::query(
            "DELETE FROM notifications WHERE (tenant_id, id) IN (\
             SELECT tenant_id, id FROM notifications WHERE state <> 'PENDING' \
             AND create_time < $1 ORDER BY create_time LIMIT $2)",
        )
        .bind(timestamp(before))
        .bind(limit)
        .execute(self.scoped(EVERY_TENANT).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(purged.rows_affected())
    }

    async fn notification_settings(
        &mut self,
        tenant: &TenantId,
    ) -> StoreResult<NotificationSettings> {
        let row: Option<(Vec<String>, OffsetDateTime)> = sqlx::query_as(
            "SELECT verified_email_domains, update_time FROM notification_settings \
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(
            row.map_or_else(NotificationSettings::default, |(domains, updated)| {
                NotificationSettings {
                    verified_email_domains: domains,
                    update_time: Some(system_time(updated)),
                }
            }),
        )
    }

    async fn put_notification_settings(
        &mut self,
        tenant: &TenantId,
        settings: &NotificationSettings,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_settings (tenant_id, verified_email_domains, update_time) \
             VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE \
             SET verified_email_domains = excluded.verified_email_domains, \
             update_time = excluded.update_time",
        )
        .bind(tenant)
        .bind(&settings.verified_email_domains)
        .bind(settings.update_time.map(timestamp))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }
}
