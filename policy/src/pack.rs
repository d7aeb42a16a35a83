//! Loading a pack: YAML -> positioned tree -> validated, compiled [`Pack`], every problem reported.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::{PackError, Problems as ProblemList};
use crate::fast::Fast;
use crate::intern::{intern, intern_value};
use crate::model::{
    CelVar, Check, Condition, ExprCond, Glob, Leaf, Outcome, Rule, Scalar, Selectors,
};
use crate::yaml::{self, join, Fields, Kind, Node, Problems};

/// A loaded, validated policy pack. Immutable; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Pack {
    pub(crate) id: &'static str,
    pub(crate) version: String,
    pub(crate) description: Option<String>,
    pub(crate) default: Outcome,
    pub(crate) default_reason: Option<String>,
    pub(crate) scope: Selectors,
    pub(crate) rules: Vec<Rule>,
    pub(crate) canonical: String,
    pub(crate) hash: String,
    pub(crate) source: String,
    pub(crate) signed_by: Option<String>,
    /// Leaf conditions in all rules: the capacity of the evaluation record.
    pub(crate) leaf_count: usize,
}

const TOP_KEYS: &[&str] = &[
    "pack",
    "version",
    "description",
    "default",
    "default_reason",
    "match",
    "rules",
];
const RULE_KEYS: &[&str] = &["id", "description", "match", "when", "outcome", "reason"];
const MATCH_KEYS: &[&str] = &["decision_type", "action", "agent", "tool"];
const LEAF_KEYS: &[&str] = &["id", "label", "field", "op", "value", "zero"];
const EXPR_KEYS: &[&str] = &["id", "label", "expr"];
/// Every operator, as written in packs.
pub const OPERATORS: &[&str] = &[
    "<", "<=", ">", ">=", "between", "==", "!=", "in", "not_in", "matches", "exists", "absent",
];
/// The variables a CEL `expr` may use.
pub const EXPR_VARIABLES: &[&str] = &[
    "context",
    "payload",
    "decision_type",
    "action",
    "agent_id",
    "tool",
];

impl Pack {
    /// Parses and validates a pack. `source_name` (usually the file path) prefixes every problem.
    ///
    /// # Errors
    /// [`PackError::Invalid`] listing every problem found (malformed YAML stops at the first).
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Pack, PackError> {
        let mut problems = Problems::new(source_name);
        let Some(root) = yaml::parse(text, &mut problems) else {
            if problems.list.is_empty() {
                problems.at_pos(1, 1, "", "empty document: expected a pack");
            }
            return Err(PackError::Invalid(ProblemList(problems.list)));
        };
        let pack = build(&root, source_name, &mut problems);
        match pack {
            Some(pack) if problems.list.is_empty() => Ok(pack),
            _ => Err(PackError::Invalid(ProblemList(problems.list))),
        }
    }

    /// The pack's id (`pack:`).
    #[must_use]
    pub fn id(&self) -> &str {
        self.id
    }

    /// The pack's version (`version:`).
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The description, if any.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The outcome when no rule fires.
    #[must_use]
    pub fn default_outcome(&self) -> Outcome {
        self.default
    }

    /// The rule ids, in pack order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id)
    }

    /// `sha256:<64 hex>`: SHA-256 of [`Pack::canonical_json`].
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The canonical form that is hashed and signed: the YAML document as JSON, in RFC 8785 (JCS)
    /// canonical form (keys sorted, no whitespace, numbers in their shortest form). Comments,
    /// indentation, key order, quoting and flow/block style do not change it; any value does.
    #[must_use]
    pub fn canonical_json(&self) -> &str {
        &self.canonical
    }

    /// The name the pack was loaded under.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The key id that signed this pack, if it was loaded with a verified signature.
    #[must_use]
    pub fn signed_by(&self) -> Option<&str> {
        self.signed_by.as_deref()
    }
}

impl AsRef<Pack> for Pack {
    fn as_ref(&self) -> &Pack {
        self
    }
}

/// The embedded pack Warden starts with (`policy/packs/default.yaml`).
pub const DEFAULT_PACK_YAML: &str = include_str!("../packs/default.yaml");

/// Parses the embedded default pack.
///
/// # Panics
/// Never in a released build: a test loads the embedded text.
#[must_use]
pub fn default_pack() -> Pack {
    Pack::from_yaml(DEFAULT_PACK_YAML, "<default>").expect("the embedded default pack is valid")
}

