//! Tags on numbers on PostgreSQL.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{PgTx, timestamp};
use crate::domain::{TagCount, TenantId};
use crate::store::{StoreError, StoreResult, TagChange, TagRepository};

#[async_trait]
impl TagRepository for PgTx {
    async fn tag_names(
        &mut self,
        tenant: &TenantId,
        keys: &[String],
    ) -> StoreResult<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT tag_key, name FROM tags WHERE tenant_id = $1 AND tag_key = ANY($2)",
        )
        .bind(tenant)
        .bind(keys)
        .fetch_all(self.scoped(tenant).await?)
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
        let mut created: HashMap<&str, &str> = HashMap::new();
        let (mut added_keys, mut added_numbers) = (Vec::new(), Vec::new());
        let (mut removed_keys, mut removed_numbers) = (Vec::new(), Vec::new());
        let (mut numbers, mut lists) = (Vec::new(), Vec::new());
        for change in changes {
            for tag in &change.added {
                created.entry(&tag.key).or_insert(&tag.name);
                added_keys.push(tag.key.as_str());
                added_numbers.push(change.phone_number.as_str());
            }
            for key in &change.removed {
                removed_keys.push(key.as_str());
                removed_numbers.push(change.phone_number.as_str());
            }
            numbers.push(change.phone_number.as_str());
            lists.push(
                serde_json::to_string(&change.tags).map_err(|e| StoreError::corrupt("tags", e))?,
            );
        }
        let (keys, names): (Vec<&str>, Vec<&str>) = created.into_iter().unzip();
        // The tags first (the rows of numbers refer to them), then each number's rows, then
        // the list each number is read with; one statement.
        sqlx::query(
            "WITH created AS (
                 INSERT INTO tags (tenant_id, tag_key, name, create_time)
                 SELECT $1, k, n, $4 FROM unnest($2::text[], $3::text[]) AS t(k, n)
                 ON CONFLICT (tenant_id, tag_key) DO NOTHING
             ), removed AS (
                 DELETE FROM phone_number_tags d
                 USING unnest($7::text[], $8::text[]) AS r(k, n)
                 WHERE d.tenant_id = $1 AND d.tag_key = r.k AND d.phone_number = r.n
             ), listed AS (
                 UPDATE phone_numbers p
                 SET tags = ARRAY(SELECT jsonb_array_elements_text(c.tags::jsonb))
                 FROM unnest($9::text[], $10::text[]) AS c(phone_number, tags)
                 WHERE p.tenant_id = $1 AND p.phone_number = c.phone_number
             )
             INSERT INTO phone_number_tags (tenant_id, tag_key, phone_number)
             SELECT $1, k, n FROM unnest($5::text[], $6::text[]) AS a(k, n)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&keys)
        .bind(&names)
        .bind(timestamp(now))
        .bind(&added_keys)
        .bind(&added_numbers)
        .bind(&removed_keys)
        .bind(&removed_numbers)
        .bind(&numbers)
        .bind(&lists)
        .execute(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
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
        .fetch_all(self.scoped(tenant).await?)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .map(|(key, name, numbers)| TagCount { name, key, numbers })
            .collect())
    }
}
