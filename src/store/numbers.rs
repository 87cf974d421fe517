//! The phone number inventory.

use std::collections::HashSet;

use sqlx::FromRow;

use super::sql::Sql;
use super::{StoreError, StoreResult, Tx, from_micros, to_micros};
use crate::domain::{
    Assignment, AssignmentStatus, Block, Capabilities, Country, E164, NumberFilter, PhoneNumber,
    TargetKind,
};

/// The columns of a number and of its holder, from `phone_numbers n LEFT JOIN users u`.
const NUMBER_COLUMNS: &str = "n.phone_number, n.base_number, n.country, n.number_type, \
     n.operator_id, n.city, n.capabilities, n.assigned_to, u.user_principal_name AS holder_upn, \
     u.kind AS holder_kind, n.assignment_category, n.activation_state, n.emergency_location_id, \
     n.location_update_supported, n.blocked_until, n.blocked_forever, n.operation_id, n.version, \
     n.create_time, n.update_time";

const NUMBER_FROM: &str =
    " FROM phone_numbers n LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to";

#[derive(FromRow)]
struct NumberRow {
    phone_number: String,
    base_number: String,
    country: String,
    number_type: String,
    operator_id: Option<String>,
    city: String,
    capabilities: i64,
    assigned_to: Option<String>,
    holder_upn: Option<String>,
    holder_kind: Option<String>,
    assignment_category: Option<String>,
    activation_state: String,
    emergency_location_id: Option<String>,
    location_update_supported: i64,
    blocked_until: Option<i64>,
    blocked_forever: i64,
    operation_id: Option<String>,
    version: i64,
    create_time: i64,
    update_time: i64,
}

impl TryFrom<NumberRow> for PhoneNumber {
    type Error = StoreError;

    fn try_from(row: NumberRow) -> StoreResult<Self> {
        let corrupt = |e: String| StoreError::Corrupt(format!("number {}: {e}", row.phone_number));
        let assignment = match (row.assigned_to, row.assignment_category) {
            (Some(target_id), Some(category)) => Some(Assignment {
                target_id,
                target_user_principal_name: row.holder_upn.unwrap_or_default(),
                target_kind: row
                    .holder_kind
                    .as_deref()
                    .unwrap_or("USER")
                    .parse()
                    .map_err(|e: numbers_provider::ParseEnumError| corrupt(e.to_string()))?,
                category: category
                    .parse()
                    .map_err(|e: numbers_provider::ParseEnumError| corrupt(e.to_string()))?,
            }),
            _ => None,
        };
        let block = match (row.blocked_forever, row.blocked_until) {
            (0, None) => Block::None,
            (0, Some(until)) => Block::Until(from_micros(until)),
            _ => Block::Forever,
        };
        Ok(PhoneNumber {
            number: E164::from_stored(
                &row.phone_number,
                &row.base_number,
                Country::parse(&row.country).map_err(corrupt)?,
            )
            .map_err(corrupt)?,
            number_type: row
                .number_type
                .parse()
                .map_err(|e: numbers_provider::ParseEnumError| corrupt(e.to_string()))?,
            operator_id: row.operator_id,
            city: row.city,
            capabilities: Capabilities::from_bits(row.capabilities),
            assignment,
            activation_state: row
                .activation_state
                .parse()
                .map_err(|e: numbers_provider::ParseEnumError| corrupt(e.to_string()))?,
            emergency_location_id: row.emergency_location_id,
            location_update_supported: row.location_update_supported != 0,
            block,
            operation_id: row.operation_id,
            version: row.version,
            create_time: from_micros(row.create_time),
            update_time: from_micros(row.update_time),
        })
    }
}

