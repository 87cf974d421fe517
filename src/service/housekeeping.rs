//! Housekeeping: request ids (AIP-155) are kept for `request_id_retention`, then deleted in
//! small batches, so the table does not grow for ever. Every replica runs it; deleting a row
//! twice is harmless.

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
    /// Purges expired request ids now and then until `shutdown` completes.
    pub async fn run_housekeeping(
        &self,
        settings: &WorkerSettings,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let every = purge_interval(settings.request_id_retention);
        loop {
            match self.purge_request_ids(settings.request_id_retention).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "expired request ids deleted"),
                Err(error) => tracing::warn!(%error, "could not delete expired request ids"),
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Deletes the request ids older than `retention`, answering how many.
    pub async fn purge_request_ids(&self, retention: Duration) -> Result<u64> {
        let Some(before) = self.now().checked_sub(retention) else {
            return Ok(0);
        };
        let mut purged = 0;
        loop {
            let mut tx = self.store.write().await?;
            let batch = tx.purge_requests(before, PURGE_BATCH).await?;
            tx.commit().await?;
            purged += batch;
            if batch < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
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
