//! Operations, provisioning jobs and their leases on SQLite.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{SqliteTx, json_list, micros, system_time};
use crate::domain::{Job, Operation, OperationFilter, OperationState, OperationStep, TenantId};
use crate::store::{JobOutcome, OperationRepository, StoreError, StoreResult};

macro_rules! job_columns {
    () => {
        "id, tenant_id, operation_id, phone_number, action, provider_id, target_id, \
         emergency_location_id, previous_location_id, state, ticket, reason, attempts, failures, \
         create_time"
    };
}

#[derive(FromRow)]
struct JobRow {
    id: String,
    tenant_id: String,
    operation_id: String,
    phone_number: String,
    action: String,
    provider_id: String,
    target_id: String,
    emergency_location_id: Option<String>,
    previous_location_id: Option<String>,
    state: String,
    ticket: Option<String>,
    reason: Option<String>,
    attempts: i64,
    failures: i64,
    create_time: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> StoreResult<Self> {
        let what = format!("job {}", row.id);
        Ok(Job {
            action: row
                .action
                .parse()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            state: row
                .state
                .parse()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            id: row.id,
            tenant_id: row.tenant_id,
            operation_id: row.operation_id,
            phone_number: row.phone_number,
            provider_id: row.provider_id,
            target_id: row.target_id,
            emergency_location_id: row.emergency_location_id,
            previous_location_id: row.previous_location_id,
            reason: row.reason,
            ticket: row.ticket,
            attempts: row.attempts,
            failures: row.failures,
            create_time: system_time(row.create_time),
        })
    }
}

/// An operation joined with one of its jobs (or with none).
#[derive(FromRow)]
struct OperationRow {
    kind: String,
    state: String,
    error: Option<String>,
    create_time: i64,
    update_time: i64,
    phone_number: Option<String>,
    action: Option<String>,
    provider_id: Option<String>,
    job_state: Option<String>,
    reason: Option<String>,
    attempts: Option<i64>,
}

/// Reads the rows of an operation and its jobs, ordered by number.
fn operation(id: &str, rows: Vec<OperationRow>) -> StoreResult<Option<Operation>> {
    let what = format!("operation {id}");
    let corrupt = |e: numbers_provider::ParseEnumError| StoreError::corrupt(&what, e);
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut operation = Operation {
        id: id.to_owned(),
        kind: first.kind.parse().map_err(corrupt)?,
        state: first.state.parse().map_err(corrupt)?,
        error: first.error.clone(),
        steps: Vec::with_capacity(rows.len()),
        create_time: system_time(first.create_time),
        update_time: system_time(first.update_time),
        progress: None,
    };
    for row in rows {
        if let (Some(phone_number), Some(action), Some(provider_id), Some(state)) =
            (row.phone_number, row.action, row.provider_id, row.job_state)
        {
            operation.steps.push(OperationStep {
                phone_number,
                action: action.parse().map_err(corrupt)?,
                provider_id,
                state: state.parse().map_err(corrupt)?,
                reason: row.reason,
                attempts: row.attempts.unwrap_or_default(),
            });
        }
    }
    Ok(Some(operation))
}

