//! The PostgreSQL store: for production, where several replicas share one database.
//!
//! Writers run concurrently. A mutation locks the rows it is about to change (`FOR UPDATE`) and
//! relies on the unique indexes for the invariants, so two replicas racing for one number end
//! with one winner. Reads run in `REPEATABLE READ READ ONLY` transactions, so a page of users and
//! the numbers they hold come from one snapshot.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _};

use super::{Dialect, Store, StoreResult, Tx, redact};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`Store`] on PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    pool: AnyPool,
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations. Several replicas may start at once:
    /// sqlx serialises their migrations with an advisory lock.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        // One direct connection first: a pool would retry until its timeout and then report
        // only that it timed out, hiding the cause (refused, unknown host, bad password).
        let probe = tokio::time::timeout(Duration::from_secs(10), AnyConnection::connect(url))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
            .and_then(|connected| connected.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Keep a stuck statement from holding row locks for ever.
                    conn.execute("SET statement_timeout = '30s'").await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("cannot migrate the database at {}", redact(url)))?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn read(&self) -> StoreResult<Tx> {
        let conn = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        Ok(Tx::new(conn, Dialect::Postgres))
    }

    async fn write(&self) -> StoreResult<Tx> {
        Ok(Tx::new(self.pool.begin().await?, Dialect::Postgres))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
