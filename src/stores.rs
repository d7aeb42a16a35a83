//! Where the governance store and the ledger live: embedded SQLite in `data_dir` (the default),
//! or one PostgreSQL database shared by a fleet (`store.url`). Every command opens them here.

use std::sync::Arc;

use warden_config::Config;
use warden_governance::{Store, StoreError};
use warden_ledger::{Ledger, LedgerError, LedgerOptions, LedgerReader};
use warden_pg::{Pg, PgError};

/// The PostgreSQL pool when `store.url` is set; blocks for the first connection.
pub fn connect(config: &Config) -> Result<Option<Arc<Pg>>, PgError> {
    match &config.store.url {
        None => Ok(None),
        Some(url) => {
            let pg = Pg::connect(url)?;
            tracing::info!(target = %pg.target(), "store and ledger in PostgreSQL");
            Ok(Some(pg))
        }
    }
}

pub fn ledger_options(config: &Config, pg: Option<Arc<Pg>>) -> LedgerOptions {
    LedgerOptions {
        dir: config.data_dir.join("ledger"),
        postgres: pg,
        signing_key: config.ledger.signing_key_path(&config.data_dir),
        origin: config.ledger.origin.clone(),
        batch_max: config.ledger.batch_max,
        batch_wait: config.ledger.batch_wait,
    }
}

/// Opens the ledger the configuration describes, with its fsync pacing.
pub fn open_ledger(config: &Config, pg: Option<Arc<Pg>>) -> Result<Ledger, LedgerError> {
    let ledger = Ledger::open(ledger_options(config, pg))?;
    ledger.set_commit_interval(config.ledger.commit_interval);
    ledger.set_sync_window(config.ledger.batched_window);
    Ok(ledger)
}

pub fn open_store(config: &Config, pg: Option<&Arc<Pg>>) -> Result<Store, StoreError> {
    match pg {
        Some(pg) => Store::postgres(pg.clone()),
        None => Store::open(&config.data_dir),
    }
}

pub fn open_reader(config: &Config, pg: Option<Arc<Pg>>) -> Result<LedgerReader, LedgerError> {
    match pg {
        Some(pg) => LedgerReader::postgres(pg),
        None => LedgerReader::open(&config.data_dir.join("ledger")),
    }
}
