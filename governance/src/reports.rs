//! Read-only views over an agency's decisions: the client-portal summary and the governance
//! efficiency score of seed 001.
//!
//! **Efficiency.** Each decision scored in the period contributes a score from its utilization
//! `u` (0–100, see `warden-policy`). `u` inside the amber band 60–85 scores 100: the agent works
//! confidently near, not past, the policy's limits. Below the band the score falls linearly to 0
//! at `u = 0` (`u / 60 * 100`: the policy may be too loose to matter). Above it the score falls
//! linearly to 0 at `u = 100` (`(100 - u) / 15 * 100`: the agent is at or past its limits;
//! blocked and escalated decisions have `u = 100`). `efficiency_score_pct` is the mean score;
//! `amber_band_pct` the share of decisions inside the band.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::args;
use crate::decisions::{Decisions, GovError};
use crate::keys::Principal;
use crate::scope::Scope;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecentDecision {
    pub decision_id: String,
    pub verdict: String,
    pub decision_type: String,
    /// The reason codes, or why it was allowed.
    pub reasoning: String,
    pub record_hash: Option<String>,
    pub created_at: String,
}

/// `GET /v1/client/{token}/summary`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientSummary {
    pub agency_id: String,
    pub decisions_this_month: u64,
    pub total_decisions: u64,
    /// Decisions stopped before execution: blocked or escalated.
    pub false_winners_caught: u64,
    pub recent_decisions: Vec<RecentDecision>,
}

/// `GET /v1/governance/efficiency/{agency_id}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Efficiency {
    pub agency_id: String,
    pub efficiency_score_pct: f64,
    pub amber_band_pct: f64,
    pub total_decisions_scored: u64,
    pub period: String,
}

/// The score of one decision's utilization; see the module docs.
pub fn efficiency_of(u: f64) -> f64 {
    let u = u.clamp(0.0, 100.0);
    if u < 60.0 {
        u / 60.0 * 100.0
    } else if u <= 85.0 {
        100.0
    } else {
        (100.0 - u) / 15.0 * 100.0
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

struct Row {
    id: String,
    verdict: String,
    decision_type: String,
    evaluation: String,
    record_hash: Option<String>,
    created_at: String,
}

impl Decisions {
    fn agency_decisions(
        &self,
        tenant: &str,
        agency: &str,
        since: Option<&str>,
    ) -> Result<Vec<Row>, GovError> {
        self.store
            .query(
                "SELECT coalesce(d.decision_id, d.id), d.verdict, d.decision_type, d.evaluation,
                        d.record_hash, d.created_at
                 FROM decisions d JOIN intents i ON i.id = d.intent_id
                 WHERE d.tenant_id = ?1 AND i.agency_id = ?2 AND (CAST(?3 AS TEXT) IS NULL OR d.created_at >= ?3)
                 ORDER BY d.created_at DESC, d.id",
                args![tenant, agency, since],
            )?
            .iter()
            .map(|r| {
                Ok(Row {
                    id: r.get(0)?,
                    verdict: r.get(1)?,
                    decision_type: r.get(2)?,
                    evaluation: r.get(3)?,
                    record_hash: r.get(4)?,
                    created_at: r.get(5)?,
                })
            })
            .collect()
    }

    /// The portal summary of one agency. A `client:<agency_id>` key sees only its own agency;
    /// a `read` key of the tenant sees any.
    pub fn client_summary(&self, p: &Principal, agency: &str) -> Result<ClientSummary, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Client(agency.to_owned()))) {
            return Err(GovError::Forbidden(Scope::Client(agency.to_owned())));
        }
        let rows = self.agency_decisions(&p.tenant, agency, None)?;
        let month = &crate::now()[..7];
        Ok(ClientSummary {
            agency_id: agency.to_owned(),
            decisions_this_month: rows
                .iter()
                .filter(|r| r.created_at.starts_with(month))
                .count() as u64,
            total_decisions: rows.len() as u64,
            false_winners_caught: rows
                .iter()
                .filter(|r| r.verdict == "block" || r.verdict == "escalate")
                .count() as u64,
            recent_decisions: rows
                .iter()
                .take(20)
                .map(|r| {
                    let eval: Value = serde_json::from_str(&r.evaluation).unwrap_or(Value::Null);
                    let codes: Vec<String> =
                        serde_json::from_value(eval["reason_codes"].clone()).unwrap_or_default();
                    RecentDecision {
                        decision_id: r.id.clone(),
                        verdict: r.verdict.to_ascii_uppercase(),
                        decision_type: r.decision_type.clone(),
                        reasoning: if codes.is_empty() {
                            "within policy".into()
                        } else {
                            codes.join(", ")
                        },
                        record_hash: r.record_hash.clone(),
                        created_at: r.created_at.clone(),
                    }
                })
                .collect(),
        })
    }

    /// The efficiency score of one agency over the last `days` days (1 to 366).
    pub fn efficiency(
        &self,
        p: &Principal,
        agency: &str,
        days: u32,
    ) -> Result<Efficiency, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
            return Err(GovError::Forbidden(Scope::Read));
        }
        if !(1..=366).contains(&days) {
            return Err(GovError::Invalid {
                field: "period",
                message: "must be from 1d to 366d".into(),
            });
        }
        let since_ms = (time::OffsetDateTime::now_utc() - time::Duration::days(days.into()))
            .unix_timestamp_nanos()
            / 1_000_000;
        let since = warden_ledger::format_timestamp(since_ms as i64);
        let rows = self.agency_decisions(&p.tenant, agency, Some(&since))?;
        let utilizations: Vec<f64> = rows
            .iter()
            .filter_map(|r| {
                serde_json::from_str::<Value>(&r.evaluation).ok()?["utilization"].as_f64()
            })
            .collect();
        let n = utilizations.len();
        let (score, amber) = if n == 0 {
            (0.0, 0.0)
        } else {
            (
                utilizations.iter().map(|u| efficiency_of(*u)).sum::<f64>() / n as f64,
                utilizations
                    .iter()
                    .filter(|u| (60.0..=85.0).contains(*u))
                    .count() as f64
                    * 100.0
                    / n as f64,
            )
        };
        Ok(Efficiency {
            agency_id: agency.to_owned(),
            efficiency_score_pct: round1(score),
            amber_band_pct: round1(amber),
            total_decisions_scored: n as u64,
            period: format!("{days}d"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::efficiency_of;

    #[test]
    fn the_amber_band_scores_full_and_both_sides_fall_off() {
        assert_eq!(efficiency_of(72.0), 100.0);
        assert_eq!(efficiency_of(60.0), 100.0);
        assert_eq!(efficiency_of(85.0), 100.0);
        assert_eq!(efficiency_of(30.0), 50.0);
        assert_eq!(efficiency_of(0.0), 0.0);
        assert_eq!(efficiency_of(100.0), 0.0);
        assert!((efficiency_of(92.5) - 50.0).abs() < 1e-9);
    }
}
