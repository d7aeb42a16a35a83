//! PostgreSQL for Warden's stores (fleet mode).
//!
//! Warden's stores are called synchronously: the governance store under a lock from request
//! handlers, the ledger from its writer thread and from readers. That is right for the embedded
//! SQLite default (a query is a few microseconds, and an extra hop to another thread would cost
//! more than the query), so the SQLite path stays as it is. PostgreSQL is a network round trip
//! away, and its client (`tokio-postgres`) is async. [`Pg`] bridges the two: it owns a small
//! runtime and a connection pool, and [`Pg::blocking`] runs one job (a few statements, or a whole
//! ledger batch in one transaction) on that runtime while the caller waits. A caller on a worker
//! of a multi-threaded runtime waits inside `block_in_place`, so the runtime moves its other
//! tasks elsewhere instead of stalling them for the round trip.
//!
//! Why not `sqlx` for both: SQLite through sqlx runs each query on a worker thread behind a
//! channel (several microseconds per query on the proxy's hot path) and would replace the
//! ledger's tuned group commit, whose fsync happens off the writer thread; and the sync
//! `postgres` crate cannot be called from inside a tokio runtime at all.
//!
//! No TLS yet: a URL asking for it (`sslmode=require`) is refused at start rather than
//! silently downgraded. The `testing` feature gives each test its own schema.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, NoTls};

#[cfg(feature = "testing")]
pub mod testing;

pub use deadpool_postgres::Object as Client;
pub use tokio_postgres;

/// Why PostgreSQL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("store.url: not a usable PostgreSQL URL: {0}")]
    Url(String),
    #[error("store.url: sslmode=require asks for TLS, which this build does not support yet (use sslmode=disable or prefer on a trusted network)")]
    Tls,
    #[error("PostgreSQL at {target}: {message}")]
    Connect { target: String, message: String },
    #[error("PostgreSQL: {message}")]
    Db {
        message: String,
        /// The SQLSTATE, when the server answered with an error.
        code: Option<String>,
    },
    #[error("PostgreSQL: the connection pool is shut down")]
    Closed,
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => PgError::Db {
                message: match db.detail() {
                    Some(d) => format!("{}: {d}", db.message()),
                    None => db.message().to_owned(),
                },
                code: Some(db.code().code().to_owned()),
            },
            None => PgError::Db {
                message: e.to_string(),
                code: None,
            },
        }
    }
}

/// A pool of connections to one database, driven on its own runtime.
pub struct Pg {
    pool: Pool,
    config: tokio_postgres::Config,
    rt: Option<tokio::runtime::Runtime>,
    target: String,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("target", &self.target).finish()
    }
}

