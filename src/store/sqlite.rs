//! The SQLite store: one local file, nothing to install; the default.
//!
//! SQLite allows one writer at a time. Rather than let writers collide and retry on "database is
//! locked", every write transaction goes through a pool of exactly one connection and starts with
//! `BEGIN IMMEDIATE`: writers queue in order, and a mutation sees no concurrent change between
//! its reads and its writes. Readers use their own pool and, thanks to write-ahead logging, are
//! never blocked by the writer.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor as _};

use super::{Dialect, Store, StoreResult, Tx};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`Store`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    writer: AnyPool,
    readers: AnyPool,
}

impl SqliteStore {
    /// Opens (creating if needed) the file that `url` names, `sqlite://path/to/file.db`, and
    /// applies the migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
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
        let url = format!("sqlite://{path}?mode=rwc");

        let writer = pool(1)
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the SQLite database {path}"))?;
        MIGRATOR
            .run(&writer)
            .await
            .with_context(|| format!("cannot migrate the SQLite database {path}"))?;
        let readers = pool(8)
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the SQLite database {path}"))?;
        Ok(Self { writer, readers })
    }
}

fn pool(size: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn read(&self) -> StoreResult<Tx> {
        Ok(Tx::new(self.readers.begin().await?, Dialect::Sqlite))
    }

    async fn write(&self) -> StoreResult<Tx> {
        let conn = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Tx::new(conn, Dialect::Sqlite))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.readers.execute("SELECT 1").await?;
        Ok(())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}
