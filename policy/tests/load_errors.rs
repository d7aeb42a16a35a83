//! Every load error, with its position.

use warden_policy::{Pack, PackError};

/// The problems of an invalid pack, as display lines.
fn problems(text: &str) -> Vec<String> {
    match Pack::from_yaml(text, "p.yaml") {
        Ok(_) => panic!("expected an invalid pack:\n{text}"),
        Err(e @ PackError::Invalid(_)) => e.to_string().lines().map(str::to_owned).collect(),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fn one(text: &str) -> String {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    p[0].clone()
}

const HEAD: &str = "pack: p\nversion: 1.0.0\nrules:\n";

/// A pack with a single rule whose `when` is the given block (indented under `when:`).
fn rule_when(when: &str) -> String {
    let when: String = when.lines().map(|l| format!("      {l}\n")).collect();
    format!("{HEAD}  - id: r\n    outcome: block\n    reason: R\n    when:\n{when}")
}

#[test]
fn malformed_yaml() {
    let p = one("pack: p\nversion: [1.0.0\n");
    assert!(
        p.starts_with("p.yaml:3:1: invalid YAML:") || p.starts_with("p.yaml:2:"),
        "{p}"
    );
    let p = one("pack: p\npack: q\nversion: 1.0.0\n");
    assert!(
        p.contains("p.yaml:2:1") && p.to_lowercase().contains("duplicate"),
        "{p}"
    );
    assert_eq!(one(""), "p.yaml:1:1: empty document: expected a pack");
    assert_eq!(one("- a\n"), "p.yaml:1:1: expected a mapping, found a list");
    let p = one("pack: p\nversion: 1.0.0\n---\npack: q\n");
    assert!(p.contains("expected a single YAML document"), "{p}");
}

#[test]
fn unknown_operator_with_position() {
    let text = rule_when("all:\n  - field: amount\n    op: \">\"\n    value: 1\n  - field: amount\n    op: greater\n    value: 2");
    let p = one(&text);
    assert!(
        p.starts_with("p.yaml:13:15: rules[0].when.all[1].op: unknown operator \"greater\", expected one of `<`, `<=`"),
        "{p}"
    );
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    assert_eq!(
        one("pack: p\nversion: 1.0.0\nrulez: []\n"),
        "p.yaml:3:1: rulez: unknown key \"rulez\", expected one of `pack`, `version`, `description`, `default`, `default_reason`, `match`, `rules`"
    );
    let p = one(&format!(
        "{HEAD}  - id: r\n    outcome: allow\n    colour: red\n"
    ));
    assert!(
        p.starts_with("p.yaml:6:5: rules[0].colour: unknown key \"colour\""),
        "{p}"
    );
    let p = one(&format!(
        "{HEAD}  - id: r\n    outcome: allow\n    match: {{actor: x}}\n"
    ));
    assert!(
        p.starts_with("p.yaml:6:13: rules[0].match.actor: unknown key \"actor\""),
        "{p}"
    );
    let p = one(&rule_when("field: a\nop: exists\nthreshold: 3"));
    assert!(
        p.starts_with("p.yaml:10:7: rules[0].when.threshold: unknown key"),
        "{p}"
    );
    let p = one(&rule_when("all: []\nlabel: x"));
    assert!(
        p.starts_with("p.yaml:9:7: rules[0].when.label: unknown key"),
        "{p}"
    );
}

#[test]
fn inconsistent_values_are_load_errors() {
    let table = [
        ("field: a\nop: \">\"\nvalue: lots", "p.yaml:10:14: rules[0].when.value: operator \">\" needs a number, found a string"),
        ("field: a\nop: between\nvalue: [1]", "p.yaml:10:14: rules[0].when.value: operator \"between\" needs a list of two numbers [low, high], found a list of 1 item(s)"),
        ("field: a\nop: between\nvalue: [5, 1]", "p.yaml:10:14: rules[0].when.value: `between` bounds are reversed: 5 > 1"),
        ("field: a\nop: \">\"", "p.yaml:8:7: rules[0].when: operator \">\" needs a `value`"),
        ("field: a\nop: exists\nvalue: 1", "p.yaml:10:14: rules[0].when.value: operator \"exists\" takes no `value`"),
        ("field: a\nop: in\nvalue: []", "p.yaml:10:14: rules[0].when.value: operator \"in\" needs a non-empty list"),
        ("field: a\nop: in\nvalue: [a, 1]", "p.yaml:10:14: rules[0].when.value: the values of \"in\" must all have one type (all strings, all numbers or all booleans)"),
        ("field: a\nop: \"==\"\nvalue: [a]", "p.yaml:10:14: rules[0].when.value: operator \"==\" compares with a string, number or boolean, found a list (use `exists` / `absent` for presence)"),
        ("field: a\nop: \"<\"\nvalue: 0.8\nzero: 0.5", "p.yaml:11:13: rules[0].when.zero: the zero point must lie on the side where \"<\" does not hold: above 0.8"),
        ("field: a\nop: \"==\"\nvalue: 1\nzero: 0", "p.yaml:11:13: rules[0].when.zero: `zero` only applies to `<`, `<=`, `>` and `>=`, not \"==\""),
        ("field: a..b\nop: exists", "p.yaml:8:14: rules[0].when.field: invalid field path \"a..b\": expected dotted names like `order.amount`"),
        ("op: exists", "p.yaml:8:7: rules[0].when: expected a condition: a mapping with one of `all`, `any`, `not`, `expr` or `field`"),
        ("field: a\nexpr: \"true\"", "p.yaml:8:7: rules[0].when: a condition has exactly one of `all`, `any`, `not`, `expr` or `field`, found `field` and `expr`"),
        ("all: {field: a, op: exists}", "p.yaml:8:12: rules[0].when.all: expected a list of conditions, found a mapping"),
    ];
    for (when, want) in table {
        assert_eq!(one(&rule_when(when)), want, "{when}");
    }
    let p = one(&rule_when("field: a\nop: matches\nvalue: \"([a-z\""));
    assert!(
        p.starts_with("p.yaml:10:14: rules[0].when.value: invalid regular expression \"([a-z\":"),
        "{p}"
    );
}

#[test]
fn cel_errors_are_load_errors() {
    let p = one(&rule_when("expr: \"context.amount >\""));
    assert!(
        p.starts_with(
            "p.yaml:8:13: rules[0].when.expr: invalid CEL expression at 1:17: Syntax error"
        ),
        "{p}"
    );
    let p = one(&rule_when("expr: \"amount > 5 && ctx.x == 1\""));
    assert_eq!(
        p,
        "p.yaml:8:13: rules[0].when.expr: unknown variable(s) amount, ctx in expression; available: context, payload, decision_type, action, agent_id, tool"
    );
}

#[test]
fn rule_level_errors() {
    let p = problems(&format!(
        "{HEAD}  - id: a\n    outcome: allow\n  - id: a\n    outcome: allow\n"
    ));
    assert_eq!(
        p,
        ["p.yaml:6:5: rules[1].id: duplicate rule id \"a\" (first used by rules[0])"]
    );
    assert_eq!(
        one(&format!("{HEAD}  - id: a\n    outcome: deny\n    reason: X\n")),
        "p.yaml:5:14: rules[0].outcome: unknown outcome \"deny\", expected one of `allow`, `warn`, `escalate` (or `require_approval`), `block`"
    );
    assert_eq!(
        one(&format!("{HEAD}  - id: a\n    outcome: block\n")),
        "p.yaml:4:5: rules[0]: a rule with `outcome: block` needs a `reason` code"
    );
    assert_eq!(
        one(&format!("{HEAD}  - id: a\n    outcome: block\n    reason: too big\n")),
        "p.yaml:6:13: rules[0].reason: invalid reason code \"too big\": use UPPER_SNAKE_CASE, e.g. AMOUNT_OVER_THRESHOLD"
    );
    assert_eq!(
        one(&format!("{HEAD}  - outcome: allow\n")),
        "p.yaml:4:5: rules[0]: missing required key \"id\""
    );
    assert_eq!(
        one("pack: p\nversion: 1.0.0\ndefault: block\n"),
        "p.yaml:1:1: `default: block` needs a `default_reason` (the reason code returned when no rule fires)"
    );
    assert_eq!(
        one("pack: p\nversion: one\n"),
        "p.yaml:2:10: version: invalid version \"one\": expected MAJOR.MINOR.PATCH, e.g. 1.0.0"
    );
    assert_eq!(
        one("version: 1.0.0\n"),
        "p.yaml:1:1: missing required key \"pack\""
    );
    assert_eq!(
        one("pack: p q\nversion: 1.0.0\n"),
        "p.yaml:1:7: pack: invalid pack id \"p q\": use letters, digits, `.`, `_` and `-`"
    );
    assert_eq!(
        one(&format!("{HEAD}  - id: a\n    outcome: allow\n    match: {{tool: []}}\n")),
        "p.yaml:6:19: rules[0].match.tool: expected a pattern or a non-empty list of patterns, found a list"
    );
}

#[test]
fn all_problems_are_reported_not_just_the_first() {
    let text = "pack: p\nversion: x\nbogus: 1\nrules:\n  - id: a\n    outcome: nope\n  - id: b\n    outcome: block\n    when: {field: n, op: greater, value: 1}\n";
    let p = problems(text);
    assert_eq!(p.len(), 5, "{p:#?}");
    assert!(p[0].starts_with("p.yaml:3:1: bogus: unknown key"), "{p:#?}");
    assert!(p[1].starts_with("p.yaml:2:10: version:"), "{p:#?}");
    assert!(
        p[2].starts_with("p.yaml:6:14: rules[0].outcome: unknown outcome"),
        "{p:#?}"
    );
    assert!(
        p[3].starts_with("p.yaml:7:5: rules[1]: a rule with `outcome: block` needs a `reason`"),
        "{p:#?}"
    );
    assert!(
        p[4].starts_with("p.yaml:9:26: rules[1].when.op: unknown operator \"greater\""),
        "{p:#?}"
    );
}

#[test]
fn problems_are_structured() {
    let err = Pack::from_yaml("pack: p\nversion: 1.0.0\nx: 1\n", "f.yaml").unwrap_err();
    let p = err.problems();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].line, p[0].column, p[0].path.as_str()), (3, 1, "x"));
    assert_eq!(p[0].source, "f.yaml");
}
