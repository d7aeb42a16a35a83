//! The data plane's settings: upstream LLM providers, the proxy's behaviour, token and request
//! limits, agents and tokenizers. Lists of objects here are read by `items.rs`.

use std::path::PathBuf;
use std::time::Duration;

/// One OpenAI-compatible provider Warden forwards to (`upstreams:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamConfig {
    /// Unique name, used in logs, the ledger and metrics.
    pub name: String,
    /// The provider's API root including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Where the provider key comes from; the agent never sees it.
    pub api_key: ApiKeySource,
    /// Model names or globs (`gpt-4o*`) this upstream serves; the first upstream that matches a
    /// request's model gets it. Default `["*"]`.
    pub models: Vec<String>,
    /// Whole-request timeout towards the provider (for streams: until the last byte).
    /// Default 10 minutes.
    pub timeout: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            name: String::new(),
            base_url: String::new(),
            api_key: ApiKeySource::None,
            models: vec!["*".to_owned()],
            timeout: Duration::from_secs(600),
        }
    }
}

/// Where an upstream's API key is read from, at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiKeySource {
    /// No key (a local model server).
    None,
    /// An environment variable's name.
    Env(String),
    /// A file holding the key (trailing whitespace ignored), e.g. a mounted Kubernetes Secret.
    File(PathBuf),
}

/// How the proxy treats paths it does not govern (`proxy.unknown_paths`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownPaths {
    /// 404 in OpenAI's error format.
    #[default]
    NotFound,
    /// Forwarded to the first upstream unchanged (still authenticated, still inscribed).
    Passthrough,
}

/// What an `escalate` verdict does to an LLM call (`proxy.escalation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscalationMode {
    /// Answer at once (HTTP 409, OpenAI error format) with the Decision Desk thread id.
    #[default]
    Respond,
    /// Hold the request until the thread is resolved or `escalation_timeout` passes.
    Hold,
}

/// What happens when a check (guardians, policy, ledger) cannot run (`proxy.fail_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Refuse the call (503).
    #[default]
    Closed,
    /// Forward it, and record that the check did not run.
    Open,
}

/// The OpenAI-compatible proxy (`proxy:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Paths other than the governed OpenAI routes. Default [`UnknownPaths::NotFound`].
    pub unknown_paths: UnknownPaths,
    /// Default [`EscalationMode::Respond`].
    pub escalation: EscalationMode,
    /// How long a held escalation waits for the Decision Desk. Default 5 minutes.
    pub escalation_timeout: Duration,
    /// Default [`FailMode::Closed`].
    pub fail_mode: FailMode,
    /// Largest request body accepted, in bytes. Default 4 MiB.
    pub max_body_bytes: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            unknown_paths: UnknownPaths::NotFound,
            escalation: EscalationMode::Respond,
            escalation_timeout: Duration::from_secs(300),
            fail_mode: FailMode::Closed,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What a limit counts per (`limits[].per`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// Each API key.
    #[default]
    Key,
    /// Each agent.
    Agent,
    /// Each tenant.
    Tenant,
    /// Each model name.
    Model,
}

impl LimitScope {
    /// The name used in the file and in `x-ratelimit-*` reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Key => "key",
            LimitScope::Agent => "agent",
            LimitScope::Tenant => "tenant",
            LimitScope::Model => "model",
        }
    }
}

/// One request/token limit on the data plane (`limits:` in the file).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LimitConfig {
    /// What is counted separately.
    pub per: LimitScope,
    /// Only this key id, agent, tenant or model (glob for models); `None`: every one, each
    /// with its own budget.
    pub only: Option<String>,
    /// Requests per minute, if limited.
    pub requests_per_minute: Option<u64>,
    /// Tokens (prompt + `max_tokens` reserved, then reconciled with the provider's usage) per
    /// minute, if limited.
    pub tokens_per_minute: Option<u64>,
}

/// Where the limits' buckets live (`limits.backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitBackend {
    /// In this process: each replica enforces the limits on its own traffic.
    #[default]
    Local,
    /// In Redis, shared by every replica pointed at it, checked and reserved by one atomic
    /// script.
    Redis,
}

