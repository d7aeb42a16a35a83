//! The validated, compiled form of a pack: what evaluation walks.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::input::Input;

/// A verdict, in precedence order: `allow < warn < escalate < block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Go ahead.
    Allow,
    /// Go ahead, but flag it.
    Warn,
    /// Pause for a human on the Decision Desk (KLA's `require_approval`).
    #[serde(alias = "require_approval")]
    Escalate,
    /// Refuse.
    Block,
}

impl Outcome {
    /// Every outcome, weakest first.
    pub const ALL: [Outcome; 4] = [
        Outcome::Allow,
        Outcome::Warn,
        Outcome::Escalate,
        Outcome::Block,
    ];

    /// The name used in packs and in serialized evaluations.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Warn => "warn",
            Outcome::Escalate => "escalate",
            Outcome::Block => "block",
        }
    }

    /// Parses `allow`, `warn`, `escalate` (or `require_approval`), `block`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allow" => Some(Outcome::Allow),
            "warn" => Some(Outcome::Warn),
            "escalate" | "require_approval" => Some(Outcome::Escalate),
            "block" => Some(Outcome::Block),
            _ => None,
        }
    }

    /// True only for [`Outcome::Escalate`]: the caller must wait for a Decision Desk resolution.
    #[must_use]
    pub fn requires_approval(self) -> bool {
        self == Outcome::Escalate
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A glob over identifiers: `*` matches any run of characters (including none), `?` exactly one;
/// everything else matches itself. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    Any,
    Exact(String),
    Prefix(String),
    Pattern(Vec<char>),
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        if pattern == "*" {
            Glob::Any
        } else if !pattern.contains(['*', '?']) {
            Glob::Exact(pattern.to_owned())
        } else if let Some(prefix) = pattern
            .strip_suffix('*')
            .filter(|p| !p.contains(['*', '?']))
        {
            Glob::Prefix(prefix.to_owned())
        } else {
            Glob::Pattern(pattern.chars().collect())
        }
    }

    pub fn matches(&self, s: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(e) => e == s,
            Glob::Prefix(p) => s.starts_with(p.as_str()),
            Glob::Pattern(p) => wildcard(p, &s.chars().collect::<Vec<_>>()),
        }
    }
}

/// Iterative wildcard matching with single-star backtracking: linear in practice.
fn wildcard(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The selectors of a rule (or of a whole pack): each present selector must match the input.
/// Within one selector, any pattern matching is enough. An input field that is absent matches no
/// pattern, not even `*`: `tool: ["*"]` means "any call that names a tool".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selectors {
    pub decision_type: Option<Vec<Glob>>,
    pub action: Option<Vec<Glob>>,
    pub agent: Option<Vec<Glob>>,
    pub tool: Option<Vec<Glob>>,
}

impl Selectors {
    pub fn matches(&self, input: &Input) -> bool {
        fn one(globs: &Option<Vec<Glob>>, value: Option<&str>) -> bool {
            match globs {
                None => true,
                Some(globs) => value.is_some_and(|v| globs.iter().any(|g| g.matches(v))),
            }
        }
        one(&self.decision_type, Some(&input.decision_type))
            && one(&self.action, input.action.as_deref())
            && one(&self.agent, input.agent_id.as_deref())
            && one(&self.tool, input.tool.as_deref())
    }
}

/// One rule of a pack.
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: &'static str,
    pub selectors: Selectors,
    /// The rule's selectors numbered among the distinct ones of its pack (0, 1, ... in order of
    /// first use): rules sharing their `match` share the number, so evaluation matches each
    /// distinct set once.
    pub selector_set: usize,
    pub when: Option<Condition>,
    pub outcome: Outcome,
    pub reason: Option<&'static str>,
}

/// A condition tree.
#[derive(Debug)]
pub(crate) enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Leaf(Box<Leaf>),
    Expr(Box<ExprCond>),
}

/// A `field` / `op` / `value` condition.
#[derive(Debug)]
pub(crate) struct Leaf {
    pub id: &'static str,
    pub label: Option<&'static str>,
    pub field: &'static str,
    pub path: Vec<String>,
    /// The operator as written (`>`, `between`, ...), for the evaluation record.
    pub op: &'static str,
    /// The pack's value as written (JSON), for the evaluation record.
    pub threshold: &'static serde_json::Value,
    pub check: Check,
}

/// What a leaf checks, compiled.
#[derive(Debug)]
pub(crate) enum Check {
    /// `>` / `>=` (upper == true: fires when the value rises past `t`) or `<` / `<=`.
    Cmp {
        t: f64,
        inclusive: bool,
        upper: bool,
        /// Distance from the threshold to the zero point (> 0); see the crate docs.
        scale: f64,
    },
    Between {
        lo: f64,
        hi: f64,
    },
    Eq(Scalar),
    Ne(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Matches(regex::Regex),
    Exists,
    Absent,
}

/// A scalar a pack compares against.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Scalar {
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "string",
            Scalar::Num(_) => "number",
            Scalar::Bool(_) => "boolean",
        }
    }
}

/// A CEL condition, compiled at load.
pub(crate) struct ExprCond {
    pub id: &'static str,
    pub label: Option<&'static str>,
    pub source: String,
    /// The source as a JSON string, for the evaluation record.
    pub threshold: &'static serde_json::Value,
    /// The variables of [`crate::EXPR_VARIABLES`] it uses: only those are bound.
    pub vars: Vec<CelVar>,
    pub program: cel::Program,
    /// The direct form of the program, when it has one: tried first, see [`crate::fast`].
    pub fast: Option<crate::fast::Fast>,
}

/// A variable an expression uses, and how much of it it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CelVar {
    pub name: &'static str,
    /// The top-level keys read (`context.amount` reads `amount`) when the expression only ever
    /// selects fields of the variable, sorted: binding just those keys gives the same results as
    /// binding the whole payload, for a fraction of the cost. `None`: bind the whole value.
    pub keys: Option<Vec<&'static str>>,
}

impl fmt::Debug for ExprCond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprCond")
            .field("id", &self.id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*", "anything", true),
            ("*", "", true),
            ("refund", "refund", true),
            ("refund", "refunds", false),
            ("llm.*", "llm.request", true),
            ("llm.*", "mcp.tool_call", false),
            ("*.tool_call", "mcp.tool_call", true),
            ("*.tool_call", "mcp.tool_calls", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("db_*_write", "db_orders_write", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(Glob::new(p).matches(s), want, "{p} vs {s}");
        }
    }

    #[test]
    fn outcome_order_and_names() {
        assert!(Outcome::Allow < Outcome::Warn);
        assert!(Outcome::Warn < Outcome::Escalate);
        assert!(Outcome::Escalate < Outcome::Block);
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("require_approval"), Some(Outcome::Escalate));
        assert!(Outcome::Escalate.requires_approval());
    }
}
