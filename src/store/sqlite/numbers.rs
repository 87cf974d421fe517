//! The phone number inventory on SQLite.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{SqliteTx, json_list, micros, system_time};
use crate::domain::{
    Assignment, Block, BlockState, Capabilities, Capability, Country, CountryReadiness, E164,
    NumberFilter, NumberType, PhoneNumber, TenantId,
};
use crate::store::{NumberRepository, StoreError, StoreResult, prefix_upper_bound};

/// The columns of a number and of its holder, from `phone_numbers n LEFT JOIN users u`.
macro_rules! number_columns {
    () => {
        "n.phone_number, n.base_number, n.country, n.number_type, n.operator_id, n.city, \
         n.capabilities, n.assigned_to, u.user_principal_name AS holder_upn, \
         u.kind AS holder_kind, n.assignment_category, n.activation_state, \
         n.emergency_location_id, n.location_update_supported, n.blocked_until, \
         n.blocked_forever, n.operation_id, n.version, n.create_time, n.update_time, n.tags"
    };
}

/// Selects numbers with their holders; the caller adds the conditions.
macro_rules! select_numbers {
    ($conditions:literal) => {
        concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND ",
            $conditions
        )
    };
}
pub(super) use {number_columns, select_numbers};

/// A number and its holder, as `number_columns!` reads them.
#[derive(FromRow)]
pub(super) struct NumberRow {
    phone_number: String,
    base_number: String,
    country: String,
    number_type: String,
    operator_id: Option<String>,
    city: String,
    capabilities: Json<Vec<String>>,
    assigned_to: Option<String>,
    holder_upn: Option<String>,
    holder_kind: Option<String>,
    assignment_category: Option<String>,
    activation_state: String,
    emergency_location_id: Option<String>,
    location_update_supported: bool,
    blocked_until: Option<i64>,
    blocked_forever: bool,
    operation_id: Option<String>,
    version: i64,
    create_time: i64,
    update_time: i64,
    tags: Json<Vec<String>>,
}

impl TryFrom<NumberRow> for PhoneNumber {
    type Error = StoreError;

    fn try_from(row: NumberRow) -> StoreResult<Self> {
        let what = format!("number {}", row.phone_number);
        let corrupt = |e: String| StoreError::corrupt(&what, e);
        let assignment = match (row.assigned_to, row.assignment_category) {
            (Some(target_id), Some(category)) => Some(Assignment {
                target_id,
                target_user_principal_name: row.holder_upn.unwrap_or_default(),
                target_kind: row
                    .holder_kind
                    .as_deref()
                    .unwrap_or("USER")
                    .parse()
                    .map_err(|e| StoreError::corrupt(&what, e))?,
                category: category
                    .parse()
                    .map_err(|e| StoreError::corrupt(&what, e))?,
            }),
            _ => None,
        };
        let block = match (row.blocked_forever, row.blocked_until) {
            (true, _) => Block::Forever,
            (false, Some(until)) => Block::Until(system_time(until)),
            (false, None) => Block::None,
        };
        let capabilities = row
            .capabilities
            .0
            .iter()
            .map(|c| c.parse::<Capability>())
            .collect::<Result<Capabilities, _>>()
            .map_err(|e| StoreError::corrupt(&what, e))?;
        Ok(PhoneNumber {
            number: E164::from_parts(
                &row.phone_number,
                &row.base_number,
                Country::parse(&row.country).map_err(corrupt)?,
            )
            .map_err(corrupt)?,
            number_type: row
                .number_type
                .parse()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            operator_id: row.operator_id,
            city: row.city,
            capabilities,
            assignment,
            activation_state: row
                .activation_state
                .parse()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            emergency_location_id: row.emergency_location_id,
            location_update_supported: row.location_update_supported,
            block,
            operation_id: row.operation_id,
            tags: row.tags.0,
            version: row.version,
            create_time: system_time(row.create_time),
            update_time: system_time(row.update_time),
        })
    }
}

/// Reads every row as a number.
pub(super) fn numbers(rows: Vec<NumberRow>) -> StoreResult<Vec<PhoneNumber>> {
    rows.into_iter().map(TryInto::try_into).collect()
}

/// The capabilities as a JSON array.
fn capability_list(capabilities: Capabilities) -> String {
    json_list(capabilities.iter().map(Capability::as_str))
}

/// The two columns a block is kept in: `blocked_until` and `blocked_forever`.
fn block_columns(block: Block) -> (Option<i64>, bool) {
    match block {
        Block::None => (None, false),
        Block::Until(until) => (Some(micros(until)), false),
        Block::Forever => (None, true),
    }
}

/// The partial index condition of the numbers not ready for an emergency call (see the
/// migrations): the listing repeats it word for word.
const UNREADY: &str = "((n.assigned_to IS NOT NULL AND n.emergency_location_id IS NULL) \
     OR n.activation_state = 'UPDATE_FAILED')";

/// The partial index condition of the blocked numbers (see the migrations): the listing repeats
/// it word for word.
const BLOCKED: &str = "(n.blocked_forever = 1 OR n.blocked_until IS NOT NULL)";

