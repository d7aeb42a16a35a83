//! Evaluation: pure and deterministic. Packs are walked in order, rules in order, conditions
//! depth-first; every output list is built in that order or sorted, never from a hash map.

use std::borrow::Cow;
use std::sync::Arc;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EvalError;
use crate::fast::Fast;
use crate::input::Input;
use crate::model::{CelVar, Check, Condition, Leaf, Outcome, Rule, Scalar};
use crate::pack::Pack;

/// The result of evaluating one input: serializable as-is for the REST API and the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The strongest outcome among the rules that fired (per pack, the pack's `default` when none
    /// fired); across packs the strongest pack verdict.
    pub verdict: Outcome,
    /// The reason codes of every rule that fired at the verdict's strength (or the `default_reason`
    /// of packs whose default gave the verdict); sorted, without duplicates.
    pub reason_codes: Vec<String>,
    /// Every rule that fired (selectors matched and `when` held), in pack then rule order.
    pub matched_rules: Vec<MatchedRule>,
    /// Every leaf condition evaluated (of every rule whose selectors matched), in order.
    pub conditions: Vec<ConditionResult>,
    /// Whether the verdict is stronger than `allow` (a rule or a default stopped the action).
    pub mic_fired: bool,
    /// 0–100, one decimal: how close the input came to a stronger outcome; see the crate docs.
    pub utilization: f64,
    /// The rule behind `utilization` when the verdict is `allow` and some restrictive rule came
    /// closest (`None` when the verdict is not `allow` or no restrictive rule applied).
    pub nearest_rule: Option<RuleRef>,
    /// The packs that applied to the input (their `match` scope selected it), in id order.
    pub packs: Vec<PackRef>,
    /// The policy version: the pack's hash for one pack, the set's hash for a [`crate::PolicySet`].
    pub policy_hash: String,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedRule {
    /// The pack id.
    pub pack: Cow<'static, str>,
    /// The rule id.
    pub rule: Cow<'static, str>,
    /// The rule's outcome.
    pub outcome: Outcome,
    /// The rule's reason code.
    pub reason: Option<Cow<'static, str>>,
}

/// A rule, named by pack and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// The pack id.
    pub pack: Cow<'static, str>,
    /// The rule id.
    pub rule: Cow<'static, str>,
}

/// Which pack, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRef {
    /// `pack:`
    pub id: String,
    /// `version:`
    pub version: String,
    /// `sha256:...`
    pub hash: String,
}

/// One leaf condition as evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionResult {
    /// The pack id.
    pub pack: Cow<'static, str>,
    /// The rule id.
    pub rule: Cow<'static, str>,
    /// The condition's `id`, or `<rule>#<n>` (n-th leaf of the rule, from 1).
    pub id: Cow<'static, str>,
    /// The condition's `label`.
    pub label: Option<Cow<'static, str>>,
    /// The dotted path into the context (`None` for an `expr`).
    pub field: Option<Cow<'static, str>>,
    /// The operator (`>`, `between`, ..., or `expr`).
    pub op: Cow<'static, str>,
    /// The pack's value (for `expr`: the expression's source).
    pub threshold: Cow<'static, Value>,
    /// The value found in the input (`null` when absent; for `expr`: the boolean result).
    pub actual_value: Value,
    /// Whether the condition held for this input (`amount > 1000` with 1250 -> `true`).
    pub passed: bool,
}

/// Evaluates `input` against one pack. Equivalent to a [`crate::PolicySet`] of that pack alone,
/// except that `policy_hash` is the pack's own hash.
///
/// # Errors
/// [`EvalError::TypeMismatch`] when a condition meets a payload value of the wrong type;
/// [`EvalError::Expression`] when a CEL expression fails on this input.
pub fn evaluate(pack: &Pack, input: &Input) -> Result<Evaluation, EvalError> {
    evaluate_packs(std::slice::from_ref(&pack), input, pack.hash())
}

