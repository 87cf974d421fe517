//! Tenant configurations on SQLite.

use async_trait::async_trait;

use super::{SqliteTx, micros, system_time};
use crate::domain::{TenantConfiguration, TenantId};
use crate::store::{ConfigurationRepository, StoreError, StoreResult};

#[async_trait]
impl ConfigurationRepository for SqliteTx {
    async fn tenant_configuration(
        &mut self,
        tenant: &TenantId,
    ) -> StoreResult<TenantConfiguration> {
        let row: Option<(bool, bool, i64, bool, i64, i64)> = sqlx::query_as(
            "SELECT assignment_email_enabled, unassignment_email_enabled, removal_block_days, \
             removal_block_forever, version, update_time \
             FROM tenant_configurations WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        let Some((assignment, unassignment, days, forever, version, updated)) = row else {
            return Ok(TenantConfiguration::default());
        };
        Ok(TenantConfiguration {
            assignment_email_enabled: assignment,
            unassignment_email_enabled: unassignment,
            removal_block_days: u16::try_from(days)
                .map_err(|e| StoreError::corrupt("tenant configuration", e))?,
            removal_block_forever: forever,
            version,
            update_time: Some(system_time(updated)),
        })
    }

    async fn put_tenant_configuration(
        &mut self,
        tenant: &TenantId,
        configuration: &TenantConfiguration,
    ) -> StoreResult<()> {
        let written = sqlx::query(
            "INSERT INTO tenant_configurations (tenant_id, assignment_email_enabled, \
             unassignment_email_enabled, removal_block_days, removal_block_forever, version, \
             update_time) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET \
             assignment_email_enabled = excluded.assignment_email_enabled, \
             unassignment_email_enabled = excluded.unassignment_email_enabled, \
             removal_block_days = excluded.removal_block_days, \
             removal_block_forever = excluded.removal_block_forever, \
             version = excluded.version, update_time = excluded.update_time \
             WHERE tenant_configurations.version = excluded.version - 1",
        )
        .bind(tenant)
        .bind(configuration.assignment_email_enabled)
        .bind(configuration.unassignment_email_enabled)
        .bind(i64::from(configuration.removal_block_days))
        .bind(configuration.removal_block_forever)
        .bind(configuration.version)
        .bind(configuration.update_time.map(micros))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        if written.rows_affected() == 0 {
            return Err(StoreError::Stale(format!(
                "the configuration of tenant {tenant}"
            )));
        }
        Ok(())
    }
}
