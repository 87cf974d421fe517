//! Users: the directory feed's records, and the numbers each holds.

use std::collections::HashMap;
use std::time::SystemTime;

use sqlx::FromRow;

use super::sql::{Sql, like_prefix};
use super::{StoreError, StoreResult, Tx, from_micros, to_micros};
use crate::domain::{Country, Identity, Licenses, User, UserFilter, UserUpsert};

const USER_COLUMNS: &str = "id, user_principal_name, sip_address, display_name, usage_location, \
     kind, licenses, enterprise_voice_enabled, on_premises_line_uri, version, create_time, \
     update_time";

#[derive(FromRow)]
struct UserRow {
    id: String,
    user_principal_name: String,
    sip_address: String,
    display_name: String,
    usage_location: Option<String>,
    kind: String,
    licenses: String,
    enterprise_voice_enabled: i64,
    on_premises_line_uri: Option<String>,
    version: i64,
    create_time: i64,
    update_time: i64,
}

impl UserRow {
    fn into_user(self, phone_numbers: Vec<String>) -> StoreResult<User> {
        let usage_location = self
            .usage_location
            .map(|code| Country::parse(&code))
            .transpose()
            .map_err(StoreError::Corrupt)?;
        Ok(User {
            kind: self
                .kind
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", self.id)))?,
            id: self.id,
            user_principal_name: self.user_principal_name,
            sip_address: self.sip_address,
            display_name: self.display_name,
            usage_location,
            licenses: Licenses::from_stored(&self.licenses),
            enterprise_voice_enabled: self.enterprise_voice_enabled != 0,
            on_premises_line_uri: self.on_premises_line_uri,
            phone_numbers,
            version: self.version,
            create_time: from_micros(self.create_time),
            update_time: from_micros(self.update_time),
        })
    }
}

/// The form a name is compared in: lower-cased, in Rust, so both databases agree.
pub(crate) fn key(text: &str) -> String {
    text.to_lowercase()
}

impl Tx {
    /// Finds a user by id, user principal name or SIP address.
    pub async fn find_user(
        &mut self,
        tenant: &str,
        identity: &Identity,
    ) -> StoreResult<Option<User>> {
        self.find_user_row(tenant, identity, false).await
    }

    /// Finds a user like [`Tx::find_user`] and locks it until the transaction ends, so
    /// concurrent changes to one user's numbers happen one after the other.
    pub async fn lock_user(
        &mut self,
        tenant: &str,
        identity: &Identity,
    ) -> StoreResult<Option<User>> {
        self.find_user_row(tenant, identity, true).await
    }

