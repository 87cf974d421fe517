//! Notifications waiting to be delivered.

use super::sql::Sql;
use super::{StoreResult, Tx, to_micros};
use crate::domain::Notification;

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

    /// The notifications queued for a tenant, oldest first (for inspection and tests).
    pub async fn pending_notifications(&mut self, tenant: &str) -> StoreResult<Vec<Notification>> {
        let mut sql = Sql::new(
            "SELECT id, recipient, subject, body, phone_number, create_time FROM notifications \
             WHERE tenant_id = ",
        );
        sql.bind(tenant.to_owned())
            .push(" AND state = 'PENDING' ORDER BY id");
        let rows: Vec<(String, String, String, String, String, i64)> =
            sql.fetch_all(&mut self.conn).await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, recipient, subject, body, phone_number, create_time)| Notification {
                    id,
                    recipient,
                    subject,
                    body,
                    phone_number,
                    create_time: super::from_micros(create_time),
                },
            )
            .collect())
    }
}
