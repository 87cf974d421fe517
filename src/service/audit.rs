//! Reading the audit trail.

use super::directory::user_not_found;
use super::{Page, PageRequest, Service};
use crate::auth::Caller;
use crate::domain::{AuditEvent, AuditFilter, E164, Identity};
use crate::error::Result;

impl Service {
    /// Lists audit events, newest first. `user` names a user, who must exist.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        number: Option<&E164>,
        user: Option<&Identity>,
        mut filter: AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let mut tx = self.read().await?;
        if let Some(identity) = user {
            let found = tx
                .find_user(&caller.tenant_id, identity)
                .await?
                .ok_or_else(|| user_not_found(identity))?;
            filter.user_id = Some(found.id);
        }
        filter.phone_number = number.map(E164::canonical);
        let events = tx
            .list_audit(
                &caller.tenant_id,
                &filter,
                page.after.as_deref(),
                page.size + 1,
            )
            .await?;
        Ok(Page::from_overfetch(events, page.size, |e| e.id.clone()))
    }
}