/// The partial index condition of each capability (see the migrations): the listing repeats it
/// word for word, so SQLite walks that index.
fn capability_condition(capability: Capability) -> &'static str {
    match capability {
        Capability::UserAssignment => "n.capabilities LIKE '%\"USER_ASSIGNMENT\"%'",
        Capability::VoiceApplicationAssignment => {
            "n.capabilities LIKE '%\"VOICE_APPLICATION_ASSIGNMENT\"%'"
        }
        Capability::ConferenceAssignment => "n.capabilities LIKE '%\"CONFERENCE_ASSIGNMENT\"%'",
    }
}

#[async_trait]
impl NumberRepository for SqliteTx {
    async fn get_number(
        &mut self,
        tenant: &TenantId,
        number: &str,
    ) -> StoreResult<Option<PhoneNumber>> {
        let row: Option<NumberRow> = sqlx::query_as(select_numbers!("n.phone_number = $2"))
            .bind(tenant)
            .bind(number)
            .fetch_optional(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn get_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        let rows: Vec<NumberRow> = sqlx::query_as(select_numbers!(
            "n.phone_number IN (SELECT value FROM json_each($2)) ORDER BY n.phone_number"
        ))
        .bind(tenant)
        .bind(json_list(numbers.iter().map(String::as_str)))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        self::numbers(rows)
    }

    async fn lock_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        // The one writer holds the database: reading in a write transaction is locking.
        self.get_numbers(tenant, numbers).await
    }

    async fn lock_numbers_on_base(
        &mut self,
        tenant: &TenantId,
        base: &str,
        also: Option<&str>,
    ) -> StoreResult<Vec<PhoneNumber>> {
        let rows: Vec<NumberRow> = sqlx::query_as(select_numbers!(
            "n.phone_number IN (SELECT phone_number FROM phone_numbers \
             WHERE tenant_id = $1 AND base_number = $2 UNION ALL SELECT $3) \
             ORDER BY n.phone_number"
        ))
        .bind(tenant)
        .bind(base)
        .bind(also)
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        self::numbers(rows)
    }

    async fn lock_numbers_on_bases(
        &mut self,
        tenant: &TenantId,
        bases: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        let rows: Vec<NumberRow> = sqlx::query_as(select_numbers!(
            "n.base_number IN (SELECT value FROM json_each($2)) ORDER BY n.phone_number"
        ))
        .bind(tenant)
        .bind(json_list(bases.iter().map(String::as_str)))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        self::numbers(rows)
    }

