//! # warden-mcp
//!
//! Warden over the Model Context Protocol, with the official Rust SDK (`rmcp`):
//!
//! - **the governance API as MCP tools** ([`tools`]): one tool per operation of
//!   `warden-governance`, taking the same request types as REST (their JSON Schemas are the REST
//!   API's OpenAPI schemas, converted in [`schema`], so the two cannot drift) and answering with
//!   the same bodies as `structuredContent`; refusals are `isError` results carrying the REST
//!   error codes ([`error`]);
//! - **resources**: the active policy packs, the latest signed checkpoint and the ledger's
//!   public key, so a client can verify receipts;
//! - **transports**: stdio ([`serve_stdio`], `warden mcp`), streamable HTTP at `/mcp`
//!   ([`http::router`], authenticated by an API key with the `mcp` scope), and a stdio-to-HTTP
//!   relay ([`bridge`], `warden mcp --connect`);
//! - **the governing proxy** ([`proxy`]): upstream MCP servers federated behind `/mcp`, every
//!   call checked by policy (`mcp.tool_call`) and the guardians, held for a human when policy
//!   escalates, and inscribed in the ledger.
//!
//! Business logic stays in `warden-governance`; this crate parses, calls and shapes.

pub mod bridge;
pub mod error;
pub mod gloxi;
pub mod http;
pub mod proxy;
pub mod schema;
pub mod server;
pub mod stdio;
pub mod tools;

pub use bridge::bridge;
pub use error::{McpError, ToolError};
pub use http::HttpOptions;
pub use server::{Core, WardenMcp};
pub use stdio::serve_stdio;
