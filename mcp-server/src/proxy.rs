//! The governing MCP proxy (federation of upstream MCP servers). Filled in below.

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use warden_governance::{Decisions, Principal};

/// The upstream MCP servers behind `/mcp`.
pub struct Federation {}

impl Federation {
    pub async fn visible_tools(&self, _d: &Decisions, _p: &Principal, _agent: &str) -> Vec<Tool> {
        Vec::new()
    }

    pub fn has_tool(&self, _name: &str) -> bool {
        false
    }

    pub async fn call(
        &self,
        _d: &Decisions,
        _p: &Principal,
        _agent: &str,
        _request: CallToolRequestParams,
        _ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        CallToolResult::error(vec![])
    }
}
