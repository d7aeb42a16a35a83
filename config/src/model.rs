//! The typed configuration the rest of Warden reads, and its defaults.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proxy::{AgentConfig, LimitsConfig, ProxyConfig, TokenizerConfig, UpstreamConfig};

/// Warden's whole configuration, after defaults, the file and the environment were applied.
///
/// `Config::default()` is a working configuration: a sidecar listening on loopback and keeping
/// its data in `./warden-data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where Warden keeps its state (ledger database, keys). Relative paths are relative to the
    /// working directory. Default `./warden-data`.
    pub data_dir: PathBuf,
    /// The listening sockets and shutdown behaviour.
    pub server: ServerConfig,
    /// The tamper-evident ledger.
    pub ledger: LedgerConfig,
    /// Where the governance store and the ledger live.
    pub store: StoreConfig,
    /// The policy packs.
    pub policy: PolicyConfig,
    /// Logging.
    pub log: LogConfig,
    /// The LLM providers the proxy forwards to; none: the OpenAI routes answer 503.
    pub upstreams: Vec<UpstreamConfig>,
    /// The OpenAI-compatible proxy's behaviour.
    pub proxy: ProxyConfig,
    /// Request and token limits on the data plane, and where their buckets live.
    pub limits: LimitsConfig,
    /// Agents known at start-up, with their default intents.
    pub agents: Vec<AgentConfig>,
    /// Local Hugging Face tokenizers for non-OpenAI models.
    pub tokenizers: Vec<TokenizerConfig>,
    /// The guardians' settings as written (`guardians:`), an object; its schema belongs to
    /// `warden-guardians`, which checks it when the engine is built (`warden config check`
    /// does too). Empty: the guardians' defaults.
    pub guardians: serde_json::Value,
    /// The MCP endpoint and the MCP proxy's upstreams.
    pub mcp: crate::McpConfig,
    /// Governance events and webhook delivery.
    pub events: crate::EventsConfig,
    /// Trace export (OpenTelemetry).
    pub telemetry: crate::TelemetryConfig,
    /// Gloxi, the regulatory assistant.
    pub gloxi: GloxiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./warden-data"),
            server: ServerConfig::default(),
            ledger: LedgerConfig::default(),
            store: StoreConfig::default(),
            policy: PolicyConfig::default(),
            log: LogConfig::default(),
            upstreams: Vec::new(),
            proxy: ProxyConfig::default(),
            limits: LimitsConfig::default(),
            agents: Vec::new(),
            tokenizers: Vec::new(),
            guardians: serde_json::Value::Object(serde_json::Map::new()),
            mcp: crate::McpConfig::default(),
            events: crate::EventsConfig::default(),
            telemetry: crate::TelemetryConfig::default(),
            gloxi: GloxiConfig::default(),
        }
    }
}

/// Gloxi, the regulatory assistant (`gloxi:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct GloxiConfig {
    /// The model that writes answers, served by one of `upstreams` and called through the
    /// governed proxy path as agent `gloxi`. `None` (the default): extractive answers, no LLM.
    pub model: Option<String>,
    /// Completion budget of one generated answer, 16 to 32768. Default 800.
    pub max_tokens: u32,
}

impl Default for GloxiConfig {
    fn default() -> Self {
        GloxiConfig {
            model: None,
            max_tokens: 800,
        }
    }
}

/// The listening sockets and shutdown behaviour (`server:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Data plane and REST API. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Admin endpoints (`/health`, `/ready`, later `/metrics`). Default `127.0.0.1:9090`.
    pub admin_listen: SocketAddr,
    /// How long in-flight requests may take to finish after a shutdown signal, at most 10 minutes.
    /// Default 30 seconds.
    pub shutdown_grace: Duration,
    /// API requests each API key may make per minute (with a burst of as many); beyond that,
    /// 429 with `Retry-After`.
    pub requests_per_minute: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)),
            admin_listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090)),
            shutdown_grace: Duration::from_secs(30),
            requests_per_minute: 600,
        }
    }
}

