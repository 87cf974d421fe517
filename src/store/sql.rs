//! A small builder for the queries whose SQL depends on the request (list filters, locking
//! clauses). It numbers placeholders `$1, $2, ...`, which both PostgreSQL and SQLite accept;
//! sqlx's own `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL does not.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments, AssertSqlSafe, Encode, FromRow, Type};

use super::StoreResult;

/// SQL text being built, with its arguments.
pub(crate) struct Sql {
    text: String,
    args: AnyArguments,
}

impl Sql {
    /// Starts with `text`.
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: AnyArguments::default(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        // Encoding into an `Any` buffer only copies the value; it cannot fail.
        let _ = self.args.add(value);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Appends ` AND <column> = <value>` when `value` is set.
    pub(crate) fn and_eq<T>(&mut self, column: &str, value: Option<T>) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        if let Some(value) = value {
            self.push(" AND ").push(column).push(" = ").bind(value);
        }
        self
    }

    /// Runs the query, mapping every row.
    pub(crate) async fn fetch_all<R>(self, conn: &mut sqlx::AnyConnection) -> StoreResult<Vec<R>>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        Ok(sqlx::query_as_with(AssertSqlSafe(self.text), self.args)
            .fetch_all(conn)
            .await?)
    }

    /// Runs the query, mapping the first row if any.
    pub(crate) async fn fetch_optional<R>(
        self,
        conn: &mut sqlx::AnyConnection,
    ) -> StoreResult<Option<R>>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        Ok(sqlx::query_as_with(AssertSqlSafe(self.text), self.args)
            .fetch_optional(conn)
            .await?)
    }

    /// Runs a statement, answering how many rows it changed.
    pub(crate) async fn execute(self, conn: &mut sqlx::AnyConnection) -> StoreResult<u64> {
        Ok(sqlx::query_with(AssertSqlSafe(self.text), self.args)
            .execute(conn)
            .await?
            .rows_affected())
    }
}

/// Escapes `%`, `_` and `\` so `text` matches literally in a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_prefix(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.bind(1_i64)
            .and_eq("b", Some("x".to_owned()))
            .and_eq::<i64>("c", None);
        assert_eq!(sql.text, "SELECT 1 WHERE a = $1 AND b = $2");
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_prefix("50%_a\\"), "50\\%\\_a\\\\%");
    }
}
