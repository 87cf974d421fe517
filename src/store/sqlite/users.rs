//! Users on SQLite: the directory feed's records, and the numbers each holds.

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::numbers::{NumberRow, number_columns, numbers, select_numbers};
use super::{SqliteTx, json_list, micros, system_time};
use crate::domain::{
    AssignmentStatus, Country, Identity, License, Licenses, TenantId, User, UserFilter, UserUpsert,
};
use crate::store::{Holder, StoreError, StoreResult, UserRepository, holders_of, key, like_prefix};

/// The columns of a user `u`, and the numbers it holds, primary first.
macro_rules! user_columns {
    () => {
        "u.id, u.user_principal_name, u.sip_address, u.display_name, u.usage_location, u.kind, \
         u.licenses, u.enterprise_voice_enabled, u.on_premises_line_uri, u.version, \
         u.create_time, u.update_time, \
         (SELECT json_group_array(n.phone_number ORDER BY \
          CASE n.assignment_category WHEN 'PRIMARY' THEN 0 ELSE 1 END, n.phone_number) \
          FROM phone_numbers n WHERE n.tenant_id = u.tenant_id AND n.assigned_to = u.id) \
         AS phone_numbers"
    };
}

/// Finds one user by the key column named in it; a SIP address is not unique in the
/// directory, so the oldest holder wins, deterministically.
macro_rules! find_user_by {
    ($column:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.tenant_id = $1 AND u.",
            $column,
            " = $2 ORDER BY u.create_time, u.id LIMIT 1"
        )
    };
}

/// Inserts a user, or updates the one with the same key (`conflict`); answers its id.
macro_rules! upsert_user_on {
    ($conflict:literal) => {
        concat!(
            "INSERT INTO users (tenant_id, id, user_principal_name, upn_key, sip_address, \
             sip_key, display_name, display_name_key, usage_location, kind, licenses, \
             on_premises_line_uri, version, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13) \
             ON CONFLICT ",
            $conflict,
            " DO UPDATE SET user_principal_name = excluded.user_principal_name, \
             upn_key = excluded.upn_key, sip_address = excluded.sip_address, \
             sip_key = excluded.sip_key, display_name = excluded.display_name, \
             display_name_key = excluded.display_name_key, \
             usage_location = excluded.usage_location, kind = excluded.kind, \
             licenses = excluded.licenses, on_premises_line_uri = excluded.on_premises_line_uri, \
             version = users.version + 1, update_time = excluded.update_time \
             RETURNING id"
        )
    };
}

/// A user and the numbers it holds, as `user_columns!` reads them.
#[derive(FromRow)]
struct UserRow {
    id: String,
    user_principal_name: String,
    sip_address: String,
    display_name: String,
    usage_location: Option<String>,
    kind: String,
    licenses: Json<Vec<String>>,
    enterprise_voice_enabled: bool,
    on_premises_line_uri: Option<String>,
    version: i64,
    create_time: i64,
    update_time: i64,
    phone_numbers: Json<Vec<String>>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<Self> {
        let what = format!("user {}", row.id);
        Ok(User {
            kind: row
                .kind
                .parse()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            usage_location: row
                .usage_location
                .map(|code| Country::parse(&code))
                .transpose()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            licenses: row
                .licenses
                .0
                .iter()
                .map(|l| l.parse::<License>())
                .collect::<Result<Licenses, _>>()
                .map_err(|e| StoreError::corrupt(&what, e))?,
            id: row.id,
            user_principal_name: row.user_principal_name,
            sip_address: row.sip_address,
            display_name: row.display_name,
            enterprise_voice_enabled: row.enterprise_voice_enabled,
            on_premises_line_uri: row.on_premises_line_uri,
            phone_numbers: row.phone_numbers.0,
            version: row.version,
            create_time: system_time(row.create_time),
            update_time: system_time(row.update_time),
        })
    }
}