/// Connections kept per process: the ledger writer holds one per batch, readers and the
/// governance store share the rest.
const POOL_SIZE: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Pg {
    /// Connects (and checks the connection) to the database named by a `postgres://` URL.
    ///
    /// # Errors
    /// A malformed URL, one asking for TLS, or a server that cannot be reached.
    pub fn connect(url: &str) -> Result<Arc<Pg>, PgError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PgError::Url("it must start with postgres://".into()));
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                // The parser's message names the offending part, never the password.
                PgError::Url(e.to_string())
            })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(PgError::Tls);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Schema steps run `CREATE ... IF NOT EXISTS`; their notices are not worth a log line.
        let options = match config.get_options() {
            Some(o) => format!("{o} -c client_min_messages=warning"),
            None => "-c client_min_messages=warning".to_owned(),
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("warden");
        }
        let target = describe(&config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("warden-pg")
            .enable_all()
            .build()
            .map_err(|e| PgError::Connect {
                target: target.clone(),
                message: format!("cannot start its runtime: {e}"),
            })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Connect {
                target: target.clone(),
                message: e.to_string(),
            })?;
        let pg = Pg {
            pool,
            config,
            rt: Some(rt),
            target: target.clone(),
        };
        pg.blocking(|c| async move {
            c.simple_query("SELECT 1").await?;
            Ok(())
        })
        .map_err(|e| PgError::Connect {
            target,
            message: match e {
                PgError::Db { message, .. } => message,
                other => other.to_string(),
            },
        })?;
        Ok(Arc::new(pg))
    }

    /// `host:port/database as user`, never the password: for logs and errors.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.rt
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
    }

    /// Runs `job` with a pooled connection on the pool's runtime and waits for its result.
    /// Callable from any thread, inside a runtime or not.
    ///
    /// # Errors
    /// The job's own error, or a connection that could not be had.
    pub fn blocking<T, F, Fut>(&self, job: F) -> Result<T, PgError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let connections = self.connections();
        self.run(async move {
            match connections.get().await {
                Ok(client) => job(client).await,
                Err(e) => Err(e),
            }
        })?
    }

    /// Runs `fut` on the pool's runtime and waits for its output (see [`Pg::blocking`]); for
    /// jobs that must answer even when no connection can be had.
    ///
    /// # Errors
    /// [`PgError::Closed`] if the runtime is gone.
    pub fn run<T, Fut>(&self, fut: Fut) -> Result<T, PgError>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = move || rx.recv().map_err(|_| PgError::Closed);
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    /// A handle to the pool that jobs can take connections from.
    pub fn connections(&self) -> Connections {
        Connections {
            pool: self.pool.clone(),
            target: self.target.clone(),
        }
    }

    /// Listens on `channel` (a plain lower-case identifier) for as long as this pool lives,
    /// reconnecting after a lost connection. `on_event` gets each notification's payload, and
    /// `None` after every (re)connection: notifications sent while it was away are lost, so
    /// the listener should then look at the state itself.
    pub fn listen(&self, channel: &'static str, on_event: OnNotify) {
        assert!(
            !channel.is_empty() && channel.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "a channel name is a plain identifier"
        );
        let config = self.config.clone();
        let target = self.target.clone();
        self.handle().spawn(async move {
            let mut announced_failure = false;
            loop {
                match listen_once(&config, channel, &on_event).await {
                    Ok(()) => tracing::warn!(target = %target, channel, "LISTEN connection closed; reconnecting"),
                    Err(e) if !announced_failure => {
                        tracing::warn!(target = %target, channel, error = %e, "LISTEN connection failed; retrying every second");
                        announced_failure = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// What a listener does with a notification's payload (`None`: just (re)connected).
pub type OnNotify = Arc<dyn Fn(Option<&str>) + Send + Sync>;

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    on_event: &OnNotify,
) -> Result<(), PgError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let events = on_event.clone();
    // The connection must be polled for the client's LISTEN to go through; notifications are
    // passed on only once it has.
    let pump = tokio::spawn(async move {
        let mut ready = Some(ready_rx);
        let mut listening = false;
        loop {
            let msg = futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await;
            if !listening {
                if let Some(r) = ready.as_mut() {
                    listening = r.try_recv().is_ok();
                }
            }
            match msg {
                Some(Ok(AsyncMessage::Notification(n))) => events(Some(n.payload())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(PgError::from(e)),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    let _ = ready_tx.send(());
    on_event(None);
    let out = pump.await.unwrap_or(Ok(()));
    drop(client);
    out
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which is refused inside another runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Where jobs take their connections from.
#[derive(Clone)]
pub struct Connections {
    pool: Pool,
    target: String,
}

impl Connections {
    /// A pooled connection.
    ///
    /// # Errors
    /// The server cannot be reached, or the pool is closed.
    pub async fn get(&self) -> Result<Client, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(&self.target, e))
    }
}

fn pool_error(target: &str, e: deadpool_postgres::PoolError) -> PgError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => PgError::Connect {
            target: target.to_owned(),
            message: PgError::from(e).to_string(),
        },
        deadpool_postgres::PoolError::Closed => PgError::Closed,
        other => PgError::Connect {
            target: target.to_owned(),
            message: other.to_string(),
        },
    }
}

fn describe(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{} as {}",
        c.get_dbname().unwrap_or("-"),
        c.get_user().unwrap_or("-")
    )
}