fn build(root: &Node, source: &str, p: &mut Problems) -> Option<Pack> {
    let f = p.fields(root, "", TOP_KEYS)?;
    let id = p.req_str(&f, "pack", "");
    if let (Some(id), Some(node)) = (&id, f.get("pack")) {
        if !valid_id(id) {
            p.at(
                node,
                "pack",
                format!("invalid pack id {id:?}: use letters, digits, `.`, `_` and `-`"),
            );
        }
    }
    let version = p.req_str(&f, "version", "");
    if let (Some(v), Some(node)) = (&version, f.get("version")) {
        if !valid_version(v) {
            p.at(
                node,
                "version",
                format!("invalid version {v:?}: expected MAJOR.MINOR.PATCH, e.g. 1.0.0"),
            );
        }
    }
    let description = p.opt_str(&f, "description", "");
    let default = match f.get("default") {
        None => Some(Outcome::Allow),
        Some(node) => outcome(node, "default", p),
    };
    let default_reason = f
        .get("default_reason")
        .and_then(|n| reason(n, "default_reason", p));
    if let (Some(d), None) = (default, &default_reason) {
        if d > Outcome::Allow {
            p.at(
                f.node,
                "",
                format!("`default: {d}` needs a `default_reason` (the reason code returned when no rule fires)"),
            );
        }
    }
    let scope = f
        .get("match")
        .map(|n| selectors(n, "match", p))
        .unwrap_or_default();
    let mut rules = Vec::new();
    if let Some(node) = f.get("rules") {
        match &node.kind {
            Kind::Seq(items) => {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("rules[{i}]");
                    if let Some(rule) = rule(item, &path, p) {
                        if let Some(first) = seen.get(rule.id) {
                            p.at(
                                item,
                                &format!("{path}.id"),
                                format!(
                                    "duplicate rule id {:?} (first used by rules[{first}])",
                                    rule.id
                                ),
                            );
                        } else {
                            seen.insert(rule.id.to_string(), i);
                        }
                        rules.push(rule);
                    }
                }
            }
            Kind::Null => {}
            _ => p.at(
                node,
                "rules",
                format!("expected a list of rules, found {}", node.describe()),
            ),
        }
    }

    let json = match root.to_json() {
        Ok(json) => json,
        Err(bad) => {
            p.at(bad, "", "a number JSON cannot hold (NaN or infinity)");
            return None;
        }
    };
    let canonical = serde_jcs::to_string(&json).ok()?;
    let hash = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    number_selector_sets(&mut rules);
    let leaf_count = rules
        .iter()
        .map(|r: &Rule| r.when.as_ref().map_or(0, leaves))
        .sum();
    Some(Pack {
        id: intern(&id?),
        version: version?,
        description,
        default: default?,
        default_reason,
        scope,
        rules,
        canonical,
        hash,
        source: source.to_owned(),
        signed_by: None,
        leaf_count,
    })
}

fn leaves(c: &Condition) -> usize {
    match c {
        Condition::All(cs) | Condition::Any(cs) => cs.iter().map(leaves).sum(),
        Condition::Not(inner) => leaves(inner),
        Condition::Leaf(_) | Condition::Expr(_) => 1,
    }
}

fn valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_version(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && (core.len() == s.len() || s.len() > core.len() + 1)
}

fn outcome(node: &Node, path: &str, p: &mut Problems) -> Option<Outcome> {
    let s = p.string(node, path)?;
    let o = Outcome::parse(&s);
    if o.is_none() {
        p.at(
            node,
            path,
            format!("unknown outcome {s:?}, expected one of `allow`, `warn`, `escalate` (or `require_approval`), `block`"),
        );
    }
    o
}

fn reason(node: &Node, path: &str, p: &mut Problems) -> Option<String> {
    let s = p.string(node, path)?;
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        p.at(
            node,
            path,
            format!("invalid reason code {s:?}: use UPPER_SNAKE_CASE, e.g. AMOUNT_OVER_THRESHOLD"),
        );
        return None;
    }
    Some(s)
}

/// Sets each rule's `selector_set`: equal selectors, equal numbers, counted from 0 in rule order.
fn number_selector_sets(rules: &mut [Rule]) {
    let mut distinct = 0;
    for i in 0..rules.len() {
        let (before, rest) = rules.split_at_mut(i);
        let rule = &mut rest[0];
        rule.selector_set = match before.iter().find(|r| r.selectors == rule.selectors) {
            Some(same) => same.selector_set,
            None => {
                distinct += 1;
                distinct - 1
            }
        };
    }
}