    async fn insert_number(
        &mut self,
        tenant: &TenantId,
        number: &PhoneNumber,
    ) -> StoreResult<bool> {
        let assignment = number.assignment.as_ref();
        let (blocked_until, blocked_forever) = block_columns(number.block);
        let inserted = sqlx::query(
            "INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, \
             operator_id, country, city, capabilities, assigned_to, assignment_category, \
             assignment_status, activation_state, emergency_location_id, \
             location_update_supported, blocked_until, blocked_forever, operation_id, version, \
             create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant) // $1
        .bind(number.number.canonical()) // $2
        .bind(number.number.base()) // $3
        .bind(number.number_type.as_str()) // $4
        .bind(&number.operator_id) // $5
        .bind(number.country().as_str()) // $6
        .bind(&number.city) // $7
        .bind(capability_list(number.capabilities)) // $8
        .bind(assignment.map(|a| &a.target_id)) // $9
        .bind(assignment.map(|a| a.category.as_str())) // $10
        .bind(number.assignment_status().as_str()) // $11
        .bind(number.activation_state.as_str()) // $12
        .bind(&number.emergency_location_id) // $13
        .bind(number.location_update_supported) // $14
        .bind(blocked_until) // $15
        .bind(blocked_forever) // $16
        .bind(&number.operation_id) // $17
        .bind(number.version) // $18
        .bind(micros(number.create_time)) // $19
        .bind(micros(number.update_time)) // $20
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn delete_numbers(&mut self, tenant: &TenantId, numbers: &[String]) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM phone_numbers \
             WHERE tenant_id = $1 AND phone_number IN (SELECT value FROM json_each($2))",
        )
        .bind(tenant)
        .bind(json_list(numbers.iter().map(String::as_str)))
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn numbers_taken(&mut self, numbers: &[String]) -> StoreResult<HashSet<String>> {
        let taken: Vec<String> = sqlx::query_scalar(
            "SELECT phone_number FROM phone_numbers \
             WHERE phone_number IN (SELECT value FROM json_each($1))",
        )
        .bind(json_list(numbers.iter().map(String::as_str)))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(taken.into_iter().collect())
    }

    async fn count_numbers_taking_turn(
        &mut self,
        tenant: &TenantId,
        number_type: NumberType,
    ) -> StoreResult<i64> {
        // The one writer is everyone's turn.
        sqlx::query_scalar(
            "SELECT count(*) FROM phone_numbers WHERE tenant_id = $1 AND number_type = $2",
        )
        .bind(tenant)
        .bind(number_type.as_str())
        .fetch_one(self.conn())
        .await
        .map_err(|e| self.failed(e))
    }

    async fn assigned_numbers_of_operator(
        &mut self,
        tenant: &TenantId,
        operator_id: &str,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM phone_numbers \
             WHERE tenant_id = $1 AND operator_id = $2 AND assigned_to IS NOT NULL",
        )
        .bind(tenant)
        .bind(operator_id)
        .fetch_one(self.conn())
        .await
        .map_err(|e| self.failed(e))?)
    }

    async fn emergency_readiness(
        &mut self,
        tenant: &TenantId,
        country: Option<Country>,
    ) -> StoreResult<Vec<CountryReadiness>> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT country, \
             SUM(assigned_to IS NOT NULL), \
             SUM(assigned_to IS NOT NULL AND emergency_location_id IS NULL \
                 AND location_update_supported = 1 AND activation_state <> 'UPDATE_FAILED'), \
             SUM(assigned_to IS NOT NULL AND emergency_location_id IS NULL \
                 AND location_update_supported = 0 AND activation_state <> 'UPDATE_FAILED'), \
             SUM(activation_state = 'UPDATE_FAILED') \
             FROM phone_numbers WHERE tenant_id = $1 AND ($2 IS NULL OR country = $2) \
             GROUP BY country ORDER BY country",
        )
        .bind(tenant)
        .bind(country.map(|c| c.as_str().to_owned()))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(rows.into_iter().map(readiness).collect())
    }

    async fn list_numbers(
        &mut self,
        tenant: &TenantId,
        filter: &NumberFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PhoneNumber>> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to"
        ));
        if let Some(tag) = &filter.tag {
            // Joined rather than tested, so the tag's rows, in number order, lead the walk.
            sql.push(
                " JOIN phone_number_tags t ON t.tenant_id = n.tenant_id \
                 AND t.phone_number = n.phone_number AND t.tag_key = ",
            )
            .push_bind(tag);
        }
        sql.push(" WHERE n.tenant_id = ").push_bind(tenant);
        if let Some(category) = filter.category {
            sql.push(" AND n.assignment_category = ")
                .push_bind(category.as_str());
        }
        if let Some(city) = &filter.city {
            sql.push(" AND lower(n.city) = lower(")
                .push_bind(city)
                .push(")");
        }
        if filter.unready {
            sql.push(" AND ").push(UNREADY);
        }
        if let Some(digits) = &filter.number_contains {
            sql.push(" AND n.phone_number LIKE ")
                .push_bind(format!("%{digits}%"));
        }
        if let Some(holder) = &filter.assigned_to {
            sql.push(" AND n.assigned_to = ").push_bind(holder);
        }
        if let Some(number_type) = filter.number_type {
            sql.push(" AND n.number_type = ")
                .push_bind(number_type.as_str());
        }
        if let Some(status) = filter.assignment_status {
            sql.push(" AND n.assignment_status = ")
                .push_bind(status.as_str());
        }
        if let Some(state) = filter.activation_state {
            sql.push(" AND n.activation_state = ")
                .push_bind(state.as_str());
        }
        if let Some(country) = filter.country {
            sql.push(" AND n.country = ").push_bind(country.as_str());
        }
        if let Some(operator) = &filter.operator_id {
            sql.push(" AND n.operator_id = ").push_bind(operator);
        }
        if let Some(location) = &filter.emergency_location_id {
            sql.push(" AND n.emergency_location_id = ")
                .push_bind(location);
        }
        for capability in filter.capabilities.iter() {
            sql.push(" AND ").push(capability_condition(capability));
        }
        if let Some((state, at)) = filter.block_state {
            let at = micros(at);
            match state {
                BlockState::NotBlocked => sql
                    .push(" AND n.blocked_forever = 0 AND (n.blocked_until IS NULL OR n.blocked_until <= ")
                    .push_bind(at)
                    .push(")"),
                BlockState::BlockedUntil => sql
                    .push(" AND ")
                    .push(BLOCKED)
                    .push(" AND n.blocked_forever = 0 AND n.blocked_until > ")
                    .push_bind(at),
                BlockState::BlockedForever => {
                    sql.push(" AND ").push(BLOCKED).push(" AND n.blocked_forever = 1")
                }
            };
        }
        if let Some(prefix) = &filter.number_prefix {
            // A range rather than LIKE, so the primary key's order serves it.
            sql.push(" AND n.phone_number >= ")
                .push_bind(prefix)
                .push(" AND n.phone_number < ")
                .push_bind(prefix_upper_bound(prefix));
        }
        if let Some(after) = after {
            sql.push(" AND n.phone_number > ").push_bind(after);
        }
        sql.push(" ORDER BY n.phone_number LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<NumberRow> = sql
            .build_query_as()
            .fetch_all(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        numbers(rows)
    }
}

/// A country's readiness, from its counts.
fn readiness(
    (country, assigned, without_location, locked_by_operator, update_failed): (
        String,
        i64,
        i64,
        i64,
        i64,
    ),
) -> CountryReadiness {
    CountryReadiness {
        country,
        assigned,
        without_location,
        locked_by_operator,
        update_failed,
    }
}
