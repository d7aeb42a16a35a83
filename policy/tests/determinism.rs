//! The same input under the same pack gives byte-identical serialized evaluations, also on a
//! re-loaded copy of the pack and across a policy set built in another order.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use warden_policy::{evaluate, Input, Pack, PolicySet, DEFAULT_PACK_YAML};

const PACK: &str = r#"
pack: mixed
version: 1.0.0
rules:
  - id: big
    when: {id: M1, label: Amount, field: amount, op: ">", value: 1000}
    outcome: escalate
    reason: BIG
  - id: band
    when: {any: [{field: amount, op: between, value: [-10, 10]}, {field: score, op: "<", value: 0.5, zero: 1}]}
    outcome: warn
    reason: BAND
  - id: names
    match: {decision_type: ["a*", "b"]}
    when: {all: [{field: name, op: in, value: [x, y, z]}, {not: {field: name, op: matches, value: "^q"}}]}
    outcome: block
    reason: NAMES
  - id: cel
    when: {expr: "has(context.amount) && has(context.score) && double(context.amount) * context.score > 50.0"}
    outcome: warn
    reason: CEL
  - id: present
    when: {field: flag, op: exists}
    outcome: allow
    reason: FLAGGED
"#;

fn arb_input() -> impl Strategy<Value = Input> {
    (
        prop_oneof![Just("a1"), Just("b"), Just("c")],
        proptest::option::of(-2000.0f64..5000.0),
        proptest::option::of(0.0f64..1.0),
        proptest::option::of(prop_oneof![Just("x"), Just("q"), Just("w")]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(-100i64..100),
    )
        .prop_map(|(dt, amount, score, name, flag, int_amount)| {
            let mut ctx = Map::new();
            if let Some(a) = int_amount {
                ctx.insert("amount".into(), json!(a));
            } else if let Some(a) = amount {
                ctx.insert("amount".into(), json!(a));
            }
            if let Some(s) = score {
                ctx.insert("score".into(), json!(s));
            }
            if let Some(n) = name {
                ctx.insert("name".into(), json!(n));
            }
            if let Some(f) = flag {
                ctx.insert("flag".into(), json!(f));
            }
            Input::new(dt).with_context(Value::Object(ctx))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn evaluation_is_byte_identical(input in arb_input()) {
        let pack = Pack::from_yaml(PACK, "mixed.yaml").unwrap();
        let reloaded = Pack::from_yaml(PACK, "mixed.yaml").unwrap();
        let first = serde_json::to_string(&evaluate(&pack, &input).unwrap()).unwrap();
        let second = serde_json::to_string(&evaluate(&pack, &input).unwrap()).unwrap();
        let third = serde_json::to_string(&evaluate(&reloaded, &input).unwrap()).unwrap();
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(&first, &third);

        let d1 = Pack::from_yaml(DEFAULT_PACK_YAML, "d").unwrap();
        let d2 = Pack::from_yaml(DEFAULT_PACK_YAML, "d").unwrap();
        let s1 = PolicySet::new([Pack::from_yaml(PACK, "m").unwrap(), d1]).unwrap();
        let s2 = PolicySet::new([d2, Pack::from_yaml(PACK, "m").unwrap()]).unwrap();
        let a = serde_json::to_string(&s1.evaluate(&input).unwrap()).unwrap();
        let b = serde_json::to_string(&s2.evaluate(&input).unwrap()).unwrap();
        prop_assert_eq!(a, b);

        // Utilization stays in range with one decimal.
        let ev = evaluate(&pack, &input).unwrap();
        prop_assert!((0.0..=100.0).contains(&ev.utilization));
        prop_assert_eq!((ev.utilization * 10.0).round() / 10.0, ev.utilization);
        prop_assert_eq!(ev.mic_fired, ev.utilization == 100.0);
    }
}