/// One pack's contribution.
struct PackOutcome {
    verdict: Outcome,
    /// Reason codes at `verdict` strength.
    reasons: Vec<String>,
    /// Best closeness (0..=1) of a restrictive rule that did not fire, with its rule id.
    nearest: Option<(f64, &'static str)>,
}

pub(crate) fn evaluate_packs<P: AsRef<Pack>>(
    packs: &[P],
    input: &Input,
    policy_hash: &str,
) -> Result<Evaluation, EvalError> {
    let mut cel = CelVars::new(input);
    let mut matched_rules = Vec::new();
    let mut conditions = Vec::with_capacity(packs.iter().map(|p| p.as_ref().leaf_count).sum());
    let mut refs = Vec::new();
    let mut results: Vec<(&Pack, PackOutcome)> = Vec::new();
    for pack in packs {
        let pack = pack.as_ref();
        if !pack.scope.matches(input) {
            continue;
        }
        refs.push(PackRef {
            id: pack.id.to_string(),
            version: pack.version.clone(),
            hash: pack.hash.clone(),
        });
        let out = eval_pack(pack, input, &mut cel, &mut matched_rules, &mut conditions)?;
        results.push((pack, out));
    }
    let verdict = results
        .iter()
        .map(|(_, o)| o.verdict)
        .max()
        .unwrap_or(Outcome::Allow);
    let mut reason_codes: Vec<String> = results
        .iter()
        .filter(|(_, o)| o.verdict == verdict)
        .flat_map(|(_, o)| o.reasons.iter().cloned())
        .collect();
    reason_codes.sort();
    reason_codes.dedup();
    let mic_fired = verdict > Outcome::Allow;
    let (utilization, nearest_rule) = if mic_fired {
        (100.0, None)
    } else {
        // Strictly greater wins, so the first (pack, rule) in order wins ties.
        let mut best: Option<(f64, RuleRef)> = None;
        for (pack, o) in &results {
            if let Some((u, rule)) = &o.nearest {
                if best.as_ref().is_none_or(|(b, _)| u > b) {
                    best = Some((
                        *u,
                        RuleRef {
                            pack: Cow::Borrowed(pack.id),
                            rule: Cow::Borrowed(rule),
                        },
                    ));
                }
            }
        }
        match best {
            // 100 is kept for verdicts stronger than allow.
            Some((u, r)) => (percent(u).min(99.9), Some(r)),
            None => (0.0, None),
        }
    };
    Ok(Evaluation {
        verdict,
        reason_codes,
        matched_rules,
        conditions,
        mic_fired,
        utilization,
        nearest_rule,
        packs: refs,
        policy_hash: policy_hash.to_owned(),
    })
}

/// A closeness in 0..=1 as a percentage with one decimal.
fn percent(u: f64) -> f64 {
    (u.clamp(0.0, 1.0) * 1000.0).round() / 10.0
}

fn eval_pack<'i>(
    pack: &Pack,
    input: &'i Input,
    cel: &mut CelVars<'i>,
    matched: &mut Vec<MatchedRule>,
    conditions: &mut Vec<ConditionResult>,
) -> Result<PackOutcome, EvalError> {
    let mut fired: Vec<&Rule> = Vec::new();
    let mut nearest: Option<(f64, &'static str)> = None;
    let mut selected = SelectorMemo::default();
    for rule in &pack.rules {
        if !selected.matches(rule, input) {
            continue;
        }
        let (passed, closeness) = match &rule.when {
            None => (true, 1.0),
            Some(c) => {
                let mut ctx = Ctx {
                    pack,
                    rule,
                    cel,
                    out: conditions,
                };
                ctx.eval(c)?
            }
        };
        if passed {
            fired.push(rule);
            matched.push(MatchedRule {
                pack: Cow::Borrowed(pack.id),
                rule: Cow::Borrowed(rule.id),
                outcome: rule.outcome,
                reason: rule.reason.map(Cow::Borrowed),
            });
        } else if rule.outcome > Outcome::Allow
            && nearest.as_ref().is_none_or(|(b, _)| closeness > *b)
        {
            nearest = Some((closeness, rule.id));
        }
    }
    let (verdict, reasons) = match fired.iter().map(|r| r.outcome).max() {
        Some(v) => (
            v,
            fired
                .iter()
                .filter(|r| r.outcome == v)
                .filter_map(|r| r.reason.map(str::to_owned))
                .collect(),
        ),
        None => (pack.default, pack.default_reason.iter().cloned().collect()),
    };
    Ok(PackOutcome {
        verdict,
        reasons,
        nearest,
    })
}

/// Which of a pack's distinct selector sets (see `Rule::selector_set`) match the input, as they
/// are first needed: rules sharing their `match` (all refunds, all of one agent) are common, and
/// matching the same globs again for each would cost more than the conditions. Sets numbered 64
/// and above are matched every time.
#[derive(Default)]
struct SelectorMemo {
    known: u64,
    matched: u64,
}

impl SelectorMemo {
    fn matches(&mut self, rule: &Rule, input: &Input) -> bool {
        let Some(bit) = u32::try_from(rule.selector_set)
            .ok()
            .and_then(|n| 1u64.checked_shl(n))
        else {
            return rule.selectors.matches(input);
        };
        if self.known & bit == 0 {
            self.known |= bit;
            if rule.selectors.matches(input) {
                self.matched |= bit;
            }
        }
        self.matched & bit != 0
    }
}

struct Ctx<'a, 'i, 'c> {
    pack: &'a Pack,
    rule: &'a Rule,
    cel: &'c mut CelVars<'i>,
    out: &'c mut Vec<ConditionResult>,
}

