//! Operator consents on PostgreSQL.

use async_trait::async_trait;

use super::{PgTx, timestamp};
use crate::domain::{Country, OperatorConsent, TenantId};
use crate::store::{ConsentRepository, StoreError, StoreResult};

#[async_trait]
impl ConsentRepository for PgTx {
    async fn consents(&mut self, tenant: &TenantId) -> StoreResult<Vec<OperatorConsent>> {
        let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
            "SELECT operator_id, countries FROM operator_consents WHERE tenant_id = $1 \
             ORDER BY operator_id",
        )
        .bind(tenant)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|(operator_id, countries)| {
                let countries = countries
                    .iter()
                    .map(|c| Country::parse(c))
                    .collect::<Result<_, _>>()
                    .map_err(|e| StoreError::corrupt(format!("consent to {operator_id}"), e))?;
                Ok(OperatorConsent {
                    operator_id,
                    countries,
                })
            })
            .collect()
    }

    async fn put_consent(
        &mut self,
        tenant: &TenantId,
        consent: &OperatorConsent,
        now: std::time::SystemTime,
    ) -> StoreResult<()> {
        let countries: Vec<&str> = consent.countries.iter().map(Country::as_str).collect();
        sqlx::query(
            "INSERT INTO operator_consents (tenant_id, operator_id, countries, create_time) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, operator_id) DO UPDATE SET countries = excluded.countries",
        )
        .bind(tenant)
        .bind(&consent.operator_id)
        .bind(countries)
        .bind(timestamp(now))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn delete_consent(&mut self, tenant: &TenantId, operator_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM operator_consents WHERE tenant_id = $1 AND operator_id = $2")
            .bind(tenant)
            .bind(operator_id)
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }
}
