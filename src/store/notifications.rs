//! Notifications waiting to be delivered.

use sqlx::FromRow;

use super::sql::Sql;
use super::{StoreResult, Tx, to_micros};
use crate::domain::Notification;

const NOTIFICATION_COLUMNS: &str =
    "tenant_id, id, recipient, subject, body, phone_number, create_time, attempts";

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

impl NotificationRow {
    fn into_delivery(self) -> Delivery {
        Delivery {
            tenant_id: self.tenant_id,
            notification: Notification {
                id: self.id,
                recipient: self.recipient,
                subject: self.subject,
                body: self.body,
                phone_number: self.phone_number,
                create_time: super::from_micros(self.create_time),
            },
            attempts: self.attempts,
        }
    }
}

impl Tx {
    /// Queues a notification for delivery.
    pub async fn insert_notification(
        &mut self,
        tenant: &str,
        notification: &Notification,
    ) -> StoreResult<()> {
        let mut sql = Sql::new(
            "INSERT INTO notifications (tenant_id, id, recipient, subject, body, phone_number, \
             create_time, next_attempt_time) VALUES (",
        );
        sql.bind(tenant.to_owned())
            .push(", ")
            .bind(notification.id.clone())
            .push(", ")
            .bind(notification.recipient.clone())
            .push(", ")
            .bind(notification.subject.clone())
            .push(", ")
            .bind(notification.body.clone())
            .push(", ")
            .bind(notification.phone_number.clone())
            .push(", ")
            .bind(to_micros(notification.create_time))
            .push(", ")
            .bind(to_micros(notification.create_time))
            .push(")");
        sql.execute(&mut self.conn).await?;
        Ok(())
    }

    /// The notifications still waiting to be delivered, oldest first.
    pub async fn pending_notifications(&mut self, tenant: &str) -> StoreResult<Vec<Notification>> {
        self.notifications_in(tenant, Some("PENDING")).await
    }

    /// Every notification ever queued for a tenant, delivered or not, oldest first.
    pub async fn notifications(&mut self, tenant: &str) -> StoreResult<Vec<Notification>> {
        self.notifications_in(tenant, None).await
    }

    async fn notifications_in(
        &mut self,
        tenant: &str,
        state: Option<&str>,
    ) -> StoreResult<Vec<Notification>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("state", state.map(str::to_owned))
            .push(" ORDER BY id");
        let rows: Vec<NotificationRow> = sql.fetch_all(&mut self.conn).await?;
        Ok(rows
            .into_iter()
            .map(|row| row.into_delivery().notification)
            .collect())
    }
}

/// A notification claimed for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// The email.
    pub notification: Notification,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl Tx {
    /// Claims up to `limit` due notifications for `owner` until `now + lease`.
    pub async fn claim_notifications(
        &mut self,
        owner: &str,
        now: std::time::SystemTime,
        lease: std::time::Duration,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let now_micros = to_micros(now);
        let mut sql = Sql::new("UPDATE notifications SET lease_owner = ");
        sql.bind(owner.to_owned())
            .push(", lease_expires = ")
            .bind(to_micros(now + lease))
            .push(
                " WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM notifications \
                 WHERE state = 'PENDING' AND next_attempt_time <= ",
            )
            .bind(now_micros)
            .push(" AND (lease_expires IS NULL OR lease_expires <= ")
            .bind(now_micros)
            .push(") ORDER BY next_attempt_time LIMIT ")
            .bind(limit as i64)
            .push(self.dialect.skip_locked())
            .push(&format!(") RETURNING {NOTIFICATION_COLUMNS}"));
        let rows: Vec<NotificationRow> = sql.fetch_all(&mut self.conn).await?;
        Ok(rows
            .into_iter()
            .map(NotificationRow::into_delivery)
            .collect())
    }

    /// Records a delivery attempt of a claimed notification: `Ok(())` sent, `Err` failed with
    /// the next attempt at `retry_at` (or for good when `None`). Releases the lease.
    pub async fn finish_delivery(
        &mut self,
        delivery: &Delivery,
        owner: &str,
        result: Result<(), (&str, Option<std::time::SystemTime>)>,
    ) -> StoreResult<bool> {
        let (state, error, next) = match result {
            Ok(()) => ("SENT", None, None),
            Err((error, Some(at))) => ("PENDING", Some(error.to_owned()), Some(to_micros(at))),
            Err((error, None)) => ("FAILED", Some(error.to_owned()), None),
        };
        let mut sql = Sql::new("UPDATE notifications SET state = ");
        sql.bind(state.to_owned())
            .push(", last_error = ")
            .bind(error)
            .push(", attempts = attempts + 1, lease_owner = NULL, lease_expires = NULL");
        if let Some(next) = next {
            sql.push(", next_attempt_time = ").bind(next);
        }
        sql.push(" WHERE tenant_id = ")
            .bind(delivery.tenant_id.clone())
            .and_eq("id", Some(delivery.notification.id.clone()))
            .and_eq("lease_owner", Some(owner.to_owned()));
        Ok(sql.execute(&mut self.conn).await? == 1)
    }
}