#[async_trait]
impl UserRepository for SqliteTx {
    async fn find_user(
        &mut self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> StoreResult<Option<User>> {
        let (sql, value) = match identity {
            Identity::Id(id) => (find_user_by!("id"), id.clone()),
            Identity::UserPrincipalName(upn) => (find_user_by!("upn_key"), key(upn)),
            Identity::SipAddress(sip) => (find_user_by!("sip_key"), key(sip)),
        };
        let row: Option<UserRow> = sqlx::query_as(sql)
            .bind(tenant)
            .bind(value)
            .fetch_optional(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn lock_user(
        &mut self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> StoreResult<Option<Holder>> {
        // The one writer holds the database: reading in a write transaction is locking.
        let Some(user) = self.find_user(tenant, identity).await? else {
            return Ok(None);
        };
        let rows: Vec<NumberRow> = sqlx::query_as(select_numbers!(
            "n.assigned_to = $2 \
             ORDER BY CASE n.assignment_category WHEN 'PRIMARY' THEN 0 ELSE 1 END, n.phone_number"
        ))
        .bind(tenant)
        .bind(&user.id)
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(Some(Holder::new(user, numbers(rows)?)))
    }

    async fn lock_users(
        &mut self,
        tenant: &TenantId,
        identities: &[Identity],
    ) -> StoreResult<Vec<Option<Holder>>> {
        let mut ids = Vec::new();
        let mut upns = Vec::new();
        let mut sips = Vec::new();
        for identity in identities {
            match identity {
                Identity::Id(id) => ids.push(id.clone()),
                Identity::UserPrincipalName(upn) => upns.push(key(upn)),
                Identity::SipAddress(sip) => sips.push(key(sip)),
            }
        }
        // The one writer holds the database: reading in a write transaction is locking. The
        // numbers each user holds are read next, not by `user_columns!`'s query per user.
        let users: Vec<UserRow> = sqlx::query_as(
            "SELECT u.id, u.user_principal_name, u.sip_address, u.display_name, \
             u.usage_location, u.kind, u.licenses, u.enterprise_voice_enabled, \
             u.on_premises_line_uri, u.version, u.create_time, u.update_time, \
             '[]' AS phone_numbers FROM users u WHERE u.tenant_id = $1 \
             AND (u.id IN (SELECT value FROM json_each($2)) \
                  OR u.upn_key IN (SELECT value FROM json_each($3)) \
                  OR u.sip_key IN (SELECT value FROM json_each($4)))",
        )
        .bind(tenant)
        .bind(json_list(ids.iter().map(String::as_str)))
        .bind(json_list(upns.iter().map(String::as_str)))
        .bind(json_list(sips.iter().map(String::as_str)))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        let users = users
            .into_iter()
            .map(User::try_from)
            .collect::<StoreResult<Vec<User>>>()?;
        let held: Vec<NumberRow> = sqlx::query_as(select_numbers!(
            "n.assigned_to IN (SELECT value FROM json_each($2))"
        ))
        .bind(tenant)
        .bind(json_list(users.iter().map(|u| u.id.as_str())))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(holders_of(identities, users, numbers(held)?))
    }

    async fn upsert_user(
        &mut self,
        tenant: &TenantId,
        user: &UserUpsert,
        new_id: &str,
        now: std::time::SystemTime,
    ) -> StoreResult<User> {
        let sql = if user.id.is_some() {
            upsert_user_on!("(tenant_id, id)")
        } else {
            upsert_user_on!("(tenant_id, upn_key)")
        };
        let id: String = sqlx::query_scalar(sql)
            .bind(tenant) // $1
            .bind(user.id.as_deref().unwrap_or(new_id)) // $2
            .bind(&user.user_principal_name) // $3
            .bind(key(&user.user_principal_name)) // $4
            .bind(&user.sip_address) // $5
            .bind(key(&user.sip_address)) // $6
            .bind(&user.display_name) // $7
            .bind(key(&user.display_name)) // $8
            .bind(user.usage_location.map(|c| c.as_str().to_owned())) // $9
            .bind(user.kind.as_str()) // $10
            .bind(json_list(user.licenses.iter().map(License::as_str))) // $11
            .bind(&user.on_premises_line_uri) // $12
            .bind(micros(now)) // $13
            .fetch_one(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        // The numbers a user holds carry its kind as their assignment status.
        sqlx::query(
            "UPDATE phone_numbers SET assignment_status = $3 \
             WHERE tenant_id = $1 AND assigned_to = $2 AND assignment_status <> $3",
        )
        .bind(tenant)
        .bind(&id)
        .bind(AssignmentStatus::of(user.kind).as_str())
        .execute(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        self.find_user(tenant, &Identity::Id(id.clone()))
            .await?
            .ok_or_else(|| StoreError::corrupt(format!("user {id}"), "vanished after its upsert"))
    }

    async fn list_users(
        &mut self,
        tenant: &TenantId,
        filter: &UserFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.tenant_id = "
        ));
        sql.push_bind(tenant);
        if let Some(search) = &filter.search {
            let pattern = like_prefix(&key(search));
            sql.push(" AND (u.display_name_key LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR u.upn_key LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(after) = after {
            sql.push(" AND u.upn_key > ").push_bind(after);
        }
        sql.push(" ORDER BY u.upn_key LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<UserRow> = sql
            .build_query_as()
            .fetch_all(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
