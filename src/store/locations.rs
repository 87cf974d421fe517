//! Emergency locations.

use std::time::SystemTime;

use sqlx::FromRow;

use super::sql::Sql;
use super::users::key;
use super::{StoreError, StoreResult, Tx, from_micros, to_micros};
use crate::domain::{
    CivicAddress, Country, EmergencyLocation, NewEmergencyLocation, ValidationStatus,
};

const LOCATION_COLUMNS: &str = "id, company_name, house_number, house_number_suffix, \
     pre_directional, street_name, street_suffix, post_directional, city, state_or_province, \
     postal_code, country, description, validation_status, create_time";

#[derive(FromRow)]
struct LocationRow {
    id: String,
    company_name: String,
    house_number: String,
    house_number_suffix: String,
    pre_directional: String,
    street_name: String,
    street_suffix: String,
    post_directional: String,
    city: String,
    state_or_province: String,
    postal_code: String,
    country: String,
    description: String,
    validation_status: String,
    create_time: i64,
}

impl TryFrom<LocationRow> for EmergencyLocation {
    type Error = StoreError;

    fn try_from(row: LocationRow) -> StoreResult<Self> {
        let corrupt =
            |e: String| StoreError::Corrupt(format!("emergency location {}: {e}", row.id));
        Ok(EmergencyLocation {
            country: Country::parse(&row.country).map_err(corrupt)?,
            validation_status: row
                .validation_status
                .parse::<ValidationStatus>()
                .map_err(|e| corrupt(e.to_string()))?,
            address: CivicAddress {
                company_name: row.company_name,
                house_number: row.house_number,
                house_number_suffix: row.house_number_suffix,
                pre_directional: row.pre_directional,
                street_name: row.street_name,
                street_suffix: row.street_suffix,
                post_directional: row.post_directional,
                city: row.city,
                state_or_province: row.state_or_province,
                postal_code: row.postal_code,
                country: row.country,
            },
            id: row.id,
            description: row.description,
            create_time: from_micros(row.create_time),
        })
    }
}

/// Where a listing of locations continues: after this creation time, then this id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationCursor {
    create_time: i64,
    id: String,
}

impl LocationCursor {
    /// The cursor that continues after `location`.
    pub fn after(location: &EmergencyLocation) -> Self {
        Self {
            create_time: to_micros(location.create_time),
            id: location.id.clone(),
        }
    }

    /// Reads a cursor written by [`LocationCursor::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let (time, id) = text.split_once(':')?;
        Some(Self {
            create_time: time.parse().ok()?,
            id: id.to_owned(),
        })
    }

    /// The cursor as text, for page tokens.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.create_time, self.id)
    }
}

impl Tx {
    /// Stores a new location with id `id`.
    pub async fn insert_location(
        &mut self,
        tenant: &str,
        id: &str,
        location: &NewEmergencyLocation,
        status: ValidationStatus,
        now: SystemTime,
    ) -> StoreResult<EmergencyLocation> {
        let a = &location.address;
        let mut sql = Sql::new(
            "INSERT INTO emergency_locations (tenant_id, id, company_name, house_number, \
             house_number_suffix, pre_directional, street_name, street_suffix, post_directional, \
             city, city_key, state_or_province, postal_code, country, description, \
             validation_status, create_time) VALUES (",
        );
        let values = [
            tenant,
            id,
            &a.company_name,
            &a.house_number,
            &a.house_number_suffix,
            &a.pre_directional,
            &a.street_name,
            &a.street_suffix,
            &a.post_directional,
            &a.city,
            &key(&a.city),
            &a.state_or_province,
            &a.postal_code,
            location.country.as_str(),
            &location.description,
            status.as_str(),
        ];
        for value in values {
            sql.bind(value.to_owned()).push(", ");
        }
        sql.bind(to_micros(now))
            .push(&format!(") RETURNING {LOCATION_COLUMNS}"));
        let row: LocationRow = sql
            .fetch_optional(&mut self.conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt("insert returned no row".into()))?;
        row.try_into()
    }

    /// Finds a location by id.
    pub async fn get_location(
        &mut self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<EmergencyLocation>> {
        let mut sql = Sql::new(&format!(
            "SELECT {LOCATION_COLUMNS} FROM emergency_locations WHERE tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("id", Some(id.to_owned()));
        let row: Option<LocationRow> = sql.fetch_optional(&mut self.conn).await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Lists locations, optionally in one city (compared case-insensitively) and country,
    /// oldest first, after `after`.
    pub async fn list_locations(
        &mut self,
        tenant: &str,
        city: Option<&str>,
        country: Option<Country>,
        after: Option<&LocationCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EmergencyLocation>> {
        let mut sql = Sql::new(&format!(
            "SELECT {LOCATION_COLUMNS} FROM emergency_locations WHERE tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .and_eq("city_key", city.map(key))
            .and_eq("country", country.map(String::from));
        if let Some(after) = after {
            sql.push(" AND (create_time > ")
                .bind(after.create_time)
                .push(" OR (create_time = ")
                .bind(after.create_time)
                .push(" AND id > ")
                .bind(after.id.clone())
                .push("))");
        }
        sql.push(" ORDER BY create_time, id LIMIT ")
            .bind(limit as i64);
        let rows: Vec<LocationRow> = sql.fetch_all(&mut self.conn).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
