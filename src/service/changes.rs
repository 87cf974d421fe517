//! WatchChanges: the tenant's changes, as the audit events each change's transaction wrote, in
//! the order of their positions (each record's changes in the order they committed), from a
//! position or from now, for as long as the client listens.

use std::time::Duration;

use futures::SinkExt as _;
use futures::channel::mpsc;

use super::Service;
use crate::auth::Caller;
use crate::domain::AuditEvent;
use crate::error::{Error, Result};

/// Events read, and sent, at a time.
const WATCH_CHUNK: usize = 1000;
/// How often a stream with nothing new looks again.
const WATCH_POLL: Duration = Duration::from_millis(100);

/// A chunk of changes, each with its position in the tenant's commit order.
pub type ChangeChunk = Vec<(i64, AuditEvent)>;

impl Service {
    /// Starts following the tenant's changes after the position `after`, or after its latest
    /// committed change when `None`; answers where the stream starts and its chunks, which
    /// arrive as changes commit until the receiver is dropped or the server shuts down. An
    /// error ends the stream.
    pub async fn watch_changes(
        &self,
        caller: &Caller,
        after: Option<i64>,
    ) -> Result<(i64, mpsc::Receiver<Result<ChangeChunk>>)> {
        let tenant = caller.tenant_id.clone();
        let start = match after {
            Some(position) => position,
            None => self.read().await?.change_cursor(&tenant).await?,
        };
        let (mut chunks, received) = mpsc::channel(1);
        let service = self.clone();
        let mut closing = self.streams_closing.subscribe();
        tokio::spawn(async move {
            let mut cursor = start;
            loop {
                if chunks.is_closed() || *closing.borrow() {
                    break;
                }
                let read = async {
                    let mut tx = service.read().await?;
                    Ok::<_, Error>(tx.changes_after(&tenant, cursor, WATCH_CHUNK).await?)
                };
                match read.await {
                    Ok(changes) if changes.is_empty() => {
                        tokio::select! {
                            () = tokio::time::sleep(WATCH_POLL) => {}
                            _ = closing.changed() => break,
                        }
                    }
                    Ok(changes) => {
                        cursor = changes.last().map_or(cursor, |(position, _)| *position);
                        if chunks.send(Ok(changes)).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        let _ = chunks.send(Err(error)).await;
                        break;
                    }
                }
            }
        });
        Ok((start, received))
    }

    /// Ends every change stream, for the server to shut down.
    pub fn close_streams(&self) {
        self.streams_closing.send_replace(true);
    }
}
