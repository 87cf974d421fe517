//! Users on PostgreSQL: the directory feed's records, and the numbers each holds.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, QueryBuilder, Row as _};
use time::OffsetDateTime;

use super::numbers::{NumberRow, number_columns, numbers};
use super::{PgTx, system_time, timestamp};
use crate::domain::{
    AssignmentStatus, Country, Identity, License, Licenses, PhoneNumber, TenantId, User,
    UserFilter, UserUpsert,
};
use crate::store::{Holder, StoreError, StoreResult, UserRepository, holders_of, key, like_prefix};

/// The columns of a user `u`, and the numbers it holds, primary first.
macro_rules! user_columns {
    () => {
        "u.id, u.user_principal_name, u.sip_address, u.display_name, u.usage_location, u.kind, \
         u.licenses, u.enterprise_voice_enabled, u.on_premises_line_uri, u.version, \
         u.create_time, u.update_time, \
         ARRAY(SELECT n.phone_number FROM phone_numbers n \
               WHERE n.tenant_id = u.tenant_id AND n.assigned_to = u.id \
               ORDER BY CASE n.assignment_category WHEN 'PRIMARY' THEN 0 ELSE 1 END, \
               n.phone_number) AS phone_numbers"
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
    licenses: Vec<String>,
    enterprise_voice_enabled: bool,
    on_premises_line_uri: Option<String>,
    version: i64,
    create_time: OffsetDateTime,
    update_time: OffsetDateTime,
    phone_numbers: Vec<String>,
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
            phone_numbers: row.phone_numbers,
            version: row.version,
            create_time: system_time(row.create_time),
            update_time: system_time(row.update_time),
        })
    }
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

/// Locks one user by the key column named in it, and reads the numbers it holds; answers one
/// row per number held (one row with no number when it holds none), the number's columns
/// prefixed `h_`.
///
/// The lock is an update of the user's `locks`, the count of write transactions that locked
/// it. The numbers are read from the statement's snapshot, taken before the lock was granted:
/// if the lock had to wait for another writer of the user, which may have changed the user's
/// numbers (the service locks a number's holder before it changes what the number means for
/// the holder), they are stale.
/// The update returns the user as that writer left it, while `snapshot_locks` and
/// `snapshot_version` are what the snapshot saw: when they differ, the numbers are read again.
macro_rules! lock_user_by {
    ($column:literal) => {
        concat!(
            "WITH target AS (UPDATE users SET locks = locks + 1 WHERE tenant_id = $1 AND id = \
             (SELECT id FROM users WHERE tenant_id = $1 AND ",
            $column,
            " = $2 ORDER BY create_time, id LIMIT 1) RETURNING *), \
             held AS (SELECT n.* FROM phone_numbers n \
                      JOIN target t ON n.tenant_id = t.tenant_id AND n.assigned_to = t.id) \
             SELECT u.id, u.user_principal_name, u.sip_address, u.display_name, \
             u.usage_location, u.kind, u.licenses, u.enterprise_voice_enabled, \
             u.on_premises_line_uri, u.version, u.create_time, u.update_time, \
             '{}'::text[] AS phone_numbers, \
             u.locks, s.locks AS snapshot_locks, s.version AS snapshot_version, \
             h.phone_number AS h_phone_number, h.base_number AS h_base_number, \
             h.country AS h_country, h.number_type AS h_number_type, \
             h.operator_id AS h_operator_id, h.city AS h_city, \
             h.capabilities AS h_capabilities, h.assigned_to AS h_assigned_to, \
             u.user_principal_name AS h_holder_upn, u.kind AS h_holder_kind, \
             h.assignment_category AS h_assignment_category, \
             h.activation_state AS h_activation_state, \
             h.emergency_location_id AS h_emergency_location_id, \
             h.location_update_supported AS h_location_update_supported, \
             h.blocked_until AS h_blocked_until, h.blocked_forever AS h_blocked_forever, \
             h.operation_id AS h_operation_id, h.version AS h_version, \
             h.create_time AS h_create_time, h.update_time AS h_update_time, h.tags AS h_tags \
             FROM target u LEFT JOIN users s ON s.tenant_id = u.tenant_id AND s.id = u.id \
             LEFT JOIN held h ON true \
             ORDER BY CASE h.assignment_category WHEN 'PRIMARY' THEN 0 ELSE 1 END, \
             h.phone_number"
        )
    };
}

/// Inserts a user, or updates the one with the same key (`conflict`), and brings the
/// assignment status of the numbers it holds in line with its kind ($14).
macro_rules! upsert_user_on {
    ($conflict:literal) => {
        concat!(
            "WITH saved AS (\
             INSERT INTO users (tenant_id, id, user_principal_name, upn_key, sip_address, \
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
             RETURNING *), \
             held AS (UPDATE phone_numbers n SET assignment_status = $14 FROM saved s \
             WHERE n.tenant_id = s.tenant_id AND n.assigned_to = s.id \
             AND n.assignment_status <> $14) \
             SELECT ",
            user_columns!(),
            " FROM saved u"
        )
    };
}

/// Reads the rows of `lock_user_by!`: the user, the numbers it holds, and whether they were
/// read before a concurrent change of the user (see `lock_user_by!`).
fn holder(rows: Vec<PgRow>) -> StoreResult<Option<(Holder, bool)>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user: User = UserRow::from_row(first)?.try_into()?;
    let locks: i64 = first.try_get("locks")?;
    let snapshot_locks: Option<i64> = first.try_get("snapshot_locks")?;
    let snapshot_version: Option<i64> = first.try_get("snapshot_version")?;
    let mut numbers: Vec<PhoneNumber> = Vec::with_capacity(rows.len());
    for row in &rows {
        if row
            .try_get::<Option<String>, _>("h_phone_number")?
            .is_some()
        {
            numbers.push(NumberRow::from_prefixed(row, "h_")?.try_into()?);
        }
    }
    let stale = snapshot_locks != Some(locks - 1) || snapshot_version != Some(user.version);
    Ok(Some((Holder::new(user, numbers), stale)))
}

