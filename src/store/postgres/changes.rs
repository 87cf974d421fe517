//! Writing a mutation's changes on PostgreSQL: one statement, whatever the mutation changed.
//!
//! Every kind of record a mutation writes has its part of the statement (a data-modifying
//! `WITH` clause reading its records from arrays), and a part given empty arrays writes
//! nothing. One statement is one round trip, and the statement is always the same text, so
//! PostgreSQL plans it once per connection. Numbers and users are written only at the version
//! before the one they carry; the statement answers how many were, and fewer than given means
//! a concurrent change won. Constraints still hold: the one-primary rule is checked at the end
//! of the statement (it is `DEFERRABLE`), so a change that moves the primary from one number
//! to another in one statement is not refused half way.

use sqlx::types::Json;

use super::{PgTx, timestamp, uuid};
use crate::domain::{Block, Capability, TenantId};
use crate::store::{Changes, StoreError, StoreResult};

/// Mutations whose changes `apply_all` writes in one statement.
pub(super) const WRITE_GROUP: usize = 200;

/// The statement; `$1` is the tenant, the other parameters are the columns of each part.
const WRITE_CHANGES: &str = "\
WITH numbers AS (
    -- Each number's new columns are at its position in $2. The rows are found by key
    -- (`= ANY`), never by a join with the arrays, whose plan would hang on estimates: a
    -- generic plan takes an array for ten elements, and statistics lag a table that a bulk
    -- load grows. Finding the position costs a scan of the array per row, so a batch of bulk
    -- items writes its changes a few hundred at a time.
    UPDATE phone_numbers p SET (assigned_to, assignment_category, assignment_status,
        activation_state, emergency_location_id, location_update_supported, capabilities, city,
        blocked_until, blocked_forever, operation_id, version, update_time) = (
        SELECT ($3::text[])[i], ($4::text[])[i], ($5::text[])[i], ($6::text[])[i],
            ($7::text[])[i], ($8::boolean[])[i], string_to_array(($9::text[])[i], ','),
            ($10::text[])[i], ($11::timestamptz[])[i], ($12::boolean[])[i], ($13::uuid[])[i],
            ($14::bigint[])[i], ($15::timestamptz[])[i]
        FROM (SELECT array_position($2::text[], p.phone_number) AS i) AS at)
    WHERE p.tenant_id = $1 AND p.phone_number = ANY($2)
        AND p.version = ($14::bigint[])[array_position($2::text[], p.phone_number)] - 1
    RETURNING 1
), users AS (
    UPDATE users u SET (enterprise_voice_enabled, version, update_time) = (
        SELECT ($17::boolean[])[i], ($18::bigint[])[i], ($19::timestamptz[])[i]
        FROM (SELECT array_position($16::text[], u.id) AS i) AS at)
    WHERE u.tenant_id = $1 AND u.id = ANY($16)
        AND u.version = ($18::bigint[])[array_position($16::text[], u.id)] - 1
    RETURNING 1
), operations AS (
    INSERT INTO operations (tenant_id, id, kind, state, error, request_id, actor, create_time,
        update_time)
    SELECT $1, o.id, o.kind, o.state, o.error, o.request_id, o.actor, o.create_time,
        o.create_time
    FROM unnest($20::uuid[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[],
        $26::timestamptz[]) AS o(id, kind, state, error, request_id, actor, create_time)
), jobs AS (
    INSERT INTO provisioning_jobs (id, tenant_id, operation_id, phone_number, action,
        provider_id, target_id, emergency_location_id, previous_location_id, state, ticket,
        reason, attempts, failures, next_attempt_time, create_time, update_time)
    SELECT j.id, $1, j.operation_id, j.phone_number, j.action, j.provider_id, j.target_id,
        j.emergency_location_id, j.previous_location_id, j.state, j.ticket, j.reason,
        j.attempts, j.failures, j.create_time, j.create_time, j.create_time
    FROM unnest($27::uuid[], $28::uuid[], $29::text[], $30::text[], $31::text[], $32::text[],
        $33::text[], $34::text[], $35::text[], $36::text[], $37::text[], $38::bigint[],
        $39::bigint[], $40::timestamptz[])
        AS j(id, operation_id, phone_number, action, provider_id, target_id,
            emergency_location_id, previous_location_id, state, ticket, reason, attempts,
            failures, create_time)
), sequenced AS (
    -- The events' positions in the change stream, from one sequence, taken here, after every
    -- row lock the change took, with the tenant's change gate held shared until the commit
    -- (see migration 0018): a reader that takes the gate has every position handed out by then
    -- committed or gone.
    SELECT nextval('change_positions') AS position, s.n
    FROM (SELECT pg_advisory_xact_lock_shared(7301, hashtext($1))
          WHERE cardinality($41::uuid[]) > 0) AS gate,
        generate_series(1, cardinality($41::uuid[])) AS s(n)
), audit AS (
    INSERT INTO audit_events (tenant_id, id, time, actor, action, phone_number, user_id,
        request_id, before, after, seq)
    SELECT $1, e.id, e.time, e.actor, e.action, e.phone_number, e.user_id, e.request_id,
        e.before, e.after, (SELECT position FROM sequenced WHERE sequenced.n = e.n)
    FROM unnest($41::uuid[], $42::timestamptz[], $43::text[], $44::text[],
        $45::text[], $46::text[], $47::text[], $48::jsonb[], $49::jsonb[]) WITH ORDINALITY
        AS e(id, time, actor, action, phone_number, user_id, request_id, before, after, n)
), emails AS (
    INSERT INTO notifications (tenant_id, id, recipient, subject, body, phone_number,
        create_time, next_attempt_time)
    SELECT $1, m.id, m.recipient, m.subject, m.body, m.phone_number, m.create_time,
        m.create_time
    FROM unnest($50::uuid[], $51::text[], $52::text[], $53::text[], $54::text[],
        $55::timestamptz[]) AS m(id, recipient, subject, body, phone_number, create_time)
), answers AS (
    UPDATE request_ids r SET response = (($57::text[])[array_position($56::text[], r.request_id)])::jsonb
    WHERE r.tenant_id = $1 AND r.request_id = ANY($56)
)
SELECT (SELECT count(*) FROM numbers) AS numbers, (SELECT count(*) FROM users) AS users";

impl PgTx {
    /// Writes `changes` in one statement (see the module's documentation).
    pub(super) async fn write_changes(
        &mut self,
        tenant: &TenantId,
        changes: &Changes,
    ) -> StoreResult<()> {
        let numbers = &changes.numbers;
        let users = &changes.users;
        let operations = &changes.operations;
        let jobs: Vec<_> = operations.iter().flat_map(|o| &o.jobs).collect();
        let audit = &changes.audit;
        let emails = &changes.notifications;
        let ids = |ids: Vec<&str>| -> StoreResult<Vec<uuid::Uuid>> {
            ids.into_iter()
                .map(|id| uuid(id).ok_or_else(|| StoreError::corrupt(id, "not a UUID")))
                .collect()
        };
        let blocks: Vec<_> = numbers
            .iter()
            .map(|n| match n.block {
                Block::None => (None, false),
                Block::Until(until) => (Some(timestamp(until)), false),
                Block::Forever => (None, true),
            })
            .collect();
        let (written_numbers, written_users): (i64, i64) = sqlx::query_as(WRITE_CHANGES)
            .bind(tenant) // $1
            // numbers
            .bind(
                numbers
                    .iter()
                    .map(|n| n.number.canonical())
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.assignment.as_ref().map(|a| a.target_id.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.assignment.as_ref().map(|a| a.category.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.assignment_status().as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.activation_state.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.emergency_location_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.location_update_supported)
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| {
                        n.capabilities
                            .iter()
                            .map(Capability::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect::<Vec<_>>(),
            )
            .bind(numbers.iter().map(|n| n.city.as_str()).collect::<Vec<_>>())
            .bind(blocks.iter().map(|(until, _)| *until).collect::<Vec<_>>())
            .bind(
                blocks
                    .iter()
                    .map(|(_, forever)| *forever)
                    .collect::<Vec<_>>(),
            )
            .bind(
                numbers
                    .iter()
                    .map(|n| n.operation_id.as_deref().and_then(uuid))
                    .collect::<Vec<_>>(),
            )
            .bind(numbers.iter().map(|n| n.version).collect::<Vec<_>>())
            .bind(
                numbers
                    .iter()
                    .map(|n| timestamp(n.update_time))
                    .collect::<Vec<_>>(),
            )
            // users
            .bind(users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>())
            .bind(
                users
                    .iter()
                    .map(|u| u.enterprise_voice_enabled)
                    .collect::<Vec<_>>(),
            )
            .bind(users.iter().map(|u| u.version).collect::<Vec<_>>())
            .bind(
                users
                    .iter()
                    .map(|u| timestamp(u.update_time))
                    .collect::<Vec<_>>(),
            )
            // the operations
            .bind(ids(operations
                .iter()
                .map(|o| o.operation.id.as_str())
                .collect())?)
            .bind(
                operations
                    .iter()
                    .map(|o| o.operation.kind.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                operations
                    .iter()
                    .map(|o| o.operation.state.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                operations
                    .iter()
                    .map(|o| o.operation.error.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                operations
                    .iter()
                    .map(|o| o.request_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                operations
                    .iter()
                    .map(|o| o.actor.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                operations
                    .iter()
                    .map(|o| timestamp(o.operation.create_time))
                    .collect::<Vec<_>>(),
            )
            // its jobs
            .bind(ids(jobs.iter().map(|j| j.id.as_str()).collect())?)
            .bind(ids(jobs.iter().map(|j| j.operation_id.as_str()).collect())?)
            .bind(
                jobs.iter()
                    .map(|j| j.phone_number.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(jobs.iter().map(|j| j.action.as_str()).collect::<Vec<_>>())
            .bind(
                jobs.iter()
                    .map(|j| j.provider_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                jobs.iter()
                    .map(|j| j.target_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                jobs.iter()
                    .map(|j| j.emergency_location_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                jobs.iter()
                    .map(|j| j.previous_location_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(jobs.iter().map(|j| j.state.as_str()).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.ticket.as_deref()).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.reason.as_deref()).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.attempts).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.failures).collect::<Vec<_>>())
            .bind(
                jobs.iter()
                    .map(|j| timestamp(j.create_time))
                    .collect::<Vec<_>>(),
            )
            // audit events
            .bind(ids(audit.iter().map(|e| e.id.as_str()).collect())?)
            .bind(audit.iter().map(|e| timestamp(e.time)).collect::<Vec<_>>())
            .bind(audit.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
            .bind(audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>())
            .bind(
                audit
                    .iter()
                    .map(|e| e.phone_number.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                audit
                    .iter()
                    .map(|e| e.user_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                audit
                    .iter()
                    .map(|e| e.request_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                audit
                    .iter()
                    .map(|e| e.before.as_ref().map(Json))
                    .collect::<Vec<_>>(),
            )
            .bind(
                audit
                    .iter()
                    .map(|e| e.after.as_ref().map(Json))
                    .collect::<Vec<_>>(),
            )
            // emails
            .bind(ids(emails.iter().map(|m| m.id.as_str()).collect())?)
            .bind(
                emails
                    .iter()
                    .map(|m| m.recipient.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                emails
                    .iter()
                    .map(|m| m.subject.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(emails.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
            .bind(
                emails
                    .iter()
                    .map(|m| m.phone_number.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                emails
                    .iter()
                    .map(|m| timestamp(m.create_time))
                    .collect::<Vec<_>>(),
            )
            // the answers to the request ids
            .bind(
                changes
                    .responses
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>(),
            ) // $56
            .bind(
                changes
                    .responses
                    .iter()
                    .map(|(_, answer)| answer.as_str())
                    .collect::<Vec<_>>(),
            ) // $57
            .fetch_one(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        if written_numbers != numbers.len() as i64 || written_users != users.len() as i64 {
            let what = numbers
                .iter()
                .map(|n| n.number.canonical())
                .chain(users.iter().map(|u| format!("user {}", u.id)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(StoreError::Stale(what));
        }
        Ok(())
    }
}
