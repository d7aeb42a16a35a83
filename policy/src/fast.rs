//! A direct evaluator for the common shape of CEL conditions: payload fields and the input's
//! names (`agent_id`...) compared with literals (`context.amount > 1000.0`), `has(context.f)`,
//! combined with `&&`, `||` and `!`, and `exists` over a payload list
//! (`context.items.exists(i, i.sku == 'X')`).
//!
//! Why: the interpreter builds CEL values from the payload and walks a tree of boxed values per
//! call, most of an evaluation's cost for two such rules; this reads the JSON in place.
//!
//! It answers only when the answer is certain: every field present, every comparison between two
//! numbers, two strings or two booleans, computed as the `cel` crate computes it (`int`, `uint`
//! and `double` compared across types by the same conversions). Anything else (a missing key, a
//! `null`, mixed types, a NaN) gives `None` and the interpreter runs instead, so results and error
//! messages stay the interpreter's.

use std::cmp::Ordering;

use cel::common::ast::{operators, CallExpr, ComprehensionExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value;

use crate::input::Input;

/// A compiled expression of the supported shape.
#[derive(Debug)]
pub(crate) enum Fast {
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Not(Box<Fast>),
    Cmp {
        op: Op,
        /// The operands in source order (`1 < context.n` keeps the literal left).
        left: Operand,
        right: Operand,
    },
    /// `<list>.exists(<var>, <pred>)`: the predicate's paths rooted at the variable read the item.
    Exists {
        list: Path,
        pred: Box<Fast>,
    },
    /// `has(<path>)`: whether the object at the path but its last field has that field.
    Has(Path),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub(crate) enum Operand {
    Path(Path),
    Lit(Lit),
}

/// Fields selected from the payload (`context.a.b`) or from the item of an `exists`, or one of
/// the input's names (no fields).
#[derive(Debug)]
pub(crate) struct Path {
    root: Root,
    fields: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Root {
    Payload,
    Item,
    DecisionType,
    Action,
    AgentId,
    Tool,
}

#[derive(Debug)]
pub(crate) enum Lit {
    Num(Num),
    Str(String),
    Bool(bool),
}

/// A number with its CEL type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    UInt(u64),
    Double(f64),
}

/// A payload value, as far as comparisons go.
enum Scalar<'a> {
    Num(Num),
    Str(&'a str),
    Bool(bool),
}

impl Fast {
    /// The fast form of `e`, when every part of it has one.
    pub fn compile(e: &IdedExpr) -> Option<Fast> {
        compile(e, None)
    }

    /// The result for `input`, or `None` when the interpreter must decide.
    pub fn eval(&self, input: &Input) -> Option<bool> {
        self.run(input, None)
    }

    fn run(&self, payload: &Input, item: Option<&Value>) -> Option<bool> {
        match self {
            // As in CEL, a `false` (`true`) left side decides `&&` (`||`) alone.
            Fast::And(a, b) => match a.run(payload, item)? {
                false => Some(false),
                true => b.run(payload, item),
            },
            Fast::Or(a, b) => match a.run(payload, item)? {
                true => Some(true),
                false => b.run(payload, item),
            },
            Fast::Not(a) => a.run(payload, item).map(|b| !b),
            Fast::Cmp { op, left, right } => {
                let l = left.scalar(payload, item)?;
                let r = right.scalar(payload, item)?;
                op.holds(compare(&l, &r)?)
            }
            Fast::Exists { list, pred } => {
                let Value::Array(items) = list.value(payload, item)? else {
                    return None;
                };
                for it in items {
                    if pred.run(payload, Some(it))? {
                        return Some(true);
                    }
                }
                Some(false)
            }
            Fast::Has(path) => {
                let (last, parent) = path.fields.split_last()?;
                let parent = Path {
                    root: path.root,
                    fields: parent.to_vec(),
                };
                Some(parent.value(payload, item)?.as_object()?.contains_key(last))
            }
        }
    }
}

impl Op {
    fn holds(self, o: Ordering) -> Option<bool> {
        Some(match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        })
    }
}

impl Operand {
    fn scalar<'a>(&'a self, payload: &'a Input, item: Option<&'a Value>) -> Option<Scalar<'a>> {
        match self {
            Operand::Lit(Lit::Num(n)) => Some(Scalar::Num(*n)),
            Operand::Lit(Lit::Str(s)) => Some(Scalar::Str(s)),
            Operand::Lit(Lit::Bool(b)) => Some(Scalar::Bool(*b)),
            Operand::Path(p) => p.scalar(payload, item),
        }
    }
}

