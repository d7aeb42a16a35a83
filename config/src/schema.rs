//! The schema, in one table: every setting's dotted path, its default as an operator would write
//! it, and how a value is checked and stored. The file walker, the environment reader, the
//! example file's test and the defaults' test all read this table, so adding a setting is one row
//! here plus its field and default in `model.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use saphyr::{MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use crate::events::WebhookSecretConfig;
use crate::items::{self, Issues, ItemField};
use crate::mcp::{McpEscalation, McpUpstreamConfig};
use crate::model::{Config, Durability, LogFormat};
use crate::proxy::{
    AgentConfig, ApiKeySource, EscalationMode, FailMode, LimitBackend, LimitConfig, LimitFailMode,
    LimitScope, RedisUrl, TokenizerConfig, UnknownPaths, UpstreamConfig,
};

/// One setting.
pub(crate) struct Field {
    /// Dotted path: YAML nesting, and (upper-cased, `.` as `__`) the environment variable.
    pub path: &'static str,
    /// The default in YAML syntax; a test checks it against `Config::default()`.
    pub default: &'static str,
    /// Checks a value and stores it; `Err` is "expected ..., found ..." (for lists, one
    /// positioned problem per bad item field).
    pub set: fn(&mut Config, Value<'_>) -> Result<(), Issues>,
}

/// The whole schema.
pub(crate) static FIELDS: &[Field] = &[
    Field {
        path: "data_dir",
        default: "./warden-data",
        set: |c, v| {
            c.data_dir = path(v)?;
            Ok(())
        },
    },
    Field {
        path: "server.listen",
        default: "127.0.0.1:8080",
        set: |c, v| {
            c.server.listen = socket_addr(v)?;
            Ok(())
        },
    },
    Field {
        path: "server.admin_listen",
        default: "127.0.0.1:9090",
        set: |c, v| {
            c.server.admin_listen = socket_addr(v)?;
            Ok(())
        },
    },
    Field {
        path: "server.shutdown_grace",
        default: "30s",
        set: |c, v| {
            c.server.shutdown_grace = duration(v, Duration::from_secs(600))?;
            Ok(())
        },
    },
    Field {
        path: "server.requests_per_minute",
        default: "600",
        set: |c, v| {
            c.server.requests_per_minute = integer(v, 1, 1_000_000)?;
            Ok(())
        },
    },
    Field {
        path: "ledger.origin",
        default: "warden",
        set: |c, v| {
            c.ledger.origin = origin(v)?;
            Ok(())
        },
    },
    Field {
        path: "ledger.batch_max",
        default: "4096",
        set: |c, v| {
            c.ledger.batch_max = integer(v, 1, 65536)?;
            Ok(())
        },
    },
    Field {
        path: "ledger.batch_wait",
        default: "0ms",
        set: |c, v| {
            c.ledger.batch_wait = duration(v, Duration::from_secs(1))?;
            Ok(())
        },
    },
    Field {
        path: "ledger.commit_interval",
        default: "2ms",
        set: |c, v| {
            c.ledger.commit_interval = duration(v, Duration::from_millis(100))?;
            Ok(())
        },
    },
    Field {
        path: "ledger.durability",
        default: "sync",
        set: |c, v| {
            c.ledger.durability = match v.text() {
                Some("sync") => Durability::Sync,
                Some("batched") => Durability::Batched,
                _ => return Err(v.mismatch("one of `sync`, `batched`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "ledger.batched_window",
        default: "10ms",
        set: |c, v| {
            c.ledger.batched_window = duration(v, Duration::from_secs(1))?;
            Ok(())
        },
    },
    Field {
        path: "ledger.signing_key",
        default: "null",
        set: |c, v| {
            c.ledger.signing_key = optional_path(v)?;
            Ok(())
        },
    },
    Field {
        path: "store.url",
        default: "null",
        set: |c, v| {
            c.store.url = store_url(v)?;
            Ok(())
        },
    },
    Field {
        path: "policy.dir",
        default: "null",
        set: |c, v| {
            c.policy.dir = optional_path(v)?;
            Ok(())
        },
    },
    Field {
        path: "policy.reload_interval",
        default: "2s",
        set: |c, v| {
            c.policy.reload_interval = duration(v, Duration::from_secs(3600))?;
            Ok(())
        },
    },
    Field {
        path: "upstreams",
        default: "[]",
        set: |c, v| {
            c.upstreams = items::list(v, UPSTREAM_FIELDS, check_upstream)?;
            let mut names: Vec<&str> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!("upstream name `{}` is used twice", w[0]).into());
            }
            Ok(())
        },
    },
    Field {
        path: "proxy.unknown_paths",
        default: "not_found",
        set: |c, v| {
            c.proxy.unknown_paths = match v.text() {
                Some("not_found") => UnknownPaths::NotFound,
                Some("passthrough") => UnknownPaths::Passthrough,
                _ => return Err(v.mismatch("one of `not_found`, `passthrough`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "proxy.escalation",
        default: "respond",
        set: |c, v| {
            c.proxy.escalation = match v.text() {
                Some("respond") => EscalationMode::Respond,
                Some("hold") => EscalationMode::Hold,
                _ => return Err(v.mismatch("one of `respond`, `hold`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "proxy.escalation_timeout",
        default: "5m",
        set: |c, v| {
            c.proxy.escalation_timeout = duration(v, Duration::from_secs(86_400))?;
            Ok(())
        },
    },
    Field {
        path: "proxy.fail_mode",
        default: "closed",
        set: |c, v| {
            c.proxy.fail_mode = match v.text() {
                Some("closed") => FailMode::Closed,
                Some("open") => FailMode::Open,
                _ => return Err(v.mismatch("one of `closed`, `open`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "proxy.max_body_bytes",
        default: "4194304",
        set: |c, v| {
            c.proxy.max_body_bytes = integer(v, 1024, 256 * 1024 * 1024)?;
            Ok(())
        },
    },
    // `limits` is both a section and, written as a list, the short form of `limits.rules`.
    Field {
        path: "limits",
        default: "[]",
        set: |c, v| {
            c.limits.rules = limit_rules(v)?;
            Ok(())
        },
    },
    Field {
        path: "limits.backend",
        default: "local",
        set: |c, v| {
            c.limits.backend = match v.text() {
                Some("local") => LimitBackend::Local,
                Some("redis") => LimitBackend::Redis,
                _ => return Err(v.mismatch("one of `local`, `redis`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "limits.redis_url",
        default: "redis://127.0.0.1:6379",
        set: |c, v| {
            c.limits.redis_url = redis_url(v)?;
            Ok(())
        },
    },
    Field {
        path: "limits.redis_prefix",
        default: "warden",
        set: |c, v| {
            c.limits.redis_prefix = redis_prefix(v)?;
            Ok(())
        },
    },
    Field {
        path: "limits.redis_timeout",
        default: "250ms",
        set: |c, v| {
            c.limits.redis_timeout = duration(v, Duration::from_secs(10))?;
            if c.limits.redis_timeout.is_zero() {
                return Err(v.mismatch("a duration above 0ms, at most 10s").into());
            }
            Ok(())
        },
    },
    Field {
        path: "limits.fail_mode",
        default: "local",
        set: |c, v| {
            c.limits.fail_mode = match v.text() {
                Some("local") => LimitFailMode::Local,
                Some("reject") => LimitFailMode::Reject,
                _ => return Err(v.mismatch("one of `local`, `reject`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "limits.rules",
        default: "[]",
        set: |c, v| {
            c.limits.rules = limit_rules(v)?;
            Ok(())
        },
    },
    Field {
        path: "agents",
        default: "[]",
        set: |c, v| {
            c.agents = items::list(v, AGENT_FIELDS, |_| None)?;
            Ok(())
        },
    },
    Field {
        path: "tokenizers",
        default: "[]",
        set: |c, v| {
            c.tokenizers = items::list(v, TOKENIZER_FIELDS, |_| None)?;
            Ok(())
        },
    },
    Field {
        path: "guardians",
        default: "{}",
        set: |c, v| {
            let value = items::json(v)?;
            c.guardians = match value {
                serde_json::Value::Null => serde_json::Value::Object(Default::default()),
                serde_json::Value::Object(_) => value,
                _ => return Err(v.mismatch("a mapping of guardian settings").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "mcp.allowed_hosts",
        default: "[localhost, 127.0.0.1, \"::1\"]",
        set: |c, v| {
            c.mcp.allowed_hosts = string_list(v, "host names or host:port")?;
            Ok(())
        },
    },
    Field {
        path: "mcp.escalation",
        default: "hold",
        set: |c, v| {
            c.mcp.escalation = match v.text() {
                Some("hold") => McpEscalation::Hold,
                Some("fail") => McpEscalation::Fail,
                _ => return Err(v.mismatch("one of `hold`, `fail`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "mcp.escalation_timeout",
        default: "5m",
        set: |c, v| {
            c.mcp.escalation_timeout = duration(v, Duration::from_secs(86_400))?;
            Ok(())
        },
    },
    Field {
        path: "mcp.call_timeout",
        default: "60s",
        set: |c, v| {
            c.mcp.call_timeout = duration(v, Duration::from_secs(3600))?;
            Ok(())
        },
    },
    Field {
        path: "mcp.fail_mode",
        default: "null",
        set: |c, v| {
            c.mcp.fail_mode = match v.text() {
                Some("closed") => Some(FailMode::Closed),
                Some("open") => Some(FailMode::Open),
                _ if v.is_null() => None,
                _ => {
                    return Err(v
                        .mismatch("one of `closed`, `open` (or null: as `proxy.fail_mode`)")
                        .into())
                }
            };
            Ok(())
        },
    },
    Field {
        path: "mcp.upstreams",
        default: "[]",
        set: |c, v| {
            c.mcp.upstreams = items::list(v, MCP_UPSTREAM_FIELDS, check_mcp_upstream)?;
            let mut names: Vec<&str> = c.mcp.upstreams.iter().map(|u| u.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!("MCP upstream name `{}` is used twice", w[0]).into());
            }
            Ok(())
        },
    },
    Field {
        path: "gloxi.model",
        default: "null",
        set: |c, v| {
            c.gloxi.model = if v.is_null() || matches!(v, Value::Env(s) if s.is_empty()) {
                None
            } else {
                Some(non_empty(
                    v,
                    "a model name served by one of `upstreams`, or null",
                )?)
            };
            Ok(())
        },
    },
    Field {
        path: "gloxi.max_tokens",
        default: "800",
        set: |c, v| {
            c.gloxi.max_tokens = integer(v, 16, 32_768)? as u32;
            Ok(())
        },
    },
    Field {
        path: "events.webhook_secrets",
        default: "[]",
        set: |c, v| {
            c.events.webhook_secrets = items::list(v, SECRET_FIELDS, check_secret)?;
            let mut aliases: Vec<&str> = c
                .events
                .webhook_secrets
                .iter()
                .map(|s| s.alias.as_str())
                .collect();
            aliases.sort_unstable();
            if let Some(w) = aliases.windows(2).find(|w| w[0] == w[1]) {
                return Err(format!("webhook secret alias `{}` is used twice", w[0]).into());
            }
            Ok(())
        },
    },
    Field {
        path: "events.allowed_targets",
        default: "[]",
        set: |c, v| {
            c.events.allowed_targets = string_list(v, "host or host:port patterns")?;
            Ok(())
        },
    },
    Field {
        path: "events.delivery_timeout",
        default: "10s",
        set: |c, v| {
            c.events.delivery_timeout = duration(v, Duration::from_secs(300))?;
            Ok(())
        },
    },
    Field {
        path: "events.max_attempts",
        default: "8",
        set: |c, v| {
            c.events.max_attempts = integer(v, 1, 100)?;
            Ok(())
        },
    },
    Field {
        path: "events.retry_base",
        default: "5s",
        set: |c, v| {
            c.events.retry_base = duration(v, Duration::from_secs(86_400))?;
            Ok(())
        },
    },
    Field {
        path: "events.retry_max",
        default: "1h",
        set: |c, v| {
            c.events.retry_max = duration(v, Duration::from_secs(7 * 86_400))?;
            Ok(())
        },
    },
    Field {
        path: "events.endpoint_concurrency",
        default: "4",
        set: |c, v| {
            c.events.endpoint_concurrency = integer(v, 1, 256)?;
            Ok(())
        },
    },
    Field {
        path: "events.checkpoint_interval",
        default: "1m",
        set: |c, v| {
            c.events.checkpoint_interval = duration(v, Duration::from_secs(86_400))?;
            Ok(())
        },
    },
    Field {
        path: "telemetry.otlp_endpoint",
        default: "null",
        set: |c, v| {
            c.telemetry.otlp_endpoint = if v.is_null() || matches!(v, Value::Env("")) {
                None
            } else {
                Some(http_url(v)?)
            };
            Ok(())
        },
    },
    Field {
        path: "telemetry.otlp_protocol",
        default: "http/protobuf",
        set: |c, v| {
            c.telemetry.otlp_protocol = match v.text() {
                Some("http/protobuf") => crate::OtlpProtocol::Protobuf,
                Some("http/json") => crate::OtlpProtocol::Json,
                _ => return Err(v.mismatch("one of `http/protobuf`, `http/json`").into()),
            };
            Ok(())
        },
    },
    Field {
        path: "telemetry.service_name",
        default: "warden",
        set: |c, v| {
            c.telemetry.service_name = non_empty(v, "a service name")?;
            Ok(())
        },
    },
    Field {
        path: "log.format",
        default: "text",
        set: |c, v| {
            c.log.format = log_format(v)?;
            Ok(())
        },
    },
    Field {
        path: "log.level",
        default: "info",
        set: |c, v| {
            c.log.level = non_empty(v, "a log filter such as `info` or `warn,warden=debug`")?;
            Ok(())
        },
    },
];

static UPSTREAM_FIELDS: &[ItemField<UpstreamConfig>] = &[
    ItemField {
        name: "name",
        required: true,
        set: |u, v| {
            u.name = name(v)?;
            Ok(())
        },
    },
    ItemField {
        name: "base_url",
        required: true,
        set: |u, v| {
            u.base_url = http_url(v)?;
            Ok(())
        },
    },
    ItemField {
        name: "api_key_env",
        required: false,
        set: |u, v| {
            if u.api_key != ApiKeySource::None {
                return Err("give only one of `api_key_env`, `api_key_file`".to_owned());
            }
            u.api_key = ApiKeySource::Env(non_empty(v, "an environment variable name")?);
            Ok(())
        },
    },
    ItemField {
        name: "api_key_file",
        required: false,
        set: |u, v| {
            if u.api_key != ApiKeySource::None {
                return Err("give only one of `api_key_env`, `api_key_file`".to_owned());
            }
            u.api_key = ApiKeySource::File(path(v)?);
            Ok(())
        },
    },
    ItemField {
        name: "models",
        required: false,
        set: |u, v| {
            u.models = string_list(v, "model names or globs")?;
            Ok(())
        },
    },
    ItemField {
        name: "timeout",
        required: false,
        set: |u, v| {
            u.timeout = duration(v, Duration::from_secs(3600))?;
            Ok(())
        },
    },
];

fn check_upstream(u: &UpstreamConfig) -> Option<String> {
    u.models
        .is_empty()
        .then(|| "`models` must name at least one model or glob".to_owned())
}

static MCP_UPSTREAM_FIELDS: &[ItemField<McpUpstreamConfig>] = &[
    ItemField {
        name: "name",
        required: true,
        set: |u, v| {
            u.name = name(v)?;
            if u.name.contains("__") {
                return Err("a name without `__` (it separates upstream and tool)".to_owned());
            }
            Ok(())
        },
    },
    ItemField {
        name: "command",
        required: false,
        set: |u, v| {
            u.command = Some(non_empty(v, "a command to start")?);
            Ok(())
        },
    },
    ItemField {
        name: "args",
        required: false,
        set: |u, v| {
            u.args = string_list(v, "arguments")?;
            Ok(())
        },
    },
    ItemField {
        name: "env",
        required: false,
        set: |u, v| {
            u.env = string_map(v, "environment variables")?;
            Ok(())
        },
    },
    ItemField {
        name: "url",
        required: false,
        set: |u, v| {
            u.url = Some(http_url(v)?);
            Ok(())
        },
    },
    ItemField {
        name: "headers",
        required: false,
        set: |u, v| {
            u.headers = string_map(v, "HTTP headers")?;
            Ok(())
        },
    },
];

fn check_mcp_upstream(u: &McpUpstreamConfig) -> Option<String> {
    match (&u.command, &u.url) {
        (Some(_), None) | (None, Some(_)) => None,
        _ => Some("give exactly one of `command` (stdio) or `url` (streamable HTTP)".to_owned()),
    }
}

/// A mapping of strings to strings (headers, environment variables).
fn string_map(v: Value<'_>, what: &str) -> Result<Vec<(String, String)>, String> {
    let expected = || v.mismatch(&format!("a mapping of {what} to strings"));
    match items::json(v) {
        Ok(serde_json::Value::Null) => Ok(Vec::new()),
        Ok(serde_json::Value::Object(o)) => o
            .into_iter()
            .map(|(k, val)| match val {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(n) => Ok((k, n.to_string())),
                _ => Err(expected()),
            })
            .collect(),
        _ => Err(expected()),
    }
}

static SECRET_FIELDS: &[ItemField<WebhookSecretConfig>] = &[
    ItemField {
        name: "alias",
        required: true,
        set: |s, v| {
            s.alias = name(v)?;
            Ok(())
        },
    },
    ItemField {
        name: "env",
        required: false,
        set: |s, v| {
            s.env = Some(non_empty(v, "an environment variable name")?);
            Ok(())
        },
    },
    ItemField {
        name: "file",
        required: false,
        set: |s, v| {
            s.file = Some(path(v)?);
            Ok(())
        },
    },
];

fn check_secret(s: &WebhookSecretConfig) -> Option<String> {
    match (&s.env, &s.file) {
        (Some(_), None) | (None, Some(_)) => None,
        _ => Some("give exactly one of `env` or `file`".to_owned()),
    }
}

fn limit_rules(v: Value<'_>) -> Result<Vec<LimitConfig>, Issues> {
    items::list(v, LIMIT_FIELDS, |l| {
        (l.requests_per_minute.is_none() && l.tokens_per_minute.is_none())
            .then(|| "a limit needs `requests_per_minute`, `tokens_per_minute` or both".to_owned())
    })
}

fn redis_url(v: Value<'_>) -> Result<RedisUrl, String> {
    v.text()
        .ok_or("a redis:// URL such as redis://127.0.0.1:6379")
        .and_then(RedisUrl::parse)
        .map_err(|expected| v.mismatch(expected))
}

/// 1 to 64 of `a-z A-Z 0-9 - _ . :`.
fn redis_prefix(v: Value<'_>) -> Result<String, String> {
    match v.text() {
        Some(s)
            if (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            Ok(s.to_owned())
        }
        _ => Err(v.mismatch("1 to 64 letters, digits, `-`, `_`, `.` or `:`")),
    }
}

static LIMIT_FIELDS: &[ItemField<LimitConfig>] = &[
    ItemField {
        name: "per",
        required: true,
        set: |l, v| {
            l.per = match v.text() {
                Some("key") => LimitScope::Key,
                Some("agent") => LimitScope::Agent,
                Some("tenant") => LimitScope::Tenant,
                Some("model") => LimitScope::Model,
                _ => return Err(v.mismatch("one of `key`, `agent`, `tenant`, `model`")),
            };
            Ok(())
        },
    },
    ItemField {
        name: "only",
        required: false,
        set: |l, v| {
            l.only = Some(non_empty(v, "a key id, agent, tenant or model glob")?);
            Ok(())
        },
    },
    ItemField {
        name: "requests_per_minute",
        required: false,
        set: |l, v| {
            l.requests_per_minute = Some(integer(v, 1, 100_000_000)? as u64);
            Ok(())
        },
    },
    ItemField {
        name: "tokens_per_minute",
        required: false,
        set: |l, v| {
            l.tokens_per_minute = Some(integer(v, 1, 1_000_000_000_000)? as u64);
            Ok(())
        },
    },
];

static AGENT_FIELDS: &[ItemField<AgentConfig>] = &[
    ItemField {
        name: "name",
        required: true,
        set: |a, v| {
            a.name = name(v)?;
            Ok(())
        },
    },
    ItemField {
        name: "tenant",
        required: false,
        set: |a, v| {
            a.tenant = name(v)?;
            Ok(())
        },
    },
    ItemField {
        name: "intent",
        required: false,
        set: |a, v| {
            a.intent = Some(non_empty(v, "a description of what the agent is for")?);
            Ok(())
        },
    },
];

static TOKENIZER_FIELDS: &[ItemField<TokenizerConfig>] = &[
    ItemField {
        name: "models",
        required: true,
        set: |t, v| {
            t.models = string_list(v, "model names or globs")?;
            Ok(())
        },
    },
    ItemField {
        name: "file",
        required: true,
        set: |t, v| {
            t.file = path(v)?;
            Ok(())
        },
    },
];

/// One setting as documentation and tooling see it (e.g. to list what can be configured).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Dotted path in the file, e.g. `ledger.batch_max`.
    pub path: &'static str,
    /// The environment variable that overrides it, e.g. `WARDEN_LEDGER__BATCH_MAX`.
    pub env: String,
    /// The default, in YAML syntax, e.g. `4096`.
    pub default: &'static str,
}

/// Every setting, in schema order.
pub fn settings() -> Vec<Setting> {
    FIELDS
        .iter()
        .map(|f| Setting {
            path: f.path,
            env: env_name(f.path),
            default: f.default,
        })
        .collect()
}

/// The field at exactly this dotted path.
pub(crate) fn field(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path == path)
}

/// Whether `path` names a section (a mapping that holds fields), such as `ledger`.
pub(crate) fn is_section(path: &str) -> bool {
    FIELDS.iter().any(|f| {
        f.path
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The names directly inside a section (`""` for the top level), in schema order.
pub(crate) fn children(section: &str) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for f in FIELDS {
        let rest = if section.is_empty() {
            Some(f.path)
        } else {
            f.path
                .strip_prefix(section)
                .and_then(|r| r.strip_prefix('.'))
        };
        if let Some(rest) = rest {
            let name = rest.split('.').next().unwrap_or(rest);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The message for a key that is not in `section`.
pub(crate) fn unknown_field(section: &str, name: &str) -> String {
    let expected: Vec<String> = children(section).iter().map(|n| format!("`{n}`")).collect();
    format!(
        "unknown field `{name}`, expected one of {}",
        expected.join(", ")
    )
}

/// The environment variable that overrides the setting at `path`.
pub(crate) fn env_name(path: &str) -> String {
    format!("WARDEN_{}", path.replace('.', "__").to_ascii_uppercase())
}

/// A value to check: a YAML node from the file, or the text of an environment variable (which
/// has no YAML type: it is parsed as the field's type).
#[derive(Clone, Copy)]
pub(crate) enum Value<'a> {
    Yaml(&'a MarkedYamlOwned),
    Env(&'a str),
}

impl Value<'_> {
    /// The value as text: a YAML string scalar (quoted or not) or the variable's value.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Value::Env(s) => Some(s),
            Value::Yaml(node) => match &untag(node).data {
                YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
                YamlDataOwned::Representation(s, _, _) => Some(s),
                _ => None,
            },
        }
    }

    /// Whether this is a YAML null (`null`, `~` or nothing).
    fn is_null(&self) -> bool {
        matches!(self, Value::Yaml(node)
            if matches!(untag(node).data, YamlDataOwned::Value(ScalarOwned::Null)))
    }

    /// "expected {expected}, found {what this is}".
    pub(crate) fn mismatch(&self, expected: &str) -> String {
        format!("expected {expected}, found {}", self.describe())
    }

    fn describe(&self) -> String {
        match self {
            Value::Env(s) => describe_str(s),
            Value::Yaml(node) => describe(node),
        }
    }
}

/// Looks through YAML tags (`!!str x`) to the tagged node.
pub(crate) fn untag(mut node: &MarkedYamlOwned) -> &MarkedYamlOwned {
    while let YamlDataOwned::Tagged(_, inner) = &node.data {
        node = inner;
    }
    node
}

/// What a YAML node is, for "found ..." in messages.
pub(crate) fn describe(node: &MarkedYamlOwned) -> String {
    match &untag(node).data {
        YamlDataOwned::Value(ScalarOwned::Null) => "null".to_owned(),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => format!("boolean {b}"),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => format!("integer {i}"),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(x)) => format!("number {x}"),
        YamlDataOwned::Value(ScalarOwned::String(s)) => describe_str(s),
        YamlDataOwned::Representation(s, _, _) => describe_str(s),
        YamlDataOwned::Sequence(_) => "a list".to_owned(),
        YamlDataOwned::Mapping(_) => "a mapping".to_owned(),
        YamlDataOwned::Tagged(..) | YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
            "a value that cannot be resolved".to_owned()
        }
    }
}

fn describe_str(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("string {cut:?}...")
    } else {
        format!("string {s:?}")
    }
}

fn path(v: Value<'_>) -> Result<PathBuf, String> {
    Ok(PathBuf::from(non_empty(v, "a path")?))
}

/// A path, or null (`null` or `~` in the file, an empty variable) for "use the default".
fn optional_path(v: Value<'_>) -> Result<Option<PathBuf>, String> {
    if v.is_null() || matches!(v, Value::Env(s) if s.is_empty()) {
        return Ok(None);
    }
    path(v).map(Some).map_err(|_| v.mismatch("a path or null"))
}

fn non_empty(v: Value<'_>, expected: &str) -> Result<String, String> {
    match v.text() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(v.mismatch(&format!("{expected} (non-empty)"))),
    }
}

fn socket_addr(v: Value<'_>) -> Result<SocketAddr, String> {
    const EXPECTED: &str = "a socket address like 127.0.0.1:8080 or [::1]:8080";
    v.text()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| v.mismatch(EXPECTED))
}

fn duration(v: Value<'_>, max: Duration) -> Result<Duration, String> {
    let max_text = humantime::format_duration(max);
    let parsed = v
        .text()
        .and_then(|s| humantime::parse_duration(s.trim()).ok())
        .ok_or_else(|| {
            v.mismatch(&format!(
                "a duration like 250ms, 30s or 2m, at most {max_text}"
            ))
        })?;
    if parsed > max {
        return Err(v.mismatch(&format!("a duration of at most {max_text}")));
    }
    Ok(parsed)
}

fn integer(v: Value<'_>, min: usize, max: usize) -> Result<usize, String> {
    let n = match v {
        Value::Env(s) => s.trim().parse::<i64>().ok(),
        Value::Yaml(node) => match untag(node).data {
            YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i),
            _ => None,
        },
    };
    n.and_then(|n| usize::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| v.mismatch(&format!("an integer from {min} to {max}")))
}

/// A checkpoint origin line: 1 to 128 printable ASCII characters, no leading/trailing space.
fn origin(v: Value<'_>) -> Result<String, String> {
    const EXPECTED: &str = "1 to 128 printable ASCII characters without leading or trailing spaces";
    match v.text() {
        Some(s)
            if (1..=128).contains(&s.len())
                && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
                && s.trim() == s =>
        {
            Ok(s.to_owned())
        }
        _ => Err(v.mismatch(EXPECTED)),
    }
}

/// An identifier: 1 to 64 of `a-z A-Z 0-9 - _ .`.
fn name(v: Value<'_>) -> Result<String, String> {
    match v.text() {
        Some(s)
            if (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Ok(s.to_owned())
        }
        _ => Err(v.mismatch("a name of 1 to 64 letters, digits, `-`, `_` or `.`")),
    }
}

/// An `http://` or `https://` URL, without a trailing slash.
fn http_url(v: Value<'_>) -> Result<String, String> {
    match v.text().map(str::trim) {
        Some(s)
            if s.strip_prefix("http://")
                .or_else(|| s.strip_prefix("https://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
                && !s.contains(char::is_whitespace) =>
        {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err(v.mismatch("an http:// or https:// URL")),
    }
}

/// A list of non-empty strings; from the environment, comma-separated.
fn string_list(v: Value<'_>, what: &str) -> Result<Vec<String>, String> {
    let expected = || v.mismatch(&format!("a list of {what}"));
    match v {
        Value::Env(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Yaml(node) => match &untag(node).data {
            YamlDataOwned::Sequence(items) => items
                .iter()
                .map(|i| match &untag(i).data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) if !s.trim().is_empty() => {
                        Ok(s.clone())
                    }
                    _ => Err(expected()),
                })
                .collect(),
            _ => Err(expected()),
        },
    }
}

/// A `postgres://` URL, or null for the embedded SQLite store. The value is never echoed in a
/// message: it may hold a password.
fn store_url(v: Value<'_>) -> Result<Option<String>, String> {
    if v.is_null() || matches!(v, Value::Env(s) if s.is_empty()) {
        return Ok(None);
    }
    match v.text() {
        Some(s)
            if (s.starts_with("postgres://") || s.starts_with("postgresql://"))
                && !s.chars().any(char::is_whitespace) =>
        {
            Ok(Some(s.to_owned()))
        }
        Some(_) => Err("expected a postgres:// URL or null, found another string (not shown: it may hold a password)".into()),
        None => Err(v.mismatch("a postgres:// URL or null")),
    }
}

fn log_format(v: Value<'_>) -> Result<LogFormat, String> {
    match v.text() {
        Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        _ => Err(v.mismatch("one of `text`, `json`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::LimitsConfig;
    use saphyr::LoadableYamlNode;
    use std::path::Path;

    /// The `default` column agrees with `Config::default()`: apply every default to a config
    /// where every field differs from its default, and the result must be the default.
    #[test]
    fn default_column_matches_config_default() {
        let mut c = Config {
            data_dir: PathBuf::from("/elsewhere"),
            server: crate::ServerConfig {
                listen: "10.0.0.1:1".parse().unwrap(),
                admin_listen: "10.0.0.1:2".parse().unwrap(),
                shutdown_grace: Duration::from_secs(1),
                requests_per_minute: 1,
            },
            ledger: crate::LedgerConfig {
                origin: "other".into(),
                batch_max: 1,
                batch_wait: Duration::from_millis(5),
                commit_interval: Duration::from_millis(3),
                durability: Durability::Batched,
                batched_window: Duration::from_millis(7),
                signing_key: Some(Path::new("/k").into()),
            },
            store: crate::StoreConfig {
                url: Some("postgres://db/warden".into()),
            },
            policy: crate::PolicyConfig {
                dir: Some(Path::new("/p").into()),
                reload_interval: Duration::from_secs(9),
            },
            log: crate::LogConfig {
                format: LogFormat::Json,
                level: "trace".into(),
            },
            upstreams: vec![UpstreamConfig::default()],
            proxy: crate::ProxyConfig {
                unknown_paths: UnknownPaths::Passthrough,
                escalation: EscalationMode::Hold,
                escalation_timeout: Duration::from_secs(1),
                fail_mode: FailMode::Open,
                max_body_bytes: 1,
            },
            limits: LimitsConfig {
                rules: vec![LimitConfig::default()],
                backend: LimitBackend::Redis,
                redis_url: RedisUrl::parse("redis://elsewhere:1").unwrap(),
                redis_prefix: "other".into(),
                redis_timeout: Duration::from_secs(1),
                fail_mode: LimitFailMode::Reject,
            },
            agents: vec![AgentConfig::default()],
            tokenizers: vec![TokenizerConfig::default()],
            guardians: serde_json::json!({"pii": {}}),
            mcp: crate::McpConfig {
                allowed_hosts: vec![],
                escalation: McpEscalation::Fail,
                escalation_timeout: Duration::from_secs(1),
                call_timeout: Duration::from_secs(1),
                fail_mode: Some(FailMode::Open),
                upstreams: vec![McpUpstreamConfig::default()],
            },
            gloxi: crate::GloxiConfig {
                model: Some("m".into()),
                max_tokens: 1,
            },
            events: crate::EventsConfig {
                webhook_secrets: vec![WebhookSecretConfig::default()],
                allowed_targets: vec!["x".into()],
                delivery_timeout: Duration::from_secs(1),
                max_attempts: 1,
                retry_base: Duration::from_secs(1),
                retry_max: Duration::from_secs(1),
                endpoint_concurrency: 1,
                checkpoint_interval: Duration::from_secs(1),
            },
            telemetry: crate::TelemetryConfig {
                otlp_endpoint: Some("http://x".into()),
                otlp_protocol: crate::OtlpProtocol::Json,
                service_name: "x".into(),
            },
        };
        for f in FIELDS {
            let doc = MarkedYamlOwned::load_from_str(f.default).unwrap();
            (f.set)(&mut c, Value::Yaml(&doc[0])).unwrap_or_else(|e| panic!("{}: {e:?}", f.path));
        }
        assert_eq!(c, Config::default());
    }

    #[test]
    fn schema_shape() {
        assert_eq!(
            children(""),
            [
                "data_dir",
                "server",
                "ledger",
                "store",
                "policy",
                "upstreams",
                "proxy",
                "limits",
                "agents",
                "tokenizers",
                "guardians",
                "mcp",
                "gloxi",
                "events",
                "telemetry",
                "log"
            ]
        );
        assert_eq!(
            children("ledger"),
            [
                "origin",
                "batch_max",
                "batch_wait",
                "commit_interval",
                "durability",
                "batched_window",
                "signing_key"
            ]
        );
        assert_eq!(
            children("limits"),
            [
                "backend",
                "redis_url",
                "redis_prefix",
                "redis_timeout",
                "fail_mode",
                "rules"
            ]
        );
        assert!(is_section("limits") && field("limits").is_some());
        assert!(is_section("ledger"));
        assert!(!is_section("led"));
        assert!(!is_section("ledger.origin"));
        assert_eq!(env_name("ledger.batch_max"), "WARDEN_LEDGER__BATCH_MAX");
        assert_eq!(env_name("data_dir"), "WARDEN_DATA_DIR");
    }

    #[test]
    fn origin_rules() {
        assert!(origin(Value::Env("example.com/warden")).is_ok());
        assert!(origin(Value::Env(&"a".repeat(128))).is_ok());
        assert!(origin(Value::Env(&"a".repeat(129))).is_err());
        assert!(origin(Value::Env("")).is_err());
        assert!(origin(Value::Env("   ")).is_err());
        assert!(origin(Value::Env(" lead")).is_err());
        assert!(origin(Value::Env("two\nlines")).is_err());
        assert!(origin(Value::Env("caf\u{e9}")).is_err());
    }

    #[test]
    fn store_url_rules_never_echo_the_value() {
        assert_eq!(store_url(Value::Env("")).unwrap(), None);
        assert_eq!(
            store_url(Value::Env("postgres://u:pw@db:5432/warden")).unwrap(),
            Some("postgres://u:pw@db:5432/warden".into())
        );
        assert!(store_url(Value::Env("postgresql://db/w")).is_ok());
        let e = store_url(Value::Env("mysql://u:hunter2@db/w")).unwrap_err();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
        assert!(store_url(Value::Env("postgres://db/ w")).is_err());
    }
}
