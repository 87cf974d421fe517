//! The SQLite store: one local file, nothing to install; the default.
//!
//! SQLite allows one writer at a time. Rather than let writers collide and retry on "database is
//! locked", every write transaction goes through one dedicated writer connection (a pool of
//! one) and starts with `BEGIN IMMEDIATE`: writers queue in order, and a mutation sees no
//! concurrent change between its reads and its writes. Readers use their own connections and, thanks to
//! write-ahead logging, are never blocked by the writer.
//!
//! The schema keeps SQLite's own types (`migrations/sqlite`): INTEGER for flags and for times
//! (microseconds since the Unix epoch), TEXT holding JSON arrays for lists.

mod audit;
mod bulk;
mod changes;
mod configuration;
mod consents;
mod locations;
mod notifications;
mod numbers;
mod operations;
mod reconciliations;
mod requests;
mod tags;
mod users;

use std::path::Path;
use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection};

use super::pool::{self, Pool, Session};
use super::{Changes, Queue, Store, StoreResult, Transaction, Tx, Wakeups};
use crate::domain::TenantId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a request waits for a connection (writers queue for the one writer).
const CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// A [`Store`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Pool<SqliteConnection>,
    readers: Pool<SqliteConnection>,
    wakeups: std::sync::Arc<Wakeups>,
    /// Copies the write-ahead log into the database file, beside the writer.
    checkpointer: tokio::task::JoinHandle<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the file that `url` names, `sqlite://path/to/file.db`, and
    /// applies the migrations; `readers` connections read beside the one writer.
    pub async fn open(url: &str, readers: usize) -> anyhow::Result<Self> {
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
        let mut connection = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the SQLite database {path}"))?;
        MIGRATOR
            .run(&mut connection)
            .await
            .with_context(|| format!("cannot migrate the SQLite database {path}"))?;
        let _ = connection.close().await;
        // The writer never copies the log into the database file itself (SQLite would do so
        // in the commit that crosses a thousand pages, holding every other writer up while
        // it does): the checkpointer does it beside the writer, on a connection of its own.
        let writer_options = options.clone().pragma("wal_autocheckpoint", "0");
        let writer = pool::pool(writer_options, 1, CONNECTION_WAIT)?;
        let readers = pool::pool(options.clone().read_only(true), readers, CONNECTION_WAIT)?;
        Ok(Self {
            writer,
            readers,
            wakeups: Default::default(),
            checkpointer: tokio::spawn(checkpoint(options)),
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
            session: Session::lend(&self.readers).await?,
            wakeups: self.wakeups.clone(),
            wrote: Vec::new(),
        }))
    }

    async fn write(&self) -> StoreResult<Tx> {
        Ok(Box::new(SqliteTx {
            session: Session::begin(&self.writer, "BEGIN IMMEDIATE").await?,
            wakeups: self.wakeups.clone(),
            wrote: Vec::new(),
        }))
    }

    async fn snapshot(&self) -> StoreResult<Tx> {
        // In WAL mode a reader's transaction keeps the snapshot of its first read.
        Ok(Box::new(SqliteTx {
            session: Session::begin(&self.readers, "BEGIN").await?,
            wakeups: self.wakeups.clone(),
            wrote: Vec::new(),
        }))
    }

    async fn shared_secret(&self, name: &str, generated: &[u8]) -> StoreResult<Vec<u8>> {
        // Two statements: a replica that lost the race reads the winner's secret.
        let mut session = Session::lend(&self.writer).await?;
        let stored = async {
            sqlx::query(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(generated)
            .execute(session.conn())
            .await?;
            sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(session.conn())
                .await
        }
        .await;
        stored.map_err(|e| session.failed(e))
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut session = Session::lend(&self.readers).await?;
        let pinged = session.conn().ping().await;
        pinged.map_err(|e| session.failed(e))
    }

    async fn work_written(&self, queue: Queue) {
        self.wakeups.of(queue).notified().await;
    }

    fn pools(&self) -> Vec<super::PoolUse> {
        vec![
            pool::use_of("writer", &self.writer),
            pool::use_of("readers", &self.readers),
        ]
    }

    async fn close(&self) {
        self.checkpointer.abort();
        self.writer.close();
        self.readers.close();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// How often the write-ahead log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// How often the planner's statistics are brought up to date.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(60);

/// Copies committed transactions from the write-ahead log into the database file, without
/// waiting for readers or the writer (a passive checkpoint), so that the log stays short (and
/// starts it over once it grew past [`WAL_RESTART_FRAMES`] pages all the same); and
/// keeps the planner's statistics up to date (`PRAGMA optimize` analyses the tables that
/// changed enough, with a bounded sample), so that a listing filtered twice walks the index of
/// its more selective filter.
async fn checkpoint(options: SqliteConnectOptions) {
    let mut connection = None;
    let mut optimized: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if connection.is_none() {
            connection = SqliteConnection::connect_with(&options).await.ok();
            optimized = None;
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        if optimized.is_none_or(|at| at.elapsed() >= OPTIMIZE_EVERY) {
            // 0x10002: analyse every table that needs it, as when a connection opens.
            let sql = match optimized {
                None => "PRAGMA optimize=0x10002",
                Some(_) => "PRAGMA optimize",
            };
            optimized = Some(tokio::time::Instant::now());
            if let Err(error) = sqlx::raw_sql(sql).execute(&mut *conn).await {
                tracing::warn!(%error, "cannot analyse the SQLite database");
            }
        }
        // (busy, pages in the log, pages copied)
        let frames: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *conn)
            .await;
        match frames {
            Err(error) => {
                tracing::warn!(%error, "cannot checkpoint the SQLite database");
                connection = None;
            }
            // Under a steady stream of writes a passive checkpoint never catches up with the
            // log's end, so the log is never started over and grows without bound (a gigabyte
            // in 20,000 writes), slowing every read. Once it is long, a truncating checkpoint
            // makes the writer wait while it copies the rest, and starts the log over.
            Ok((_, log, _)) if log > WAL_RESTART_FRAMES => {
                let truncated = sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut *conn)
                    .await;
                if let Err(error) = truncated {
                    tracing::warn!(%error, "cannot start the SQLite write-ahead log over");
                }
            }
            Ok(_) => {}
        }
    }
}