/// The tamper-evident ledger (`ledger:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerConfig {
    /// Names the log in signed checkpoints: 1 to 128 printable ASCII characters, without leading
    /// or trailing spaces. Default `warden`.
    pub origin: String,
    /// Most appends grouped into one transaction and one checkpoint, 1 to 65536. Default 4096.
    pub batch_max: usize,
    /// How long the writer waits for more appends before committing a batch, at most 1 second.
    /// Default 0 (commit as soon as the writer is free).
    pub batch_wait: Duration,
    /// The shortest time between the starts of two batch commits while several appenders are
    /// active, at most 100ms. Under load, larger batches for fewer transactions, signed
    /// checkpoints and fsyncs, at up to this much latency per append; unlike `batch_wait`, a
    /// lone appender and an append after a quiet spell are not delayed. Default 2ms (about a
    /// quarter less CPU per proxied call at 1,000 calls/s); 0 commits as soon as the writer is
    /// free.
    pub commit_interval: Duration,
    /// When a governed call's response may be released. Default [`Durability::Sync`].
    pub durability: Durability,
    /// With [`Durability::Batched`], how long a proxied call's record may wait to be written
    /// (up to half of it) and fsynced (the other half), so that one commit and one fsync cover
    /// the records of the window: what a crash can lose. At most 1 second. Default 10ms; 0
    /// writes and syncs every batch at once.
    pub batched_window: Duration,
    /// The Ed25519 signing key file; `None` means `<data_dir>/keys/ledger.key`
    /// (see [`LedgerConfig::signing_key_path`]).
    pub signing_key: Option<PathBuf>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            origin: "warden".to_owned(),
            batch_max: 4096,
            batch_wait: Duration::ZERO,
            commit_interval: Duration::from_millis(2),
            durability: Durability::Sync,
            batched_window: Duration::from_millis(10),
            signing_key: None,
        }
    }
}

impl LedgerConfig {
    /// The signing key file to use: the configured one, or `<data_dir>/keys/ledger.key`.
    pub fn signing_key_path(&self, data_dir: &Path) -> PathBuf {
        match &self.signing_key {
            Some(path) => path.clone(),
            None => data_dir.join("keys").join("ledger.key"),
        }
    }
}

/// Where the governance store and the ledger live (`store:` in the file).
#[derive(Clone, Default, PartialEq)]
pub struct StoreConfig {
    /// A `postgres://` URL: keep the governance store and the ledger in this database, shared by
    /// every Warden of a fleet. `None` (the default): embedded SQLite in `data_dir`. Never
    /// printed by `Debug`: it may hold a password.
    pub url: Option<String>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Where the policy packs come from (`policy:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// A directory of `*.yaml` packs (`*.cases.yaml` are table tests and skipped); `None`: the
    /// built-in default pack.
    pub dir: Option<PathBuf>,
    /// How often the directory is checked for changes; a changed set is validated and swapped
    /// atomically, an invalid one is refused and the old set stays.
    pub reload_interval: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: None,
            reload_interval: Duration::from_secs(2),
        }
    }
}

/// Logging (`log:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Output format. Default [`LogFormat::Text`].
    pub format: LogFormat,
    /// A `tracing` `EnvFilter` directive such as `info` or `warn,warden_ledger=debug`; non-empty.
    /// Default `info`. Its syntax is checked by whoever builds the filter, not here.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: "info".to_owned(),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (`text`).
    #[default]
    Text,
    /// One JSON object per line (`json`), for log collectors.
    Json,
}

/// When the proxy releases a response whose record is being written (`ledger.durability`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Only once the call's record is on stable storage (its fsync overlaps the upstream call).
    #[default]
    Sync,
    /// At once: the record has its place and hash as soon as it is queued (SQLite; with
    /// PostgreSQL once its batch is committed), and is written and fsynced within
    /// `ledger.batched_window`, so a crash loses at most the records of that window.
    Batched,
}
