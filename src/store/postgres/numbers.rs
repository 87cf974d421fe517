//! The phone number inventory on PostgreSQL.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, QueryBuilder, Row as _};
use time::OffsetDateTime;

use super::{PgTx, system_time, timestamp, uuid};
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
pub(super) use number_columns;

/// Inserts a number (parameters `$1` to `$20`) unless a tenant has it. `turn` may name a
/// `WITH turn AS (...)` that the insert waits for (see `insert_number`), and `from` is then
/// `FROM turn`.
macro_rules! insert_number_unless {
    ($turn:literal, $from:literal) => {
        concat!(
            $turn,
            "INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, \
             operator_id, country, city, capabilities, assigned_to, assignment_category, \
             assignment_status, activation_state, emergency_location_id, \
             location_update_supported, blocked_until, blocked_forever, operation_id, version, \
             create_time, update_time) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20 ",
            $from,
            "WHERE NOT EXISTS (SELECT 1 FROM phone_numbers WHERE phone_number = $2) \
             ON CONFLICT (phone_number) DO NOTHING"
        )
    };
}

/// A number and its holder, as `number_columns!` reads them.
pub(super) struct NumberRow {
    phone_number: String,
    base_number: String,
    country: String,
    number_type: String,
    operator_id: Option<String>,
    city: String,
    capabilities: Vec<String>,
    assigned_to: Option<String>,
    holder_upn: Option<String>,
    holder_kind: Option<String>,
    assignment_category: Option<String>,
    activation_state: String,
    emergency_location_id: Option<String>,
    location_update_supported: bool,
    blocked_until: Option<OffsetDateTime>,
    blocked_forever: bool,
    operation_id: Option<uuid::Uuid>,
    version: i64,
    create_time: OffsetDateTime,
    update_time: OffsetDateTime,
    tags: Vec<String>,
}

impl NumberRow {
    /// Reads the number's columns named with `prefix` (for rows that also hold other
    /// columns of the same names).
    pub(super) fn from_prefixed(row: &PgRow, prefix: &str) -> sqlx::Result<Self> {
        let column = |name: &str| format!("{prefix}{name}");
        Ok(Self {
            phone_number: row.try_get(column("phone_number").as_str())?,
            base_number: row.try_get(column("base_number").as_str())?,
            country: row.try_get(column("country").as_str())?,
            number_type: row.try_get(column("number_type").as_str())?,
            operator_id: row.try_get(column("operator_id").as_str())?,
            city: row.try_get(column("city").as_str())?,
            capabilities: row.try_get(column("capabilities").as_str())?,
            assigned_to: row.try_get(column("assigned_to").as_str())?,
            holder_upn: row.try_get(column("holder_upn").as_str())?,
            holder_kind: row.try_get(column("holder_kind").as_str())?,
            assignment_category: row.try_get(column("assignment_category").as_str())?,
            activation_state: row.try_get(column("activation_state").as_str())?,
            emergency_location_id: row.try_get(column("emergency_location_id").as_str())?,
            location_update_supported: row.try_get(column("location_update_supported").as_str())?,
            blocked_until: row.try_get(column("blocked_until").as_str())?,
            blocked_forever: row.try_get(column("blocked_forever").as_str())?,
            operation_id: row.try_get(column("operation_id").as_str())?,
            version: row.try_get(column("version").as_str())?,
            create_time: row.try_get(column("create_time").as_str())?,
            update_time: row.try_get(column("update_time").as_str())?,
            tags: row.try_get(column("tags").as_str())?,
        })
    }
}

impl<'r> FromRow<'r, PgRow> for NumberRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Self::from_prefixed(row, "")
    }
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
            operation_id: row.operation_id.map(|id| id.to_string()),
            tags: row.tags,
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

/// The capabilities as a `text[]`.
fn capability_names(capabilities: Capabilities) -> Vec<&'static str> {
    capabilities.iter().map(Capability::as_str).collect()
}

/// The two columns a block is kept in: `blocked_until` and `blocked_forever`.
fn block_columns(block: Block) -> (Option<OffsetDateTime>, bool) {
    match block {
        Block::None => (None, false),
        Block::Until(until) => (Some(timestamp(until)), false),
        Block::Forever => (None, true),
    }
}

