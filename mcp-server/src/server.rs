//! The MCP server handler: the governance tools, the federated (proxied) tools, and the
//! resources, for one caller at a time.
//!
//! Over HTTP the caller is the [`Principal`] the `/mcp` route's authentication put into the
//! request; over stdio it is fixed when the process starts. Each request looks its caller up
//! again, so a session never outlives the key it was opened with.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tracing::Instrument;
use warden_governance::gloxi::Gloxi;
use warden_governance::{Decisions, Principal, Scope};
use warden_ledger::{keys, Ledger};
use warden_policy::LivePolicySet;

use crate::error::ToolError;
use crate::proxy::Federation;
use crate::tools::Op;

/// What the handler reads and calls: the domain services, shared with the REST routes so that an
/// escalation resolved through REST wakes a tool call held here.
pub struct Core {
    pub decisions: Arc<Decisions>,
    /// Webhook registrations and the dead-letter queue (deliveries are sent by `serve`).
    pub webhooks: Arc<warden_governance::Webhooks>,
    pub ledger: Arc<Ledger>,
    pub policies: Arc<LivePolicySet>,
    /// The upstream MCP servers behind `/mcp`, if any are configured.
    pub federation: Option<Arc<Federation>>,
    /// Gloxi, shared with `POST /v1/chat`.
    pub gloxi: Arc<Gloxi>,
}

/// The MCP server. Cheap to clone: one per HTTP session, sharing [`Core`].
#[derive(Clone)]
pub struct WardenMcp {
    core: Arc<Core>,
    /// The caller of a stdio server; `None` over HTTP, where each request carries its own.
    local: Option<Principal>,
}

const PACKS_URI: &str = "warden://policy/packs";
const CHECKPOINT_URI: &str = "warden://ledger/checkpoint";
const PUBLIC_KEY_URI: &str = "warden://ledger/public-key";

impl WardenMcp {
    /// A server whose callers authenticate per request (HTTP).
    pub fn new(core: Arc<Core>) -> Self {
        WardenMcp { core, local: None }
    }

    /// A server for one fixed caller (stdio).
    pub fn for_principal(core: Arc<Core>, principal: Principal) -> Self {
        WardenMcp {
            core,
            local: Some(principal),
        }
    }

    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
        if let Some(p) = &self.local {
            return Ok(p.clone());
        }
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            // The route's authentication runs first; reaching here without it is a wiring bug.
            .ok_or_else(|| ErrorData::internal_error("the request was not authenticated", None))
    }

    /// The agent a governed call is attributed to: the key's agent if it is bound to one, else
    /// the `X-Warden-Agent` header, else the MCP client's name from `initialize`, else the key.
    fn agent_id(&self, ctx: &RequestContext<RoleServer>, p: &Principal) -> String {
        if let Some(a) = &p.agent {
            return a.clone();
        }
        let header = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("x-warden-agent"))
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned);
        header
            .or_else(|| {
                ctx.peer
                    .peer_info()
                    .map(|i| format!("mcp:{}", i.client_info.name))
            })
            .unwrap_or_else(|| format!("key:{}", p.key_id))
    }

    fn resource_json(&self, p: &Principal, uri: &str) -> Result<Value, ErrorData> {
        match uri {
            PACKS_URI => {
                if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
                    return Err(ErrorData::invalid_request(
                        "forbidden: this key lacks the read scope",
                        Some(json!({"code": "forbidden"})),
                    ));
                }
                let set = self.core.policies.current();
                let packs: Vec<Value> = set
                    .packs()
                    .iter()
                    .map(|pk| {
                        json!({
                            "id": pk.id(), "version": pk.version(), "description": pk.description(),
                            "hash": pk.hash(), "default": pk.default_outcome().as_str(),
                            "rules": pk.rule_ids().collect::<Vec<_>>(), "signed_by": pk.signed_by(),
                        })
                    })
                    .collect();
                Ok(json!({"policy_hash": set.hash(), "packs": packs}))
            }
            CHECKPOINT_URI => match self.core.ledger.reader().latest_checkpoint() {
                Ok(Some(cp)) => Ok(serde_json::to_value(cp).expect("a checkpoint serializes")),
                Ok(None) => Err(ErrorData::resource_not_found(
                    "not_found: the ledger is empty",
                    Some(json!({"code": "not_found"})),
                )),
                Err(e) => Err(ErrorData::internal_error(
                    ToolError::internal(e).message,
                    None,
                )),
            },
            PUBLIC_KEY_URI => {
                let key = self.core.ledger.verifying_key();
                Ok(json!({
                    "key_id": keys::key_id(key),
                    "algorithm": "Ed25519",
                    "public_key_pem": keys::public_key_pem(key),
                }))
            }
            other => Err(ErrorData::resource_not_found(
                format!("no resource {other}"),
                Some(json!({"code": "not_found"})),
            )),
        }
    }
}

