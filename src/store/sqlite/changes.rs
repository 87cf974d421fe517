//! Writing a mutation's changes on SQLite: one call to the database, whatever the mutation
//! changed.
//!
//! The writer holds the database for the whole transaction, so every call to it counts: the
//! changes go in one batch of statements, each reading its records from a JSON array (SQLite's
//! way of taking a list, through `json_each`), and a statement given an empty array writes
//! nothing. Updates find their rows by key (`IN (SELECT ... FROM json_each(...))`), which
//! SQLite looks up in the primary key; a join with the array would scan the tenant's rows.
//! Numbers that lose a primary assignment are written before numbers that gain one, since
//! SQLite checks the one-primary rule row by row. Numbers and users are written only at
//! the version before the one they carry; the batch answers how many rows it wrote, and fewer
//! than expected means a record was not at that version.

use serde_json::{Value, json};

use super::{SqliteTx, json_list, micros};
use crate::domain::{AssignmentCategory, Block, Capability, TenantId};
use crate::store::{Changes, StoreError, StoreResult};

/// Mutations whose changes `apply_all` writes in one batch of statements.
pub(super) const WRITE_GROUP: usize = 8;

/// The batch; `$1` is the tenant, the other parameters JSON arrays of records. The first two
/// statements are one update twice: `$2` holds the numbers that lose a primary assignment,
/// `$3` the others, written after them.
const WRITE_CHANGES: &str = "
UPDATE phone_numbers SET (assigned_to, assignment_category, assignment_status, activation_state,
    emergency_location_id, location_update_supported, capabilities, city, blocked_until,
    blocked_forever, operation_id, version, update_time) = (
    SELECT c.value ->> 'assigned_to', c.value ->> 'assignment_category',
        c.value ->> 'assignment_status', c.value ->> 'activation_state',
        c.value ->> 'emergency_location_id', c.value ->> 'location_update_supported',
        c.value ->> 'capabilities', c.value ->> 'city', c.value ->> 'blocked_until',
        c.value ->> 'blocked_forever', c.value ->> 'operation_id', c.value ->> 'version',
        c.value ->> 'update_time'
    FROM json_each($2) AS c WHERE c.value ->> 'phone_number' = phone_numbers.phone_number)
WHERE tenant_id = $1 AND (phone_number, version + 1) IN (
    SELECT value ->> 'phone_number', value ->> 'version' FROM json_each($2));

UPDATE phone_numbers SET (assigned_to, assignment_category, assignment_status, activation_state,
    emergency_location_id, location_update_supported, capabilities, city, blocked_until,
    blocked_forever, operation_id, version, update_time) = (
    SELECT c.value ->> 'assigned_to', c.value ->> 'assignment_category',
        c.value ->> 'assignment_status', c.value ->> 'activation_state',
        c.value ->> 'emergency_location_id', c.value ->> 'location_update_supported',
        c.value ->> 'capabilities', c.value ->> 'city', c.value ->> 'blocked_until',
        c.value ->> 'blocked_forever', c.value ->> 'operation_id', c.value ->> 'version',
        c.value ->> 'update_time'
    FROM json_each($3) AS c WHERE c.value ->> 'phone_number' = phone_numbers.phone_number)
WHERE tenant_id = $1 AND (phone_number, version + 1) IN (
    SELECT value ->> 'phone_number', value ->> 'version' FROM json_each($3));

UPDATE users SET (enterprise_voice_enabled, version, update_time) = (
    SELECT c.value ->> 'enterprise_voice_enabled', c.value ->> 'version',
        c.value ->> 'update_time'
    FROM json_each($4) AS c WHERE c.value ->> 'id' = users.id)
WHERE tenant_id = $1 AND (id, version + 1) IN (
    SELECT value ->> 'id', value ->> 'version' FROM json_each($4));

INSERT INTO operations (tenant_id, id, kind, state, error, request_id, actor, create_time,
    update_time)
SELECT $1, o.value ->> 'id', o.value ->> 'kind', o.value ->> 'state', o.value ->> 'error',
    o.value ->> 'request_id', o.value ->> 'actor', o.value ->> 'create_time',
    o.value ->> 'create_time'
FROM json_each($5) AS o;

INSERT INTO provisioning_jobs (id, tenant_id, operation_id, phone_number, action, provider_id,
    target_id, emergency_location_id, previous_location_id, state, ticket, reason, attempts,
    failures, next_attempt_time, create_time, update_time)
SELECT j.value ->> 'id', $1, j.value ->> 'operation_id', j.value ->> 'phone_number',
    j.value ->> 'action', j.value ->> 'provider_id', j.value ->> 'target_id',
    j.value ->> 'emergency_location_id', j.value ->> 'previous_location_id',
    j.value ->> 'state', j.value ->> 'ticket', j.value ->> 'reason', j.value ->> 'attempts',
    j.value ->> 'failures', j.value ->> 'create_time', j.value ->> 'create_time',
    j.value ->> 'create_time'
FROM json_each($6) AS j;

INSERT INTO audit_events (tenant_id, id, time, actor, action, phone_number, user_id,
    request_id, before, after)
SELECT $1, e.value ->> 'id', e.value ->> 'time', e.value ->> 'actor', e.value ->> 'action',
    e.value ->> 'phone_number', e.value ->> 'user_id', e.value ->> 'request_id',
    nullif(e.value -> 'before', 'null'), nullif(e.value -> 'after', 'null')
FROM json_each($7) AS e;