/// The length of the write-ahead log, in pages, past which the checkpointer starts it over.
const WAL_RESTART_FRAMES: i64 = 8192;

/// A [`Transaction`] on SQLite (or, from [`Store::read`], a reading connection); the
/// repositories are implemented in the submodules, one per aggregate.
#[derive(Debug)]
pub(super) struct SqliteTx {
    session: Session<SqliteConnection>,
    wakeups: std::sync::Arc<Wakeups>,
    /// The queues this transaction wrote work to: their workers wake once it commits.
    wrote: Vec<Queue>,
}

impl SqliteTx {
    /// The connection to run statements on.
    fn conn(&mut self) -> &mut SqliteConnection {
        self.session.conn()
    }

    /// The error of a statement (see [`Session::failed`]).
    fn failed(&mut self, error: sqlx::Error) -> super::StoreError {
        self.session.failed(error)
    }
}

#[async_trait]
impl Transaction for SqliteTx {
    async fn apply(&mut self, tenant: &TenantId, changes: &Changes) -> StoreResult<()> {
        self.write_changes(tenant, changes).await?;
        if changes
            .operations
            .iter()
            .flat_map(|o| &o.jobs)
            .any(|j| !j.state.is_final())
        {
            self.wrote.push(Queue::Jobs);
        }
        if !changes.notifications.is_empty() {
            self.wrote.push(Queue::Emails);
        }
        Ok(())
    }

    async fn apply_all(&mut self, tenant: &TenantId, changes: Vec<Changes>) -> StoreResult<()> {
        // A few mutations per batch of statements: each row written finds its values by
        // a scan of the batch's JSON array (see `changes`), a cost that grows with its length.
        for group in Changes::grouped(changes, changes::WRITE_GROUP) {
            self.apply(tenant, &group).await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let this = *self;
        this.session.commit().await?;
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
