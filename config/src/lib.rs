//! Warden's typed configuration: one YAML file (`warden.yaml`), `WARDEN_*` environment
//! overrides, and defaults.
//!
//! Why it is shaped this way:
//!
//! - **Zero configuration works.** Every setting has a documented default
//!   ([`Config::default()`]), so `warden serve` with no file at all runs a loopback sidecar.
//!   `examples/warden.yaml` lists every setting with its default.
//! - **Every error, with its position, at start-up.** A sidecar that fails on the first bad
//!   setting makes the operator fix, restart, fail again. The file is parsed into a YAML node
//!   tree that keeps line and column (`saphyr`), and walked against the schema by hand rather
//!   than through serde, which stops at the first error. Unknown keys, wrong types, out-of-range
//!   values, YAML syntax errors and bad environment values are all collected into
//!   [`ConfigError::Invalid`], one line each:
//!   `warden.yaml:4:14: ledger.batch_max: expected an integer from 1 to 65536, found string "lots"`.
//! - **Environment overrides for containers.** Each setting can be set without a file:
//!   `WARDEN_` + the dotted path upper-cased with `.` written `__`, e.g.
//!   `WARDEN_LEDGER__BATCH_MAX=512` or `WARDEN_DATA_DIR=/var/lib/warden`. The value is checked
//!   like the file's. The environment is read through the [`Env`] trait so tests can fake it.
//!
//! Precedence: defaults < file < environment. The schema lives in one table (`schema.rs`) that
//! the file walker, the environment reader and the tests share.
//!
//! ```
//! use std::collections::BTreeMap;
//! let env: BTreeMap<String, String> =
//!     [("WARDEN_LEDGER__BATCH_MAX".to_owned(), "512".to_owned())].into();
//! let config = warden_config::load(None, &env).unwrap();
//! assert_eq!(config.ledger.batch_max, 512);
//! assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
//! ```
#![deny(missing_docs)]

mod env;
mod error;
mod events;
mod items;
mod load;
mod mcp;
mod model;
mod proxy;
mod schema;

pub use env::{Env, ProcessEnv};
pub use error::{ConfigError, Problem, ProblemOrigin, Problems};
pub use events::{EventsConfig, OtlpProtocol, TelemetryConfig, WebhookSecretConfig};
pub use load::{check, load};
pub use mcp::{McpConfig, McpEscalation, McpUpstreamConfig};
pub use model::{
    Config, Durability, GloxiConfig, LedgerConfig, LogConfig, LogFormat, PolicyConfig,
    ServerConfig, StoreConfig,
};
pub use proxy::{
    glob_match, AgentConfig, ApiKeySource, EscalationMode, FailMode, LimitBackend, LimitConfig,
    LimitFailMode, LimitScope, LimitsConfig, ProxyConfig, RedisUrl, TokenizerConfig, UnknownPaths,
    UpstreamConfig,
};
pub use schema::{settings, Setting};