fn selectors(node: &Node, path: &str, p: &mut Problems) -> Selectors {
    let mut sel = Selectors::default();
    let Some(f) = p.fields(node, path, MATCH_KEYS) else {
        return sel;
    };
    for key in MATCH_KEYS {
        let Some(v) = f.get(key) else { continue };
        let kpath = join(path, key);
        let patterns: Vec<Glob> = match &v.kind {
            Kind::Str(s) => vec![Glob::new(s)],
            Kind::Seq(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| p.string(item, &format!("{kpath}[{i}]")))
                .map(|s| Glob::new(&s))
                .collect(),
            _ => {
                p.at(
                    v,
                    &kpath,
                    format!(
                        "expected a pattern or a non-empty list of patterns, found {}",
                        v.describe()
                    ),
                );
                continue;
            }
        };
        let slot = match *key {
            "decision_type" => &mut sel.decision_type,
            "action" => &mut sel.action,
            "agent" => &mut sel.agent,
            _ => &mut sel.tool,
        };
        *slot = Some(patterns);
    }
    sel
}

fn rule(node: &Node, path: &str, p: &mut Problems) -> Option<Rule> {
    let f = p.fields(node, path, RULE_KEYS)?;
    let id = p.req_str(&f, "id", path);
    if let (Some(id), Some(n)) = (&id, f.get("id")) {
        if !valid_id(id) {
            p.at(
                n,
                &join(path, "id"),
                format!("invalid rule id {id:?}: use letters, digits, `.`, `_` and `-`"),
            );
        }
    }
    p.opt_str(&f, "description", path);
    let selectors = f
        .get("match")
        .map(|n| selectors(n, &join(path, "match"), p))
        .unwrap_or_default();
    let outcome = match f.get("outcome") {
        None => {
            p.at(node, path, "missing required key \"outcome\"");
            None
        }
        Some(n) => outcome(n, &join(path, "outcome"), p),
    };
    let reason = f
        .get("reason")
        .and_then(|n| reason(n, &join(path, "reason"), p));
    if let (Some(o), None, None) = (outcome, &reason, f.get("reason")) {
        if o > Outcome::Allow {
            p.at(
                node,
                path,
                format!("a rule with `outcome: {o}` needs a `reason` code"),
            );
        }
    }
    let rule_id = id.clone().unwrap_or_default();
    let mut counter = 0usize;
    let when = f.get("when").and_then(|n| {
        condition(
            n,
            &join(path, "when"),
            &CondCtx { rule: &rule_id },
            &mut counter,
            p,
        )
    });
    Some(Rule {
        id: intern(&id?),
        selectors,
        selector_set: 0,
        when,
        outcome: outcome?,
        reason: reason.as_deref().map(intern),
    })
}

struct CondCtx<'a> {
    rule: &'a str,
}

fn condition(
    node: &Node,
    path: &str,
    ctx: &CondCtx<'_>,
    counter: &mut usize,
    p: &mut Problems,
) -> Option<Condition> {
    let Kind::Map(entries) = &node.kind else {
        p.at(
            node,
            path,
            format!(
                "expected a condition (a mapping), found {}",
                node.describe()
            ),
        );
        return None;
    };
    let kinds: Vec<&str> = entries
        .iter()
        .map(|(k, _, _)| k.as_str())
        .filter(|k| matches!(*k, "all" | "any" | "not" | "expr" | "field"))
        .collect();
    match kinds.as_slice() {
        ["all"] | ["any"] => {
            let key = kinds[0];
            let f = p.fields(node, path, &[key])?;
            let list = f.get(key)?;
            let kpath = join(path, key);
            let Kind::Seq(items) = &list.kind else {
                p.at(
                    list,
                    &kpath,
                    format!("expected a list of conditions, found {}", list.describe()),
                );
                return None;
            };
            let children: Vec<Option<Condition>> = items
                .iter()
                .enumerate()
                .map(|(i, c)| condition(c, &format!("{kpath}[{i}]"), ctx, counter, p))
                .collect();
            let children: Vec<Condition> = children.into_iter().collect::<Option<_>>()?;
            Some(if key == "all" {
                Condition::All(children)
            } else {
                Condition::Any(children)
            })
        }
        ["not"] => {
            let f = p.fields(node, path, &["not"])?;
            let inner = condition(f.get("not")?, &join(path, "not"), ctx, counter, p)?;
            Some(Condition::Not(Box::new(inner)))
        }
        ["expr"] => {
            let f = p.fields(node, path, EXPR_KEYS)?;
            *counter += 1;
            let (id, label) = id_label(&f, path, ctx, *counter, p);
            let source = p.req_str(&f, "expr", path)?;
            let program = compile_expr(&source, f.get("expr")?, &join(path, "expr"), p)?;
            let vars = expr_vars(&program);
            let fast = Fast::compile(program.expression());
            Some(Condition::Expr(Box::new(ExprCond {
                id: intern(&id),
                label: label.as_deref().map(intern),
                threshold: intern_value(serde_json::Value::String(source.clone())),
                source,
                program,
                vars,
                fast,
            })))
        }
        ["field"] => {
            let f = p.fields(node, path, LEAF_KEYS)?;
            *counter += 1;
            let (id, label) = id_label(&f, path, ctx, *counter, p);
            leaf(&f, path, id, label, p).map(|l| Condition::Leaf(Box::new(l)))
        }
        [] => {
            p.at(
                node,
                path,
                "expected a condition: a mapping with one of `all`, `any`, `not`, `expr` or `field`",
            );
            None
        }
        many => {
            p.at(
                node,
                path,
                format!(
                    "a condition has exactly one of `all`, `any`, `not`, `expr` or `field`, found {}",
                    many.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
                ),
            );
            None
        }
    }
}

