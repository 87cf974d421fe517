//! Operations and their provisioning jobs, and the leases workers claim jobs with.
//!
//! A worker claims due jobs by setting a lease (its id and an expiry) on them in one statement;
//! on PostgreSQL the rows are chosen with `FOR UPDATE SKIP LOCKED`, so replicas claiming at once
//! take different jobs, and on SQLite the one writer does the same by construction. A job's
//! outcome is written only while the lease is still the worker's: a worker that lost its lease
//! (it was too slow, and another replica took the job over) changes nothing.

use std::time::{Duration, SystemTime};

use sqlx::FromRow;

use super::sql::Sql;
use super::{StoreError, StoreResult, Tx, from_micros, to_micros};
use crate::domain::{Job, Operation, OperationState, OperationStep};

const JOB_COLUMNS: &str = "id, tenant_id, operation_id, phone_number, action, provider_id, \
     target_id, emergency_location_id, previous_location_id, state, ticket, reason, attempts, \
     failures, create_time";

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

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl JobRow {
    fn into_job(self) -> StoreResult<Job> {
        Ok(Job {
            action: self
                .action
                .parse()
                .map_err(|e| corrupt(&format!("job {}", self.id), e))?,
            id: self.id,
            tenant_id: self.tenant_id,
            operation_id: self.operation_id,
            phone_number: self.phone_number,
            provider_id: self.provider_id,
            target_id: self.target_id,
            emergency_location_id: self.emergency_location_id,
            previous_location_id: self.previous_location_id,
            ticket: self.ticket,
            attempts: self.attempts,
            failures: self.failures,
            create_time: from_micros(self.create_time),
        })
    }

    fn into_step(self) -> StoreResult<OperationStep> {
        let what = format!("job {}", self.id);
        Ok(OperationStep {
            phone_number: self.phone_number,
            action: self.action.parse().map_err(|e| corrupt(&what, e))?,
            provider_id: self.provider_id,
            state: self.state.parse().map_err(|e| corrupt(&what, e))?,
            reason: self.reason,
            attempts: self.attempts,
        })
    }
}

/// How a provider call of a job ended, as the worker records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The provider confirmed.
    Succeeded,
    /// The provider refused or failed for good.
    Failed {
        /// Why, in the provider's words.
        reason: String,
    },
    /// Ask again later: the provider is still working (with its ticket), or failed in a way a
    /// retry may fix.
    Later {
        /// When to ask again.
        at: SystemTime,
        /// The provider's ticket of the pending change.
        ticket: Option<String>,
        /// Consecutive retryable failures so far.
        failures: i64,
        /// The last transient error, if the call failed.
        reason: Option<String>,
    },
}

impl Tx {
    /// Records a new operation, with no jobs yet.
    pub async fn insert_operation(
        &mut self,
        tenant: &str,
        operation: &Operation,
        request_id: Option<&str>,
        actor: &str,
    ) -> StoreResult<()> {
        let mut sql = Sql::new(
            "INSERT INTO operations (tenant_id, id, kind, state, error, request_id, actor, \
             create_time, update_time) VALUES (",
        );
        sql.bind(tenant.to_owned())
            .push(", ")
            .bind(operation.id.clone())
            .push(", ")
            .bind(operation.kind.as_str().to_owned())
            .push(", ")
            .bind(operation.state.as_str().to_owned())
            .push(", ")
            .bind(operation.error.clone())
            .push(", ")
            .bind(request_id.map(str::to_owned))
            .push(", ")
            .bind(actor.to_owned())
            .push(", ")
            .bind(to_micros(operation.create_time))
            .push(", ")
            .bind(to_micros(operation.update_time))
            .push(")");
        sql.execute(&mut self.conn).await?;
        Ok(())
    }

    /// Records a job of an operation, in `state`, due at once.
    pub async fn insert_job(
        &mut self,
        job: &Job,
        state: OperationState,
        reason: Option<&str>,
        now: SystemTime,
    ) -> StoreResult<()> {
        let mut sql = Sql::new(
            "INSERT INTO provisioning_jobs (id, tenant_id, operation_id, phone_number, action, \
             provider_id, target_id, emergency_location_id, previous_location_id, state, ticket, \
             reason, attempts, failures, next_attempt_time, create_time, update_time) VALUES (",
        );
        sql.bind(job.id.clone())
            .push(", ")
            .bind(job.tenant_id.clone())
            .push(", ")
            .bind(job.operation_id.clone())
            .push(", ")
            .bind(job.phone_number.clone())
            .push(", ")
            .bind(job.action.as_str().to_owned())
            .push(", ")
            .bind(job.provider_id.clone())
            .push(", ")
            .bind(job.target_id.clone())
            .push(", ")
            .bind(job.emergency_location_id.clone())
            .push(", ")
            .bind(job.previous_location_id.clone())
            .push(", ")
            .bind(state.as_str().to_owned())
            .push(", ")
            .bind(job.ticket.clone())
            .push(", ")
            .bind(reason.map(str::to_owned))
            .push(", ")
            .bind(job.attempts)
            .push(", ")
            .bind(job.failures)
            .push(", ")
            .bind(to_micros(now))
            .push(", ")
            .bind(to_micros(now))
            .push(", ")
            .bind(to_micros(now))
            .push(")");
        sql.execute(&mut self.conn).await?;
        Ok(())
    }

