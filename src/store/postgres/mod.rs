//! The PostgreSQL store: for production, where several replicas share one database.
//!
//! Writers run concurrently. A mutation locks the rows it is about to change (`FOR UPDATE`) and
//! relies on the unique indexes for the invariants, so two replicas racing for one number end
//! with one winner. Reads outside a mutation take a pooled connection and run one statement,
//! with no `BEGIN` around it; the pool does not ping a connection before lending it.
//!
//! The schema is PostgreSQL's own: `boolean`, `timestamptz`, `text[]`, `jsonb`, `uuid`
//! (`migrations/postgres`). Work written for the background workers wakes every replica's
//! workers through `LISTEN`/`NOTIFY` on the channel `numbers_work`, sent by triggers at commit.

mod audit;
mod consents;
mod locations;
mod notifications;
mod numbers;
mod operations;
mod requests;
mod users;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection as _, Executor as _, PgConnection, PgPool, Postgres};
use time::OffsetDateTime;

use super::{Changes, Queue, Store, StoreResult, Transaction, Tx, Wakeups, redact};
use crate::domain::TenantId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per replica. One more is held by the listener that wakes the workers.
const POOL_SIZE: u32 = 32;

/// The channel `NOTIFY` wakes the workers on; the payload names the queue.
const WORK_CHANNEL: &str = "numbers_work";

/// A [`Store`] on PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    wakeups: Arc<Wakeups>,
    listener: tokio::task::JoinHandle<()>,
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations. Several replicas may start at once:
    /// sqlx serialises their migrations with an advisory lock.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .with_context(|| format!("cannot read the PostgreSQL URL {}", redact(url)))?;
        // Keep a stuck statement from holding row locks for ever; set at connection start-up,
        // so it costs no statement.
        let options = options.options([("statement_timeout", "30s")]);
        // One direct connection first: a pool would retry until its timeout and then report
        // only that it timed out, hiding the cause (refused, unknown host, bad password).
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
        .and_then(|connected| connected.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE + 1)
            .acquire_timeout(Duration::from_secs(10))
            // A connection that broke is found out by the statement that uses it; a ping before
            // every use would cost a round trip per request.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("cannot migrate the database at {}", redact(url)))?;
        let wakeups = Arc::new(Wakeups::default());
        let listener = tokio::spawn(listen(pool.clone(), wakeups.clone()));
        Ok(Self {
            pool,
            wakeups,
            listener,
        })
    }
}

/// Wakes this process's workers whenever any replica commits work for them. When the
/// listening connection is lost, notifications may have been missed: the workers are woken to
/// look for themselves, and listening resumes on a new connection.
async fn listen(pool: PgPool, wakeups: Arc<Wakeups>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(WORK_CHANNEL).await?;
            loop {
                match listener.try_recv().await? {
                    Some(notification) => match notification.payload() {
                        "jobs" => wakeups.jobs.notify_one(),
                        "emails" => wakeups.emails.notify_one(),
                        _ => wakeups.all(),
                    },
                    None => wakeups.all(),
                }
            }
        };
        let result: Result<(), sqlx::Error> = listening.await;
        if let Err(sqlx::Error::PoolClosed) = result {
            return;
        }
        if let Err(error) = result {
            tracing::warn!(%error, "not listening for work written by other replicas; retrying");
        }
        wakeups.all();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn read(&self) -> StoreResult<Tx> {
        Ok(Box::new(PgTx {
            conn: Conn::Pooled(self.pool.acquire().await?),
        }))
    }

    async fn write(&self) -> StoreResult<Tx> {
        Ok(Box::new(PgTx {
            conn: Conn::Transaction(self.pool.begin().await?),
        }))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    async fn work_written(&self, queue: Queue) {
        self.wakeups.of(queue).notified().await;
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }
}

/// A connection for reads, or a transaction.
#[derive(Debug)]
enum Conn {
    Pooled(PoolConnection<Postgres>),
    Transaction(sqlx::Transaction<'static, Postgres>),
}

/// A [`Transaction`] on PostgreSQL; the repositories are implemented in the submodules, one
/// per aggregate.
#[derive(Debug)]
pub(super) struct PgTx {
    conn: Conn,
}

impl PgTx {
    /// The connection to run statements on.
    fn conn(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Conn::Pooled(conn) => conn,
            Conn::Transaction(tx) => tx,
        }
    }
}

#[async_trait]
impl Transaction for PgTx {
    async fn apply(&mut self, tenant: &TenantId, changes: &Changes) -> StoreResult<()> {
        for number in &changes.numbers {
            self.update_number(tenant, number).await?;
        }
        for user in &changes.users {
            self.update_user(tenant, user).await?;
        }
        if let Some(operation) = &changes.operation {
            self.insert_operation(tenant, operation).await?;
        }
        self.insert_audit(tenant, &changes.audit).await?;
        for notification in &changes.notifications {
            self.insert_notification(tenant, notification).await?;
        }
        if let Some((request_id, response)) = &changes.response {
            self.save_response(tenant, request_id, response).await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        if let Conn::Transaction(tx) = self.conn {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// A time as PostgreSQL's `timestamptz` holds it.
fn timestamp(time: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(time)
}

/// A `timestamptz` read back.
fn system_time(time: OffsetDateTime) -> SystemTime {
    SystemTime::from(time)
}

/// A uuid column's value from the service's string form; `None` when `id` is not a UUID, so
/// looking it up finds nothing.
fn uuid(id: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(id).ok()
}