fn id_label(
    f: &Fields<'_>,
    path: &str,
    ctx: &CondCtx<'_>,
    n: usize,
    p: &mut Problems,
) -> (String, Option<String>) {
    let id = p
        .opt_str(f, "id", path)
        .unwrap_or_else(|| format!("{}#{n}", ctx.rule));
    (id, p.opt_str(f, "label", path))
}

fn compile_expr(source: &str, node: &Node, path: &str, p: &mut Problems) -> Option<cel::Program> {
    match cel::Program::compile(source) {
        Ok(program) => {
            let refs = program.references();
            let bound = macro_variables(source);
            let mut unknown: Vec<&str> = refs
                .variables()
                .into_iter()
                .filter(|v| !EXPR_VARIABLES.contains(v) && !bound.iter().any(|b| b == v))
                .collect();
            unknown.sort_unstable();
            if unknown.is_empty() {
                Some(program)
            } else {
                p.at(
                    node,
                    path,
                    format!(
                        "unknown variable(s) {} in expression; available: {}",
                        unknown.join(", "),
                        EXPR_VARIABLES.join(", ")
                    ),
                );
                None
            }
        }
        Err(e) => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("").trim();
            let first = first.strip_prefix("ERROR: <input>:").unwrap_or(first);
            p.at(node, path, format!("invalid CEL expression at {first}"));
            None
        }
    }
}

/// The loop variables that CEL macros bind (`list.exists(x, ...)`, `map.all(k, v, ...)`): not free
/// variables, so not checked against [`EXPR_VARIABLES`].
/// The variables of [`EXPR_VARIABLES`] a program uses, with the keys it reads of each.
fn expr_vars(program: &cel::Program) -> Vec<CelVar> {
    let refs = program.references();
    EXPR_VARIABLES
        .iter()
        .copied()
        .filter(|v| refs.has_variable(v))
        .map(|name| {
            let mut keys = Some(Vec::new());
            selected_keys(program.expression(), name, &mut keys);
            let keys = keys.map(|mut k: Vec<&'static str>| {
                k.sort_unstable();
                k.dedup();
                k
            });
            CelVar { name, keys }
        })
        .collect()
}

/// Collects into `keys` the fields selected directly on the identifier `var` (`var.f`,
/// `has(var.f)`); sets `keys` to `None` when `var` appears anywhere else (`size(var)`, `var['f']`,
/// a comprehension over `var`...), where the whole value is needed. A leading dot (`.var`, the
/// absolute name) counts as `var`. Conservative: a comprehension variable shadowing `var` only
/// adds keys or forces the whole value.
fn selected_keys(e: &cel::common::ast::IdedExpr, var: &str, keys: &mut Option<Vec<&'static str>>) {
    use cel::common::ast::{EntryExpr, Expr, MapExpr, StructExpr};
    let is_var = |name: &str| name.trim_start_matches('.') == var;
    let mut walk = |e: &cel::common::ast::IdedExpr| selected_keys(e, var, keys);
    match &e.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if is_var(name) {
                *keys = None;
            }
        }
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if is_var(name) => {
                if let Some(k) = keys {
                    k.push(intern(&select.field));
                }
            }
            _ => walk(&select.operand),
        },
        Expr::Call(call) => call
            .target
            .iter()
            .map(AsRef::as_ref)
            .chain(&call.args)
            .for_each(walk),
        Expr::Comprehension(c) => {
            [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]
            .into_iter()
            .for_each(walk);
        }
        Expr::List(list) => list.elements.iter().for_each(walk),
        Expr::Map(MapExpr { entries }) | Expr::Struct(StructExpr { entries, .. }) => {
            for entry in entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => walk(&f.value),
                    EntryExpr::MapEntry(m) => {
                        walk(&m.key);
                        walk(&m.value);
                    }
                }
            }
        }
    }
}