/// The first string after every string starting with `prefix`: the prefix with its last
/// character incremented. Numbers are ASCII, so this never overflows a character.
fn prefix_upper_bound(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// The stored form of a block: `blocked_until` and `blocked_forever`.
fn block_columns(block: Block) -> (Option<i64>, i64) {
    match block {
        Block::None => (None, 0),
        Block::Until(until) => (Some(to_micros(until)), 0),
        Block::Forever => (None, 1),
    }
}

/// The `INSERT` of a whole number record.
fn insert_number_sql(tenant: &str, number: &PhoneNumber) -> Sql {
    let (blocked_until, blocked_forever) = block_columns(number.block);
    let assignment = number.assignment.as_ref();
    let mut sql = Sql::new(
        "INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, \
         operator_id, country, city, capabilities, assigned_to, assignment_category, \
         activation_state, emergency_location_id, location_update_supported, blocked_until, \
         blocked_forever, operation_id, version, create_time, update_time) VALUES (",
    );
    sql.bind(tenant.to_owned())
        .push(", ")
        .bind(number.number.canonical())
        .push(", ")
        .bind(number.number.base().to_owned())
        .push(", ")
        .bind(number.number_type.as_str().to_owned())
        .push(", ")
        .bind(number.operator_id.clone())
        .push(", ")
        .bind(number.country().as_str().to_owned())
        .push(", ")
        .bind(number.city.clone())
        .push(", ")
        .bind(number.capabilities.bits())
        .push(", ")
        .bind(assignment.map(|a| a.target_id.clone()))
        .push(", ")
        .bind(assignment.map(|a| a.category.as_str().to_owned()))
        .push(", ")
        .bind(number.activation_state.as_str().to_owned())
        .push(", ")
        .bind(number.emergency_location_id.clone())
        .push(", ")
        .bind(i64::from(number.location_update_supported))
        .push(", ")
        .bind(blocked_until)
        .push(", ")
        .bind(blocked_forever)
        .push(", ")
        .bind(number.operation_id.clone())
        .push(", ")
        .bind(number.version)
        .push(", ")
        .bind(to_micros(number.create_time))
        .push(", ")
        .bind(to_micros(number.update_time))
        .push(")");
    sql
}

impl Tx {
    /// Finds a number by its canonical form.
    pub async fn get_number(
        &mut self,
        tenant: &str,
        number: &str,
    ) -> StoreResult<Option<PhoneNumber>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NUMBER_COLUMNS}{NUMBER_FROM} WHERE n.tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("n.phone_number", Some(number.to_owned()));
        let row: Option<NumberRow> = sql.fetch_optional(&mut self.conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Adds a number to the tenant's inventory.
    pub async fn insert_number(&mut self, tenant: &str, number: &PhoneNumber) -> StoreResult<()> {
        insert_number_sql(tenant, number)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Finds a number and locks it until the transaction ends.
    pub async fn lock_number(
        &mut self,
        tenant: &str,
        number: &str,
    ) -> StoreResult<Option<PhoneNumber>> {
        Ok(self.lock_numbers(tenant, &[number.to_owned()]).await?.pop())
    }

    /// Finds numbers and locks them until the transaction ends, in the order of the numbers,
    /// so that transactions locking several numbers never wait on each other in a cycle.
    pub async fn lock_numbers(
        &mut self,
        tenant: &str,
        numbers: &[String],
    ) -> StoreResult<Vec<PhoneNumber>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(&format!(
            "SELECT {NUMBER_COLUMNS}{NUMBER_FROM} WHERE n.tenant_id = "
        ));
        sql.bind(tenant.to_owned()).push(" AND n.phone_number IN (");
        for (i, number) in numbers.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(number.clone());
        }
        sql.push(") ORDER BY n.phone_number")
            .push(self.dialect.for_update_of_numbers());
        let rows: Vec<NumberRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The numbers a user holds, ordered by number, locked when `lock`.
    pub async fn numbers_held_by(
        &mut self,
        tenant: &str,
        user_id: &str,
        lock: bool,
    ) -> StoreResult<Vec<PhoneNumber>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NUMBER_COLUMNS}{NUMBER_FROM} WHERE n.tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("n.assigned_to", Some(user_id.to_owned()))
            .push(" ORDER BY n.phone_number");
        if lock {
            sql.push(self.dialect.for_update_of_numbers());
        }
        let rows: Vec<NumberRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The assigned numbers that share the base number `base` (the number itself and its
    /// extensions).
    pub async fn assigned_on_base(
        &mut self,
        tenant: &str,
        base: &str,
    ) -> StoreResult<Vec<PhoneNumber>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NUMBER_COLUMNS}{NUMBER_FROM} WHERE n.tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("n.base_number", Some(base.to_owned()))
            .push(" AND n.assigned_to IS NOT NULL ORDER BY n.phone_number");
        let rows: Vec<NumberRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Adds a number unless the tenant (or, for provider numbers, any tenant) has it already;
    /// answers whether it was added. On PostgreSQL a concurrent insert of the same number
    /// waits for the other transaction, then finds the number taken.
    pub async fn insert_number_if_absent(
        &mut self,
        tenant: &str,
        number: &PhoneNumber,
    ) -> StoreResult<bool> {
        let mut sql = insert_number_sql(tenant, number);
        sql.push(" ON CONFLICT DO NOTHING");
        Ok(sql.execute(&mut self.conn).await? == 1)
    }

    /// Writes the changeable parts of a number read at `number.version`, and answers it at
    /// the next version. Fails with [`StoreError::Stale`] when the number changed since.
    pub async fn update_number(
        &mut self,
        tenant: &str,
        number: &PhoneNumber,
        now: std::time::SystemTime,
    ) -> StoreResult<PhoneNumber> {
        let (blocked_until, blocked_forever) = block_columns(number.block);
        let assignment = number.assignment.as_ref();
        let mut sql = Sql::new("UPDATE phone_numbers SET assigned_to = ");
        sql.bind(assignment.map(|a| a.target_id.clone()))
            .push(", assignment_category = ")
            .bind(assignment.map(|a| a.category.as_str().to_owned()))
            .push(", activation_state = ")
            .bind(number.activation_state.as_str().to_owned())
            .push(", emergency_location_id = ")
            .bind(number.emergency_location_id.clone())
            .push(", location_update_supported = ")
            .bind(i64::from(number.location_update_supported))
            .push(", capabilities = ")
            .bind(number.capabilities.bits())
            .push(", city = ")
            .bind(number.city.clone())
            .push(", blocked_until = ")
            .bind(blocked_until)
            .push(", blocked_forever = ")
            .bind(blocked_forever)
            .push(", operation_id = ")
            .bind(number.operation_id.clone())
            .push(", version = version + 1, update_time = ")
            .bind(to_micros(now))
            .push(" WHERE tenant_id = ")
            .bind(tenant.to_owned())
            .and_eq("phone_number", Some(number.number.canonical()))
            .and_eq("version", Some(number.version));
        if sql.execute(&mut self.conn).await? != 1 {
            return Err(StoreError::Stale(number.number.canonical()));
        }
        // Answer the number exactly as a read would: times at the stored precision.
        let block = match number.block {
            Block::Until(until) => Block::Until(from_micros(to_micros(until))),
            other => other,
        };
        Ok(PhoneNumber {
            version: number.version + 1,
            update_time: from_micros(to_micros(now)),
            block,
            ..number.clone()
        })
    }

    /// Removes a number from the tenant's inventory.
    pub async fn delete_number(&mut self, tenant: &str, number: &str) -> StoreResult<()> {
        let mut sql = Sql::new("DELETE FROM phone_numbers WHERE tenant_id = ");
        sql.bind(tenant.to_owned())
            .and_eq("phone_number", Some(number.to_owned()));
        sql.execute(&mut self.conn).await?;
        Ok(())
    }

    /// Which of `numbers` some tenant holds as a provider number (Calling Plan or Operator
    /// Connect). This is the one query that looks across tenants: stock is global.
    pub async fn provider_numbers_taken(
        &mut self,
        numbers: &[String],
    ) -> StoreResult<HashSet<String>> {
        if numbers.is_empty() {
            return Ok(HashSet::new());
        }
        let mut sql = Sql::new(
            "SELECT phone_number FROM phone_numbers WHERE number_type <> 'DIRECT_ROUTING' \
             AND phone_number IN (",
        );
        for (i, number) in numbers.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(number.clone());
        }
        sql.push(")");
        let rows: Vec<(String,)> = sql.fetch_all(&mut self.conn).await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// How many of the operator's numbers in the tenant are assigned.
    pub async fn assigned_numbers_of_operator(
        &mut self,
        tenant: &str,
        operator_id: &str,
    ) -> StoreResult<i64> {
        let mut sql = Sql::new("SELECT COUNT(*) FROM phone_numbers WHERE tenant_id = ");
        sql.bind(tenant.to_owned())
            .and_eq("operator_id", Some(operator_id.to_owned()))
            .push(" AND assigned_to IS NOT NULL");
        let (count,): (i64,) = sql.fetch_optional(&mut self.conn).await?.unwrap_or((0,));
        Ok(count)
    }

    /// Lists numbers matching `filter`, ordered by number, after the number `after`.
    pub async fn list_numbers(
        &mut self,
        tenant: &str,
        filter: &NumberFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PhoneNumber>> {
        let mut sql = Sql::new(&format!(
            "SELECT {NUMBER_COLUMNS}{NUMBER_FROM} WHERE n.tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("n.assigned_to", filter.assigned_to.clone())
            .and_eq(
                "n.number_type",
                filter.number_type.map(|t| t.as_str().to_owned()),
            )
            .and_eq(
                "n.activation_state",
                filter.activation_state.map(|s| s.as_str().to_owned()),
            )
            .and_eq("n.country", filter.country.map(String::from))
            .and_eq("n.operator_id", filter.operator_id.clone())
            .and_eq(
                "n.emergency_location_id",
                filter.emergency_location_id.clone(),
            );
        match filter.assignment_status {
            None => {}
            Some(AssignmentStatus::Unassigned) => {
                sql.push(" AND n.assigned_to IS NULL");
            }
            Some(AssignmentStatus::UserAssigned) => {
                sql.and_eq("u.kind", Some(TargetKind::User.as_str().to_owned()));
            }
            Some(AssignmentStatus::VoiceApplicationAssigned) => {
                sql.and_eq(
                    "u.kind",
                    Some(TargetKind::ResourceAccount.as_str().to_owned()),
                );
            }
        }
        if !filter.capabilities.is_empty() {
            sql.push(" AND (n.capabilities & ")
                .bind(filter.capabilities.bits())
                .push(") = ")
                .bind(filter.capabilities.bits());
        }
        if let Some(prefix) = &filter.number_prefix {
            // A range rather than LIKE, so both databases walk the primary key index.
            sql.push(" AND n.phone_number >= ")
                .bind(prefix.clone())
                .push(" AND n.phone_number < ")
                .bind(prefix_upper_bound(prefix));
        }
        if let Some(after) = after {
            sql.push(" AND n.phone_number > ").bind(after.to_owned());
        }
        sql.push(" ORDER BY n.phone_number LIMIT ")
            .bind(limit as i64);
        let rows: Vec<NumberRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds_enclose_exactly_the_prefixed_numbers() {
        let upper = prefix_upper_bound("+1425");
        assert_eq!(upper, "+1426");
        assert!("+14255550101" < upper.as_str() && "+14255550101" >= "+1425");
        assert!("+1426" >= upper.as_str());
    }
}
