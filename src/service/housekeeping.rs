//! Housekeeping: request ids (AIP-155), finished operations with their provisioning jobs, and
//! emails that are done with are kept for their retention ([`WorkerSettings`]), then deleted
//! oldest first in small batches, so no table grows for ever and no purge holds the database
//! for long. Every replica runs it; deleting a row twice is harmless. Audit events are kept.

use std::future::Future;
use std::time::Duration;

use super::Service;
use crate::error::Result;
use crate::service::WorkerSettings;

/// Rows deleted per transaction, so no purge holds the database for long.
const PURGE_BATCH: i64 = 1000;

/// How often to purge: a quarter of the retention, at most every ten minutes and at least every
/// 100 ms.
fn purge_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(600))
}

impl Service {
    /// Purges what has outlived its retention now and then until `shutdown` completes.
    pub async fn run_housekeeping(
        &self,
        settings: &WorkerSettings,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let shortest = settings
            .request_id_retention
            .min(settings.operation_retention)
            .min(settings.notification_retention);
        let every = purge_interval(shortest);
        loop {
            for (what, purged) in [
                (
                    "expired request ids",
                    self.purge(Purge::RequestIds, settings.request_id_retention)
                        .await,
                ),
                (
                    "finished operations",
                    self.purge(Purge::Operations, settings.operation_retention)
                        .await,
                ),
                (
                    "delivered emails",
                    self.purge(Purge::Notifications, settings.notification_retention)
                        .await,
                ),
            ] {
                match purged {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "{what} deleted"),
                    Err(error) => tracing::warn!(%error, "could not delete {what}"),
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Deletes the request ids older than `retention`, answering how many.
    pub async fn purge_request_ids(&self, retention: Duration) -> Result<u64> {
        self.purge(Purge::RequestIds, retention).await
    }

    /// Deletes the `what` older than `retention`, in batches, answering how many.
    async fn purge(&self, what: Purge, retention: Duration) -> Result<u64> {
        let Some(before) = self.now().checked_sub(retention) else {
            return Ok(0);
        };
        let mut purged = 0;
        loop {
            let mut tx = self.store.write().await?;
            let batch = match what {
                Purge::RequestIds => tx.purge_requests(before, PURGE_BATCH).await?,
                Purge::Operations => tx.purge_operations(before, PURGE_BATCH).await?,
                Purge::Notifications => tx.purge_notifications(before, PURGE_BATCH).await?,
            };
            tx.commit().await?;
            purged += batch;
            if batch < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
}

/// What a purge deletes.
#[derive(Clone, Copy, Debug)]
enum Purge {
    RequestIds,
    Operations,
    Notifications,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_often_enough_and_not_too_often() {
        assert_eq!(
            purge_interval(Duration::from_secs(24 * 3600)),
            Duration::from_secs(600)
        );
        assert_eq!(
            purge_interval(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(purge_interval(Duration::ZERO), Duration::from_millis(100));
    }
}
