//! The MCP endpoint's settings (`mcp:`): which `Host` values `/mcp` accepts, what an escalated
//! tool call does, and the upstream MCP servers the proxy federates (`mcp.upstreams`, read by
//! `items.rs` like the other lists).

use std::time::Duration;

/// How Warden reaches one upstream MCP server: exactly one of `command` or `url`. `Debug`
/// shows the names of `env` and `headers` but not their values, which are often credentials.
#[derive(Clone, PartialEq, Default)]
pub struct McpUpstreamConfig {
    /// Prefix of its tools behind `/mcp` (`github` -> `github__create_issue`).
    pub name: String,
    /// A command Warden starts, speaking MCP on stdio.
    pub command: Option<String>,
    /// The command's arguments.
    pub args: Vec<String>,
    /// Environment variables for the command, in addition to Warden's own.
    pub env: Vec<(String, String)>,
    /// A streamable-HTTP MCP endpoint.
    pub url: Option<String>,
    /// Headers sent with every request to `url` (credentials: prefer a `${VAR}` reference,
    /// expanded from Warden's environment at start-up).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for McpUpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpUpstreamConfig")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &names_only(&self.env))
            .field("url", &self.url)
            .field("headers", &names_only(&self.headers))
            .finish()
    }
}

/// `{"NAME": "<redacted>", ...}` for `Debug`.
fn names_only(pairs: &[(String, String)]) -> std::collections::BTreeMap<&str, &'static str> {
    pairs
        .iter()
        .map(|(k, _)| (k.as_str(), "<redacted>"))
        .collect()
}

/// What an `escalate` verdict does to a tool call (`mcp.escalation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum McpEscalation {
    /// Hold the call, with progress notifications, until its Decision Desk thread is resolved
    /// or `escalation_timeout` passes.
    #[default]
    Hold,
    /// Refuse the call at once with the thread id (`escalation_pending`).
    Fail,
}

/// The MCP endpoint and proxy (`mcp:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct McpConfig {
    /// `Host` header values `/mcp` accepts (DNS-rebinding protection); names match any port.
    /// Default loopback only. An empty list accepts any host.
    pub allowed_hosts: Vec<String>,
    /// Default [`McpEscalation::Hold`].
    pub escalation: McpEscalation,
    /// How long a held tool call waits for the Decision Desk. Default 5 minutes.
    pub escalation_timeout: Duration,
    /// How long an upstream may take to connect or to answer one call. Default 60 seconds.
    pub call_timeout: Duration,
    /// What a proxied call meets when its policy check or ledger record cannot be made. Unset
    /// (the default): as `proxy.fail_mode`, so one setting governs both data planes.
    pub fail_mode: Option<crate::FailMode>,
    /// Upstream MCP servers federated behind `/mcp`.
    pub upstreams: Vec<McpUpstreamConfig>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            escalation: McpEscalation::Hold,
            escalation_timeout: Duration::from_secs(300),
            call_timeout: Duration::from_secs(60),
            fail_mode: None,
            upstreams: Vec::new(),
        }
    }
}
