//! Blocks from assignment as their own resource (Set- and Remove-CsPhoneNumberAssignmentBlock):
//! set on an unassigned number, lifted whatever set them.

use super::inventory::number_not_found;
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, Block, E164, PhoneNumber, block_for, check_blockable, check_etag, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::store::{Changes, Tx};

/// What SetAssignmentBlock asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRequest {
    /// The number.
    pub number: E164,
    /// Days to block it for (1 to 365), or 0 with `forever`.
    pub days: i32,
    /// Whether to block it until the block is lifted.
    pub forever: bool,
    /// The number's version as the caller last read it.
    pub etag: Option<i64>,
}

impl Service {
    /// Blocks an unassigned number from assignment.
    pub async fn set_block(
        &self,
        caller: &Caller,
        request: &BlockRequest,
        options: &RequestOptions,
    ) -> Result<PhoneNumber> {
        let now = self.now();
        let block = match block_for(request.days, request.forever, now)? {
            Block::None => {
                return Err(Error::invalid_field(
                    Reason::InvalidArgument,
                    "block_days",
                    "is required: give 1 to 365 days, or set block_forever",
                ));
            }
            block => block,
        };
        let actor = Actor::tenant(caller);
        let mut tx = match self.begin(&actor, "SetAssignmentBlock", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let number = lock_number(&mut tx, &actor, &request.number, request.etag).await?;
        check_blockable(&number, now)?;
        let blocked = PhoneNumber {
            block,
            ..number.clone()
        }
        .changed(now);
        let changes = self.block_changes(
            &actor,
            options,
            AuditAction::SetAssignmentBlock,
            &number,
            &blocked,
        );
        tracing::info!(tenant = %actor.tenant_id, number = %blocked.number, "number blocked");
        self.finish(tx, &actor, options, changes, blocked).await
    }

    /// Lifts a number's block from assignment; a number not blocked is answered as it is.
    pub async fn remove_block(
        &self,
        caller: &Caller,
        number: &E164,
        etag: Option<i64>,
        options: &RequestOptions,
    ) -> Result<PhoneNumber> {
        let now = self.now();
        let actor = Actor::tenant(caller);
        let mut tx = match self.begin(&actor, "RemoveAssignmentBlock", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let number = lock_number(&mut tx, &actor, number, etag).await?;
        if number.block.at(now) == Block::None {
            return self
                .finish(tx, &actor, options, Changes::default(), number)
                .await;
        }
        let lifted = PhoneNumber {
            block: Block::None,
            ..number.clone()
        }
        .changed(now);
        let changes = self.block_changes(
            &actor,
            options,
            AuditAction::RemoveAssignmentBlock,
            &number,
            &lifted,
        );
        tracing::info!(tenant = %actor.tenant_id, number = %lifted.number, "number's block lifted");
        self.finish(tx, &actor, options, changes, lifted).await
    }

    /// The number as it will be, with its audit event.
    fn block_changes(
        &self,
        actor: &Actor,
        options: &RequestOptions,
        action: AuditAction,
        before: &PhoneNumber,
        after: &PhoneNumber,
    ) -> Changes {
        Changes {
            audit: vec![self.audit(
                actor,
                options,
                action,
                Some(after.number.canonical()),
                None,
                Some(number_snapshot(before)),
                Some(number_snapshot(after)),
            )],
            numbers: vec![after.clone()],
            ..Changes::default()
        }
    }
}

/// Locks the number, which must be in the tenant's inventory, and checks the caller's etag.
async fn lock_number(
    tx: &mut Tx,
    actor: &Actor,
    number: &E164,
    etag: Option<i64>,
) -> Result<PhoneNumber> {
    let found = tx
        .lock_numbers(&actor.tenant_id, &[number.canonical()])
        .await?
        .pop()
        .ok_or_else(|| number_not_found(number))?;
    check_etag(&found, etag)?;
    Ok(found)
}