    async fn find_user_row(
        &mut self,
        tenant: &str,
        identity: &Identity,
        lock: bool,
    ) -> StoreResult<Option<User>> {
        let (column, value) = match identity {
            Identity::Id(id) => ("id", id.clone()),
            Identity::UserPrincipalName(upn) => ("upn_key", key(upn)),
            Identity::SipAddress(sip) => ("sip_key", key(sip)),
        };
        let mut sql = Sql::new(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = "
        ));
        sql.bind(tenant.to_owned())
            .push(&format!(" AND {column} = "))
            .bind(value);
        // A SIP address is not unique in the directory; take the oldest holder deterministically.
        sql.push(" ORDER BY create_time, id LIMIT 1");
        if lock {
            sql.push(self.dialect.for_update());
        }
        let Some(row): Option<UserRow> = sql.fetch_optional(&mut self.conn).await? else {
            return Ok(None);
        };
        let numbers = self.numbers_held(tenant, &[row.id.as_str()]).await?;
        let held = numbers.get(row.id.as_str()).cloned().unwrap_or_default();
        row.into_user(held).map(Some)
    }

    /// Creates or updates a user: by id when the feed gives one, otherwise by user principal
    /// name. Fails with the `users_upn_unique` constraint when the user principal name belongs
    /// to another user.
    pub async fn upsert_user(
        &mut self,
        tenant: &str,
        user: &UserUpsert,
        new_id: &str,
        now: SystemTime,
    ) -> StoreResult<User> {
        let conflict_key = if user.id.is_some() {
            "(tenant_id, id)"
        } else {
            "(tenant_id, upn_key)"
        };
        let mut sql = Sql::new(
            "INSERT INTO users (tenant_id, id, user_principal_name, upn_key, sip_address, sip_key, \
             display_name, display_name_key, usage_location, kind, licenses, \
             on_premises_line_uri, version, create_time, update_time) VALUES (",
        );
        sql.bind(tenant.to_owned())
            .push(", ")
            .bind(user.id.clone().unwrap_or_else(|| new_id.to_owned()))
            .push(", ")
            .bind(user.user_principal_name.clone())
            .push(", ")
            .bind(key(&user.user_principal_name))
            .push(", ")
            .bind(user.sip_address.clone())
            .push(", ")
            .bind(key(&user.sip_address))
            .push(", ")
            .bind(user.display_name.clone())
            .push(", ")
            .bind(key(&user.display_name))
            .push(", ")
            .bind(user.usage_location.map(String::from))
            .push(", ")
            .bind(user.kind.as_str().to_owned())
            .push(", ")
            .bind(user.licenses.to_stored())
            .push(", ")
            .bind(user.on_premises_line_uri.clone())
            .push(", 1, ")
            .bind(to_micros(now))
            .push(", ")
            .bind(to_micros(now))
            .push(&format!(
                ") ON CONFLICT {conflict_key} DO UPDATE SET \
                 user_principal_name = excluded.user_principal_name, \
                 upn_key = excluded.upn_key, sip_address = excluded.sip_address, \
                 sip_key = excluded.sip_key, display_name = excluded.display_name, \
                 display_name_key = excluded.display_name_key, \
                 usage_location = excluded.usage_location, kind = excluded.kind, \
                 licenses = excluded.licenses, \
                 on_premises_line_uri = excluded.on_premises_line_uri, \
                 version = users.version + 1, update_time = excluded.update_time \
                 RETURNING {USER_COLUMNS}"
            ));
        let row: UserRow = sql
            .fetch_optional(&mut self.conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt("upsert returned no row".into()))?;
        let numbers = self.numbers_held(tenant, &[row.id.as_str()]).await?;
        let held = numbers.get(row.id.as_str()).cloned().unwrap_or_default();
        row.into_user(held)
    }

    /// Brings a user's enterprise voice flag in line with the numbers the user holds: enabled
    /// while the user holds a number its provider has put into service, disabled otherwise.
    /// Answers the user as it now is.
    pub async fn refresh_enterprise_voice(
        &mut self,
        tenant: &str,
        user_id: &str,
        now: SystemTime,
    ) -> StoreResult<User> {
        const IN_SERVICE: &str = "(CASE WHEN EXISTS (SELECT 1 FROM phone_numbers n \
             WHERE n.tenant_id = users.tenant_id AND n.assigned_to = users.id \
             AND n.activation_state IN ('ACTIVATED', 'UPDATE_PENDING', 'UPDATE_FAILED')) \
             THEN 1 ELSE 0 END)";
        let mut sql = Sql::new(&format!(
            "UPDATE users SET enterprise_voice_enabled = {IN_SERVICE}, version = version + 1, \
             update_time = "
        ));
        sql.bind(to_micros(now))
            .push(" WHERE tenant_id = ")
            .bind(tenant.to_owned())
            .and_eq("id", Some(user_id.to_owned()))
            .push(&format!(" AND enterprise_voice_enabled <> {IN_SERVICE}"));
        sql.execute(&mut self.conn).await?;
        self.find_user(tenant, &Identity::Id(user_id.to_owned()))
            .await?
            .ok_or_else(|| StoreError::Stale(format!("user {user_id}")))
    }

    /// Lists users ordered by lower-cased user principal name, after the one whose key is
    /// `after`.
    pub async fn list_users(
        &mut self,
        tenant: &str,
        filter: &UserFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let mut sql = Sql::new(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = "
        ));
        sql.bind(tenant.to_owned());
        if let Some(search) = &filter.search {
            let pattern = like_prefix(search);
            sql.push(" AND (display_name_key LIKE ")
                .bind(pattern.clone())
                .push(" ESCAPE '\\' OR upn_key LIKE ")
                .bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(after) = after {
            sql.push(" AND upn_key > ").bind(after.to_owned());
        }
        sql.push(" ORDER BY upn_key LIMIT ").bind(limit as i64);
        let rows: Vec<UserRow> = sql.fetch_all(&mut self.conn).await?;

        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut numbers = self.numbers_held(tenant, &ids).await?;
        rows.into_iter()
            .map(|row| {
                let held = numbers.remove(row.id.as_str()).unwrap_or_default();
                row.into_user(held)
            })
            .collect()
    }

    /// The numbers each of `user_ids` holds, primary first, then by number.
    async fn numbers_held(
        &mut self,
        tenant: &str,
        user_ids: &[&str],
    ) -> StoreResult<HashMap<String, Vec<String>>> {
        let mut held: HashMap<String, Vec<String>> = HashMap::new();
        if user_ids.is_empty() {
            return Ok(held);
        }
        let mut sql =
            Sql::new("SELECT assigned_to, phone_number FROM phone_numbers WHERE tenant_id = ");
        sql.bind(tenant.to_owned()).push(" AND assigned_to IN (");
        for (i, id) in user_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind((*id).to_owned());
        }
        sql.push(
            ") ORDER BY assigned_to, \
             CASE assignment_category WHEN 'PRIMARY' THEN 0 ELSE 1 END, phone_number",
        );
        let rows: Vec<(String, String)> = sql.fetch_all(&mut self.conn).await?;
        for (holder, number) in rows {
            held.entry(holder).or_default().push(number);
        }
        Ok(held)
    }
}
