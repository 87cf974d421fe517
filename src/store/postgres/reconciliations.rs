//! Reconciliation runs, their drift and their leases on PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use numbers_provider::CarrierNumber;
use time::OffsetDateTime;

use super::{EVERY_TENANT, PgTx, system_time, timestamp, uuid};
use crate::domain::{
    Drift, DriftKind, Reconciliation, TenantId, carrier_state_name, carrier_state_named,
};
use crate::store::{ReconciliationRepository, StoreError, StoreResult};

/// A run's columns, as [`run`] reads them.
type RunRow = (
    uuid::Uuid,
    String,
    String,
    String,
    i64,
    Option<String>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

fn key(id: &str) -> StoreResult<uuid::Uuid> {
    uuid(id).ok_or_else(|| StoreError::corrupt(format!("reconciliation {id}"), "not a UUID"))
}

fn parsed<T: std::str::FromStr>(what: &str, text: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| StoreError::corrupt(what, e))
}

fn run(row: RunRow) -> StoreResult<Reconciliation> {
    let (id, provider_id, trigger, state, checked, error, create_time, start_time, end_time) = row;
    let what = format!("reconciliation {id}");
    Ok(Reconciliation {
        id: id.to_string(),
        provider_id,
        trigger: parsed(&what, &trigger)?,
        state: parsed(&what, &state)?,
        checked,
        counts: BTreeMap::new(),
        error,
        create_time: system_time(create_time),
        start_time: start_time.map(system_time),
        end_time: end_time.map(system_time),
    })
}

