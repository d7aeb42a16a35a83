//! Failures as an MCP client sees them.
//!
//! A refused governance operation is a *tool result* with `isError: true` whose text is Warden's
//! REST error body, `{"code","message","field"?}`, with the same machine-readable codes as REST
//! (`warden-proxy`'s `ApiError`): the model must read that it was refused and why, not a
//! transport fault. Protocol faults (unknown tools, unparsable requests) stay JSON-RPC errors.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;
use warden_governance::gloxi::GloxiError;
use warden_governance::{AuthError, GovError};

/// A tool call that failed, in the REST error vocabulary.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolError {
    /// `invalid_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `unprocessable`, `internal_error`; and for proxied calls `blocked`, `rejected`,
    /// `escalation_pending`, `upstream_error`, `upstream_timeout`, `policy_unavailable`,
    /// `ledger_unavailable` (a check that could not run, `fail_mode: closed`), `cancelled` (by
    /// the client; recorded in the ledger, never seen by the client).
    pub code: &'static str,
    pub message: String,
    /// The argument at fault, when there is one (a JSON path such as `payload.amount`).
    pub field: Option<String>,
    /// Policy or guardian reason codes, for governed calls that were refused.
    pub reason_codes: Vec<String>,
}

impl ToolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ToolError {
            code,
            message: message.into(),
            field: None,
            reason_codes: Vec::new(),
        }
    }

    pub fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ToolError {
            field: Some(field.into()),
            ..ToolError::new(code, message)
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reason_codes = reasons;
        self
    }

    /// Logs the cause and hides it: store and ledger failures may name paths or state.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error in an MCP tool");
        ToolError::new(
            "internal_error",
            "an internal error occurred; retry with backoff",
        )
    }

    /// The REST error body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        if !self.reason_codes.is_empty() {
            body["reason_codes"] = json!(self.reason_codes);
        }
        body
    }

    /// The tool result an MCP client receives: `isError`, the error body as text (structured
    /// content is left out so clients that check it against the tool's output schema do not
    /// reject the error itself).
    pub fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.body().to_string())])
    }
}

/// The one mapping from domain errors, without a wildcard: a new variant does not compile until
/// someone picks its code (the same codes as the REST mapping).
impl From<GovError> for ToolError {
    fn from(e: GovError) -> Self {
        let message = e.to_string();
        match e {
            GovError::Forbidden(_) => ToolError::new("forbidden", message),
            GovError::NotFound { .. } => ToolError::new("not_found", message),
            GovError::Invalid { field, .. } => ToolError::field("invalid_request", field, message),
            GovError::Conflict { field, .. } => ToolError {
                field: field.map(str::to_owned),
                ..ToolError::new("conflict", message)
            },
            GovError::Policy(_) => ToolError::new("unprocessable", message),
            GovError::Store(e) => ToolError::internal(e),
            GovError::Ledger(e) => ToolError::internal(e),
        }
    }
}

/// Gloxi's refusals, with the codes of REST's mapping (`warden-proxy`).
impl From<GloxiError> for ToolError {
    fn from(e: GloxiError) -> Self {
        let message = e.to_string();
        match e {
            GloxiError::Forbidden(_) => ToolError::new("forbidden", message),
            GloxiError::Invalid { field, .. } => {
                ToolError::field("invalid_request", field, message)
            }
            GloxiError::Unknown { field, .. } => ToolError::field("unprocessable", field, message),
            GloxiError::NotFound(_) => ToolError::field("not_found", "conversation_id", message),
            GloxiError::Blocked { reasons, .. } => {
                ToolError::new("blocked", message).with_reasons(reasons)
            }
            GloxiError::Store(e) => ToolError::internal(e),
            GloxiError::Task(e) => ToolError::internal(e),
        }
    }
}

impl From<AuthError> for ToolError {
    fn from(e: AuthError) -> Self {
        match e {
            e @ (AuthError::Store(_) | AuthError::Interrupted) => ToolError::internal(e),
            other => ToolError::new("unauthorized", other.to_string()),
        }
    }
}

/// Arguments that do not fit the request type: serde's message, prefixed by the path of the
/// argument at fault (`temperature: invalid type: string "hot", expected f64`).
impl From<serde_path_to_error::Error<serde_json::Error>> for ToolError {
    fn from(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            ToolError::new("invalid_request", inner)
        } else {
            ToolError::field("invalid_request", path.clone(), format!("{path}: {inner}"))
        }
    }
}

/// Errors of this crate's entry points (serving and bridging).
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP transport: {0}")]
    Transport(String),
    #[error("MCP bridge to {url}: {message}")]
    Bridge { url: String, message: String },
    #[error("MCP upstream {name}: {message}")]
    Upstream { name: String, message: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