impl ServerHandler for WardenMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("warden", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Warden governs what agents do. Before a consequential action: register_intent, then \
             propose_decision and follow its verdict (BLOCK: do not act; ESCALATE: wait for a \
             human via get_escalation), then inscribe_decision once you act. Tools named \
             upstream__tool are other MCP servers' tools, each call checked by policy and \
             guardians and recorded in the ledger.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let p = self.principal(&ctx)?;
        let mut tools: Vec<_> = Op::ALL.into_iter().map(Op::tool).collect();
        tools.push(crate::gloxi::tool());
        if let Some(f) = &self.core.federation {
            let agent = self.agent_id(&ctx, &p);
            let (federated, pending) = f.visible_tools(&self.core.decisions, &p, &agent).await;
            tools.extend(federated);
            crate::proxy::notify_when_connected(pending, ctx.peer.clone());
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let p = self.principal(&ctx)?;
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        if let Some(op) = Op::from_name(&request.name) {
            let span = tracing::info_span!("mcp.tool", tool = op.name(), tenant = %p.tenant, key = %p.key_id);
            let result = match op.call(self.core.clone(), p, args).instrument(span).await {
                Ok(r) => r,
                Err(e) => e.into_result(),
            };
            return Ok(result.into());
        }
        if request.name == crate::gloxi::NAME {
            let span = tracing::info_span!("mcp.tool", tool = crate::gloxi::NAME, tenant = %p.tenant, key = %p.key_id);
            let result = match crate::gloxi::call(&self.core.gloxi, p, args, &ctx)
                .instrument(span)
                .await
            {
                Ok(r) => r,
                Err(e) => e.into_result(),
            };
            return Ok(result.into());
        }
        if let Some(f) = &self.core.federation {
            if f.has_tool(&request.name) {
                let agent = self.agent_id(&ctx, &p);
                let result = f
                    .call(&self.core.decisions, &p, &agent, request, &ctx)
                    .await;
                return Ok(result.into());
            }
        }
        Err(ErrorData::invalid_params(
            format!("unknown tool: {}", request.name),
            Some(json!({"code": "not_found"})),
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.principal(&ctx)?;
        let json = |uri: &str, name: &str, description: &str| {
            Resource::new(uri, name)
                .with_description(description)
                .with_mime_type("application/json")
        };
        Ok(ListResourcesResult::with_all_items(vec![
            json(
                PACKS_URI,
                "policy-packs",
                "The active policy packs: id, version, content hash, rules, and the set's hash.",
            ),
            json(
                CHECKPOINT_URI,
                "ledger-checkpoint",
                "The latest signed ledger checkpoint (tree size, root hash, signature).",
            ),
            json(
                PUBLIC_KEY_URI,
                "ledger-public-key",
                "The Ed25519 public key that signs checkpoints, to verify receipts offline.",
            ),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let p = self.principal(&ctx)?;
        let value = self.resource_json(&p, &request.uri)?;
        Ok(
            ReadResourceResult::new(vec![ResourceContents::TextResourceContents {
                uri: request.uri,
                mime_type: Some("application/json".into()),
                text: value.to_string(),
                meta: None,
            }])
            .into(),
        )
    }
}
