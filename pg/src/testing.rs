//! A schema of its own for each test, so tests running in parallel against one database never
//! see each other's tables. Not used by Warden itself.
//!
//! Tests reach PostgreSQL through `WARDEN_TEST_POSTGRES_URL`. Without it, [`TestDb::from_env`]
//! says on stderr that the test is skipped and returns `None`; with it, a server that cannot
//! be reached fails the test.

use std::future::Future;
use std::io::Write;

use tokio_postgres::NoTls;

/// The variable naming the test database.
pub const ENV: &str = "WARDEN_TEST_POSTGRES_URL";

/// Where one test's stores live: a temporary directory (keys, SQLite files) and, for
/// PostgreSQL, a schema of its own and a pool connected to it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub pg: Option<std::sync::Arc<crate::Pg>>,
    pub db: Option<TestDb>,
}

impl Fixture {
    pub fn sqlite() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("a temporary directory"),
            pg: None,
            db: None,
        }
    }

    /// `None` (and a line on stderr) when `WARDEN_TEST_POSTGRES_URL` is not set.
    pub fn postgres(test: &str) -> Option<Fixture> {
        let db = TestDb::from_env(test)?;
        let pg = crate::Pg::connect(&db.url)
            .unwrap_or_else(|e| panic!("{ENV}: cannot connect to the test schema: {e}"));
        Some(Fixture {
            dir: tempfile::tempdir().expect("a temporary directory"),
            pg: Some(pg),
            db: Some(db),
        })
    }
}

/// A fresh schema, dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The database URL with `search_path` set to the schema: what Warden is given.
    pub url: String,
    /// The schema's name.
    pub schema: String,
    base: String,
}

impl TestDb {
    /// A new schema in the database of `WARDEN_TEST_POSTGRES_URL`, or `None` (and a line on
    /// stderr naming `test`) when the variable is not set.
    ///
    /// # Panics
    /// The variable is set but the schema cannot be created.
    pub fn from_env(test: &str) -> Option<TestDb> {
        let base = match std::env::var(ENV) {
            Ok(u) if !u.trim().is_empty() => u,
            _ => {
                // Written past the test harness's capture, so that a skip is seen in every run.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED on PostgreSQL: {test} ({ENV} is not set)"
                );
                return None;
            }
        };
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).expect("the operating system's random source is available");
        let schema = format!("warden_test_{}", hex::encode(b));
        let sql = format!("CREATE SCHEMA {schema}");
        run_sql(&base, sql).unwrap_or_else(|e| panic!("{ENV}: cannot create a test schema: {e}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        Some(TestDb { url, schema, base })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        if let Err(e) = run_sql(&self.base, sql) {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// Runs one statement on a connection of its own, from any thread (on a thread of its own, so
/// that it works inside and outside a runtime).
fn run_sql(url: &str, sql: String) -> Result<(), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(with_connection(&url, |c| async move {
            c.batch_execute(&sql).await
        }))
    })
    .join()
    .map_err(|_| "the helper thread panicked".to_owned())?
}

async fn with_connection<F, Fut>(url: &str, f: F) -> Result<(), String>
where
    F: FnOnce(tokio_postgres::Client) -> Fut,
    Fut: Future<Output = Result<(), tokio_postgres::Error>>,
{
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let out = f(client).await.map_err(|e| e.to_string());
    let _ = driver.await;
    out
}

/// Runs a test once per engine: `test_on_both!(async Fixture, name)` (or `sync`) turns
/// `fn name(f: Fixture)` into the tests `name::sqlite` and `name::postgres`, built with
/// `Fixture::sqlite()` and `Fixture::postgres(test_name) -> Option<Fixture>` (`None`: skipped,
/// see [`TestDb::from_env`]).
#[macro_export]
macro_rules! test_on_both {
    (async $fixture:ident, $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::$fixture::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(f) = super::$fixture::postgres(module_path!()) {
                    super::$name(f).await
                }
            }
        }
    };
    (sync $fixture:ident, $name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::$fixture::sqlite())
            }

            #[test]
            fn postgres() {
                if let Some(f) = super::$fixture::postgres(module_path!()) {
                    super::$name(f)
                }
            }
        }
    };
}
