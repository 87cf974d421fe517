//! The tenant's configuration: its defaults for what requests leave unsaid.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{AuditAction, MAX_BLOCK_DAYS, TenantConfiguration, TenantId};
use crate::error::{Error, Reason, Result};
use crate::store::Tx;

/// How long a replica keeps a tenant's configuration before it reads it again: an update made
/// through another replica applies here within this time. Reading it costs an assignment one
/// statement more, a sixth of its round trips.
pub(super) const DEFAULTS_KEPT: Duration = Duration::from_secs(5);

/// Tenants whose configuration a replica keeps.
pub(super) const KEPT_CONFIGURATIONS: usize = 10_000;

/// What UpdateTenantConfiguration asks: the fields to change (`None`: as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigurationUpdate {
    /// Emails on assignment.
    pub assignment_email_enabled: Option<bool>,
    /// Emails on unassignment.
    pub unassignment_email_enabled: Option<bool>,
    /// The days of a removal's default block (0 to [`MAX_BLOCK_DAYS`]).
    pub removal_block_days: Option<u16>,
    /// Whether a removal's default block lasts until lifted.
    pub removal_block_forever: Option<bool>,
    /// The configuration's version as the caller last read it.
    pub etag: Option<i64>,
}

impl Service {
    /// The tenant's configuration.
    pub async fn tenant_configuration(&self, caller: &Caller) -> Result<TenantConfiguration> {
        Ok(self
            .read()
            .await?
            .tenant_configuration(&caller.tenant_id)
            .await?)
    }

    /// Updates the fields of the tenant's configuration that `update` names.
    pub async fn update_tenant_configuration(
        &self,
        caller: &Caller,
        update: &ConfigurationUpdate,
        options: &RequestOptions,
    ) -> Result<TenantConfiguration> {
        let actor = Actor::tenant(caller);
        let mut tx = match self
            .begin(&actor, "UpdateTenantConfiguration", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let before = tx.tenant_configuration(&actor.tenant_id).await?;
        if let Some(etag) = update.etag
            && etag != before.version
        {
            return Err(Error::new(
                Reason::EtagMismatch,
                format!(
                    "the tenant configuration changed since it was read (etag {etag}, now {}); \
                     read it again and retry",
                    before.version
                ),
            )
            .with("etag", before.version));
        }
        let after = TenantConfiguration {
            assignment_email_enabled: update
                .assignment_email_enabled
                .unwrap_or(before.assignment_email_enabled),
            unassignment_email_enabled: update
                .unassignment_email_enabled
                .unwrap_or(before.unassignment_email_enabled),
            removal_block_days: update
                .removal_block_days
                .unwrap_or(before.removal_block_days),
            removal_block_forever: update
                .removal_block_forever
                .unwrap_or(before.removal_block_forever),
            version: before.version + 1,
            update_time: Some(self.now()),
        };
        if after.removal_block_days > MAX_BLOCK_DAYS {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                "tenant_configuration.removal_block_days",
                format!("must be 0 to {MAX_BLOCK_DAYS}"),
            ));
        }
        if after.removal_block_forever && after.removal_block_days > 0 {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                "tenant_configuration.removal_block_days",
                "cannot be combined with removal_block_forever: set one of them to 0 or false",
            ));
        }
        tx.put_tenant_configuration(&actor.tenant_id, &after)
            .await?;
        let snapshot = |c: &TenantConfiguration| {
            json!({
                "assignmentEmailEnabled": c.assignment_email_enabled,
                "unassignmentEmailEnabled": c.unassignment_email_enabled,
                "removalBlockDays": c.removal_block_days,
                "removalBlockForever": c.removal_block_forever,
            })
        };
        let changes = crate::store::Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::UpdateTenantConfiguration,
                None,
                None,
                Some(snapshot(&before)),
                Some(snapshot(&after)),
            )],
            ..Default::default()
        };
        tracing::info!(tenant = %actor.tenant_id, version = after.version, "tenant configuration updated");
        let updated = self.finish(tx, &actor, options, changes, after).await?;
        self.configurations.remove(&actor.tenant_id);
        Ok(updated)
    }

    /// The tenant's defaults, read only when a request leaves something to them (`needed`);
    /// otherwise those of a tenant never configured, which nothing will consult. A replica
    /// keeps what it read for [`DEFAULTS_KEPT`] (an update through it is seen at once).
    pub(super) async fn defaults(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        needed: bool,
    ) -> Result<TenantConfiguration> {
        if !needed {
            return Ok(TenantConfiguration::default());
        }
        let now = Instant::now();
        if let Some((read, configuration)) = self.configurations.get(tenant)
            && now.duration_since(read) < DEFAULTS_KEPT
        {
            return Ok(configuration);
        }
        let configuration = tx.tenant_configuration(tenant).await?;
        self.configurations
            .insert(tenant.to_owned(), (now, configuration.clone()));
        Ok(configuration)
    }
}