INSERT INTO notifications (tenant_id, id, recipient, subject, body, phone_number,
    create_time, next_attempt_time)
SELECT $1, m.value ->> 'id', m.value ->> 'recipient', m.value ->> 'subject',
    m.value ->> 'body', m.value ->> 'phone_number', m.value ->> 'create_time',
    m.value ->> 'create_time'
FROM json_each($8) AS m;

UPDATE request_ids SET response = (
    SELECT r.value ->> 1 FROM json_each($9) AS r WHERE r.value ->> 0 = request_ids.request_id)
WHERE tenant_id = $1 AND request_id IN (SELECT value ->> 0 FROM json_each($9));
";

impl SqliteTx {
    /// Writes `changes` in one batch (see the module's documentation).
    pub(super) async fn write_changes(
        &mut self,
        tenant: &TenantId,
        changes: &Changes,
    ) -> StoreResult<()> {
        let number = |n: &crate::domain::PhoneNumber| {
            let assignment = n.assignment.as_ref();
            let (blocked_until, blocked_forever) = match n.block {
                Block::None => (None, false),
                Block::Until(until) => (Some(micros(until)), false),
                Block::Forever => (None, true),
            };
            json!({
                "phone_number": n.number.canonical(),
                "assigned_to": assignment.map(|a| &a.target_id),
                "assignment_category": assignment.map(|a| a.category.as_str()),
                "assignment_status": n.assignment_status().as_str(),
                "activation_state": n.activation_state.as_str(),
                "emergency_location_id": n.emergency_location_id,
                "location_update_supported": n.location_update_supported,
                "capabilities": json_list(n.capabilities.iter().map(Capability::as_str)),
                "city": n.city,
                "blocked_until": blocked_until,
                "blocked_forever": blocked_forever,
                "operation_id": n.operation_id,
                "version": n.version,
                "update_time": micros(n.update_time),
            })
        };
        let (gaining, others): (Vec<_>, Vec<_>) = changes.numbers.iter().partition(|n| {
            n.assignment
                .as_ref()
                .is_some_and(|a| a.category == AssignmentCategory::Primary)
        });
        let users: Vec<Value> = changes
            .users
            .iter()
            .map(|u| {
                json!({
                    "id": u.id,
                    "enterprise_voice_enabled": u.enterprise_voice_enabled,
                    "version": u.version,
                    "update_time": micros(u.update_time),
                })
            })
            .collect();
        let operations: Vec<Value> = changes
            .operations
            .iter()
            .map(|o| {
                json!({
                    "id": o.operation.id,
                    "kind": o.operation.kind.as_str(),
                    "state": o.operation.state.as_str(),
                    "error": o.operation.error,
                    "request_id": o.request_id,
                    "actor": o.actor,
                    "create_time": micros(o.operation.create_time),
                })
            })
            .collect();
        let jobs: Vec<Value> = changes
            .operations
            .iter()
            .flat_map(|o| &o.jobs)
            .map(|j| {
                json!({
                    "id": j.id,
                    "operation_id": j.operation_id,
                    "phone_number": j.phone_number,
                    "action": j.action.as_str(),
                    "provider_id": j.provider_id,
                    "target_id": j.target_id,
                    "emergency_location_id": j.emergency_location_id,
                    "previous_location_id": j.previous_location_id,
                    "state": j.state.as_str(),
                    "ticket": j.ticket,
                    "reason": j.reason,
                    "attempts": j.attempts,
                    "failures": j.failures,
                    "create_time": micros(j.create_time),
                })
            })
            .collect();
        let audit: Vec<Value> = changes
            .audit
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "time": micros(e.time),
                    "actor": e.actor,
                    "action": e.action.as_str(),
                    "phone_number": e.phone_number,
                    "user_id": e.user_id,
                    "request_id": e.request_id,
                    "before": e.before,
                    "after": e.after,
                })
            })
            .collect();
        let emails: Vec<Value> = changes
            .notifications
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "recipient": m.recipient,
                    "subject": m.subject,
                    "body": m.body,
                    "phone_number": m.phone_number,
                    "create_time": micros(m.create_time),
                })
            })
            .collect();
        let expected = changes.numbers.len()
            + users.len()
            + operations.len()
            + jobs.len()
            + audit.len()
            + emails.len()
            + changes.responses.len();
        let responses: Vec<Value> = changes
            .responses
            .iter()
            // The answer as text inside the array: SQLite takes it out as it is, rather than
            // parsing a document to write it back out.
            .map(|(id, answer)| json!([id, answer]))
            .collect();
        let written = sqlx::query(WRITE_CHANGES)
            .bind(tenant) // $1
            .bind(Value::from(others.into_iter().map(number).collect::<Vec<_>>()).to_string())
            .bind(Value::from(gaining.into_iter().map(number).collect::<Vec<_>>()).to_string())
            .bind(Value::from(users).to_string()) // $4
            .bind(Value::from(operations).to_string()) // $5
            .bind(Value::from(jobs).to_string()) // $6
            .bind(Value::from(audit).to_string()) // $7
            .bind(Value::from(emails).to_string()) // $8
            .bind(Value::from(responses).to_string()) // $9
            .execute(self.conn())
            .await
            .map_err(|e| self.failed(e))?
            .rows_affected();
        if written != expected as u64 {
            let what = changes
                .numbers
                .iter()
                .map(|n| n.number.canonical())
                .chain(changes.users.iter().map(|u| format!("user {}", u.id)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(StoreError::Stale(what));
        }
        Ok(())
    }
}
