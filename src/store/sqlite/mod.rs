//! The SQLite store: one local file, nothing to install; the default.
//!
//! SQLite allows one writer at a time. Rather than let writers collide and retry on "database is
//! locked", every write transaction goes through one dedicated writer connection and starts
//! with `BEGIN IMMEDIATE`: writers queue in order, and a mutation sees no concurrent change
//! between its reads and its writes. Readers use their own connections and, thanks to
//! write-ahead logging, are never blocked by the writer.
//!
//! The schema keeps SQLite's own types (`migrations/sqlite`): INTEGER for flags and for times
//! (microseconds since the Unix epoch), TEXT holding JSON arrays for lists.

mod audit;
mod changes;
mod consents;
mod locations;
mod notifications;
mod numbers;
mod operations;
mod requests;
mod users;

use std::path::Path;
use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor as _, Sqlite, SqliteConnection, SqlitePool};

use super::{Changes, Queue, Store, StoreResult, Transaction, Tx, Wakeups};
use crate::domain::TenantId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Reading connections.
const READERS: u32 = 8;

/// A [`Store`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    wakeups: std::sync::Arc<Wakeups>,
}

impl SqliteStore {
    /// Opens (creating if needed) the file that `url` names, `sqlite://path/to/file.db`, and
    /// applies the migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            anyhow::bail!("the SQLite URL {url:?} names no file: use sqlite://path/to/numbers.db");
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .with_context(|| format!("cannot read the SQLite URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = |size: u32| {
            SqlitePoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false)
        };
        let writer = pool(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {path}"))?;
        MIGRATOR
            .run(&writer)
            .await
            .with_context(|| format!("cannot migrate the SQLite database {path}"))?;
        let readers = pool(READERS)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("cannot open the SQLite database {path}"))?;
        Ok(Self {
            writer,
            readers,
            wakeups: Default::default(),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn read(&self) -> StoreResult<Tx> {
        Ok(Box::new(SqliteTx {
            conn: Conn::Pooled(self.readers.acquire().await?),
            wakeups: self.wakeups.clone(),
            wrote: Vec::new(),
        }))
    }

    async fn write(&self) -> StoreResult<Tx> {
        Ok(Box::new(SqliteTx {
            conn: Conn::Transaction(self.writer.begin_with("BEGIN IMMEDIATE").await?),
            wakeups: self.wakeups.clone(),
            wrote: Vec::new(),
        }))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.readers.execute("SELECT 1").await?;
        Ok(())
    }

    async fn work_written(&self, queue: Queue) {
        self.wakeups.of(queue).notified().await;
    }

    async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}

/// A connection for reads, or a transaction.
#[derive(Debug)]
enum Conn {
    Pooled(PoolConnection<Sqlite>),
    Transaction(sqlx::Transaction<'static, Sqlite>),
}

/// A [`Transaction`] on SQLite; the repositories are implemented in the submodules, one per
/// aggregate.
#[derive(Debug)]
pub(super) struct SqliteTx {
    conn: Conn,
    wakeups: std::sync::Arc<Wakeups>,
    /// The queues this transaction wrote work to: their workers wake once it commits.
    wrote: Vec<Queue>,
}

impl SqliteTx {
    /// The connection to run statements on.
    fn conn(&mut self) -> &mut SqliteConnection {
        match &mut self.conn {
            Conn::Pooled(conn) => conn,
            Conn::Transaction(tx) => tx,
        }
    }
}

#[async_trait]
impl Transaction for SqliteTx {
    async fn apply(&mut self, tenant: &TenantId, changes: &Changes) -> StoreResult<()> {
        self.write_changes(tenant, changes).await?;
        if let Some(operation) = &changes.operation
            && operation.jobs.iter().any(|j| !j.state.is_final())
        {
            self.wrote.push(Queue::Jobs);
        }
        if !changes.notifications.is_empty() {
            self.wrote.push(Queue::Emails);
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let this = *self;
        if let Conn::Transaction(tx) = this.conn {
            tx.commit().await?;
        }
        for queue in this.wrote {
            this.wakeups.of(queue).notify_one();
        }
        Ok(())
    }
}

/// Microseconds since the Unix epoch: how SQLite keeps times.
fn micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The time kept as `micros`.
fn system_time(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

/// A list as the JSON array SQLite keeps it in.
fn json_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let time = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(system_time(micros(time)), time);
        assert_eq!(micros(UNIX_EPOCH), 0);
        assert_eq!(system_time(-5), UNIX_EPOCH - Duration::from_micros(5));
    }

    #[test]
    fn lists_are_json_arrays() {
        assert_eq!(json_list(["US", "CA"]), r#"["US","CA"]"#);
        assert_eq!(json_list([]), "[]");
    }
}