impl Ctx<'_, '_, '_> {
    /// (held, closeness in 0..=1). Every child is evaluated (no short-circuit) so that the record
    /// lists every condition and closeness sees every margin.
    fn eval(&mut self, c: &Condition) -> Result<(bool, f64), EvalError> {
        Ok(match c {
            Condition::All(children) => {
                let (mut all, mut u) = (true, 1.0f64);
                for child in children {
                    let (p, cu) = self.eval(child)?;
                    all &= p;
                    u = u.min(cu);
                }
                (all, if all { 1.0 } else { u })
            }
            Condition::Any(children) => {
                let (mut any, mut u) = (false, 0.0f64);
                for child in children {
                    let (p, cu) = self.eval(child)?;
                    any |= p;
                    u = u.max(cu);
                }
                (any, if any { 1.0 } else { u })
            }
            Condition::Not(inner) => {
                let (p, _) = self.eval(inner)?;
                (!p, if p { 0.0 } else { 1.0 })
            }
            Condition::Leaf(leaf) => {
                let actual = self.cel.lookup(leaf);
                let (passed, u) = check(leaf, actual, self.rule.id)?;
                self.record(leaf, actual, passed);
                (passed, u)
            }
            Condition::Expr(e) => {
                let passed =
                    self.cel
                        .run(&e.program, e.fast.as_ref(), &e.vars)
                        .map_err(|message| EvalError::Expression {
                            rule: self.rule.id.to_string(),
                            condition: e.id.to_string(),
                            message,
                        })?;
                self.out.push(ConditionResult {
                    pack: Cow::Borrowed(self.pack.id),
                    rule: Cow::Borrowed(self.rule.id),
                    id: Cow::Borrowed(e.id),
                    label: e.label.map(Cow::Borrowed),
                    field: None,
                    op: Cow::Borrowed("expr"),
                    threshold: Cow::Borrowed(e.threshold),
                    actual_value: Value::Bool(passed),
                    passed,
                });
                (passed, if passed { 1.0 } else { 0.0 })
            }
        })
    }

    fn record(&mut self, leaf: &Leaf, actual: Option<&Value>, passed: bool) {
        self.out.push(ConditionResult {
            pack: Cow::Borrowed(self.pack.id),
            rule: Cow::Borrowed(self.rule.id),
            id: Cow::Borrowed(leaf.id),
            label: leaf.label.map(Cow::Borrowed),
            field: Some(Cow::Borrowed(leaf.field)),
            op: Cow::Borrowed(leaf.op),
            threshold: Cow::Borrowed(leaf.threshold),
            actual_value: actual.cloned().unwrap_or(Value::Null),
            passed,
        });
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Evaluates one leaf: (held, closeness). Absent and `null` are the same: only `!=`, `not_in` and
/// `absent` hold for them.
fn check(leaf: &Leaf, actual: Option<&Value>, rule: &str) -> Result<(bool, f64), EvalError> {
    let actual = actual.filter(|v| !v.is_null());
    let mismatch = |expected: &'static str, found: &Value| EvalError::TypeMismatch {
        field: leaf.field.to_string(),
        rule: rule.to_owned(),
        expected,
        found: type_name(found),
    };
    let number = |v: &Value| v.as_f64().ok_or_else(|| mismatch("number", v));
    let binary = |b: bool| (b, if b { 1.0 } else { 0.0 });
    Ok(match &leaf.check {
        Check::Exists => binary(actual.is_some()),
        Check::Absent => binary(actual.is_none()),
        Check::Cmp {
            t,
            inclusive,
            upper,
            scale,
        } => {
            let Some(v) = actual else {
                return Ok((false, 0.0));
            };
            let a = number(v)?;
            let held = match (upper, inclusive) {
                (true, true) => a >= *t,
                (true, false) => a > *t,
                (false, true) => a <= *t,
                (false, false) => a < *t,
            };
            if held {
                (true, 1.0)
            } else {
                let margin = if *upper { t - a } else { a - t };
                (false, (1.0 - margin / scale).clamp(0.0, 1.0))
            }
        }
        Check::Between { lo, hi } => {
            let Some(v) = actual else {
                return Ok((false, 0.0));
            };
            let a = number(v)?;
            if a >= *lo && a <= *hi {
                (true, 1.0)
            } else {
                let (margin, bound) = if a < *lo {
                    (lo - a, *lo)
                } else {
                    (a - hi, *hi)
                };
                let scale = if bound == 0.0 { 1.0 } else { bound.abs() };
                (false, (1.0 - margin / scale).clamp(0.0, 1.0))
            }
        }
        Check::Eq(s) => match actual {
            None => binary(false),
            Some(v) => binary(scalar_eq(s, v).map_err(|e| mismatch(e, v))?),
        },
        Check::Ne(s) => match actual {
            None => binary(true),
            Some(v) => binary(!scalar_eq(s, v).map_err(|e| mismatch(e, v))?),
        },
        Check::In(list) | Check::NotIn(list) => {
            let found = match actual {
                None => false,
                Some(v) => {
                    let mut found = false;
                    for s in list {
                        found |= scalar_eq(s, v).map_err(|e| mismatch(e, v))?;
                    }
                    found
                }
            };
            binary(if matches!(leaf.check, Check::In(_)) {
                found
            } else {
                !found
            })
        }
        Check::Matches(re) => match actual {
            None => binary(false),
            Some(Value::String(s)) => binary(re.is_match(s)),
            Some(v) => return Err(mismatch("string", v)),
        },
    })
}