/// The partial index condition of the numbers not ready for an emergency call (see the
/// migrations): the listing repeats it word for word.
const UNREADY: &str = "((n.assigned_to IS NOT NULL AND n.emergency_location_id IS NULL) \
     OR n.activation_state = 'UPDATE_FAILED')";

/// The partial index condition of the blocked numbers (see the migrations): the listing repeats
/// it word for word.
const BLOCKED: &str = "(n.blocked_forever OR n.blocked_until IS NOT NULL)";

/// The partial index condition of each capability (see the migrations): the listing repeats it
/// word for word, so PostgreSQL walks that index.
fn capability_condition(capability: Capability) -> &'static str {
    match capability {
        Capability::UserAssignment => "n.capabilities @> '{USER_ASSIGNMENT}'",
        Capability::VoiceApplicationAssignment => {
            "n.capabilities @> '{VOICE_APPLICATION_ASSIGNMENT}'"
        }
        Capability::ConferenceAssignment => "n.capabilities @> '{CONFERENCE_ASSIGNMENT}'",
    }
}

#[async_trait]
impl NumberRepository for PgTx {
    async fn get_number(
        &mut self,
        tenant: &TenantId,
        number: &str,
    ) -> StoreResult<Option<PhoneNumber>> {
        let row: Option<NumberRow> = sqlx::query_as(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND n.phone_number = $2"
        ))
        .bind(tenant)
        .bind(number)
        .fetch_optional(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn get_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<NumberRow> = sqlx::query_as(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND n.phone_number = ANY($2) ORDER BY n.phone_number"
        ))
        .bind(tenant)
        .bind(numbers)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        self::numbers(rows)
    }

    async fn lock_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<NumberRow> = sqlx::query_as(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND n.phone_number = ANY($2) \
             ORDER BY n.phone_number FOR UPDATE OF n"
        ))
        .bind(tenant)
        .bind(numbers)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        self::numbers(rows)
    }

    async fn lock_numbers_on_base(
        &mut self,
        tenant: &TenantId,
        base: &str,
        also: Option<&str>,
    ) -> StoreResult<Vec<PhoneNumber>> {
        let rows: Vec<NumberRow> = sqlx::query_as(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND n.phone_number IN (SELECT phone_number FROM phone_numbers \
             WHERE tenant_id = $1 AND base_number = $2 UNION ALL SELECT $3::text) \
             ORDER BY n.phone_number FOR UPDATE OF n"
        ))
        .bind(tenant)
        .bind(base)
        .bind(also)
        .fetch_all(self.scoped(tenant).await?)
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
        // A number is taken when any tenant has it; the unique index of numbers is the
        // arbiter. Two transactions of one tenant inserting the same number at once can still
        // meet on the primary key, which is no arbiter (ON CONFLICT takes one), and the second
        // fails: that is a concurrent change for a Direct Routing number's first assignment.
        // The inserts of provider numbers take turns per tenant instead (one transaction lock
        // on the tenant's hash, however many numbers it inserts): the second transaction's
        // insert starts once the first ended, and the arbiter then finds the number.
        // Acquisitions and uploads are an administrator's occasional calls; the assignments'
        // inserts of Direct Routing numbers do not take turns.
        let sql = if number.number_type == NumberType::DirectRouting {
            insert_number_unless!("", "")
        } else {
            insert_number_unless!(
                "WITH turn AS (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) ",
                "FROM turn "
            )
        };
        let inserted = sqlx::query(sql)
            .bind(tenant) // $1
            .bind(number.number.canonical()) // $2
            .bind(number.number.base()) // $3
            .bind(number.number_type.as_str()) // $4
            .bind(&number.operator_id) // $5
            .bind(number.country().as_str()) // $6
            .bind(&number.city) // $7
            .bind(capability_names(number.capabilities)) // $8
            .bind(assignment.map(|a| &a.target_id)) // $9
            .bind(assignment.map(|a| a.category.as_str())) // $10
            .bind(number.assignment_status().as_str()) // $11
            .bind(number.activation_state.as_str()) // $12
            .bind(&number.emergency_location_id) // $13
            .bind(number.location_update_supported) // $14
            .bind(blocked_until) // $15
            .bind(blocked_forever) // $16
            .bind(number.operation_id.as_deref().and_then(uuid)) // $17
            .bind(number.version) // $18
            .bind(timestamp(number.create_time)) // $19
            .bind(timestamp(number.update_time)) // $20
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| match self.failed(e) {
                // The number inserted meanwhile by the tenant: a concurrent change.
                error if error.is_constraint("phone_numbers_pkey") => {
                    StoreError::Stale(format!("phone number {}", number.number.canonical()))
                }
                error => error,
            })?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn lock_numbers_on_bases(
        &mut self,
        tenant: &TenantId,
        bases: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        let rows: Vec<NumberRow> = sqlx::query_as(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND n.base_number = ANY($2) \
             ORDER BY n.phone_number FOR UPDATE OF n"
        ))
        .bind(tenant)
        .bind(bases)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        self::numbers(rows)
    }

    async fn insert_numbers(
        &mut self,
        tenant: &TenantId,
        numbers: &[PhoneNumber],
    ) -> StoreResult<Vec<bool>> {
        // As `insert_number` for Direct Routing numbers (which do not take turns), in one
        // statement.
        let column = |f: &dyn Fn(&PhoneNumber) -> Option<String>| -> Vec<Option<String>> {
            numbers.iter().map(f).collect()
        };
        let blocks: Vec<_> = numbers.iter().map(|n| block_columns(n.block)).collect();
        let inserted: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, \
             operator_id, country, city, capabilities, assigned_to, assignment_category, \
             assignment_status, activation_state, emergency_location_id, \
             location_update_supported, blocked_until, blocked_forever, operation_id, version, \
             create_time, update_time) \
             SELECT $1, c.phone_number, c.base_number, c.number_type, c.operator_id, c.country, \
             c.city, string_to_array(c.capabilities, ','), c.assigned_to, \
             c.assignment_category, c.assignment_status, c.activation_state, \
             c.emergency_location_id, c.location_update_supported, c.blocked_until, \
             c.blocked_forever, c.operation_id, c.version, c.create_time, c.update_time \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
             $13::text[], $14::boolean[], $15::timestamptz[], $16::boolean[], $17::uuid[], \
             $18::bigint[], $19::timestamptz[], $20::timestamptz[]) \
             AS c(phone_number, base_number, number_type, operator_id, country, city, \
             capabilities, assigned_to, assignment_category, assignment_status, \
             activation_state, emergency_location_id, location_update_supported, \
             blocked_until, blocked_forever, operation_id, version, create_time, update_time) \
             WHERE NOT EXISTS (SELECT 1 FROM phone_numbers p \
                               WHERE p.phone_number = c.phone_number) \
             ON CONFLICT (phone_number) DO NOTHING RETURNING phone_number",
        )
        .bind(tenant) // $1
        .bind(column(&|n| Some(n.number.canonical()))) // $2
        .bind(column(&|n| Some(n.number.base().to_owned()))) // $3
        .bind(column(&|n| Some(n.number_type.as_str().to_owned()))) // $4
        .bind(column(&|n| n.operator_id.clone())) // $5
        .bind(column(&|n| Some(n.country().as_str().to_owned()))) // $6
        .bind(column(&|n| Some(n.city.clone()))) // $7
        .bind(column(&|n| {
            Some(capability_names(n.capabilities).join(","))
        })) // $8
        .bind(column(&|n| {
            n.assignment.as_ref().map(|a| a.target_id.clone())
        })) // $9
        .bind(column(&|n| {
            n.assignment
                .as_ref()
                .map(|a| a.category.as_str().to_owned())
        })) // $10
        .bind(column(&|n| Some(n.assignment_status().as_str().to_owned()))) // $11
        .bind(column(&|n| Some(n.activation_state.as_str().to_owned()))) // $12
        .bind(column(&|n| n.emergency_location_id.clone())) // $13
        .bind(
            numbers
                .iter()
                .map(|n| n.location_update_supported)
                .collect::<Vec<_>>(),
        ) // $14
        .bind(blocks.iter().map(|(until, _)| *until).collect::<Vec<_>>()) // $15
        .bind(
            blocks
                .iter()
                .map(|(_, forever)| *forever)
                .collect::<Vec<_>>(),
        ) // $16
        .bind(
            numbers
                .iter()
                .map(|n| n.operation_id.as_deref().and_then(uuid))
                .collect::<Vec<_>>(),
        ) // $17
        .bind(numbers.iter().map(|n| n.version).collect::<Vec<_>>()) // $18
        .bind(
            numbers
                .iter()
                .map(|n| timestamp(n.create_time))
                .collect::<Vec<_>>(),
        ) // $19
        .bind(
            numbers
                .iter()
                .map(|n| timestamp(n.update_time))
                .collect::<Vec<_>>(),
        ) // $20
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| match self.failed(e) {
            error if error.is_constraint("phone_numbers_pkey") => {
                StoreError::Stale("Direct Routing numbers inserted meanwhile".to_owned())
            }
            error => error,
        })?;
        let inserted: HashSet<String> = inserted.into_iter().map(|(n,)| n).collect();
        Ok(numbers
            .iter()
            .map(|n| inserted.contains(&n.number.canonical()))
            .collect())
    }

    async fn delete_numbers(&mut self, tenant: &TenantId, numbers: &[String]) -> StoreResult<()> {
        sqlx::query("DELETE FROM phone_numbers WHERE tenant_id = $1 AND phone_number = ANY($2)")
            .bind(tenant)
            .bind(numbers)
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn numbers_taken(&mut self, numbers: &[String]) -> StoreResult<HashSet<String>> {
        if numbers.is_empty() {
            return Ok(HashSet::new());
        }
        // Across tenants, so through the one function that may look there (migration 0007).
        let taken: Vec<String> = sqlx::query_scalar("SELECT numbers_taken($1)")
            .bind(numbers)
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
        // The same turn as `insert_number`'s, taken in a statement of its own: the count's
        // snapshot must begin after the turn came, to see what the previous holder wrote.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(tenant)
            .execute(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        sqlx::query_scalar(
            "SELECT count(*) FROM phone_numbers WHERE tenant_id = $1 AND number_type = $2",
        )
        .bind(tenant)
        .bind(number_type.as_str())
        .fetch_one(self.scoped(tenant).await?)
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
        .fetch_one(self.scoped(tenant).await?)
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
             count(*) FILTER (WHERE assigned_to IS NOT NULL), \
             count(*) FILTER (WHERE assigned_to IS NOT NULL AND emergency_location_id IS NULL \
                              AND location_update_supported \
                              AND activation_state <> 'UPDATE_FAILED'), \
             count(*) FILTER (WHERE assigned_to IS NOT NULL AND emergency_location_id IS NULL \
                              AND NOT location_update_supported \
                              AND activation_state <> 'UPDATE_FAILED'), \
             count(*) FILTER (WHERE activation_state = 'UPDATE_FAILED') \
             FROM phone_numbers WHERE tenant_id = $1 AND ($2::text IS NULL OR country = $2) \
             GROUP BY country ORDER BY country",
        )
        .bind(tenant)
        .bind(country.map(|c| c.as_str().to_owned()))
        .fetch_all(self.scoped(tenant).await?)
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
        let mut sql = QueryBuilder::<Postgres>::new(concat!(
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
            let at = timestamp(at);
            match state {
                BlockState::NotBlocked => sql
                    .push(" AND NOT n.blocked_forever AND (n.blocked_until IS NULL OR n.blocked_until <= ")
                    .push_bind(at)
                    .push(")"),
                BlockState::BlockedUntil => sql
                    .push(" AND ")
                    .push(BLOCKED)
                    .push(" AND NOT n.blocked_forever AND n.blocked_until > ")
                    .push_bind(at),
                BlockState::BlockedForever => {
                    sql.push(" AND ").push(BLOCKED).push(" AND n.blocked_forever")
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
            .fetch_all(self.scoped(tenant).await?)
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