impl Path {
    /// The JSON value at the path (`None` for the input's names).
    fn value<'a>(&self, input: &'a Input, item: Option<&'a Value>) -> Option<&'a Value> {
        let mut at = match self.root {
            Root::Payload => &input.context,
            Root::Item => item?,
            _ => return None,
        };
        for f in &self.fields {
            at = at.as_object()?.get(f)?;
        }
        Some(at)
    }

    fn scalar<'a>(&self, input: &'a Input, item: Option<&'a Value>) -> Option<Scalar<'a>> {
        let name = match self.root {
            Root::DecisionType => Some(&input.decision_type),
            Root::Action => input.action.as_ref(),
            Root::AgentId => input.agent_id.as_ref(),
            Root::Tool => input.tool.as_ref(),
            Root::Payload | Root::Item => {
                return match self.value(input, item)? {
                    Value::Number(n) => Some(Scalar::Num(num(n))),
                    Value::String(s) => Some(Scalar::Str(s)),
                    Value::Bool(b) => Some(Scalar::Bool(*b)),
                    _ => None,
                };
            }
        };
        // An absent name is CEL `null`: left to the interpreter.
        name.map(|s| Scalar::Str(s))
    }
}

/// A JSON number as the evaluator binds it: non-negative integers `uint`, negative ones `int`,
/// the rest `double`.
fn num(n: &serde_json::Number) -> Num {
    if let Some(u) = n.as_u64() {
        Num::UInt(u)
    } else if let Some(i) = n.as_i64() {
        Num::Int(i)
    } else {
        Num::Double(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// The ordering the `cel` crate's `Comparer`s give (its equality is "compares equal" for
/// numbers); `None` for values of different kinds and for NaN.
fn compare(l: &Scalar<'_>, r: &Scalar<'_>) -> Option<Ordering> {
    match (l, r) {
        (Scalar::Num(a), Scalar::Num(b)) => compare_num(*a, *b),
        (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[allow(clippy::cast_precision_loss)] // as the `cel` crate converts
fn compare_num(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::UInt(x), Num::UInt(y)) => Some(x.cmp(&y)),
        (Num::Int(x), Num::UInt(y)) => Some(u64::try_from(x).map_or(Ordering::Less, |x| x.cmp(&y))),
        (Num::UInt(x), Num::Int(y)) => {
            Some(i64::try_from(x).map_or(Ordering::Greater, |x| x.cmp(&y)))
        }
        (Num::Double(x), Num::Double(y)) => x.partial_cmp(&y),
        (Num::Double(x), Num::Int(y)) => x.partial_cmp(&(y as f64)),
        (Num::Double(x), Num::UInt(y)) => x.partial_cmp(&(y as f64)),
        (Num::Int(x), Num::Double(y)) => (x as f64).partial_cmp(&y),
        (Num::UInt(x), Num::Double(y)) => (x as f64).partial_cmp(&y),
    }
}

/// `item`: the variable of the enclosing `exists`, if any.
fn compile(e: &IdedExpr, item: Option<&str>) -> Option<Fast> {
    match &e.expr {
        Expr::Select(s) if s.test => {
            let path = path(&s.operand, item).or_else(|| root_only(&s.operand, item))?;
            if !matches!(path.root, Root::Payload | Root::Item) {
                return None;
            }
            let mut fields = path.fields;
            fields.push(s.field.clone());
            Some(Fast::Has(Path {
                root: path.root,
                fields,
            }))
        }
        Expr::Call(call) if call.target.is_none() => compile_call(call, item),
        Expr::Comprehension(c) if item.is_none() => compile_exists(c),
        _ => None,
    }
}

fn compile_call(call: &CallExpr, item: Option<&str>) -> Option<Fast> {
    let sub = |i: usize| compile(&call.args[i], item).map(Box::new);
    let op = match (call.func_name.as_str(), call.args.len()) {
        (operators::LOGICAL_AND, 2) => return Some(Fast::And(sub(0)?, sub(1)?)),
        (operators::LOGICAL_OR, 2) => return Some(Fast::Or(sub(0)?, sub(1)?)),
        (operators::LOGICAL_NOT, 1) => return Some(Fast::Not(sub(0)?)),
        (operators::EQUALS, 2) => Op::Eq,
        (operators::NOT_EQUALS, 2) => Op::Ne,
        (operators::LESS, 2) => Op::Lt,
        (operators::LESS_EQUALS, 2) => Op::Le,
        (operators::GREATER, 2) => Op::Gt,
        (operators::GREATER_EQUALS, 2) => Op::Ge,
        _ => return None,
    };
    let left = operand(&call.args[0], item)?;
    let right = operand(&call.args[1], item)?;
    // At least one side reads the payload: two literals are left to the interpreter.
    if matches!((&left, &right), (Operand::Lit(_), Operand::Lit(_))) {
        return None;
    }
    Some(Fast::Cmp { op, left, right })
}

/// `<path>.exists(<var>, <pred>)`, as the `cel` crate's macro expands it.
fn compile_exists(c: &ComprehensionExpr) -> Option<Fast> {
    const ACCU: &str = "@result";
    let ident = |e: &IdedExpr, name: &str| matches!(&e.expr, Expr::Ident(n) if n == name);
    let call = |e: &IdedExpr, f: &str, n: usize| match &e.expr {
        Expr::Call(c) if c.target.is_none() && c.func_name == f && c.args.len() == n => {
            Some(c.args.clone())
        }
        _ => None,
    };
    let shape = c.iter_var2.is_none()
        && c.accu_var == ACCU
        && matches!(&c.accu_init.expr, Expr::Literal(LiteralValue::Boolean(b)) if !*b.inner())
        && ident(&c.result, ACCU)
        && call(&c.loop_cond, operators::NOT_STRICTLY_FALSE, 1)
            .and_then(|a| call(&a[0], operators::LOGICAL_NOT, 1))
            .is_some_and(|a| ident(&a[0], ACCU));
    if !shape || c.iter_var == ACCU {
        return None;
    }
    let step = call(&c.loop_step, operators::LOGICAL_OR, 2)?;
    if !ident(&step[0], ACCU) {
        return None;
    }
    let list = path(&c.iter_range, None)?;
    let pred = compile(&step[1], Some(&c.iter_var))?;
    Some(Fast::Exists {
        list,
        pred: Box::new(pred),
    })
}

fn operand(e: &IdedExpr, item: Option<&str>) -> Option<Operand> {
    if let Expr::Literal(l) = &e.expr {
        return Some(Operand::Lit(match l {
            LiteralValue::Int(i) => Lit::Num(Num::Int(*i.inner())),
            LiteralValue::UInt(u) => Lit::Num(Num::UInt(*u.inner())),
            LiteralValue::Double(d) => Lit::Num(Num::Double(*d.inner())),
            LiteralValue::String(s) => Lit::Str(s.inner().to_owned()),
            LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
            LiteralValue::Null | LiteralValue::Bytes(_) => return None,
        }));
    }
    path(e, item).map(Operand::Path)
}

/// `context.a.b`, `payload.a`, or `<item>.a` inside an `exists` (at least one field), or one of
/// the input's names (`agent_id`).
fn path(e: &IdedExpr, item: Option<&str>) -> Option<Path> {
    let mut fields = Vec::new();
    let mut at = e;
    while let Expr::Select(s) = &at.expr {
        if s.test {
            return None;
        }
        fields.push(s.field.clone());
        at = &s.operand;
    }
    let Expr::Ident(name) = &at.expr else {
        return None;
    };
    fields.reverse();
    let root = root(name, item)?;
    let has_fields = matches!(root, Root::Payload | Root::Item);
    (has_fields != fields.is_empty()).then_some(Path { root, fields })
}

/// `context` or `<item>` alone: the operand of `has(context.f)`.
fn root_only(e: &IdedExpr, item: Option<&str>) -> Option<Path> {
    let Expr::Ident(name) = &e.expr else {
        return None;
    };
    Some(Path {
        root: root(name, item)?,
        fields: Vec::new(),
    })
}

fn root(name: &str, item: Option<&str>) -> Option<Root> {
    // The comprehension variable shadows the input's names.
    if item == Some(name) {
        return Some(Root::Item);
    }
    Some(match name {
        "context" | "payload" => Root::Payload,
        "decision_type" => Root::DecisionType,
        "action" => Root::Action,
        "agent_id" => Root::AgentId,
        "tool" => Root::Tool,
        _ => return None,
    })
}
