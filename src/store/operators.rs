//! Operator consents: which Operator Connect operators a tenant has enabled, for which countries.

use std::time::SystemTime;

use super::sql::Sql;
use super::{StoreError, StoreResult, Tx, to_micros};
use crate::domain::{Country, OperatorConsent};

impl Tx {
    /// The tenant's consents, ordered by operator id.
    pub async fn consents(&mut self, tenant: &str) -> StoreResult<Vec<OperatorConsent>> {
        let mut sql =
            Sql::new("SELECT operator_id, countries FROM operator_consents WHERE tenant_id = ");
        sql.bind(tenant.to_owned()).push(" ORDER BY operator_id");
        let rows: Vec<(String, String)> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter()
            .map(|(operator_id, countries)| {
                let countries = countries
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(Country::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| StoreError::Corrupt(format!("consent to {operator_id}: {e}")))?;
                Ok(OperatorConsent {
                    operator_id,
                    countries,
                })
            })
            .collect()
    }

    /// Records (or replaces) the tenant's consent to an operator.
    pub async fn put_consent(
        &mut self,
        tenant: &str,
        consent: &OperatorConsent,
        now: SystemTime,
    ) -> StoreResult<()> {
        let countries = consent
            .countries
            .iter()
            .map(Country::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let mut sql = Sql::new(
            "INSERT INTO operator_consents (tenant_id, operator_id, countries, create_time) VALUES (",
        );
        sql.bind(tenant.to_owned())
            .push(", ")
            .bind(consent.operator_id.clone())
            .push(", ")
            .bind(countries)
            .push(", ")
            .bind(to_micros(now))
            .push(
                ") ON CONFLICT (tenant_id, operator_id) DO UPDATE SET countries = excluded.countries",
            );
        sql.execute(&mut self.conn).await?;
        Ok(())
    }
}

impl Tx {
    /// Withdraws the tenant's consent to an operator.
    pub async fn delete_consent(&mut self, tenant: &str, operator_id: &str) -> StoreResult<()> {
        let mut sql = Sql::new("DELETE FROM operator_consents WHERE tenant_id = ");
        sql.bind(tenant.to_owned())
            .and_eq("operator_id", Some(operator_id.to_owned()));
        sql.execute(&mut self.conn).await?;
        Ok(())
    }
}
