//! Storage: one [`Store`] trait, two implementations with the same behaviour.
//!
//! [`SqliteStore`] keeps everything in one local file and needs nothing installed; it is the
//! default. [`PostgresStore`] is for production, where several replicas share one database. The
//! two differ in how they connect, migrate, lock rows and serialise writers; the SQL they run
//! is the same portable SQL, written once in the [`Tx`] methods (one file per aggregate) and
//! executed through sqlx's `Any` driver. The same conformance suite (`tests/store.rs`) runs
//! against both.
//!
//! The store holds no business rules. It loads and writes records, and the database itself
//! enforces the invariants: one row per (tenant, number), one holder per number, at most one
//! primary number per target, and every query is scoped by tenant.

mod audit;
mod locations;
mod notifications;
mod numbers;
mod operations;
mod operators;
mod postgres;
mod requests;
mod sql;
mod sqlite;
mod users;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::Any;

pub use locations::LocationCursor;
pub use notifications::Delivery;
pub use operations::JobOutcome;
pub use postgres::PostgresStore;
pub use requests::Claim;
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or check constraint refused the write; names the constraint.
    #[error("constraint {constraint} refused the write")]
    Constraint {
        /// The constraint's name, as in the migrations (for SQLite, the columns involved).
        constraint: String,
    },
    /// A concurrent transaction got in the way (serialisation failure, deadlock, busy
    /// database); the whole operation may be retried.
    #[error("concurrent transaction conflict: {0}")]
    Conflict(#[source] sqlx::Error),
    /// The database cannot be reached or has no free connection.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A conditional write found the record changed since it was read.
    #[error("{0} changed concurrently")]
    Stale(String),
    /// A stored value does not read back as a domain value (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error(transparent)]
    Database(sqlx::Error),
}

impl StoreError {
    /// Whether this is the named constraint (as in the PostgreSQL migrations) refusing a write.
    pub fn is_constraint(&self, name: &str) -> bool {
        matches!(self, StoreError::Constraint { constraint } if constraint == name)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &error {
            sqlx::Error::Database(db) => {
                if matches!(
                    db.kind(),
                    ErrorKind::UniqueViolation | ErrorKind::CheckViolation
                ) {
                    return StoreError::Constraint {
                        constraint: constraint_name(db.constraint(), db.message()),
                    };
                }
                // PostgreSQL: serialization_failure, deadlock_detected. SQLite: BUSY, LOCKED.
                // PostgreSQL going away: connection exceptions (class 08), admin or crash
                // shutdown, cannot connect now (starting up), too many connections.
                match db.code().as_deref() {
                    Some("40001" | "40P01" | "5" | "6" | "517") => StoreError::Conflict(error),
                    Some(code)
                        if code.starts_with("08")
                            || matches!(code, "57P01" | "57P02" | "57P03" | "53300") =>
                    {
                        StoreError::Unavailable(error)
                    }
                    _ => StoreError::Database(error),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            _ => StoreError::Database(error),
        }
    }
}

/// The unique constraints the service reacts to, by their PostgreSQL name and by the columns
/// SQLite names instead ("UNIQUE constraint failed: users.tenant_id, users.upn_key").
const NAMED_CONSTRAINTS: &[(&str, &str)] = &[
    ("users_upn_unique", "users.tenant_id, users.upn_key"),
    (
        "phone_numbers_one_primary_per_target",
        "phone_numbers.tenant_id, phone_numbers.assigned_to",
    ),
];

/// The canonical name of the constraint a database error names.
fn constraint_name(postgres_name: Option<&str>, message: &str) -> String {
    if let Some(name) = postgres_name {
        return name.to_owned();
    }
    NAMED_CONSTRAINTS
        .iter()
        .find(|(_, sqlite_columns)| message.ends_with(sqlite_columns))
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_else(|| message.to_owned())
}

/// The result type of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The SQL dialect differences the shared queries need to know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: row locks with `FOR UPDATE`.
    Postgres,
    /// SQLite: one writer at a time, so no row locks.
    Sqlite,
}

impl Dialect {
    /// The clause that locks the rows a `SELECT` reads until the transaction ends.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// The clause that claims rows for one worker: locked rows are skipped rather than waited
    /// for, so replicas claiming at once take different rows.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// The clause that locks the rows of the table aliased `n` a joined `SELECT` reads.
    pub fn for_update_of_numbers(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE OF n",
            Dialect::Sqlite => "",
        }
    }
}

/// A database holding the service's records.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Which database this is: `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Starts a transaction for reading: a consistent view, no writes.
    async fn read(&self) -> StoreResult<Tx>;

    /// Starts a transaction for writing. On SQLite writers queue for the one write lock; on
    /// PostgreSQL they run concurrently and conflict on row locks and constraints.
    async fn write(&self) -> StoreResult<Tx>;

    /// Checks the database answers (for health checks).
    async fn ping(&self) -> StoreResult<()>;

    /// Closes every connection.
    async fn close(&self);
}

/// Opens the store that `url` names (`postgres://...` or `sqlite://...`), creating a SQLite file
/// if needed, and applies the migrations.
pub async fn open(url: &str) -> anyhow::Result<Box<dyn Store>> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(Box::new(PostgresStore::open(url).await?)),
        "sqlite" => Ok(Box::new(SqliteStore::open(url).await?)),
        _ => anyhow::bail!(
            "unsupported database URL {:?}: use postgres://user@host/database or sqlite://path",
            redact(url)
        ),
    }
}

/// The URL without its password, fit for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A transaction on either database; the queries live in the per-aggregate modules.
///
/// Dropping a transaction without [`Tx::commit`] rolls it back.
pub struct Tx {
    conn: sqlx::Transaction<'static, Any>,
    dialect: Dialect,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl Tx {
    pub(crate) fn new(conn: sqlx::Transaction<'static, Any>, dialect: Dialect) -> Self {
        Self { conn, dialect }
    }

    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> StoreResult<()> {
        self.conn.commit().await?;
        Ok(())
    }
}

/// `time` at the precision the store keeps (whole microseconds).
pub fn stored_time(time: SystemTime) -> SystemTime {
    from_micros(to_micros(time))
}

/// Microseconds since the Unix epoch: how times are stored.
pub(crate) fn to_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The time stored as `micros`.
pub(crate) fn from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let now = from_micros(to_micros(SystemTime::now()));
        assert_eq!(from_micros(to_micros(now)), now);
        assert_eq!(to_micros(UNIX_EPOCH), 0);
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/numbers"),
            "postgres://app:***@db:5432/numbers"
        );
        assert_eq!(redact("sqlite://numbers.db"), "sqlite://numbers.db");
    }
}