/// Equality of a pack scalar and a payload value of the same type; `Err(expected type)` otherwise.
fn scalar_eq(s: &Scalar, v: &Value) -> Result<bool, &'static str> {
    match (s, v) {
        (Scalar::Str(a), Value::String(b)) => Ok(a == b),
        (Scalar::Num(a), Value::Number(b)) => Ok(b.as_f64() == Some(*a)),
        (Scalar::Bool(a), Value::Bool(b)) => Ok(a == b),
        _ => Err(s.type_name()),
    }
}

/// The CEL variables of one input, each bound on first use and shared by every `expr` of the
/// evaluation. Values are built straight from the input's JSON and borrow its strings.
struct CelVars<'i> {
    input: &'i Input,
    ctx: Option<cel::Context<'i, 'i>>,
    /// The variables bound so far, with the payload keys bound (`None`: the whole value).
    bound: Vec<(&'static str, Option<Vec<&'static str>>)>,
    /// Field lookups already made, by interned field path (compared by address): packs test the
    /// same few fields many times.
    fields: Vec<(&'static str, Option<&'i Value>)>,
}

impl<'i> CelVars<'i> {
    fn new(input: &'i Input) -> Self {
        CelVars {
            input,
            ctx: None,
            bound: Vec::new(),
            fields: Vec::new(),
        }
    }

