//! Connections for the stores: a pool (deadpool) that lends connections as they are.
//!
//! sqlx's own pool pings every connection that comes back to it before lending it again: a
//! round trip per request on PostgreSQL, and a hop to the connection's thread on SQLite, on top
//! of the request's own statements. This pool takes a connection back as it is. A connection
//! idle for a while is pinged before it is lent (the database may have closed it meanwhile),
//! and one whose statement failed for want of the database is closed instead of lent again.
//!
//! A [`Session`] is one loan: single statements, or a transaction that is rolled back unless
//! committed. A pooled connection remembers the tenant it was last scoped to (see
//! [`Session::scope`]), so lending it again for the same tenant costs nothing.

use std::fmt;
use std::time::Duration;

use std::future::Future;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, QueueMode, RecycleError, RecycleResult};
use sqlx::{ConnectOptions, Connection, Executor as _, PgConnection, SqliteConnection};

use super::{StoreError, StoreResult};

/// A connection that runs the statements that begin and end transactions.
pub(super) trait Plain: Connection + 'static {
    /// Runs `sql`, a statement with no parameters and no rows.
    fn plain(
        &mut self,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_;
}

impl Plain for PgConnection {
    async fn plain(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        self.execute(sql).await.map(|_| ())
    }
}

impl Plain for SqliteConnection {
    async fn plain(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        self.execute(sql).await.map(|_| ())
    }
}

/// A connection idle for longer than this is pinged before it is lent.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(30);

/// Opens connections with the store's options, and decides whether one may be lent again.
pub(super) struct Connector<C: Connection> {
    options: <C as Connection>::Options,
}

impl<C: Connection> fmt::Debug for Connector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

/// A pooled connection and the scope its session is set to.
#[derive(Debug)]
pub(super) struct Pooled<C> {
    conn: C,
    scope: Option<Box<str>>,
}

impl<C: Connection> managed::Manager for Connector<C> {
    type Type = Pooled<C>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Pooled<C>, sqlx::Error> {
        Ok(Pooled {
            conn: self.options.connect().await?,
            scope: None,
        })
    }

    async fn recycle(
        &self,
        pooled: &mut Pooled<C>,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.last_used() > IDLE_BEFORE_PING {
            pooled.conn.ping().await.map_err(RecycleError::Backend)?;
        }
        Ok(())
    }
}

/// The connections of a store.
pub(super) type Pool<C> = managed::Pool<Connector<C>>;

/// A pool of at most `size` connections opened with `options`; a loan waits at most `wait`.
pub(super) fn pool<C: Connection>(
    options: <C as Connection>::Options,
    size: usize,
    wait: Duration,
) -> anyhow::Result<Pool<C>> {
    Ok(managed::Pool::builder(Connector { options })
        .max_size(size)
        // The connection used last is lent first: under light load a few connections (and
        // their PostgreSQL processes) stay warm rather than all taking turns.
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// How `pool`, named `name`, is used right now.
pub(super) fn use_of<C: Connection>(name: &'static str, pool: &Pool<C>) -> super::PoolUse {
    let status = pool.status();
    super::PoolUse {
        name,
        max: status.max_size,
        open: status.size,
        idle: status.available,
        waiting: status.waiting,
    }
}

/// One loan of a connection. Dropping a session in a transaction rolls the transaction back
/// (in the background, before the connection goes back to the pool).
pub(super) struct Session<C: Plain> {
    conn: Option<Object<Connector<C>>>,
    transaction: bool,
    broken: bool,
}

impl<C: Plain> fmt::Debug for Session<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("transaction", &self.transaction)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<C: Plain> Session<C> {
    /// Borrows a connection for single statements.
    pub(super) async fn lend(pool: &Pool<C>) -> StoreResult<Self> {
        let conn = pool.get().await.map_err(|error| match error {
            managed::PoolError::Backend(error) => StoreError::from(error),
            managed::PoolError::Closed => StoreError::Unavailable(sqlx::Error::PoolClosed),
            _ => StoreError::Unavailable(sqlx::Error::PoolTimedOut),
        })?;
        Ok(Self {
            conn: Some(conn),
            transaction: false,
            broken: false,
        })
    }

    /// Borrows a connection and starts a transaction on it with `begin`.
    pub(super) async fn begin(pool: &Pool<C>, begin: &'static str) -> StoreResult<Self> {
        let mut session = Self::lend(pool).await?;
        let started = session.conn().plain(begin).await;
        started.map_err(|e| session.failed(e))?;
        session.transaction = true;
        Ok(session)
    }

    /// Commits the transaction, if one is open.
    pub(super) async fn commit(mut self) -> StoreResult<()> {
        if self.transaction {
            let committed = self.conn().plain("COMMIT").await;
            if committed.is_err() {
                *self.scope() = None;
            }
            committed.map_err(|e| self.failed(e))?;
            self.transaction = false;
        }
        Ok(())
    }

    /// The connection.
    pub(super) fn conn(&mut self) -> &mut C {
        &mut self.pooled().conn
    }

    /// The scope the connection's session is set to, as the store last recorded it (`None`:
    /// unknown). A scope set in a transaction that is rolled back is forgotten with it.
    pub(super) fn scope(&mut self) -> &mut Option<Box<str>> {
        &mut self.pooled().scope
    }

    fn pooled(&mut self) -> &mut Pooled<C> {
        self.conn
            .as_deref_mut()
            .expect("a session has its connection until it is dropped")
    }

    /// The error of a statement, noting a connection the database is gone from, which is then
    /// closed rather than lent again.
    pub(super) fn failed(&mut self, error: sqlx::Error) -> StoreError {
        let error = StoreError::from(error);
        if matches!(error, StoreError::Unavailable(_)) {
            self.broken = true;
        }
        error
    }
}

impl<C: Plain> Drop for Session<C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.broken {
            drop(Object::take(conn));
        } else if self.transaction {
            tokio::spawn(async move {
                let mut conn = conn;
                conn.scope = None;
                let rolled_back = conn.conn.plain("ROLLBACK").await;
                if rolled_back.is_err() {
                    drop(Object::take(conn));
                }
            });
        }
    }
}
