//! Operators, combinators, precedence, defaults, selectors, reason codes, utilization and type
//! mismatches.

use serde_json::{json, Value};
use warden_policy::{evaluate, EvalError, Evaluation, Input, Outcome, Pack, PolicySet};

/// A pack with one rule `r` (outcome escalate, reason HIT) whose `when` is `cond` (YAML flow).
fn one_rule(cond: &str) -> Pack {
    let text = format!(
        "pack: t\nversion: 1.0.0\nrules:\n  - id: r\n    when: {cond}\n    outcome: escalate\n    reason: HIT\n"
    );
    Pack::from_yaml(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn run(pack: &Pack, ctx: Value) -> Evaluation {
    evaluate(pack, &Input::new("x").with_context(ctx)).unwrap()
}

fn fires(cond: &str, ctx: Value) -> bool {
    let ev = run(&one_rule(cond), ctx);
    ev.verdict == Outcome::Escalate
}

#[test]
fn numeric_operators() {
    let table = [
        (r#"{field: a, op: "<", value: 10}"#, 9.5, true),
        (r#"{field: a, op: "<", value: 10}"#, 10.0, false),
        (r#"{field: a, op: "<=", value: 10}"#, 10.0, true),
        (r#"{field: a, op: "<=", value: 10}"#, 10.5, false),
        (r#"{field: a, op: ">", value: 10}"#, 10.0, false),
        (r#"{field: a, op: ">", value: 10}"#, 10.01, true),
        (r#"{field: a, op: ">=", value: 10}"#, 10.0, true),
        (r#"{field: a, op: ">=", value: 10}"#, 9.99, false),
        (r#"{field: a, op: between, value: [1, 5]}"#, 1.0, true),
        (r#"{field: a, op: between, value: [1, 5]}"#, 5.0, true),
        (r#"{field: a, op: between, value: [1, 5]}"#, 5.5, false),
        (r#"{field: a, op: between, value: [1, 5]}"#, 0.5, false),
        (r#"{field: a, op: "==", value: 3}"#, 3.0, true),
        (r#"{field: a, op: "!=", value: 3}"#, 3.0, false),
        (r#"{field: a, op: in, value: [1, 2, 3]}"#, 2.0, true),
        (r#"{field: a, op: not_in, value: [1, 2, 3]}"#, 2.0, false),
    ];
    for (cond, a, want) in table {
        assert_eq!(fires(cond, json!({ "a": a })), want, "{cond} with {a}");
    }
    // Integers and floats compare as numbers.
    assert!(fires(
        r#"{field: a, op: "==", value: 3.0}"#,
        json!({"a": 3})
    ));
}

#[test]
fn string_bool_and_presence_operators() {
    assert!(fires(
        r#"{field: c, op: "==", value: EUR}"#,
        json!({"c": "EUR"})
    ));
    assert!(!fires(
        r#"{field: c, op: "==", value: EUR}"#,
        json!({"c": "USD"})
    ));
    assert!(fires(
        r#"{field: c, op: "!=", value: EUR}"#,
        json!({"c": "USD"})
    ));
    assert!(fires(
        r#"{field: c, op: in, value: [EUR, USD]}"#,
        json!({"c": "USD"})
    ));
    assert!(fires(
        r#"{field: c, op: not_in, value: [EUR, USD]}"#,
        json!({"c": "JPY"})
    ));
    assert!(fires(
        r#"{field: f, op: "==", value: true}"#,
        json!({"f": true})
    ));
    assert!(!fires(
        r#"{field: f, op: "==", value: true}"#,
        json!({"f": false})
    ));
    assert!(fires(
        r#"{field: m, op: matches, value: "^gpt-4"}"#,
        json!({"m": "gpt-4.1"})
    ));
    assert!(!fires(
        r#"{field: m, op: matches, value: "^gpt-4"}"#,
        json!({"m": "o3"})
    ));
    // Unanchored: finds a match anywhere.
    assert!(fires(
        r#"{field: m, op: matches, value: "rm -rf"}"#,
        json!({"m": "sudo rm -rf /"})
    ));
    assert!(fires(r#"{field: x, op: exists}"#, json!({"x": 0})));
    assert!(!fires(r#"{field: x, op: exists}"#, json!({"x": null})));
    assert!(!fires(r#"{field: x, op: exists}"#, json!({})));
    assert!(fires(r#"{field: x, op: absent}"#, json!({})));
    assert!(fires(r#"{field: x, op: absent}"#, json!({"x": null})));
    assert!(!fires(r#"{field: x, op: absent}"#, json!({"x": "v"})));
}

#[test]
fn absent_fields_hold_only_for_negative_operators() {
    let empty = json!({});
    for cond in [
        r#"{field: a, op: ">", value: 1}"#,
        r#"{field: a, op: "<", value: 1}"#,
        r#"{field: a, op: between, value: [0, 1]}"#,
        r#"{field: a, op: "==", value: 1}"#,
        r#"{field: a, op: in, value: [1]}"#,
        r#"{field: a, op: matches, value: "."}"#,
    ] {
        assert!(!fires(cond, empty.clone()), "{cond}");
    }
    for cond in [
        r#"{field: a, op: "!=", value: 1}"#,
        r#"{field: a, op: not_in, value: [1]}"#,
    ] {
        assert!(fires(cond, empty.clone()), "{cond}");
    }
}

#[test]
fn dotted_paths_reach_nested_objects_and_arrays() {
    let cond = r#"{field: order.items.1.price, op: ">", value: 100}"#;
    assert!(fires(
        cond,
        json!({"order": {"items": [{"price": 1}, {"price": 150}]}})
    ));
    assert!(!fires(cond, json!({"order": {"items": [{"price": 1}]}})));
    assert!(!fires(cond, json!({"order": "flat"})));
}

#[test]
fn combinators() {
    let all = r#"{all: [{field: a, op: ">", value: 1}, {field: b, op: "==", value: x}]}"#;
    assert!(fires(all, json!({"a": 2, "b": "x"})));
    assert!(!fires(all, json!({"a": 2, "b": "y"})));
    let any = r#"{any: [{field: a, op: ">", value: 1}, {field: b, op: "==", value: x}]}"#;
    assert!(fires(any, json!({"a": 0, "b": "x"})));
    assert!(!fires(any, json!({"a": 0, "b": "y"})));
    let not = r#"{not: {field: a, op: ">", value: 1}}"#;
    assert!(fires(not, json!({"a": 0})));
    assert!(!fires(not, json!({"a": 5})));
    let nested = r#"{all: [{any: [{field: a, op: exists}, {field: b, op: exists}]}, {not: {field: c, op: exists}}]}"#;
    assert!(fires(nested, json!({"b": 1})));
    assert!(!fires(nested, json!({"b": 1, "c": 1})));
    assert!(!fires(nested, json!({})));
    // Empty all holds, empty any does not.
    assert!(fires("{all: []}", json!({})));
    assert!(!fires("{any: []}", json!({})));
}

#[test]
fn cel_expressions() {
    let e = r#"{expr: "context.amount > 1000.0 && context.currency == 'EUR'"}"#;
    assert!(fires(e, json!({"amount": 1250.0, "currency": "EUR"})));
    assert!(!fires(e, json!({"amount": 1250.0, "currency": "USD"})));
    // A missing key makes the condition false, not an error.
    assert!(!fires(e, json!({"currency": "EUR"})));
    let vars =
        r#"{expr: "decision_type == 'x' && action == null && tool == null && agent_id == null"}"#;
    assert!(fires(vars, json!({})));
    let list = r#"{expr: "context.items.exists(i, i.price > 100)"}"#;
    assert!(fires(
        list,
        json!({"items": [{"price": 5}, {"price": 500}]})
    ));
    assert!(fires(r#"{expr: "payload.n == 2"}"#, json!({"n": 2})));
    // A non-boolean result is an error.
    let pack = one_rule(r#"{id: E1, expr: "context.n + 1"}"#);
    let err = evaluate(&pack, &Input::new("x").with_context(json!({"n": 1}))).unwrap_err();
    assert!(
        matches!(&err, EvalError::Expression { condition, .. } if condition == "E1"),
        "{err}"
    );
    // The record shows the expression and its result.
    let ev = run(
        &one_rule(r#"{id: E2, expr: "context.n == 1"}"#),
        json!({"n": 1}),
    );
    assert_eq!(ev.conditions[0].op, "expr");
    assert_eq!(*ev.conditions[0].threshold, json!("context.n == 1"));
    assert_eq!(ev.conditions[0].actual_value, json!(true));
    assert_eq!(ev.conditions[0].field, None);
}

/// Expressions bind only the payload keys they select (`context.a`), and the whole payload when
/// they use it otherwise; either way the results are those of the whole payload. Several rules
/// of one pack share the binding, which grows as they read more.
#[test]
fn cel_sees_the_whole_payload_whatever_it_binds() {
    let exprs = [
        ("context.a == 1", true),
        ("has(context.z)", false),
        ("has(context.b) && context.b.c == 'x'", true),
        ("context.z == 1", false),
        ("size(context) == 3", true),
        ("context.a == 1 && 'list' in context", true),
        ("context['a'] == 1 && payload.a == 1", true),
        ("context.list.exists(context, context.a == 2)", true),
        ("[{'a': 5}].exists(context, context.a == 5)", true),
        (
            "context.list.all(i, i.a > 0) && context.list.size() == 1",
            true,
        ),
        (
            "context == {'a': 1, 'b': {'c': 'x'}, 'list': [{'a': 2}]}",
            true,
        ),
    ];
    let ctx = json!({"a": 1, "b": {"c": "x"}, "list": [{"a": 2}]});
    let mut yaml = String::from("pack: t\nversion: 1.0.0\nrules:\n");
    for (i, (e, _)) in exprs.iter().enumerate() {
        yaml.push_str(&format!(
            "  - id: r{i}\n    when: {{expr: \"{e}\"}}\n    outcome: warn\n    reason: R\n"
        ));
    }
    let all = Pack::from_yaml(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let shared = run(&all, ctx.clone());
    for (i, (e, want)) in exprs.iter().enumerate() {
        assert_eq!(
            fires(&format!("{{expr: \"{e}\"}}"), ctx.clone()),
            *want,
            "{e}"
        );
        assert_eq!(shared.conditions[i].passed, *want, "{e}, in one pack");
    }
    // A payload that is not an object is bound whole: selecting on it is an error.
    let pack = one_rule(r#"{expr: "context.a == 1"}"#);
    assert!(evaluate(&pack, &Input::new("x").with_context(json!([1]))).is_err());
}

/// Rules sharing their selectors share one match per evaluation; past 64 distinct selector sets
/// in a pack each rule is matched on its own. Either way a rule fires only where its own
/// selectors match.
#[test]
fn many_selector_sets() {
    let mut yaml = String::from("pack: t\nversion: 1.0.0\nrules:\n");
    for i in 0..150 {
        // Sets 0..=99 distinct, then rules 100.. repeat the first 50.
        let agent = format!("a{}_*", i % 100);
        yaml.push_str(&format!(
            "  - id: r{i}\n    match: {{agent: \"{agent}\"}}\n    outcome: warn\n    reason: R{i}\n"
        ));
    }
    let pack = Pack::from_yaml(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    for n in [0, 7, 63, 64, 70, 99] {
        let ev = evaluate(&pack, &Input::new("x").with_agent(format!("a{n}_x"))).unwrap();
        let fired: Vec<_> = ev
            .matched_rules
            .iter()
            .map(|r| r.rule.to_string())
            .collect();
        let mut want = vec![format!("r{n}")];
        if n < 50 {
            want.push(format!("r{}", n + 100));
        }
        assert_eq!(fired, want, "agent a{n}_x");
    }
}

const PRECEDENCE: &str = r#"
pack: prec
version: 1.0.0
default: allow
rules:
  - id: w1
    when: {field: w, op: exists}
    outcome: warn
    reason: W_ONE
  - id: e1
    when: {field: e, op: exists}
    outcome: escalate
    reason: E_ONE
  - id: e2
    when: {field: e2, op: exists}
    outcome: escalate
    reason: E_TWO
  - id: b1
    when: {field: b, op: exists}
    outcome: block
    reason: B_ONE
  - id: a1
    when: {field: ok, op: exists}
    outcome: allow
    reason: ALLOWLISTED
"#;

#[test]
fn strongest_outcome_wins_and_reason_codes_are_at_its_strength() {
    let pack = Pack::from_yaml(PRECEDENCE, "prec.yaml").unwrap();
    let ev = run(&pack, json!({"w": 1, "e": 1, "e2": 1}));
    assert_eq!(ev.verdict, Outcome::Escalate);
    assert_eq!(ev.reason_codes, ["E_ONE", "E_TWO"]);
    let fired: Vec<&str> = ev.matched_rules.iter().map(|m| &*m.rule).collect();
    assert_eq!(fired, ["w1", "e1", "e2"]);
    let ev = run(&pack, json!({"w": 1, "e": 1, "b": 1, "ok": 1}));
    assert_eq!(
        (ev.verdict, ev.reason_codes.clone()),
        (Outcome::Block, vec!["B_ONE".to_owned()])
    );
    let ev = run(&pack, json!({"ok": 1}));
    assert_eq!(
        (ev.verdict, ev.reason_codes.clone()),
        (Outcome::Allow, vec!["ALLOWLISTED".to_owned()])
    );
    let ev = run(&pack, json!({"w": 1}));
    assert_eq!(ev.verdict, Outcome::Warn);
    assert!(ev.mic_fired);
    let ev = run(&pack, json!({}));
    assert_eq!(ev.verdict, Outcome::Allow);
    assert!(ev.reason_codes.is_empty() && !ev.mic_fired);
}

#[test]
fn default_applies_only_when_nothing_fires() {
    let text = "pack: d\nversion: 1.0.0\ndefault: block\ndefault_reason: NOT_ALLOWLISTED\nrules:\n  - id: ok\n    when: {field: m, op: in, value: [a, b]}\n    outcome: allow\n  - id: w\n    when: {field: m, op: '==', value: c}\n    outcome: warn\n    reason: C_MODEL\n";
    let pack = Pack::from_yaml(text, "d.yaml").unwrap();
    let ev = run(&pack, json!({"m": "z"}));
    assert_eq!(ev.verdict, Outcome::Block);
    assert_eq!(ev.reason_codes, ["NOT_ALLOWLISTED"]);
    assert_eq!(ev.utilization, 100.0);
    let ev = run(&pack, json!({"m": "a"}));
    assert_eq!(ev.verdict, Outcome::Allow);
    assert!(ev.reason_codes.is_empty());
    // A weaker rule that fires beats a stronger default.
    let ev = run(&pack, json!({"m": "c"}));
    assert_eq!(ev.verdict, Outcome::Warn);
    assert_eq!(ev.reason_codes, ["C_MODEL"]);
}

const SELECTORS: &str = r#"
pack: sel
version: 1.0.0
rules:
  - id: refund
    match:
      decision_type: ["decision.evaluate", refund]
      action: execute_refund
    outcome: escalate
    reason: REFUND
  - id: llm
    match: {decision_type: "llm.*", agent: ["agt_?", "bot-*"]}
    outcome: warn
    reason: LLM
  - id: any-tool
    match: {tool: "*"}
    outcome: warn
    reason: TOOL
"#;

#[test]
fn selectors_and_globs() {
    let pack = Pack::from_yaml(SELECTORS, "sel.yaml").unwrap();
    let v = |i: Input| evaluate(&pack, &i).unwrap().reason_codes;
    assert_eq!(
        v(Input::new("decision.evaluate").with_action("execute_refund")),
        ["REFUND"]
    );
    assert_eq!(
        v(Input::new("refund").with_action("execute_refund")),
        ["REFUND"]
    );
    assert!(v(Input::new("refund")).is_empty(), "no action: no match");
    assert!(v(Input::new("refunds").with_action("execute_refund")).is_empty());
    assert_eq!(v(Input::new("llm.request").with_agent("agt_1")), ["LLM"]);
    assert_eq!(v(Input::new("llm.request").with_agent("bot-7")), ["LLM"]);
    assert!(v(Input::new("llm.request").with_agent("agt_12")).is_empty());
    assert!(
        v(Input::new("llm.request")).is_empty(),
        "no agent: no match"
    );
    assert_eq!(v(Input::new("x").with_tool("anything")), ["TOOL"]);
    assert!(v(Input::new("x")).is_empty(), "`*` needs a tool");
}

#[test]
fn pack_scope_limits_where_a_pack_applies() {
    let text = "pack: s\nversion: 1.0.0\ndefault: block\ndefault_reason: NOPE\nmatch: {decision_type: llm.request}\n";
    let pack = Pack::from_yaml(text, "s.yaml").unwrap();
    let ev = evaluate(&pack, &Input::new("budget_change")).unwrap();
    assert_eq!(ev.verdict, Outcome::Allow);
    assert!(ev.packs.is_empty());
    let ev = evaluate(&pack, &Input::new("llm.request")).unwrap();
    assert_eq!(ev.verdict, Outcome::Block);
    assert_eq!(ev.packs.len(), 1);
}

fn util(cond: &str, ctx: Value) -> f64 {
    run(&one_rule(cond), ctx).utilization
}

#[test]
fn utilization_worked_examples() {
    // > t: zero point 0: a / t.
    assert_eq!(
        util(r#"{field: a, op: ">", value: 1000}"#, json!({"a": 250})),
        25.0
    );
    assert_eq!(
        util(r#"{field: a, op: ">", value: 1000}"#, json!({"a": 999.99})),
        99.9
    );
    assert_eq!(
        util(r#"{field: a, op: ">", value: 1000}"#, json!({"a": 1000})),
        99.9
    );
    assert_eq!(
        util(r#"{field: a, op: ">", value: 1000}"#, json!({"a": -5})),
        0.0
    );
    // < t: zero point 2t: 1 - (a - t) / t.
    assert_eq!(
        util(r#"{field: n, op: "<", value: 1000}"#, json!({"n": 1200})),
        80.0
    );
    assert_eq!(
        util(r#"{field: n, op: "<", value: 1000}"#, json!({"n": 5000})),
        0.0
    );
    // An explicit zero point: confidence against a 0.8 floor, 1.0 meaning "no doubt".
    assert_eq!(
        util(
            r#"{field: c, op: "<", value: 0.8, zero: 1.0}"#,
            json!({"c": 0.91})
        ),
        45.0
    );
    // Threshold 0: scale 1.
    assert_eq!(
        util(r#"{field: d, op: ">", value: 0}"#, json!({"d": -0.25})),
        75.0
    );
    // between: the nearer bound as threshold.
    assert_eq!(
        util(
            r#"{field: a, op: between, value: [100, 200]}"#,
            json!({"a": 80})
        ),
        80.0
    );
    assert_eq!(
        util(
            r#"{field: a, op: between, value: [100, 200]}"#,
            json!({"a": 250})
        ),
        75.0
    );
    // all: the weakest link; any: the strongest.
    let all = r#"{all: [{field: a, op: ">", value: 100}, {field: b, op: ">", value: 100}]}"#;
    assert_eq!(util(all, json!({"a": 90, "b": 50})), 50.0);
    assert_eq!(util(all, json!({"a": 190, "b": 50})), 50.0);
    let any = r#"{any: [{field: a, op: ">", value: 100}, {field: b, op: ">", value: 100}]}"#;
    assert_eq!(util(any, json!({"a": 90, "b": 50})), 90.0);
    // Non-numeric conditions are binary: an unmet `==` contributes nothing.
    assert_eq!(
        util(r#"{field: s, op: "==", value: x}"#, json!({"s": "y"})),
        0.0
    );
    let mixed = r#"{all: [{field: s, op: "==", value: x}, {field: a, op: ">", value: 100}]}"#;
    assert_eq!(util(mixed, json!({"s": "x", "a": 60})), 60.0);
    assert_eq!(util(mixed, json!({"s": "y", "a": 60})), 0.0);
    // A rule that fires: 100.
    assert_eq!(
        util(r#"{field: a, op: ">", value: 1}"#, json!({"a": 2})),
        100.0
    );
    // Absent: 0.
    assert_eq!(util(r#"{field: a, op: ">", value: 1}"#, json!({})), 0.0);
}

#[test]
fn utilization_takes_the_nearest_restrictive_rule() {
    let text = r#"
pack: u
version: 1.0.0
rules:
  - id: far
    when: {field: a, op: ">", value: 1000}
    outcome: block
    reason: FAR
  - id: near
    when: {field: a, op: ">", value: 400}
    outcome: warn
    reason: NEAR
  - id: allow-rule
    when: {field: a, op: ">", value: 310}
    outcome: allow
"#;
    let pack = Pack::from_yaml(text, "u.yaml").unwrap();
    let ev = run(&pack, json!({"a": 300}));
    assert_eq!(ev.utilization, 75.0);
    assert_eq!(&*ev.nearest_rule.unwrap().rule, "near");
}

#[test]
fn type_mismatches_are_errors() {
    let cases = [
        (
            r#"{field: amount, op: ">", value: 1000}"#,
            json!({"amount": "1250.00"}),
            "number",
            "string",
        ),
        (
            r#"{field: amount, op: between, value: [1, 2]}"#,
            json!({"amount": true}),
            "number",
            "boolean",
        ),
        (
            r#"{field: amount, op: "==", value: 5}"#,
            json!({"amount": "5"}),
            "number",
            "string",
        ),
        (
            r#"{field: c, op: "==", value: EUR}"#,
            json!({"c": 5}),
            "string",
            "number",
        ),
        (
            r#"{field: c, op: in, value: [EUR]}"#,
            json!({"c": ["EUR"]}),
            "string",
            "array",
        ),
        (
            r#"{field: c, op: matches, value: x}"#,
            json!({"c": {"a": 1}}),
            "string",
            "object",
        ),
    ];
    for (cond, ctx, expected, found) in cases {
        let err = evaluate(&one_rule(cond), &Input::new("x").with_context(ctx)).unwrap_err();
        let want_field = if cond.contains("amount") {
            "amount"
        } else {
            "c"
        };
        assert_eq!(
            err,
            EvalError::TypeMismatch {
                field: want_field.to_owned(),
                rule: "r".to_owned(),
                expected,
                found
            },
            "{cond}"
        );
    }
}

#[test]
fn condition_records_carry_ids_labels_thresholds_and_values() {
    let pack = one_rule(
        r#"{all: [{id: MIC-01, label: Refund amount, field: amount, op: ">", value: 1000}, {field: currency, op: in, value: [EUR, USD]}]}"#,
    );
    let ev = run(&pack, json!({"amount": 1250.5, "currency": "EUR"}));
    let c = serde_json::to_value(&ev.conditions).unwrap();
    assert_eq!(
        c,
        json!([
            {"pack": "t", "rule": "r", "id": "MIC-01", "label": "Refund amount", "field": "amount",
             "op": ">", "threshold": 1000, "actual_value": 1250.5, "passed": true},
            {"pack": "t", "rule": "r", "id": "r#2", "label": null, "field": "currency",
             "op": "in", "threshold": ["EUR", "USD"], "actual_value": "EUR", "passed": true}
        ])
    );
}

#[test]
fn a_policy_set_combines_packs() {
    let a = Pack::from_yaml(
        "pack: a\nversion: 1.0.0\nrules:\n  - id: big\n    when: {field: n, op: '>', value: 10}\n    outcome: warn\n    reason: BIG\n",
        "a.yaml",
    )
    .unwrap();
    let b = Pack::from_yaml(
        "pack: b\nversion: 2.0.0\nrules:\n  - id: huge\n    when: {field: n, op: '>', value: 100}\n    outcome: block\n    reason: HUGE\n  - id: big\n    when: {field: n, op: '>', value: 10}\n    outcome: warn\n    reason: BIG_TOO\n",
        "b.yaml",
    )
    .unwrap();
    let set = PolicySet::new([b, a]).unwrap();
    let ids: Vec<&str> = set.packs().iter().map(|p| p.id()).collect();
    assert_eq!(ids, ["a", "b"]);
    let ev = set
        .evaluate(&Input::new("x").with_context(json!({"n": 50})))
        .unwrap();
    assert_eq!(ev.verdict, Outcome::Warn);
    assert_eq!(ev.reason_codes, ["BIG", "BIG_TOO"]);
    assert_eq!(ev.conditions.len(), 3);
    assert_eq!(ev.packs.len(), 2);
    assert_eq!(ev.policy_hash, set.hash());
    let ev = set
        .evaluate(&Input::new("x").with_context(json!({"n": 500})))
        .unwrap();
    assert_eq!(
        (ev.verdict, ev.reason_codes),
        (Outcome::Block, vec!["HUGE".to_owned()])
    );
    let ev = set
        .evaluate(&Input::new("x").with_context(json!({"n": 5})))
        .unwrap();
    assert_eq!(ev.utilization, 50.0);
    assert_eq!(&*ev.nearest_rule.unwrap().pack, "a");
    // Duplicate ids are refused.
    let dup = PolicySet::new([
        Pack::from_yaml("pack: a\nversion: 1.0.0\n", "1.yaml").unwrap(),
        Pack::from_yaml("pack: a\nversion: 1.0.1\n", "2.yaml").unwrap(),
    ])
    .unwrap_err();
    assert_eq!(
        dup.to_string(),
        "duplicate pack id \"a\": in 1.yaml and 2.yaml"
    );
}

#[test]
fn input_accepts_payload_as_an_alias_and_rejects_unknown_fields() {
    let i: Input =
        serde_json::from_value(json!({"decision_type": "budget_change", "payload": {"a": 1}}))
            .unwrap();
    assert_eq!(i.context, json!({"a": 1}));
    assert!(serde_json::from_value::<Input>(json!({"decision_type": "x", "bogus": 1})).is_err());
}

#[test]
fn cel_numbers_follow_json() {
    // Non-negative JSON integers are CEL uints, negative ones ints, the rest doubles.
    let gt5 = r#"{expr: "context.n > 5"}"#;
    let probe = |cond: &str, n: Value| {
        evaluate(
            &one_rule(cond),
            &Input::new("x").with_context(json!({ "n": n })),
        )
        .map(|e| e.verdict == Outcome::Escalate)
        .map_err(|e| e.to_string())
    };
    // Comparisons across int, uint and double work.
    assert_eq!(probe(gt5, json!(7)), Ok(true));
    assert_eq!(probe(gt5, json!(-3)), Ok(false));
    assert_eq!(probe(gt5, json!(7.5)), Ok(true));
    assert_eq!(probe(r#"{expr: "context.n > 5.0"}"#, json!(7)), Ok(true));
    assert_eq!(probe(r#"{expr: "context.n == 7"}"#, json!(7)), Ok(true));
    assert_eq!(probe(r#"{expr: "context.n == 'x'"}"#, json!("x")), Ok(true));
}
