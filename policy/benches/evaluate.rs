//! Evaluation latency on a generated 50-rule pack (mixed operators, two CEL rules).
//!
//! Prints p50 / p99 / p999 from 100,000 individually timed evaluations and the single-core
//! throughput, then runs criterion for its mean.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use warden_policy::{evaluate, Input, Pack};

/// 50 rules: 10 each of numeric thresholds, between, string sets, regex and all/any/not trees,
/// two of them replaced by CEL; half scoped by decision type and action, half by agent. The
/// measured input matches every rule's selectors and fires none, so all 70 leaf conditions are
/// evaluated and recorded: the worst case for a pack of this size.
fn pack_yaml() -> String {
    pack_yaml_with(true)
}

fn pack_yaml_with(cel: bool) -> String {
    let mut y = String::from("pack: bench\nversion: 1.0.0\ndefault: allow\nrules:\n");
    for i in 0..50 {
        let outcome = ["warn", "escalate", "block"][i % 3];
        let sel = if i % 2 == 0 {
            "    match: {decision_type: [\"decision.*\", refund], action: execute_refund}\n"
        } else {
            "    match: {agent: \"agt_*\"}\n"
        };
        let when = match i {
            7 | 31 if !cel => format!("{{field: amount, op: \"<\", value: {}}}", i),
            7 => "{expr: \"context.amount > 100000.0 && context.currency == 'XTS'\"}".to_owned(),
            31 => "{expr: \"context.items.exists(i, i.sku == 'FORBIDDEN')\"}".to_owned(),
            _ => match i % 5 {
                0 => format!("{{field: amount, op: \">\", value: {}}}", 5000 + i * 100),
                1 => format!("{{field: customer.age_days, op: between, value: [{}, {}]}}", 10000 + i, 20000 + i),
                2 => format!("{{field: currency, op: in, value: [C{i}, D{i}, E{i}]}}"),
                3 => format!("{{field: user_id, op: matches, value: \"^blocked_{i}_\"}}"),
                _ => format!(
                    "{{all: [{{field: amount, op: \">=\", value: {}}}, {{any: [{{field: country, op: \"==\", value: X{i}}}, {{not: {{field: user_id, op: exists}}}}]}}]}}",
                    100 + i
                ),
            },
        };
        write!(
            y,
            "  - id: rule-{i}\n{sel}    when: {when}\n    outcome: {outcome}\n    reason: REASON_{i}\n"
        )
        .unwrap();
    }
    y
}

fn input() -> Input {
    Input::new("decision.evaluate")
        .with_action("execute_refund")
        .with_agent("agt_9f81a7")
        .with_context(json!({
            "amount": 1250.0,
            "currency": "EUR",
            "user_id": "usr_22",
            "country": "DE",
            "customer": {"age_days": 400},
            "items": [{"sku": "A1", "qty": 1}, {"sku": "B2", "qty": 3}]
        }))
}

fn percentiles(pack: &Pack, input: &Input) {
    const N: usize = 100_000;
    for _ in 0..10_000 {
        black_box(evaluate(pack, input).unwrap());
    }
    let mut samples = Vec::with_capacity(N);
    let start = Instant::now();
    for _ in 0..N {
        let t = Instant::now();
        black_box(evaluate(black_box(pack), black_box(input)).unwrap());
        samples.push(t.elapsed().as_nanos() as u64);
    }
    let total = start.elapsed();
    samples.sort_unstable();
    let p = |q: f64| samples[((N as f64 * q) as usize).min(N - 1)] as f64 / 1000.0;
    println!(
        "50-rule pack, {N} single evaluations: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs; {:.0} evaluations/s on one core",
        p(0.50),
        p(0.99),
        p(0.999),
        *samples.last().unwrap() as f64 / 1000.0,
        N as f64 / total.as_secs_f64()
    );
}

fn bench(c: &mut Criterion) {
    let pack = Pack::from_yaml(&pack_yaml(), "bench.yaml").unwrap();
    let input = input();
    let ev = evaluate(&pack, &input).unwrap();
    println!(
        "verdict {} with {} conditions evaluated, {} rules fired",
        ev.verdict,
        ev.conditions.len(),
        ev.matched_rules.len()
    );
    percentiles(&pack, &input);
    c.bench_function("evaluate_50_rules", |b| {
        b.iter(|| evaluate(black_box(&pack), black_box(&input)).unwrap())
    });
    let plain = Pack::from_yaml(&pack_yaml_with(false), "plain.yaml").unwrap();
    println!("without the two CEL rules:");
    percentiles(&plain, &input);
    c.bench_function("evaluate_50_rules_no_cel", |b| {
        b.iter(|| evaluate(black_box(&plain), black_box(&input)).unwrap())
    });
    let no_cel = Input::new("other").with_context(input.context.clone());
    c.bench_function("evaluate_50_rules_selectors_only", |b| {
        b.iter(|| evaluate(black_box(&pack), black_box(&no_cel)).unwrap())
    });
    c.bench_function("serialize_evaluation", |b| {
        b.iter(|| serde_json::to_vec(black_box(&ev)).unwrap())
    });
    c.bench_function("load_50_rule_pack", |b| {
        let y = pack_yaml();
        b.iter(|| Pack::from_yaml(black_box(&y), "bench.yaml").unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
