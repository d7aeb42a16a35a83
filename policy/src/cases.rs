//! Table tests for packs (`warden policy test PACK CASES.yaml`).
//!
//! A cases file is a list of cases, or a mapping with a `cases:` list:
//! ```yaml
//! cases:
//!   - name: small refund is allowed
//!     input: { decision_type: decision.evaluate, action: execute_refund, context: { amount: 20 } }
//!     expect: { verdict: allow }
//!   - name: large refund needs approval
//!     input: { decision_type: decision.evaluate, action: execute_refund, context: { amount: 1250.0 } }
//!     expect: { verdict: escalate, reason_codes: [AMOUNT_OVER_THRESHOLD] }
//! ```
//! `reason_codes`, when given, must equal the evaluation's codes as a set.

use serde::{Deserialize, Serialize};

use crate::error::{PackError, Problems as ProblemList};
use crate::input::Input;
use crate::model::Outcome;
use crate::set::PolicySet;
use crate::yaml::{self, join, Kind, Node, Problems};

/// The outcome of a cases file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    /// How many cases passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
    /// Every case, in file order.
    pub cases: Vec<CaseResult>,
}

impl CaseReport {
    /// True when every case passed.
    #[must_use]
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Whether the verdict (and reason codes, if expected) matched.
    pub passed: bool,
    /// The expected verdict.
    pub expected_verdict: Outcome,
    /// The expected reason codes, if the case names them (sorted).
    pub expected_reason_codes: Option<Vec<String>>,
    /// The verdict the policy set gave (`None` if evaluation failed).
    pub actual_verdict: Option<Outcome>,
    /// The reason codes it gave.
    pub actual_reason_codes: Vec<String>,
    /// The utilization it gave.
    pub utilization: Option<f64>,
    /// The evaluation error, if any.
    pub error: Option<String>,
}

struct Case {
    name: String,
    input: Input,
    verdict: Outcome,
    reason_codes: Option<Vec<String>>,
}

/// Runs every case of `cases_yaml` against `set`.
///
/// # Errors
/// [`PackError::Invalid`] with every problem of the cases file (positions prefixed by
/// `source_name`). Failing cases are not errors: they are in the report.
pub fn run_cases(
    set: &PolicySet,
    cases_yaml: &str,
    source_name: &str,
) -> Result<CaseReport, PackError> {
    let cases = parse(cases_yaml, source_name)?;
    let mut report = CaseReport {
        passed: 0,
        failed: 0,
        cases: Vec::with_capacity(cases.len()),
    };
    for c in cases {
        let result = match set.evaluate(&c.input) {
            Ok(ev) => {
                let codes_ok = c
                    .reason_codes
                    .as_ref()
                    .is_none_or(|want| *want == ev.reason_codes);
                CaseResult {
                    name: c.name,
                    passed: ev.verdict == c.verdict && codes_ok,
                    expected_verdict: c.verdict,
                    expected_reason_codes: c.reason_codes,
                    actual_verdict: Some(ev.verdict),
                    actual_reason_codes: ev.reason_codes,
                    utilization: Some(ev.utilization),
                    error: None,
                }
            }
            Err(e) => CaseResult {
                name: c.name,
                passed: false,
                expected_verdict: c.verdict,
                expected_reason_codes: c.reason_codes,
                actual_verdict: None,
                actual_reason_codes: Vec::new(),
                utilization: None,
                error: Some(e.to_string()),
            },
        };
        if result.passed {
            report.passed += 1;
        } else {
            report.failed += 1;
        }
        report.cases.push(result);
    }
    Ok(report)
}

fn parse(text: &str, source: &str) -> Result<Vec<Case>, PackError> {
    let mut p = Problems::new(source);
    let mut cases = Vec::new();
    if let Some(root) = yaml::parse(text, &mut p) {
        let list = match &root.kind {
            Kind::Seq(_) => Some((&root, "cases".to_owned())),
            _ => p
                .fields(&root, "", &["cases"])
                .and_then(|f| f.get("cases"))
                .map(|n| (n, "cases".to_owned())),
        };
        match list {
            Some((node, path)) => match &node.kind {
                Kind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = case(item, &format!("{path}[{i}]"), &mut p) {
                            cases.push(c);
                        }
                    }
                }
                _ => p.at(
                    node,
                    &path,
                    format!("expected a list of cases, found {}", node.describe()),
                ),
            },
            None if p.list.is_empty() => p.at(&root, "", "missing required key \"cases\""),
            None => {}
        }
    } else if p.list.is_empty() {
        p.at_pos(1, 1, "", "empty document: expected a list of cases");
    }
    if p.list.is_empty() {
        Ok(cases)
    } else {
        Err(PackError::Invalid(ProblemList(p.list)))
    }
}

fn case(node: &Node, path: &str, p: &mut Problems) -> Option<Case> {
    let f = p.fields(node, path, &["name", "input", "expect"])?;
    let name = p.req_str(&f, "name", path);
    let input = match f.get("input") {
        None => {
            p.at(node, path, "missing required key \"input\"");
            None
        }
        Some(n) => {
            let ipath = join(path, "input");
            match n.to_json() {
                Err(bad) => {
                    p.at(bad, &ipath, "a number JSON cannot hold (NaN or infinity)");
                    None
                }
                Ok(json) => match serde_json::from_value::<Input>(json) {
                    Ok(i) => Some(i),
                    Err(e) => {
                        p.at(n, &ipath, format!("invalid input: {e}"));
                        None
                    }
                },
            }
        }
    };
    let (verdict, reason_codes) = match f.get("expect") {
        None => {
            p.at(node, path, "missing required key \"expect\"");
            (None, None)
        }
        Some(n) => expect(n, &join(path, "expect"), p),
    };
    Some(Case {
        name: name?,
        input: input?,
        verdict: verdict?,
        reason_codes,
    })
}

fn expect(node: &Node, path: &str, p: &mut Problems) -> (Option<Outcome>, Option<Vec<String>>) {
    let Some(f) = p.fields(node, path, &["verdict", "reason_codes"]) else {
        return (None, None);
    };
    let verdict = p.req_str(&f, "verdict", path).and_then(|s| {
        let o = Outcome::parse(&s);
        if o.is_none() {
            p.at(
                f.get("verdict").unwrap_or(node),
                &join(path, "verdict"),
                format!(
                    "unknown verdict {s:?}, expected one of `allow`, `warn`, `escalate`, `block`"
                ),
            );
        }
        o
    });
    let codes = f.get("reason_codes").and_then(|n| {
        let cpath = join(path, "reason_codes");
        let Kind::Seq(items) = &n.kind else {
            p.at(
                n,
                &cpath,
                format!("expected a list of reason codes, found {}", n.describe()),
            );
            return None;
        };
        let mut codes: Vec<String> = items
            .iter()
            .enumerate()
            .filter_map(|(i, c)| p.string(c, &format!("{cpath}[{i}]")))
            .collect();
        codes.sort();
        codes.dedup();
        Some(codes)
    });
    (verdict, codes)
}
