//! What is evaluated.

use serde::{Deserialize, Serialize};

/// One proposed action, as the policy engine sees it.
///
/// Selectors look at `decision_type`, `action`, `agent_id` and `tool`; conditions look into
/// `context` (also accepted as `payload` when deserializing, as Krapheno names it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// What kind of decision: `budget_change`, `llm.request`, `mcp.tool_call`, `decision.evaluate`...
    pub decision_type: String,
    /// The action the agent wants to take (`execute_refund`), if any.
    #[serde(default)]
    pub action: Option<String>,
    /// The agent asking.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The tool being called, if any.
    #[serde(default)]
    pub tool: Option<String>,
    /// The decision's parameters; `field:` paths in conditions are resolved in here.
    #[serde(default, alias = "payload")]
    pub context: serde_json::Value,
}

impl Input {
    /// An input of `decision_type` with an empty context.
    #[must_use]
    pub fn new(decision_type: impl Into<String>) -> Self {
        Input {
            decision_type: decision_type.into(),
            action: None,
            agent_id: None,
            tool: None,
            context: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets the action.
    #[must_use]
    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Sets the agent id.
    #[must_use]
    pub fn with_agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Sets the tool.
    #[must_use]
    pub fn with_tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets the context (payload).
    #[must_use]
    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        self.context = context;
        self
    }

    /// The value at a dotted path inside the context (`a.b.0.c`: numeric segments index arrays).
    pub(crate) fn lookup(&self, path: &[String]) -> Option<&serde_json::Value> {
        let mut at = &self.context;
        for seg in path {
            at = match at {
                serde_json::Value::Object(map) => map.get(seg)?,
                serde_json::Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }
}
