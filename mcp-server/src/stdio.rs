//! `warden mcp`: the MCP server on stdin/stdout, for desktop clients that start their servers
//! as child processes.

use std::sync::Arc;

use rmcp::ServiceExt;
use warden_governance::Principal;

use crate::error::McpError;
use crate::server::{Core, WardenMcp};

/// Serves `principal` on stdio until the client closes stdin.
pub async fn serve_stdio(core: Arc<Core>, principal: Principal) -> Result<(), McpError> {
    let running = WardenMcp::for_principal(core, principal)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    Ok(())
}
