//! The PostgreSQL store: for production, where several replicas share one database.
//!
//! Writers run concurrently. A mutation locks the rows it is about to change (`FOR UPDATE`) and
//! relies on the unique indexes for the invariants, so two replicas racing for one number end
//! with one winner. Reads outside a mutation take a pooled connection and run one statement,
//! with no `BEGIN` around it; the pool does not ping a connection before lending it.
//!
//! Every tenant table has row-level security (migration 0007): the store's connections work as
//! the role `numbers_service`, which sees only the rows of the tenant its session is scoped to
//! ([`PgTx::scoped`]), so a statement that forgot its tenant filter still sees one tenant.
//! Migrations and the planner's statistics run as the owner of the tables.
//!
//! The schema is PostgreSQL's own: `boolean`, `timestamptz`, `text[]`, `jsonb`, `uuid`
//! (`migrations/postgres`). Work written for the background workers wakes every replica's
//! workers through `LISTEN`/`NOTIFY` on the channel `numbers_work`, sent by triggers at commit.

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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection as _, Executor as _, PgConnection, PgPool};
use time::OffsetDateTime;

use super::pool::{self, Pool, Session};
use super::{Changes, Queue, Store, StoreResult, Transaction, Tx, Wakeups, redact};
use crate::domain::TenantId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a request waits for a connection.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

/// The channel `NOTIFY` wakes the workers on; the payload names the queue.
const WORK_CHANNEL: &str = "numbers_work";

/// The role the store's connections work as (migration 0007).
const SERVICE_ROLE: &str = "numbers_service";

/// The scope of the background workers, which serve every tenant; no tenant id can be `*`
/// ([`crate::domain::is_tenant_id`]).
const EVERY_TENANT: &str = "*";

/// A [`Store`] on PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool<PgConnection>,
    wakeups: Arc<Wakeups>,
    /// The listener that wakes the workers, and the keeper of planner statistics.
    background: [tokio::task::JoinHandle<()>; 2],
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations, with a pool of `pool_size` connections
    /// (and one more held by the listener that wakes the workers). Several replicas may start
    /// at once: sqlx serialises their migrations with an advisory lock.
    pub async fn open(url: &str, pool_size: usize) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .with_context(|| format!("cannot read the PostgreSQL URL {}", redact(url)))?;
        // Set at connection start-up, so they cost no statement: a stuck statement must not
        // hold row locks for ever; and every statement is planned once per connection.
        // PostgreSQL otherwise plans a prepared statement anew for its first five runs, and
        // then keeps doing so whenever its generic plan looks costlier than plans made for
        // particular values. Statements that take arrays (the write of a mutation's changes,
        // lookups by `= ANY`) always look costlier in general, since PostgreSQL assumes ten
        // elements where there are one or two: planned at every run, the write alone cost half
        // a millisecond of the database's time per assignment. Every statement here is written
        // for the index that serves it whatever the values, so the generic plan is the right
        // one, and `keep_statistics` has it planned with what the tables hold.
        let owner = options.options([
            ("statement_timeout", "30s"),
            ("plan_cache_mode", "force_generic_plan"),
        ]);
        let options = owner.clone().options([("role", SERVICE_ROLE)]);
        // One direct connection first: a pool would retry until its timeout and then report
        // only that it timed out, hiding the cause (refused, unknown host, bad password).
        let probe =
            tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&owner))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
                .and_then(|connected| connected.map_err(anyhow::Error::from))
                .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        let mut connection = probe;
        MIGRATOR
            .run(&mut connection)
            .await
            .with_context(|| format!("cannot migrate the database at {}", redact(url)))?;
        let _ = connection.close().await;
        let pool = pool::pool(options.clone(), pool_size, CONNECTION_WAIT)?;
        // The listener keeps a connection of its own, in a pool of one that sqlx's listener
        // reconnects through.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        // Analysing a table is its owner's work.
        let owner_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(owner);
        let wakeups = Arc::new(Wakeups::default());
        let background = [
            tokio::spawn(listen(listener_pool, wakeups.clone())),
            tokio::spawn(keep_statistics(owner_pool)),
        ];
        Ok(Self {
            pool,
            wakeups,
            background,
        })
    }
}