/// What a call meets when Redis cannot answer in time (`limits.fail_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitFailMode {
    /// Count against this process's own buckets until Redis answers again: the limits still
    /// hold per replica, so a Redis outage neither stops the agents nor lifts every limit.
    #[default]
    Local,
    /// Refuse the call (503): for budgets that must never be overspent across the fleet.
    Reject,
}

/// A `redis://` URL. It may hold a password, so `Debug` shows only the scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as written, password included: for opening the connection, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `redis://host:port/db`, without user or password.
    pub fn redacted(&self) -> String {
        let rest = self.0.strip_prefix("redis://").unwrap_or(&self.0);
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!("redis://{host}")
    }

    /// `redis://[user:password@]host[:port][/db]`; `Err` says what was expected. TLS
    /// (`rediss://`) is not built in.
    pub fn parse(s: &str) -> Result<RedisUrl, &'static str> {
        let s = s.trim();
        if s.starts_with("rediss://") {
            return Err("a redis:// URL (this build has no TLS for Redis: keep Redis on the cluster network)");
        }
        let host_ok = s.strip_prefix("redis://").is_some_and(|rest| {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            !host.is_empty() && !host.starts_with('/')
        });
        if host_ok && !s.contains(char::is_whitespace) {
            Ok(RedisUrl(s.to_owned()))
        } else {
            Err("a redis:// URL such as redis://127.0.0.1:6379")
        }
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({:?})", self.redacted())
    }
}

/// The data plane's request and token limits (`limits:` in the file). A list written directly
/// under `limits:` is the `rules` alone, with the other settings at their defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    /// The limits; none: unlimited.
    pub rules: Vec<LimitConfig>,
    /// Default [`LimitBackend::Local`].
    pub backend: LimitBackend,
    /// The Redis server of the `redis` backend. Default `redis://127.0.0.1:6379`.
    pub redis_url: RedisUrl,
    /// Prefix of every key Warden writes in Redis, so several fleets (or tests) can share one
    /// server. Default `warden`.
    pub redis_prefix: String,
    /// How long a limit check may wait for Redis before the fail mode applies. Default 250 ms.
    pub redis_timeout: Duration,
    /// Default [`LimitFailMode::Local`].
    pub fail_mode: LimitFailMode,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rules: Vec::new(),
            backend: LimitBackend::Local,
            redis_url: RedisUrl("redis://127.0.0.1:6379".to_owned()),
            redis_prefix: "warden".to_owned(),
            redis_timeout: Duration::from_millis(250),
            fail_mode: LimitFailMode::Local,
        }
    }
}

/// An agent known at start-up (`agents:` in the file): its default intent is registered once.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// The agent id, as keys are bound to it (`warden keys create --agent`) or as clients send
    /// it in `X-Warden-Agent`.
    pub name: String,
    /// The tenant it belongs to. Default `default`.
    pub tenant: String,
    /// What the agent is for; registered as its default intent for calls without
    /// `X-Warden-Intent`.
    pub intent: Option<String>,
}

/// A Hugging Face `tokenizer.json` for models OpenAI's encodings do not cover (`tokenizers:`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TokenizerConfig {
    /// Model names or globs.
    pub models: Vec<String>,
    /// The local `tokenizer.json`.
    pub file: PathBuf,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            name: String::new(),
            tenant: "default".to_owned(),
            intent: None,
        }
    }
}

/// Whether a glob such as `gpt-4o*` or `*-mini` matches `name` (`*` any run, `?` one char).
pub fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[u8], n: &[u8]) -> bool {
        match g.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(glob.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::{glob_match, RedisUrl};

    #[test]
    fn redis_urls_hide_their_password() {
        let url = RedisUrl::parse("redis://user:s3cret@redis.example:6380/2").unwrap();
        assert_eq!(url.redacted(), "redis://redis.example:6380/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.expose(), "redis://user:s3cret@redis.example:6380/2");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("gpt-4o*", "gpt-4o-mini"));
        assert!(glob_match("gpt-4o*", "gpt-4o"));
        assert!(!glob_match("gpt-4o*", "gpt-4"));
        assert!(glob_match("*-mini", "o3-mini"));
        assert!(glob_match("o?", "o3"));
        assert!(!glob_match("o?", "o"));
        assert!(glob_match("llama-3", "llama-3"));
    }
}
