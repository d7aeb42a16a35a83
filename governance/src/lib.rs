//! Warden's governance domain.
//!
//! Business logic lives here once; the REST routes and the MCP tools are thin adapters over it
//! (see ARCHITECTURE.md). This first part holds the [`Store`] and what every request needs
//! before anything else: tenants, API keys and their scopes. Agents, intents, decisions and
//! escalations build on it.

mod agents;
mod calls;
mod db;
mod decisions;
mod escalations;
mod events;
pub mod gloxi;
mod idempotency;
mod key_cache;
mod keys;
mod reports;
mod scope;
mod store;
mod webhooks;

pub use agents::{Agent, AgentRegistered, Evaluate, Evaluated, Lineage, RegisterAgent};
pub use decisions::{
    Decisions, Forensics, GovError, Inscribe, Inscribed, IntentCreated, MicCondition, Proposal,
    Propose, RegisterIntent,
};
pub use escalations::{Escalation, Resolve, Resolved};
pub use events::{
    Event, EventPage, EventQuery, Events, NewEvent, PublishEvent, Published, PUBLISHABLE_TYPES,
    WARDEN_TYPES,
};
pub use idempotency::{Begin, MAX_KEY_LEN as MAX_IDEMPOTENCY_KEY_LEN};
pub use key_cache::KeyCache;
pub use keys::{AuthError, CreatedKey, KeyInfo, Principal, KEY_PREFIX};
pub use reports::{efficiency_of, ClientSummary, Efficiency, RecentDecision};
pub use scope::{parse_scopes, Scope, ScopeError};
pub use store::{Store, StoreError};
pub use webhooks::{
    DeadLetter, Dispatcher, DispatcherOptions, QueueDepths, RegisterWebhook, Replay, Replayed,
    SecretError, TargetError, TargetPolicy, Webhook, WebhookSecrets, Webhooks,
};

/// Now as RFC 3339 UTC with millisecond precision, the form every stored timestamp takes
/// (the ledger's, so that records and rows compare as strings).
pub(crate) fn now() -> String {
    let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    warden_ledger::format_timestamp(ms as i64)
}
