//! The phone number inventory.

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
     n.location_update_supported, n.blocked_until, n.blocked_forever, n.version, n.create_time, \
     n.update_time";

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
        let (blocked_until, blocked_forever) = match number.block {
            Block::None => (None, 0),
            Block::Until(until) => (Some(to_micros(until)), 0),
            Block::Forever => (None, 1),
        };
        let assignment = number.assignment.as_ref();
        let mut sql = Sql::new(
            "INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, \
             operator_id, country, city, capabilities, assigned_to, assignment_category, \
             activation_state, emergency_location_id, location_update_supported, blocked_until, \
             blocked_forever, version, create_time, update_time) VALUES (",
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
            .bind(number.version)
            .push(", ")
            .bind(to_micros(number.create_time))
            .push(", ")
            .bind(to_micros(number.update_time))
            .push(")");
        sql.execute(&mut self.conn).await?;
        Ok(())
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