impl PostgresStore {
    /// Runs `sql`, one statement without parameters, as the store's own statements run: as
    /// the service's role, on a connection scoped to `tenant`. Answers how many rows it
    /// returned or changed. For diagnostics, and for the tests that show what row-level
    /// security lets a statement without a tenant filter see.
    pub async fn run_scoped(&self, tenant: &TenantId, sql: &str) -> StoreResult<u64> {
        let mut tx = PgTx {
            session: Session::lend(&self.pool).await?,
        };
        let conn = tx.scoped(tenant).await?;
        let done = conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
        Ok(done.map_err(|e| tx.failed(e))?.rows_affected())
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
                        "bulk" => wakeups.bulk.notify_one(),
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

/// How often young tables' statistics are looked at.
const STATISTICS_EVERY: Duration = Duration::from_secs(1);

/// Tables up to this many rows count as young.
const YOUNG_TABLE_ROWS: f32 = 1_000_000.0;

/// Keeps the planner's statistics of young tables fresh.
///
/// Statements are prepared once per connection and, after five runs, PostgreSQL keeps one
/// generic plan for them, planned with the statistics of that moment. A table that is new, or
/// still small, has statistics that say little (a fresh table looks empty, and every index
/// looks as good as any other for it), and autovacuum analyses it only once a minute at best:
/// until then plans made early can scan a whole tenant where one row was wanted, and get slower
/// as the table grows. Analysing a table invalidates the plans that use it, so they are made
/// again with what the table now holds. This task analyses a young table as soon as a tenth
/// of it changed (autovacuum's own threshold, looked at every second rather than every
/// minute); older tables are left to autovacuum. Every replica may run it: analysing a table
/// twice is harmless.
async fn keep_statistics(pool: PgPool) {
    loop {
        tokio::time::sleep(STATISTICS_EVERY).await;
        let Ok(mut conn) = pool.acquire().await else {
            continue;
        };
        let due: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar(
            "SELECT s.relname::text FROM pg_stat_user_tables s \
             JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname = current_schema() \
             AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0) \
             AND c.reltuples < $1",
        )
        .bind(YOUNG_TABLE_ROWS)
        .fetch_all(&mut *conn)
        .await;
        let Ok(tables) = due else {
            continue;
        };
        for table in tables {
            // The name comes from the catalogue, quoted as an identifier.
            let analyze = format!("ANALYZE \"{}\"", table.replace('"', "\"\""));
            if let Err(error) = conn.execute(sqlx::AssertSqlSafe(analyze)).await {
                tracing::debug!(%error, %table, "cannot analyse");
                break;
            }
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn read(&self) -> StoreResult<Tx> {
        Ok(Box::new(PgTx {
            session: Session::lend(&self.pool).await?,
        }))
    }

    async fn write(&self) -> StoreResult<Tx> {
        Ok(Box::new(PgTx {
            session: Session::begin(&self.pool, "BEGIN").await?,
        }))
    }

    async fn snapshot(&self) -> StoreResult<Tx> {
        Ok(Box::new(PgTx {
            // Its statements are planned for their values: an export's keyset pages have to
            // come through the primary key in order, which a generic plan of a page (made for
            // any limit and any starting point) does not do once the tenant is large.
            session: Session::begin(
                &self.pool,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SET LOCAL plan_cache_mode = force_custom_plan",
            )
            .await?,
        }))
    }

    async fn shared_secret(&self, name: &str, generated: &[u8]) -> StoreResult<Vec<u8>> {
        // Two statements: a replica that lost the race reads the winner's secret.
        let mut session = Session::lend(&self.pool).await?;
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
        let mut session = Session::lend(&self.pool).await?;
        let pinged = session.conn().ping().await;
        pinged.map_err(|e| session.failed(e))
    }

    async fn work_written(&self, queue: Queue) {
        self.wakeups.of(queue).notified().await;
    }

    fn pools(&self) -> Vec<super::PoolUse> {
        vec![pool::use_of("main", &self.pool)]
    }

    async fn close(&self) {
        for task in &self.background {
            task.abort();
        }
        self.pool.close();
    }
}

/// A [`Transaction`] on PostgreSQL (or, from [`Store::read`], a connection for single
/// statements); the repositories are implemented in the submodules, one per aggregate.
#[derive(Debug)]
pub(super) struct PgTx {
    session: Session<PgConnection>,
}

impl PgTx {
    /// The connection, its session scoped to `tenant` (or to [`EVERY_TENANT`]): row-level
    /// security lets its statements see and write that tenant's rows only. The scope is set
    /// for the session, not just the transaction, since reads run without one: a connection
    /// lent again for the same tenant, as under one tenant's load, costs no statement.
    async fn scoped(&mut self, tenant: &TenantId) -> StoreResult<&mut PgConnection> {
        if self.session.scope().as_deref() != Some(tenant) {
            let set = sqlx::query("SELECT set_config('numbers.tenant', $1, false)")
                .bind(tenant)
                .execute(self.session.conn())
                .await;
            set.map_err(|e| self.session.failed(e))?;
            *self.session.scope() = Some(tenant.into());
        }
        Ok(self.session.conn())
    }

    /// The connection, whatever its scope: for statements on no tenant's rows.
    fn conn(&mut self) -> &mut PgConnection {
        self.session.conn()
    }

    /// The error of a statement (see [`Session::failed`]).
    fn failed(&mut self, error: sqlx::Error) -> super::StoreError {
        self.session.failed(error)
    }
}

#[async_trait]
impl Transaction for PgTx {
    async fn apply(&mut self, tenant: &TenantId, changes: &Changes) -> StoreResult<()> {
        self.write_changes(tenant, changes).await
    }

    async fn apply_all(&mut self, tenant: &TenantId, changes: Vec<Changes>) -> StoreResult<()> {
        // A few hundred mutations per statement: each row it writes looks its values up in
        // the statement's arrays (see `changes`), a cost that grows with their length.
        for group in Changes::grouped(changes, changes::WRITE_GROUP) {
            self.write_changes(tenant, &group).await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.session.commit().await
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
