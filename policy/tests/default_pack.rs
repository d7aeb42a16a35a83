//! The embedded default pack on the seeds' example payloads.

use serde_json::json;
use warden_policy::{default_pack, evaluate, Input, Outcome, PolicySet};

fn budget(payload: serde_json::Value) -> Input {
    Input::new("budget_change")
        .with_agent("agt_1")
        .with_context(payload)
}

fn refund(payload: serde_json::Value) -> Input {
    Input::new("decision.evaluate")
        .with_action("execute_refund")
        .with_agent("agt_9f81a7")
        .with_context(payload)
}

#[test]
fn seed_001_budget_change_is_allowed_with_margin() {
    let pack = default_pack();
    let ev = evaluate(
        &pack,
        &budget(json!({"change_pct": 20, "confidence": 0.91, "sample_size": 1200})),
    )
    .unwrap();
    assert_eq!(ev.verdict, Outcome::Allow);
    assert!(!ev.mic_fired);
    assert!(ev.reason_codes.is_empty());
    assert!(ev.matched_rules.is_empty());
    // 1 - (30 - 20) / 30 = 0.667: the 30% escalation threshold is the nearest boundary.
    assert_eq!(ev.utilization, 66.7);
    let nearest = ev.nearest_rule.unwrap();
    assert_eq!(&*nearest.rule, "budget-change-large");
    // Every condition of every applicable rule is recorded.
    let ids: Vec<&str> = ev.conditions.iter().map(|c| &*c.id).collect();
    assert_eq!(
        ids,
        [
            "MIC-01",
            "MIC-02",
            "MIC-03",
            "MIC-04",
            "budget-change-unmeasured#1"
        ]
    );
    let mic3 = &ev.conditions[2];
    assert_eq!(mic3.label.as_deref(), Some("Model confidence"));
    assert_eq!(*mic3.threshold, json!(0.85));
    assert_eq!(mic3.actual_value, json!(0.91));
    assert!(!mic3.passed);
    assert_eq!(ev.packs.len(), 1);
    assert_eq!(ev.policy_hash, pack.hash());
}

#[test]
fn seed_004_refund_requires_approval() {
    let pack = default_pack();
    let ev = evaluate(
        &pack,
        &refund(json!({"amount": 1250.00, "user_id": "usr_22"})),
    )
    .unwrap();
    assert_eq!(ev.verdict, Outcome::Escalate);
    assert!(ev.verdict.requires_approval());
    assert_eq!(ev.reason_codes, ["AMOUNT_OVER_THRESHOLD"]);
    assert!(ev.mic_fired);
    assert_eq!(ev.utilization, 100.0);
    assert_eq!(ev.matched_rules.len(), 1);
    assert_eq!(&*ev.matched_rules[0].rule, "refund-over-threshold");
    let c = ev
        .conditions
        .iter()
        .find(|c| &*c.id == "REFUND-02")
        .unwrap();
    assert_eq!(c.actual_value, json!(1250.0));
    assert!(c.passed);
}

#[test]
fn default_pack_other_examples() {
    let pack = default_pack();
    let small = evaluate(&pack, &refund(json!({"amount": 600}))).unwrap();
    assert_eq!((small.verdict, small.utilization), (Outcome::Allow, 60.0));
    let huge = evaluate(&pack, &refund(json!({"amount": 20000}))).unwrap();
    assert_eq!(huge.verdict, Outcome::Block);
    assert_eq!(huge.reason_codes, ["AMOUNT_OVER_LIMIT"]);
    let missing = evaluate(&pack, &refund(json!({"user_id": "u"}))).unwrap();
    assert_eq!(missing.reason_codes, ["AMOUNT_MISSING"]);
    let weak = evaluate(
        &pack,
        &budget(json!({"change_pct": 35, "confidence": 0.7, "sample_size": 100})),
    )
    .unwrap();
    assert_eq!(weak.verdict, Outcome::Escalate);
    assert_eq!(
        weak.reason_codes,
        [
            "BUDGET_CHANGE_OVER_THRESHOLD",
            "LOW_CONFIDENCE",
            "SAMPLE_TOO_SMALL"
        ]
    );
    let llm = evaluate(&pack, &Input::new("llm.request")).unwrap();
    assert_eq!((llm.verdict, llm.utilization), (Outcome::Allow, 0.0));
    assert!(llm.conditions.is_empty());
}

#[test]
fn default_set_is_the_default_pack() {
    let set = PolicySet::with_default_pack();
    assert_eq!(set.packs().len(), 1);
    assert_eq!(set.packs()[0].id(), "warden-default");
    let ev = set.evaluate(&refund(json!({"amount": 1250.0}))).unwrap();
    assert_eq!(ev.verdict, Outcome::Escalate);
    assert_eq!(ev.policy_hash, set.hash());
}

#[test]
fn serialized_shape_of_the_refund_evaluation() {
    let pack = default_pack();
    let ev = evaluate(
        &pack,
        &refund(json!({"amount": 1250.00, "user_id": "usr_22"})),
    )
    .unwrap();
    let mut v = serde_json::to_value(&ev).unwrap();
    // The hash is checked elsewhere; keep this golden independent of the pack's text.
    assert_eq!(v["policy_hash"].as_str(), Some(pack.hash()));
    v["policy_hash"] = json!("<hash>");
    v["packs"][0]["hash"] = json!("<hash>");
    assert_eq!(
        v,
        json!({
            "verdict": "escalate",
            "reason_codes": ["AMOUNT_OVER_THRESHOLD"],
            "matched_rules": [{"pack": "warden-default", "rule": "refund-over-threshold",
                               "outcome": "escalate", "reason": "AMOUNT_OVER_THRESHOLD"}],
            "conditions": [
                {"pack": "warden-default", "rule": "refund-hard-limit", "id": "REFUND-01",
                 "label": "Refund amount", "field": "amount", "op": ">", "threshold": 10000,
                 "actual_value": 1250.0, "passed": false},
                {"pack": "warden-default", "rule": "refund-over-threshold", "id": "REFUND-02",
                 "label": "Refund amount", "field": "amount", "op": ">", "threshold": 1000,
                 "actual_value": 1250.0, "passed": true},
                {"pack": "warden-default", "rule": "refund-amount-missing",
                 "id": "refund-amount-missing#1", "label": null, "field": "amount",
                 "op": "absent", "threshold": null, "actual_value": 1250.0, "passed": false}
            ],
            "mic_fired": true,
            "utilization": 100.0,
            "nearest_rule": null,
            "packs": [{"id": "warden-default", "version": "1.0.0", "hash": "<hash>"}],
            "policy_hash": "<hash>"
        })
    );
}