    /// An operation of the tenant, with its steps ordered by number.
    pub async fn get_operation(
        &mut self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<Operation>> {
        let mut sql = Sql::new(
            "SELECT kind, state, error, create_time, update_time FROM operations WHERE \
             tenant_id = ",
        );
        sql.bind(tenant.to_owned())
            .and_eq("id", Some(id.to_owned()));
        let Some((kind, state, error, create_time, update_time)): Option<(
            String,
            String,
            Option<String>,
            i64,
            i64,
        )> = sql.fetch_optional(&mut self.conn).await?
        else {
            return Ok(None);
        };
        let what = format!("operation {id}");
        Ok(Some(Operation {
            id: id.to_owned(),
            kind: kind.parse().map_err(|e| corrupt(&what, e))?,
            state: state.parse().map_err(|e| corrupt(&what, e))?,
            error,
            steps: self.operation_steps(tenant, id).await?,
            create_time: from_micros(create_time),
            update_time: from_micros(update_time),
        }))
    }

    async fn operation_steps(&mut self, tenant: &str, id: &str) -> StoreResult<Vec<OperationStep>> {
        let mut sql = Sql::new(&format!(
            "SELECT {JOB_COLUMNS} FROM provisioning_jobs WHERE tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("operation_id", Some(id.to_owned()))
            .push(" ORDER BY phone_number, id");
        let rows: Vec<JobRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(JobRow::into_step).collect()
    }

    /// Brings an operation's state in line with its jobs', with the first failure as its error.
    ///
    /// The operation's row is locked first: two transactions finishing different jobs of one
    /// operation then refresh it one after the other, and the second reads the first's job as
    /// committed (under PostgreSQL's READ COMMITTED each statement sees what was committed
    /// before it began), so the last writer never records a stale state.
    pub async fn refresh_operation(
        &mut self,
        tenant: &str,
        id: &str,
        now: SystemTime,
    ) -> StoreResult<OperationState> {
        let mut lock = Sql::new("SELECT id FROM operations WHERE tenant_id = ");
        lock.bind(tenant.to_owned())
            .and_eq("id", Some(id.to_owned()))
            .push(self.dialect.for_update());
        let _: Option<(String,)> = lock.fetch_optional(&mut self.conn).await?;
        let steps = self.operation_steps(tenant, id).await?;
        let state = OperationState::of(steps.iter().map(|s| s.state));
        let error = steps
            .iter()
            .find(|s| s.state == OperationState::Failed)
            .map(|s| {
                format!(
                    "{} {}: {}",
                    s.action,
                    s.phone_number,
                    s.reason.as_deref().unwrap_or("failed")
                )
            });
        let mut sql = Sql::new("UPDATE operations SET state = ");
        sql.bind(state.as_str().to_owned())
            .push(", error = ")
            .bind(error)
            .push(", update_time = ")
            .bind(to_micros(now))
            .push(" WHERE tenant_id = ")
            .bind(tenant.to_owned())
            .and_eq("id", Some(id.to_owned()));
        sql.execute(&mut self.conn).await?;
        Ok(state)
    }

    /// Claims up to `limit` due jobs for `owner` until `now + lease`: jobs never tried, and jobs
    /// whose next attempt is due, that no live lease holds.
    pub async fn claim_jobs(
        &mut self,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let now_micros = to_micros(now);
        let mut sql = Sql::new("UPDATE provisioning_jobs SET lease_owner = ");
        sql.bind(owner.to_owned())
            .push(", lease_expires = ")
            .bind(to_micros(now + lease))
            .push(
                ", state = 'RUNNING' WHERE id IN (SELECT id FROM provisioning_jobs \
                 WHERE state IN ('PENDING', 'RUNNING') AND next_attempt_time <= ",
            )
            .bind(now_micros)
            .push(" AND (lease_expires IS NULL OR lease_expires <= ")
            .bind(now_micros)
            .push(") ORDER BY next_attempt_time LIMIT ")
            .bind(limit as i64)
            .push(self.dialect.skip_locked())
            .push(&format!(") RETURNING {JOB_COLUMNS}"));
        let rows: Vec<JobRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    /// Records how a provider call of a claimed job ended, and releases the lease. Answers
    /// false, changing nothing, when `owner` no longer holds the job's lease.
    pub async fn finish_job(
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
                Some(reason.clone()),
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
                reason.clone(),
                *at,
                ticket.clone(),
                *failures,
            ),
        };
        let mut sql = Sql::new("UPDATE provisioning_jobs SET state = ");
        sql.bind(state.as_str().to_owned())
            .push(", reason = ")
            .bind(reason)
            .push(", ticket = ")
            .bind(ticket)
            .push(", failures = ")
            .bind(failures)
            .push(", attempts = attempts + 1, next_attempt_time = ")
            .bind(to_micros(next))
            .push(", lease_owner = NULL, lease_expires = NULL, completed_by = ")
            .bind(state.is_final().then(|| owner.to_owned()))
            .push(", update_time = ")
            .bind(to_micros(now))
            .push(" WHERE id = ")
            .bind(job.id.clone())
            .and_eq("lease_owner", Some(owner.to_owned()))
            .push(" AND state IN ('PENDING', 'RUNNING')");
        Ok(sql.execute(&mut self.conn).await? == 1)
    }

    /// Whether provisioning jobs are waiting (for tests and health).
    pub async fn unfinished_jobs(&mut self) -> StoreResult<i64> {
        let sql = Sql::new(
            "SELECT COUNT(*) FROM provisioning_jobs WHERE state IN ('PENDING', 'RUNNING')",
        );
        let (count,): (i64,) = sql.fetch_optional(&mut self.conn).await?.unwrap_or((0,));
        Ok(count)
    }
}
