//! Tags on numbers on SQLite.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteTx, micros};
use crate::domain::{TagCount, TenantId};
use crate::store::{StoreError, StoreResult, TagChange, TagRepository};

#[async_trait]
impl TagRepository for SqliteTx {
    async fn tag_names(
        &mut self,
        tenant: &TenantId,
        keys: &[String],
    ) -> StoreResult<HashMap<String, String>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql =
            QueryBuilder::<Sqlite>::new("SELECT tag_key, name FROM tags WHERE tenant_id = ");
        sql.push_bind(tenant).push(" AND tag_key IN (");
        let mut keys_in = sql.separated(", ");
        for key in keys {
            keys_in.push_bind(key);
        }
        sql.push(")");
        let rows: Vec<(String, String)> = sql
            .build_query_as()
            .fetch_all(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows.into_iter().collect())
    }

    async fn write_tags(
        &mut self,
        tenant: &TenantId,
        changes: &[TagChange],
        now: SystemTime,
    ) -> StoreResult<()> {
        // One writer holds the database: a statement per row costs no round trip.
        for change in changes {
            for tag in &change.added {
                sqlx::query(
                    "INSERT INTO tags (tenant_id, tag_key, name, create_time) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, tag_key) DO NOTHING",
                )
                .bind(tenant)
                .bind(&tag.key)
                .bind(&tag.name)
                .bind(micros(now))
                .execute(self.conn())
                .await
                .map_err(|e| self.failed(e))?;
                sqlx::query(
                    "INSERT INTO phone_number_tags (tenant_id, tag_key, phone_number) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(&tag.key)
                .bind(&change.phone_number)
                .execute(self.conn())
                .await
                .map_err(|e| self.failed(e))?;
            }
            for key in &change.removed {
                sqlx::query(
                    "DELETE FROM phone_number_tags \
                     WHERE tenant_id = $1 AND tag_key = $2 AND phone_number = $3",
                )
                .bind(tenant)
                .bind(key)
                .bind(&change.phone_number)
                .execute(self.conn())
                .await
                .map_err(|e| self.failed(e))?;
            }
            let list =
                serde_json::to_string(&change.tags).map_err(|e| StoreError::corrupt("tags", e))?;
            sqlx::query(
                "UPDATE phone_numbers SET tags = $3 WHERE tenant_id = $1 AND phone_number = $2",
            )
            .bind(tenant)
            .bind(&change.phone_number)
            .bind(list)
            .execute(self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    async fn list_tags(
        &mut self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<TagCount>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT t.tag_key, t.name, count(*) FROM phone_number_tags p \
             JOIN tags t ON t.tenant_id = p.tenant_id AND t.tag_key = p.tag_key \
             WHERE p.tenant_id = $1 AND p.tag_key > $2 \
             GROUP BY t.tag_key, t.name ORDER BY t.tag_key LIMIT $3",
        )
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.conn())
        .await
        .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .map(|(key, name, numbers)| TagCount { name, key, numbers })
            .collect())
    }
}