#[async_trait]
impl OperationRepository for SqliteTx {
    async fn get_operation(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Operation>> {
        let rows: Vec<OperationRow> = sqlx::query_as(
            "SELECT o.kind, o.state, o.error, o.create_time, o.update_time, j.phone_number, \
             j.action, j.provider_id, j.state AS job_state, j.reason, j.attempts \
             FROM operations o \
             LEFT JOIN provisioning_jobs j ON j.tenant_id = o.tenant_id AND j.operation_id = o.id \
             WHERE o.tenant_id = $1 AND o.id = $2 \
             ORDER BY j.phone_number, j.id",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        operation(id, rows)
    }

    async fn lock_operation(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<Operation>> {
        // The one writer holds the database: reading in a write transaction is locking.
        self.get_operation(tenant, id).await
    }

    async fn update_operation(
        &mut self,
        tenant: &TenantId,
        operation: &Operation,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE operations SET state = $3, error = $4, update_time = $5 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(&operation.id)
        .bind(operation.state.as_str())
        .bind(&operation.error)
        .bind(micros(operation.update_time))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn claim_jobs(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "UPDATE provisioning_jobs SET lease_owner = $1, lease_expires = $2, state = 'RUNNING' \
             WHERE id IN (SELECT id FROM provisioning_jobs \
             WHERE state IN ('PENDING', 'RUNNING') AND next_attempt_time <= $3 \
             AND (lease_expires IS NULL OR lease_expires <= $3) \
             ORDER BY next_attempt_time LIMIT $4) \
             RETURNING ",
            job_columns!()
        ))
        .bind(owner)
        .bind(micros(now + lease))
        .bind(micros(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        if !rows.is_empty() {
            // The claimed jobs' operations are running now, if they were not yet.
            sqlx::query(
                "UPDATE operations SET state = 'RUNNING', update_time = $2 \
                 WHERE state = 'PENDING' AND id IN (SELECT value FROM json_each($1))",
            )
            .bind(json_list(rows.iter().map(|r| r.operation_id.as_str())))
            .bind(micros(now))
            .execute(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        }
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn finish_job(
        &mut self,
        job: &Job,
        owner: &str,
        outcome: &JobOutcome,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let (state, reason, next, ticket, failures) = match outcome {
            JobOutcome::Succeeded => (OperationState::Succeeded, None, now, None, job.failures),
            JobOutcome::Failed { reason } => (
                OperationState::Failed,
                Some(reason.as_str()),
                now,
                None,
                job.failures,
            ),
            JobOutcome::Later {
                at,
                ticket,
                failures,
                reason,
            } => (
                OperationState::Running,
                reason.as_deref(),
                *at,
                ticket.as_deref(),
                *failures,
            ),
        };
        let finished = sqlx::query(
            "UPDATE provisioning_jobs SET state = $3, reason = $4, ticket = $5, failures = $6, \
             attempts = attempts + 1, next_attempt_time = $7, lease_owner = NULL, \
             lease_expires = NULL, completed_by = $8, update_time = $9 \
             WHERE id = $1 AND lease_owner = $2 AND state IN ('PENDING', 'RUNNING')",
        )
        .bind(&job.id) // $1
        .bind(owner) // $2
        .bind(state.as_str()) // $3
        .bind(reason) // $4
        .bind(ticket) // $5
        .bind(failures) // $6
        .bind(micros(next)) // $7
        .bind(state.is_final().then_some(owner)) // $8
        .bind(micros(now)) // $9
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(finished.rows_affected() == 1)
    }

    async fn operation_ids(
        &mut self,
        tenant: &TenantId,
        filter: &OperationFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut sql =
            QueryBuilder::<Sqlite>::new("SELECT o.id FROM operations o WHERE o.tenant_id = ");
        sql.push_bind(tenant);
        if let Some(state) = filter.state {
            sql.push(" AND o.state = ").push_bind(state.as_str());
        }
        if let Some(kind) = filter.kind {
            sql.push(" AND o.kind = ").push_bind(kind.as_str());
        }
        if let Some(start) = filter.start_time {
            sql.push(" AND o.create_time >= ").push_bind(micros(start));
        }
        if let Some(end) = filter.end_time {
            sql.push(" AND o.create_time < ").push_bind(micros(end));
        }
        if let Some(number) = &filter.phone_number {
            sql.push(
                " AND EXISTS (SELECT 1 FROM provisioning_jobs j WHERE j.tenant_id = o.tenant_id \
                 AND j.operation_id = o.id AND j.phone_number = ",
            )
            .push_bind(number)
            .push(")");
        }
        if let Some(before) = before {
            sql.push(" AND o.id < ").push_bind(before);
        }
        sql.push(" ORDER BY o.id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let ids: Vec<(String,)> = sql
            .build_query_as()
            .fetch_all(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    async fn retry_jobs(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        now: SystemTime,
    ) -> StoreResult<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "UPDATE provisioning_jobs SET state = 'PENDING', failures = 0, reason = NULL, \
             ticket = NULL, lease_owner = NULL, lease_expires = NULL, completed_by = NULL, \
             next_attempt_time = $3, update_time = $3 \
             WHERE tenant_id = $1 AND operation_id = $2 AND state = 'FAILED' RETURNING ",
            job_columns!()
        ))
        .bind(tenant)
        .bind(operation_id)
        .bind(micros(now))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        self.wrote.push(crate::store::Queue::Jobs);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn cancel_jobs(
        &mut self,
        tenant: &TenantId,
        operation_id: &str,
        reason: &str,
        now: SystemTime,
    ) -> StoreResult<Option<Vec<Job>>> {
        // The one writer holds the database: reading in the write transaction is locking.
        let unfinished: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT ticket, lease_expires FROM provisioning_jobs \
             WHERE tenant_id = $1 AND operation_id = $2 AND state IN ('PENDING', 'RUNNING')",
        )
        .bind(tenant)
        .bind(operation_id)
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        let now_at = micros(now);
        if unfinished
            .iter()
            .any(|(ticket, lease)| ticket.is_some() || lease.is_some_and(|l| l > now_at))
        {
            return Ok(None);
        }
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "UPDATE provisioning_jobs SET state = 'FAILED', reason = $3, lease_owner = NULL, \
             lease_expires = NULL, update_time = $4 \
             WHERE tenant_id = $1 AND operation_id = $2 AND state IN ('PENDING', 'RUNNING') \
             RETURNING ",
            job_columns!()
        ))
        .bind(tenant)
        .bind(operation_id)
        .bind(reason)
        .bind(now_at)
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        rows.into_iter()
            .map(TryInto::try_into)
            .collect::<StoreResult<Vec<Job>>>()
            .map(Some)
    }

    async fn unfinished_jobs(&mut self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM provisioning_jobs WHERE state IN ('PENDING', 'RUNNING')",
        )
        .fetch_one(self.conn())
        .await
        .map_err(|e| self.failed(e))?)
    }

    async fn work_in_hand(&mut self) -> StoreResult<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT count(DISTINCT operation_id), count(*) FROM provisioning_jobs \
             WHERE state IN ('PENDING', 'RUNNING')",
        )
        .fetch_one(self.conn())
        .await
        .map_err(|e| self.failed(e))?)
    }

    async fn purge_operations(&mut self, before: SystemTime, limit: i64) -> StoreResult<u64> {
        // The oldest finished operations, named twice: jobs first, then their operations. The
        // writer is this transaction's, so the two statements find the same ones.
        macro_rules! finished {
            () => {
                "SELECT tenant_id, id FROM operations \
                 WHERE state IN ('SUCCEEDED', 'FAILED') AND update_time < $1 \
                 ORDER BY update_time, id LIMIT $2"
            };
        }
        let mut purged = 0;
        for statement in [
            concat!(
                "DELETE FROM bulk_items WHERE (tenant_id, operation_id) IN (",
                finished!(),
                ")"
            ),
            concat!(
                "DELETE FROM bulk_operations WHERE (tenant_id, operation_id) IN (",
                finished!(),
                ")"
            ),
            concat!(
                "DELETE FROM provisioning_jobs WHERE (tenant_id, operation_id) IN (",
                finished!(),
                ")"
            ),
            concat!(
                "DELETE FROM operations WHERE (tenant_id, id) IN (",
                finished!(),
                ")"
            ),
        ] {
            let deleted = sqlx::query(statement)
                .bind(micros(before))
                .bind(limit)
                .execute(self.conn())
                .await
                .map_err(|e| self.failed(e))?;
            purged = deleted.rows_affected();
        }
        // The last statement's count: the operations.
        Ok(purged)
    }
}