impl PgTx {
    /// Fills in each run's drift counts, in one statement.
    async fn count_drift(
        &mut self,
        tenant: &TenantId,
        runs: &mut [Reconciliation],
    ) -> StoreResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let ids = runs
            .iter()
            .map(|r| key(&r.id))
            .collect::<StoreResult<Vec<_>>>()?;
        let rows: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
            "SELECT reconciliation_id, kind, count(*) FROM drift_items \
             WHERE tenant_id = $1 AND reconciliation_id = ANY($2) \
             GROUP BY reconciliation_id, kind",
        )
        .bind(tenant)
        .bind(&ids)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        for (id, kind, count) in rows {
            let kind: DriftKind = parsed("drift item", &kind)?;
            let id = id.to_string();
            if let Some(run) = runs.iter_mut().find(|r| r.id == id) {
                run.counts.insert(kind, count);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ReconciliationRepository for PgTx {
    async fn insert_reconciliation(
        &mut self,
        tenant: &TenantId,
        run: &Reconciliation,
    ) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO reconciliations (tenant_id, id, provider_id, trigger, state, \
             create_time) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, provider_id) WHERE state IN ('PENDING', 'RUNNING') \
             DO NOTHING",
        )
        .bind(tenant)
        .bind(key(&run.id)?)
        .bind(&run.provider_id)
        .bind(run.trigger.as_str())
        .bind(run.state.as_str())
        .bind(timestamp(run.create_time))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn get_reconciliation(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Reconciliation>> {
        let Some(id) = uuid(id) else {
            return Ok(None);
        };
        let row: Option<RunRow> = sqlx::query_as(
            "SELECT id, provider_id, trigger, state, checked, error, create_time, start_time, \
             end_time FROM reconciliations WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut runs = [run(row)?];
        self.count_drift(tenant, &mut runs).await?;
        let [run] = runs;
        Ok(Some(run))
    }

    async fn list_reconciliations(
        &mut self,
        tenant: &TenantId,
        provider: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Reconciliation>> {
        let before = before.map(key).transpose()?;
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT id, provider_id, trigger, state, checked, error, create_time, start_time, \
             end_time FROM reconciliations WHERE tenant_id = $1 \
             AND ($2::text IS NULL OR provider_id = $2) AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(tenant)
        .bind(provider)
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let mut runs = rows.into_iter().map(run).collect::<StoreResult<Vec<_>>>()?;
        self.count_drift(tenant, &mut runs).await?;
        Ok(runs)
    }

    async fn drift_items(
        &mut self,
        tenant: &TenantId,
        id: &str,
        kind: Option<DriftKind>,
        after: Option<(&str, DriftKind)>,
        limit: usize,
    ) -> StoreResult<Vec<Drift>> {
        let Some(id) = uuid(id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT phone_number, kind, carrier_state, carrier_target_id, \
                 carrier_location_id FROM drift_items \
                 WHERE tenant_id = $1 AND reconciliation_id = $2 \
                 AND ($3::text IS NULL OR kind = $3) \
                 AND ($4::text IS NULL OR (phone_number, kind) > ($4, $5)) \
                 ORDER BY phone_number, kind LIMIT $6",
        )
        .bind(tenant)
        .bind(id)
        .bind(kind.map(DriftKind::as_str))
        .bind(after.map(|(number, _)| number))
        .bind(after.map(|(_, kind)| kind.as_str()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(|(phone_number, kind, state, target_id, location_id)| {
                let what = format!("drift item {phone_number}");
                let carrier = match state {
                    None => None,
                    Some(state) => Some(CarrierNumber {
                        phone_number: phone_number.clone(),
                        state: carrier_state_named(&state)
                            .ok_or_else(|| StoreError::corrupt(&what, state))?,
                        target_id,
                        emergency_location_id: location_id,
                    }),
                };
                Ok(Drift {
                    kind: parsed(&what, &kind)?,
                    phone_number,
                    carrier,
                })
            })
            .collect()
    }

    async fn claim_reconciliation(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<Option<(String, Reconciliation)>> {
        let row: Option<(String, uuid::Uuid)> = sqlx::query_as(
            "UPDATE reconciliations SET lease_owner = $1, lease_expires = $2, state = 'RUNNING', \
             start_time = coalesce(start_time, $3) \
             WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM reconciliations \
             WHERE state IN ('PENDING', 'RUNNING') \
             AND (lease_expires IS NULL OR lease_expires <= $3) \
             ORDER BY lease_expires NULLS FIRST, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING tenant_id, id",
        )
        .bind(owner)
        .bind(timestamp(now + lease))
        .bind(timestamp(now))
        .fetch_optional(self.scoped(EVERY_TENANT).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let Some((tenant, id)) = row else {
            return Ok(None);
        };
        let run = self
            .get_reconciliation(&tenant, &id.to_string())
            .await?
            .ok_or_else(|| StoreError::corrupt(format!("reconciliation {id}"), "vanished"))?;
        Ok(Some((tenant, run)))
    }

    async fn record_drift(
        &mut self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        drift: &[Drift],
        checked: i64,
        now: SystemTime,
        lease: Duration,
    ) -> StoreResult<bool> {
        let id = key(id)?;
        let held = sqlx::query(
            "UPDATE reconciliations SET lease_expires = $4, checked = checked + $5 \
             WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND state = 'RUNNING'",
        )
        .bind(tenant)
        .bind(id)
        .bind(owner)
        .bind(timestamp(now + lease))
        .bind(checked)
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        if held.rows_affected() == 0 {
            return Ok(false);
        }
        if drift.is_empty() {
            return Ok(true);
        }
        let carrier = |f: fn(&CarrierNumber) -> Option<String>| -> Vec<Option<String>> {
            drift
                .iter()
                .map(|d| d.carrier.as_ref().and_then(f))
                .collect()
        };
        sqlx::query(
            "INSERT INTO drift_items (tenant_id, reconciliation_id, phone_number, kind, \
             carrier_state, carrier_target_id, carrier_location_id) \
             SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(id)
        .bind(
            drift
                .iter()
                .map(|d| d.phone_number.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(drift.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>())
        .bind(carrier(|c| Some(carrier_state_name(c.state).to_owned())))
        .bind(carrier(|c| c.target_id.clone()))
        .bind(carrier(|c| c.emergency_location_id.clone()))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(true)
    }

    async fn finish_reconciliation(
        &mut self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        error: Option<&str>,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let ended = sqlx::query(
            "UPDATE reconciliations SET state = $4, error = $5, end_time = $6, \
             lease_owner = NULL, lease_expires = NULL \
             WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND state = 'RUNNING'",
        )
        .bind(tenant)
        .bind(key(id)?)
        .bind(owner)
        .bind(if error.is_some() {
            "FAILED"
        } else {
            "SUCCEEDED"
        })
        .bind(error)
        .bind(timestamp(now))
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(ended.rows_affected() == 1)
    }
}