    fn lookup(&mut self, leaf: &Leaf) -> Option<&'i Value> {
        if let Some((_, v)) = self
            .fields
            .iter()
            .find(|(f, _)| std::ptr::eq(*f, leaf.field))
        {
            return *v;
        }
        let v = self.input.lookup(&leaf.path);
        if self.fields.len() < 32 {
            self.fields.push((leaf.field, v));
        }
        v
    }

    /// Binds what `vars` need and is not bound yet. A payload bound with some keys is rebound
    /// with the union when an expression reads more of it.
    fn bind(&mut self, vars: &[CelVar]) {
        for var in vars {
            let keys = match self.bound.iter().position(|(name, _)| *name == var.name) {
                None => var.keys.clone(),
                Some(at) => match (&self.bound[at].1, &var.keys) {
                    (None, _) => continue,
                    (Some(have), Some(want)) if want.iter().all(|k| have.contains(k)) => continue,
                    (Some(have), Some(want)) => {
                        let mut all = have.clone();
                        all.extend(want.iter().copied().filter(|k| !have.contains(k)));
                        Some(all)
                    }
                    (Some(_), None) => None,
                },
            };
            let value = self.value(var.name, keys.as_deref());
            self.ctx
                .get_or_insert_with(|| cel::Context::with_env(env()))
                .add_variable_as_val(var.name, value);
            self.bound.retain(|(name, _)| *name != var.name);
            self.bound.push((var.name, keys));
        }
    }

    /// The CEL value of a variable: for the payload, only `keys` of it when given.
    fn value(&self, var: &str, keys: Option<&[&'static str]>) -> Box<dyn Val + 'i> {
        let input = self.input;
        let opt = |s: &'i Option<String>| -> Box<dyn Val + 'i> {
            match s {
                Some(s) => Box::new(CelString::from(s.as_str())),
                None => Box::new(CelNull),
            }
        };
        match var {
            "context" | "payload" => match (keys, &input.context) {
                (Some(keys), Value::Object(map)) => json_map(map, keys),
                _ => json_val(&input.context),
            },
            "decision_type" => Box::new(CelString::from(input.decision_type.as_str())),
            "action" => opt(&input.action),
            "agent_id" => opt(&input.agent_id),
            _ => opt(&input.tool),
        }
    }

    /// Runs a program: a missing key or variable is `false` (the data is not there, so the
    /// condition does not hold); any other failure, or a non-boolean result, is an error.
    /// The direct form, when given, is tried first: see [`crate::fast`].
    fn run(
        &mut self,
        program: &cel::Program,
        fast: Option<&Fast>,
        vars: &[CelVar],
    ) -> Result<bool, String> {
        if let Some(held) = fast.and_then(|f| f.eval(self.input)) {
            return Ok(held);
        }
        self.bind(vars);
        let ctx = self.ctx.as_ref().expect("bound above");
        match program.execute(ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the expression returned {:?}, expected a boolean",
                other.type_of()
            )),
            Err(
                cel::ExecutionError::NoSuchKey(_) | cel::ExecutionError::UndeclaredReference(_),
            ) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A JSON value as a CEL value, borrowing its strings. Numbers as `cel::to_value` makes them:
/// non-negative integers `uint`, negative ones `int`, the rest `double`.
fn json_val(v: &Value) -> Box<dyn Val + '_> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_val).collect::<Vec<_>>(),
        )),
        Value::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), json_val(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        )),
    }
}

