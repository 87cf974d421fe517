//! Notifications waiting to be delivered, on SQLite.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::FromRow;

use super::{SqliteTx, micros, system_time};
use crate::domain::{Notification, NotificationSettings, TenantId};
use crate::store::{Delivered, Delivery, NotificationRepository, StoreError, StoreResult};

macro_rules! notification_columns {
    () => {
        "tenant_id, id, recipient, subject, body, phone_number, create_time, attempts"
    };
}

#[derive(FromRow)]
struct NotificationRow {
    tenant_id: String,
    id: String,
    recipient: String,
    subject: String,
    body: String,
    phone_number: String,
    create_time: i64,
    attempts: i64,
}

impl From<NotificationRow> for Delivery {
    fn from(row: NotificationRow) -> Self {
        Delivery {
            tenant_id: row.tenant_id,
            notification: Notification {
                id: row.id,
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
impl NotificationRepository for SqliteTx {
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
        .fetch_all(self.conn())
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
             ORDER BY next_attempt_time LIMIT $4) \
             RETURNING ",
            notification_columns!()
        ))
        .bind(owner)
        .bind(micros(now + lease))
        .bind(micros(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.conn())
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
        let finished = sqlx::query(
            "UPDATE notifications SET state = $4, last_error = $5, attempts = attempts + $6, \
             lease_owner = NULL, lease_expires = NULL, \
             next_attempt_time = coalesce($7, next_attempt_time) \
             WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
        )
        .bind(&delivery.tenant_id) // $1
        .bind(&delivery.notification.id) // $2
        .bind(owner) // $3
        .bind(state) // $4
        .bind(error) // $5
        .bind(i64::from(attempted)) // $6
        .bind(next.map(micros)) // $7
        .execute(self.conn())
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
        .bind(micros(before))
        .bind(limit)
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(purged.rows_affected())
    }

    async fn notification_settings(
        &mut self,
        tenant: &TenantId,
    ) -> StoreResult<NotificationSettings> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT verified_email_domains, update_time FROM notification_settings \
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        let Some((domains, updated)) = row else {
            return Ok(NotificationSettings::default());
        };
        Ok(NotificationSettings {
            verified_email_domains: serde_json::from_str(&domains)
                .map_err(|e| StoreError::corrupt("notification settings", e))?,
            update_time: Some(system_time(updated)),
        })
    }

    async fn put_notification_settings(
        &mut self,
        tenant: &TenantId,
        settings: &NotificationSettings,
    ) -> StoreResult<()> {
        let domains = serde_json::to_string(&settings.verified_email_domains)
            .map_err(|e| StoreError::corrupt("notification settings", e))?;
        sqlx::query(
            "INSERT INTO notification_settings (tenant_id, verified_email_domains, update_time) \
             VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE \
             SET verified_email_domains = excluded.verified_email_domains, \
             update_time = excluded.update_time",
        )
        .bind(tenant)
        .bind(domains)
        .bind(settings.update_time.map(micros))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }
}
