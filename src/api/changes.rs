//! `WatchChanges`: the service's chunks of changes as a stream of messages, after a first one
//! that says where the stream starts.

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use tonic::Status;

use super::convert;
use crate::error::{Error, Reason, Result};
use crate::proto::v1 as pb;
use crate::service::ChangeChunk;

/// The stream WatchChanges answers with.
pub(crate) type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchChangesResponse, Status>> + Send>>;

/// The prefix of a resume token: the version of its format.
const TOKEN_PREFIX: &str = "c1.";

/// The position a resume token names; none for an empty token.
pub(crate) fn resume_position(token: &str) -> Result<Option<i64>> {
    let token = token.trim();
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|position| position.parse::<i64>().ok())
        .filter(|position| *position >= 0)
        .map(Some)
        .ok_or_else(|| {
            Error::invalid_field(
                Reason::InvalidArgument,
                "resume_token",
                "is not a resume token of WatchChanges; send back one it sent",
            )
        })
}

fn token(position: i64) -> String {
    format!("{TOKEN_PREFIX}{position}")
}

/// The messages of a change stream of `tenant_id` that starts at `start`.
pub(crate) fn messages(
    tenant_id: String,
    start: i64,
    chunks: impl Stream<Item = Result<ChangeChunk>> + Send + 'static,
) -> ChangeStream {
    let first = futures::stream::once(async move {
        Ok(pb::WatchChangesResponse {
            changes: Vec::new(),
            resume_token: token(start),
        })
    });
    let rest = chunks.map(move |chunk| {
        let changes: Vec<pb::Change> = chunk
            .map_err(Status::from)?
            .into_iter()
            .map(|(position, event)| pb::Change {
                event: Some(convert::audit_event(event, &tenant_id)),
                resume_token: token(position),
            })
            .collect();
        Ok(pb::WatchChangesResponse {
            resume_token: changes
                .last()
                .map(|c| c.resume_token.clone())
                .unwrap_or_default(),
            changes,
        })
    });
    Box::pin(first.chain(rest))
}
