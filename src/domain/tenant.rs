//! A tenant's defaults for what a request leaves unsaid (Set-CsPhoneNumberTenantConfiguration):
//! whether users are emailed when a number is assigned to them or removed, and the block a
//! removal puts on its numbers. A request's own choice wins over the default.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Block, block_for};
use crate::error::Result;

/// The most days a removal's default block may last, as a request's own.
pub const MAX_BLOCK_DAYS: u16 = 365;

/// A tenant's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantConfiguration {
    /// Whether a user is emailed when a number is assigned to them (or changed, or transferred
    /// to them), unless the request says.
    pub assignment_email_enabled: bool,
    /// Whether a user is emailed when a number is removed from them (or transferred away),
    /// unless the request says.
    pub unassignment_email_enabled: bool,
    /// Days a removed number is blocked from assignment, unless the request says; 0 for none.
    pub removal_block_days: u16,
    /// Whether a removed number is blocked until the block is lifted, unless the request says.
    pub removal_block_forever: bool,
    /// Increases with every update; the etag (0 before the first).
    pub version: i64,
    /// When it was last updated; `None` if never.
    pub update_time: Option<SystemTime>,
}

impl Default for TenantConfiguration {
    /// A tenant's configuration before any update: emails on, no block (the service's
    /// behaviour before tenants could configure it).
    fn default() -> Self {
        Self {
            assignment_email_enabled: true,
            unassignment_email_enabled: true,
            removal_block_days: 0,
            removal_block_forever: false,
            version: 0,
            update_time: None,
        }
    }
}

impl TenantConfiguration {
    /// The block a removal that names none puts on its numbers, from `now`.
    pub fn removal_block(&self, now: SystemTime) -> Result<Block> {
        block_for(
            i32::from(self.removal_block_days),
            self.removal_block_forever,
            now,
        )
    }
}