fn macro_variables(source: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"\b(?:all|exists|exists_one|map|filter|transformList|transformMap)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,(?:\s*([A-Za-z_][A-Za-z0-9_]*)\s*,)?",
        )
        .expect("valid regex")
    });
    re.captures_iter(source)
        .flat_map(|c| [c.get(1), c.get(2)])
        .flatten()
        .map(|m| m.as_str().to_owned())
        .collect()
}

fn leaf(
    f: &Fields<'_>,
    path: &str,
    id: String,
    label: Option<String>,
    p: &mut Problems,
) -> Option<Leaf> {
    let field = p.req_str(f, "field", path)?;
    let fpath: Vec<String> = field.split('.').map(str::to_owned).collect();
    if fpath.iter().any(String::is_empty) {
        p.at(
            f.get("field")?,
            &join(path, "field"),
            format!("invalid field path {field:?}: expected dotted names like `order.amount`"),
        );
        return None;
    }
    let op_node = match f.get("op") {
        Some(n) => n,
        None => {
            p.at(f.node, path, "missing required key \"op\"");
            return None;
        }
    };
    let op_path = join(path, "op");
    let op_s = p.string(op_node, &op_path)?;
    let Some(op) = OPERATORS.iter().copied().find(|o| *o == op_s) else {
        p.at(
            op_node,
            &op_path,
            format!(
                "unknown operator {op_s:?}, expected one of {}",
                OPERATORS
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    };
    let value = f.get("value");
    let vpath = join(path, "value");
    let zero = f.get("zero");
    if let Some(z) = zero {
        if !matches!(op, "<" | "<=" | ">" | ">=") {
            p.at(
                z,
                &join(path, "zero"),
                format!("`zero` only applies to `<`, `<=`, `>` and `>=`, not {op:?}"),
            );
        }
    }
    let need_value = |p: &mut Problems| -> Option<&Node> {
        if value.is_none() {
            p.at(f.node, path, format!("operator {op:?} needs a `value`"));
        }
        value
    };
    let check = match op {
        "<" | "<=" | ">" | ">=" => {
            let v = need_value(p)?;
            let Some(t) = v.as_f64() else {
                p.at(
                    v,
                    &vpath,
                    format!("operator {op:?} needs a number, found {}", v.describe()),
                );
                return None;
            };
            let upper = op.starts_with('>');
            let scale = match zero {
                None => {
                    if t == 0.0 {
                        1.0
                    } else {
                        t.abs()
                    }
                }
                Some(z) => {
                    let Some(zv) = z.as_f64() else {
                        p.at(
                            z,
                            &join(path, "zero"),
                            format!("expected a number, found {}", z.describe()),
                        );
                        return None;
                    };
                    let ok = if upper { zv < t } else { zv > t };
                    if !ok {
                        p.at(
                            z,
                            &join(path, "zero"),
                            format!(
                                "the zero point must lie on the side where {op:?} does not hold: {} {t}",
                                if upper { "below" } else { "above" }
                            ),
                        );
                        return None;
                    }
                    (t - zv).abs()
                }
            };
            Check::Cmp {
                t,
                inclusive: op.ends_with('='),
                upper,
                scale,
            }
        }
        "between" => {
            let v = need_value(p)?;
            let pair = match &v.kind {
                Kind::Seq(items) if items.len() == 2 => items[0].as_f64().zip(items[1].as_f64()),
                _ => None,
            };
            let Some((lo, hi)) = pair else {
                p.at(
                    v,
                    &vpath,
                    format!(
                        "operator \"between\" needs a list of two numbers [low, high], found {}",
                        describe_list(v)
                    ),
                );
                return None;
            };
            if lo > hi {
                p.at(
                    v,
                    &vpath,
                    format!("`between` bounds are reversed: {lo} > {hi}"),
                );
                return None;
            }
            Check::Between { lo, hi }
        }
        "==" | "!=" => {
            let v = need_value(p)?;
            let s = scalar(v, &vpath, op, p)?;
            if op == "==" {
                Check::Eq(s)
            } else {
                Check::Ne(s)
            }
        }
        "in" | "not_in" => {
            let v = need_value(p)?;
            let Kind::Seq(items) = &v.kind else {
                p.at(
                    v,
                    &vpath,
                    format!(
                        "operator {op:?} needs a non-empty list, found {}",
                        v.describe()
                    ),
                );
                return None;
            };
            if items.is_empty() {
                p.at(v, &vpath, format!("operator {op:?} needs a non-empty list"));
                return None;
            }
            let list: Vec<Scalar> = items
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(item, &format!("{vpath}[{i}]"), op, p))
                .collect::<Option<_>>()?;
            if list.iter().any(|s| s.type_name() != list[0].type_name()) {
                p.at(
                    v,
                    &vpath,
                    format!("the values of {op:?} must all have one type (all strings, all numbers or all booleans)"),
                );
                return None;
            }
            if op == "in" {
                Check::In(list)
            } else {
                Check::NotIn(list)
            }
        }
        "matches" => {
            let v = need_value(p)?;
            let Some(re) = v.as_str() else {
                p.at(
                    v,
                    &vpath,
                    format!(
                        "operator \"matches\" needs a regular expression string, found {}",
                        v.describe()
                    ),
                );
                return None;
            };
            match regex::Regex::new(re) {
                Ok(re) => Check::Matches(re),
                Err(e) => {
                    let msg = e.to_string();
                    let last = msg.lines().last().unwrap_or("").trim().to_owned();
                    p.at(
                        v,
                        &vpath,
                        format!("invalid regular expression {re:?}: {last}"),
                    );
                    return None;
                }
            }
        }
        _ => {
            if let Some(v) = value {
                p.at(v, &vpath, format!("operator {op:?} takes no `value`"));
                return None;
            }
            if op == "exists" {
                Check::Exists
            } else {
                Check::Absent
            }
        }
    };
    let threshold = value
        .and_then(|v| v.to_json().ok())
        .unwrap_or(serde_json::Value::Null);
    Some(Leaf {
        id: intern(&id),
        label: label.as_deref().map(intern),
        field: intern(&field),
        path: fpath,
        op,
        threshold: intern_value(threshold),
        check,
    })
}

fn describe_list(v: &Node) -> String {
    match &v.kind {
        Kind::Seq(items) => format!("a list of {} item(s)", items.len()),
        _ => v.describe().to_owned(),
    }
}

fn scalar(v: &Node, path: &str, op: &str, p: &mut Problems) -> Option<Scalar> {
    match &v.kind {
        Kind::Str(s) => Some(Scalar::Str(s.clone())),
        Kind::Int(_) | Kind::Float(_) => v.as_f64().map(Scalar::Num),
        Kind::Bool(b) => Some(Scalar::Bool(*b)),
        _ => {
            p.at(
                v,
                path,
                format!("operator {op:?} compares with a string, number or boolean, found {} (use `exists` / `absent` for presence)", v.describe()),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of `context` an expression reads (`None`: the whole payload).
    fn context_keys(source: &str) -> Option<Vec<&'static str>> {
        let program = cel::Program::compile(source).unwrap();
        let vars = expr_vars(&program);
        let var = vars.iter().find(|v| v.name == "context").unwrap();
        var.keys.clone()
    }

    #[test]
    fn expressions_bind_the_keys_they_select() {
        assert_eq!(
            context_keys("context.b > 1 && context.a == 'x' && context.b < 9"),
            Some(vec!["a", "b"])
        );
        assert_eq!(context_keys("has(context.a.b)"), Some(vec!["a"]));
        // `.context` is the absolute name of the same variable.
        assert_eq!(
            context_keys("context.a == 1 || .context.b == 2"),
            Some(vec!["a", "b"])
        );
        assert_eq!(
            context_keys("context.items.exists(i, i.sku == context.sku)"),
            Some(vec!["items", "sku"])
        );
        for whole in [
            "size(context) > 1",
            "context['a'] == 1",
            "'a' in context",
            "context == {}",
            "[context].size() == 1",
            "[1].exists(context, context == 1)",
        ] {
            assert_eq!(context_keys(whole), None, "{whole}");
        }
    }
}