/// The entries of `map` at `keys` (those present) as a CEL map: what an expression that only
/// selects those keys can see.
fn json_map<'i>(
    map: &'i serde_json::Map<String, Value>,
    keys: &[&'static str],
) -> Box<dyn Val + 'i> {
    Box::new(CelMap::from(
        keys.iter()
            .filter_map(|k| map.get_key_value(*k))
            .map(|(k, v)| (CelMapKey::from(k.as_str()), json_val(v)))
            .collect::<std::collections::HashMap<_, _>>(),
    ))
}

fn env() -> Arc<cel::Env> {
    static ENV: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The direct evaluator agrees with the interpreter wherever it answers, over comparisons of
    /// every operator with literals of every kind, on payload values of every kind, and their
    /// combinations; and it answers for the common shapes.
    #[test]
    fn fast_path_agrees_with_the_interpreter() {
        let values = [
            json!(0),
            json!(1),
            json!(-1),
            json!(1.0),
            json!(1.5),
            json!(-0.5),
            json!(1e19),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(9_007_199_254_740_993_u64),
            json!("a"),
            json!("b"),
            json!(""),
            json!(true),
            json!(false),
            json!(null),
            json!([1]),
            json!({"y": 1}),
        ];
        let literals = [
            "1",
            "1u",
            "1.0",
            "-1",
            "0.5",
            "9223372036854775807",
            "18446744073709551615u",
            "9007199254740992.0",
            "1e19",
            "'a'",
            "''",
            "true",
            "false",
        ];
        let ops = ["==", "!=", "<", "<=", ">", ">="];
        let mut exprs = Vec::new();
        for op in ops {
            for lit in literals {
                exprs.push(format!("context.x {op} {lit}"));
                exprs.push(format!("{lit} {op} payload.x"));
            }
        }
        exprs.extend(
            [
                "context.x == 1 && context.y == 'a'",
                "context.x == 1 || context.y == 'a'",
                "!(context.x > 0) || !(context.y != 'a')",
                "context.x > 0 && context.missing == 1",
                "context.missing == 1 && context.x > 0",
                "context.missing == 1 || context.x > 0",
                "context.items.exists(i, i.x == 1)",
                "context.items.exists(i, i.x > 0 && context.y == 'a')",
                "context.items.exists(context, context.x == 1)",
                "context.o.y == 1",
                "context.x.y == 1",
                "has(context.x) && !has(context.missing)",
                "has(context.o.y) && context.o.y > 0",
                "has(context.x.y)",
                "has(payload.x) || has(context.x.y.z)",
                "context.items.exists(i, has(i.x) && i.x == 1)",
                "agent_id == 'agt_1' && action != 'x'",
                "decision_type == 't' && (tool == 'x' || context.x == 1)",
                "decision_type < 'u'",
            ]
            .map(str::to_owned),
        );
        let (mut answered, mut total) = (0, 0);
        for e in &exprs {
            let program = cel::Program::compile(e).unwrap();
            let fast = Fast::compile(program.expression())
                .unwrap_or_else(|| panic!("{e}: no direct form"));
            let vars: Vec<CelVar> = crate::EXPR_VARIABLES
                .iter()
                .map(|name| CelVar { name, keys: None })
                .collect();
            for x in &values {
                for y in [json!("a"), json!(1)] {
                    let items = json!([{"x": 0}, {"x": x.clone()}, {"x": "z"}]);
                    let ctx = json!({"x": x, "y": y, "items": items, "o": {"y": x}});
                    let mut input = Input::new("t").with_context(ctx);
                    if y == json!("a") {
                        input = input.with_agent("agt_1").with_action("refund");
                    }
                    let mut cel = CelVars::new(&input);
                    let want = cel.run(&program, None, &vars);
                    total += 1;
                    if let Some(got) = fast.eval(&input) {
                        answered += 1;
                        assert_eq!(Ok(got), want, "{e} with x = {x}, y = {y}");
                    }
                }
            }
        }
        // Mixed kinds (a string against a number...) are left to the interpreter.
        assert!(answered * 3 > total, "{answered} of {total}");
    }
}
