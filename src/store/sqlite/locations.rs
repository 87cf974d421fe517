//! Emergency locations on SQLite.

use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{SqliteTx, micros, system_time};
use crate::domain::{
    CivicAddress, Country, EmergencyLocation, NewEmergencyLocation, TenantId, ValidationStatus,
};
use crate::store::{LocationCursor, LocationRepository, StoreError, StoreResult, key};

macro_rules! location_columns {
    () => {
        "id, company_name, house_number, house_number_suffix, pre_directional, street_name, \
         street_suffix, post_directional, city, state_or_province, postal_code, country, \
         description, validation_status, create_time, parent_id, version"
    };
}

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
    parent_id: Option<String>,
    version: i64,
}

impl TryFrom<LocationRow> for EmergencyLocation {
    type Error = StoreError;

    fn try_from(row: LocationRow) -> StoreResult<Self> {
        let what = format!("emergency location {}", row.id);
        Ok(EmergencyLocation {
            country: Country::parse(&row.country).map_err(|e| StoreError::corrupt(&what, e))?,
            validation_status: row
                .validation_status
                .parse::<ValidationStatus>()
                .map_err(|e| StoreError::corrupt(&what, e))?,
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
            create_time: system_time(row.create_time),
            parent_id: row.parent_id,
            version: row.version,
        })
    }
}

#[async_trait]
impl LocationRepository for SqliteTx {
    async fn insert_location(
        &mut self,
        tenant: &TenantId,
        id: &str,
        location: &NewEmergencyLocation,
        status: ValidationStatus,
        now: std::time::SystemTime,
    ) -> StoreResult<EmergencyLocation> {
        let a = &location.address;
        let row: LocationRow = sqlx::query_as(concat!(
            "INSERT INTO emergency_locations (tenant_id, id, company_name, house_number, \
             house_number_suffix, pre_directional, street_name, street_suffix, \
             post_directional, city, city_key, state_or_province, postal_code, country, \
             description, validation_status, create_time, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18) \
             RETURNING ",
            location_columns!()
        ))
        .bind(tenant) // $1
        .bind(id) // $2
        .bind(&a.company_name) // $3
        .bind(&a.house_number) // $4
        .bind(&a.house_number_suffix) // $5
        .bind(&a.pre_directional) // $6
        .bind(&a.street_name) // $7
        .bind(&a.street_suffix) // $8
        .bind(&a.post_directional) // $9
        .bind(&a.city) // $10
        .bind(key(&a.city)) // $11
        .bind(&a.state_or_province) // $12
        .bind(&a.postal_code) // $13
        .bind(location.country.as_str()) // $14
        .bind(&location.description) // $15
        .bind(status.as_str()) // $16
        .bind(micros(now)) // $17
        .bind(&location.parent_id) // $18
        .fetch_one(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        row.try_into()
    }

    async fn get_location(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<EmergencyLocation>> {
        let row: Option<LocationRow> = sqlx::query_as(concat!(
            "SELECT ",
            location_columns!(),
            " FROM emergency_locations WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn places(
        &mut self,
        tenant: &TenantId,
        parents: &[String],
    ) -> StoreResult<Vec<EmergencyLocation>> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            location_columns!(),
            " FROM emergency_locations WHERE tenant_id = "
        ));
        sql.push_bind(tenant).push(" AND parent_id IN (");
        let mut listed = sql.separated(", ");
        for parent in parents {
            listed.push_bind(parent);
        }
        sql.push(") ORDER BY create_time, id");
        let rows: Vec<LocationRow> = sql
            .build_query_as()
            .fetch_all(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn update_location(
        &mut self,
        tenant: &TenantId,
        location: &EmergencyLocation,
    ) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE emergency_locations SET description = $3, version = $4 \
             WHERE tenant_id = $1 AND id = $2 AND version = $4 - 1",
        )
        .bind(tenant)
        .bind(&location.id)
        .bind(&location.description)
        .bind(location.version)
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Stale(format!(
                "emergency location {}",
                location.id
            )));
        }
        Ok(())
    }

    async fn lock_location_uses(&mut self, tenant: &TenantId, ids: &[String]) -> StoreResult<i64> {
        // The one writer holds the database: counting in the write transaction is locking.
        let mut uses = 0;
        for id in ids {
            let count: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM phone_numbers \
                         WHERE tenant_id = $1 AND emergency_location_id = $2) \
                      + (SELECT count(*) FROM provisioning_jobs \
                         WHERE tenant_id = $1 AND state IN ('PENDING', 'RUNNING') \
                         AND (emergency_location_id = $2 OR previous_location_id = $2))",
            )
            .bind(tenant)
            .bind(id)
            .fetch_one(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
            uses += count;
        }
        Ok(uses)
    }

    async fn delete_locations(&mut self, tenant: &TenantId, ids: &[String]) -> StoreResult<()> {
        for id in ids {
            sqlx::query("DELETE FROM emergency_locations WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(self.conn())
                .await
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    async fn list_locations(
        &mut self,
        tenant: &TenantId,
        city: Option<&str>,
        country: Option<Country>,
        after: Option<&LocationCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EmergencyLocation>> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            location_columns!(),
            " FROM emergency_locations WHERE parent_id IS NULL AND tenant_id = "
        ));
        sql.push_bind(tenant);
        if let Some(city) = city {
            sql.push(" AND city_key = ").push_bind(key(city));
        }
        if let Some(country) = country {
            sql.push(" AND country = ").push_bind(country.as_str());
        }
        if let Some(after) = after {
            sql.push(" AND (create_time, id) > (")
                .push_bind(micros(after.create_time))
                .push(", ")
                .push_bind(after.id.clone())
                .push(")");
        }
        sql.push(" ORDER BY create_time, id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<LocationRow> = sql
            .build_query_as()
            .fetch_all(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
