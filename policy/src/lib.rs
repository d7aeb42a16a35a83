//! # warden-policy: policy packs and their evaluation
//!
//! Warden asks this crate one question per proposed action: *allow, warn, escalate or block?* The
//! answer comes from **policy packs**: declarative YAML files, versioned, content-hashed and
//! optionally signed, evaluated by a pure function. No network, no clock, no randomness, no
//! storage: the same input under the same pack always gives the same [`Evaluation`], byte for byte
//! once serialized, so a verdict recorded in the ledger can be replayed and checked.
//!
//! ## A pack
//! ```yaml
//! pack: spend-controls            # id: letters, digits, `.`, `_`, `-`
//! version: 1.0.0                  # MAJOR.MINOR.PATCH
//! description: Refund limits      # optional
//! default: allow                  # outcome when no rule fires (default: allow)
//! # default_reason: NO_RULE       # required when `default` is stronger than allow
//! # match: { decision_type: [...] }  # optional pack scope: the pack applies only to such inputs
//! rules:
//!   - id: refund-over-threshold
//!     description: Refunds above 1,000 need a human
//!     match:                      # selectors, each optional; a glob or a list of globs (* and ?)
//!       decision_type: ["decision.evaluate", "refund"]
//!       action: execute_refund
//!       agent: "*"
//!       tool: "*"
//!     when:                       # condition tree; omitted = always
//!       all:
//!         - id: MIC-01            # optional; default `<rule>#<n>`
//!           label: Refund amount  # optional
//!           field: amount         # dotted path into the input's context (`order.items.0.sku`)
//!           op: ">"
//!           value: 1000
//!         - any: [ ... ]
//!         - not: { ... }
//!         - expr: "context.amount > 1000.0 && context.currency == 'EUR'"   # CEL
//!     outcome: escalate           # allow | warn | escalate (alias require_approval) | block
//!     reason: AMOUNT_OVER_THRESHOLD   # UPPER_SNAKE; required when outcome is not allow
//! ```
//! Unknown keys, duplicate keys and duplicate rule ids are errors; every problem is reported with
//! its `file:line:column` and path, e.g.
//! `refunds.yaml:12:15: rules[0].when.all[1].op: unknown operator "greater", expected one of ...`.
//!
//! ### Operators
//! | op | value | holds when the field's value... |
//! |---|---|---|
//! | `<` `<=` `>` `>=` | number (optional `zero:` for utilization) | compares so |
//! | `between` | `[low, high]` numbers | is in the closed range |
//! | `==` `!=` | string, number or boolean | equals / differs |
//! | `in` `not_in` | non-empty list of one type | is / is not one of them |
//! | `matches` | regex (Rust `regex` syntax, unanchored) | is a string the regex finds a match in |
//! | `exists` `absent` | none | is present and not null / is absent or null |
//!
//! A present value of the wrong type (a string where `>` needs a number) is an
//! [`EvalError::TypeMismatch`], never silently false. An absent or `null` field is not an error:
//! only `!=`, `not_in` and `absent` hold for it, so a rule like `amount > 1000` does not fire
//! when `amount` is missing: pair it with an `absent` rule where that matters. A pack that is
//! itself inconsistent (`>` with a string, `between` with one number, a bad regex, an unknown
//! operator, a CEL syntax error or unknown variable) fails to load.
//!
//! ### CEL
//! `expr` conditions are [CEL](https://github.com/google/cel-spec) expressions (the `cel` crate),
//! compiled once at load, for what field/op/value cannot say: arithmetic across fields, string
//! functions, list macros (`context.items.exists(i, i.price > 100.0)`). Variables: `context`
//! (alias `payload`), `decision_type`, `action`, `agent_id`, `tool` (`null` when absent). A missing
//! key or variable makes the condition false; any other run-time failure, or a non-boolean result,
//! is an [`EvalError::Expression`]. JSON numbers become CEL `uint` (non-negative integers), `int`
//! (negative) or `double`; `<`, `>`, `==` compare across the three. CEL conditions are binary for
//! utilization (no margin), and cost several microseconds each (the payload is converted to CEL
//! values once per evaluation, on first use), so prefer field/op/value where it suffices.
//!
//! ## Verdict
//! A rule **fires** when its selectors match and its `when` holds. Per pack: the strongest outcome
//! among fired rules (`allow < warn < escalate < block`), else the pack's `default`. Across a
//! [`PolicySet`]: the strongest pack verdict. `reason_codes`: the reasons of every fired rule at the
//! winning strength (plus the `default_reason` of packs whose default produced it), sorted and
//! deduplicated. `mic_fired` is `verdict > allow`.
//!
//! ## Utilization
//! How close the input came to a stronger outcome, 0–100 with one decimal:
//! - verdict stronger than `allow`: **100** (the action is at or past a boundary);
//! - verdict `allow`: the largest *closeness* among the rules with outcome stronger than `allow`
//!   whose selectors matched (and which therefore did not fire), times 100, rounded to one decimal
//!   and capped at 99.9 (so 100 always means "stopped"); 0 when there is none.
//!
//! Closeness of a condition, from 0 (far) to 1 (at the boundary; 1 also when it holds):
//! - `>` / `>=` with threshold `t` and value `a`: `1 - (t - a) / s`, clamped to 0..1;
//!   `<` / `<=`: `1 - (a - t) / s`. The scale `s` is the distance from `t` to the condition's
//!   **zero point**: `zero:` when given (it must lie on the non-firing side), else `|t|` (so the
//!   zero point is 0 for `> t` with positive `t`, and `2t` for `< t`), or 1 when `t` is 0.
//! - `between [lo, hi]`: the same, with the nearer bound as `t` and `s` = that bound's `|t|` (or 1).
//! - every other operator, `not` and `expr`: 1 if it holds, else 0 (no margin to measure).
//! - `all`: the smallest closeness of its children; `any`: the largest; a rule without `when`: 1.
//!
//! Worked examples (the embedded default pack, [`DEFAULT_PACK_YAML`]):
//! - Budget change `{change_pct: 20, confidence: 0.91, sample_size: 1200}`: `change_pct > 30`
//!   (escalate) gives `1 - 10/30 = 0.667`; `change_pct > 50` (block) `1 - 30/50 = 0.4`;
//!   `confidence < 0.85` with `zero: 1.0` gives `1 - 0.06/0.15 = 0.6`; `sample_size < 800` gives
//!   `1 - 400/800 = 0.5`. Verdict `allow`, utilization **66.7**, nearest rule the 30% threshold.
//! - Refund `{amount: 1250.00}`: `amount > 1000` fires: `escalate`, `AMOUNT_OVER_THRESHOLD`, 100.
//! - Refund `{amount: 600}`: `600/1000`: `allow`, utilization **60.0**.
//!
//! ## Hash and signatures
//! [`Pack::hash`] is `sha256:` + hex SHA-256 of [`Pack::canonical_json`]: the YAML document
//! converted to JSON and written in RFC 8785 (JCS) canonical form. Comments, whitespace, key
//! order and quoting do not change it; any value (a threshold) does. A detached Ed25519 signature
//! signs that hash string ([`trust`] module); [`load_pack_file`] with a
//! [`TrustPolicy::RequireSignature`] refuses unsigned or badly signed packs.
//!
//! ## Determinism
//! Packs, rules and conditions are kept in vectors and walked in order; a [`PolicySet`] orders its
//! packs by id; reason codes are sorted; numbers are serialized by `serde_json` (ryu: one
//! shortest form per `f64`); utilization is rounded to one decimal with IEEE arithmetic only (no
//! transcendental functions). Every condition of every applicable rule is evaluated (no
//! short-circuit), so the record does not depend on evaluation order either.
//!
//! ## Cost
//! Evaluation allocates little: the strings and thresholds of loaded packs are interned for the
//! life of the process (bounded by the distinct policy text ever loaded; reloading the same packs
//! adds nothing), so the record of each condition borrows them; each field path is looked up once
//! per evaluation; rules sharing their selectors share one match. An `expr` comparing payload
//! fields or the input's names with literals (with `has`, `&&`, `||`, `!`, `exists`) reads the
//! input directly when the answer is certain, and otherwise runs the CEL interpreter with only the variables, and payload keys,
//! it uses. On the shared 2-core development machine a 50-rule pack evaluates in about 4 µs (p50),
//! with or without two such CEL rules: see the root `BENCHMARKS.md`.
//!
//! ## What it can miss
//! - An absent field makes `>`, `==`, `in`, `matches`... false: a pack that must stop actions
//!   lacking data needs an `absent` rule (the default pack has them for amounts and changes).
//! - Numbers are compared as `f64`: integers beyond 2^53 lose precision.
//! - `matches` is unanchored (Rust `regex` syntax, linear time): write `^...$` to match whole
//!   values.
//! - `in` / `==` compare scalars; a payload list is a type mismatch (use CEL for list contents).
//! - Utilization only measures numeric margins; an unmet `==`, `matches` or `expr` counts as far.
//!   It also ignores how close an `allow` rule came to un-firing in a `default: block` pack.
//! - Load-time checking of CEL variables treats the first argument(s) of macros (`exists(x, ...)`)
//!   as loop variables by their position in the text, not by a full scope analysis.
//!
//! ## Hot reload
//! [`LivePolicySet`] holds the set in an `ArcSwap`: readers never block; [`LivePolicySet::reload`]
//! loads and validates a whole directory and swaps only if every file is valid, keeping the old
//! set otherwise. [`LivePolicySet::watch`] polls the directory from a background thread and calls
//! `reload` when a pack or signature file changes.
//!
//! ## Example
//! ```
//! use warden_policy::{evaluate, Input, Outcome, Pack};
//!
//! let pack = Pack::from_yaml(
//!     "pack: refunds\nversion: 1.0.0\nrules:\n  - id: big\n    match: {action: execute_refund}\n    when: {field: amount, op: \">\", value: 1000}\n    outcome: escalate\n    reason: AMOUNT_OVER_THRESHOLD\n",
//!     "refunds.yaml",
//! )?;
//! let input = Input::new("decision.evaluate")
//!     .with_action("execute_refund")
//!     .with_context(serde_json::json!({"amount": 1250.00, "user_id": "usr_22"}));
//! let ev = evaluate(&pack, &input)?;
//! assert_eq!(ev.verdict, Outcome::Escalate);
//! assert_eq!(ev.reason_codes, ["AMOUNT_OVER_THRESHOLD"]);
//! let json = serde_json::to_string(&ev)?; // what the REST API returns and the ledger records
//! # let _ = json;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod cases;
mod error;
mod eval;
mod fast;
mod input;
mod intern;
mod model;
mod pack;
mod set;
pub mod trust;
mod yaml;

pub use cases::{run_cases, CaseReport, CaseResult};
pub use error::{EvalError, PackError, Problem, Problems};
pub use eval::{evaluate, ConditionResult, Evaluation, MatchedRule, PackRef, RuleRef};
pub use input::Input;
pub use model::Outcome;
pub use pack::{default_pack, Pack, DEFAULT_PACK_YAML, EXPR_VARIABLES, OPERATORS};
pub use set::{LivePolicySet, PolicySet, PolicyWatcher, Reloaded};
pub use trust::{key_id, load_pack_file, sign_pack, TrustPolicy, TrustedKey};