#[async_trait]
impl UserRepository for PgTx {
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
            .fetch_optional(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn lock_user(
        &mut self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> StoreResult<Option<Holder>> {
        let (sql, value) = match identity {
            Identity::Id(id) => (lock_user_by!("id"), id.clone()),
            Identity::UserPrincipalName(upn) => (lock_user_by!("upn_key"), key(upn)),
            Identity::SipAddress(sip) => (lock_user_by!("sip_key"), key(sip)),
        };
        let rows = sqlx::query(sql)
            .bind(tenant)
            .bind(value)
            .fetch_all(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        let Some((mut holder, stale)) = holder(rows)? else {
            return Ok(None);
        };
        if stale {
            let rows: Vec<NumberRow> = sqlx::query_as(concat!(
                "SELECT ",
                number_columns!(),
                " FROM phone_numbers n \
                 LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
                 WHERE n.tenant_id = $1 AND n.assigned_to = $2 ORDER BY n.phone_number"
            ))
            .bind(tenant)
            .bind(&holder.user.id)
            .fetch_all(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
            holder = Holder::new(holder.user, numbers(rows)?);
        }
        Ok(Some(holder))
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
        // The users are locked first, in id order, so that batches never wait on each other
        // in a cycle; then read, with the numbers they hold, by statements that start once
        // every lock is granted and so see what the last writer of each user left.
        let locked: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM users WHERE tenant_id = $1 AND id IN (\
             SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2) \
             UNION SELECT id FROM users WHERE tenant_id = $1 AND upn_key = ANY($3) \
             UNION (SELECT DISTINCT ON (sip_key) id FROM users \
                    WHERE tenant_id = $1 AND sip_key = ANY($4) \
                    ORDER BY sip_key, create_time, id)) \
             ORDER BY id FOR UPDATE",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&upns)
        .bind(&sips)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let locked: Vec<String> = locked.into_iter().map(|(id,)| id).collect();
        // The numbers each holds are read next: not as `user_columns!` reads them, one
        // subquery per user.
        let users: Vec<UserRow> = sqlx::query_as(
            "SELECT u.id, u.user_principal_name, u.sip_address, u.display_name, \
             u.usage_location, u.kind, u.licenses, u.enterprise_voice_enabled, \
             u.on_premises_line_uri, u.version, u.create_time, u.update_time, \
             '{}'::text[] AS phone_numbers \
             FROM users u WHERE u.tenant_id = $1 AND u.id = ANY($2)",
        )
        .bind(tenant)
        .bind(&locked)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let held: Vec<NumberRow> = sqlx::query_as(concat!(
            "SELECT ",
            number_columns!(),
            " FROM phone_numbers n \
             LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to \
             WHERE n.tenant_id = $1 AND n.assigned_to = ANY($2)"
        ))
        .bind(tenant)
        .bind(&locked)
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        let users = users
            .into_iter()
            .map(User::try_from)
            .collect::<StoreResult<Vec<User>>>()?;
        Ok(holders_of(identities, users, numbers(held)?))
    }

    async fn upsert_user(
        &mut self,
        tenant: &TenantId,
        user: &UserUpsert,
        new_id: &str,
        now: std::time::SystemTime,
    ) -> StoreResult<User> {
        // The numbers a user holds carry its kind as their assignment status: a change of kind
        // rewrites theirs in the same statement.
        let sql = if user.id.is_some() {
            upsert_user_on!("(tenant_id, id)")
        } else {
            upsert_user_on!("(tenant_id, upn_key)")
        };
        let licenses: Vec<&str> = user.licenses.iter().map(License::as_str).collect();
        let row: UserRow = sqlx::query_as(sql)
            .bind(tenant) // $1
            .bind(user.id.as_deref().unwrap_or(new_id)) // $2
            .bind(&user.user_principal_name) // $3
            .bind(key(&user.user_principal_name)) // $4
            .bind(&user.sip_address) // $5
            .bind(key(&user.sip_address)) // $6
            .bind(&user.display_name) // $7
            .bind(key(&user.display_name)) // $8
            .bind(user.usage_location.as_ref().map(Country::as_str)) // $9
            .bind(user.kind.as_str()) // $10
            .bind(licenses) // $11
            .bind(&user.on_premises_line_uri) // $12
            .bind(timestamp(now)) // $13
            .bind(AssignmentStatus::of(user.kind).as_str()) // $14
            .fetch_one(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        row.try_into()
    }

    async fn list_users(
        &mut self,
        tenant: &TenantId,
        filter: &UserFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let mut sql = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.tenant_id = "
        ));
        sql.push_bind(tenant);
        if let Some(search) = &filter.search {
            let pattern = like_prefix(&key(search));
            sql.push(" AND (u.display_name_key LIKE ")
                .push_bind(pattern.clone())
                .push(" OR u.upn_key LIKE ")
                .push_bind(pattern)
                .push(")");
        }
        if let Some(after) = after {
            sql.push(" AND u.upn_key > ").push_bind(after);
        }
        sql.push(" ORDER BY u.upn_key LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<UserRow> = sql
            .build_query_as()
            .fetch_all(self.scoped(tenant).await?)
            .await
            .map_err(|e| self.failed(e))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}
