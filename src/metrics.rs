//! `/metrics` on the admin port: the Prometheus recorder every crate reports to (through the
//! `metrics` facade), the description of each metric, and the gauges read at scrape time.

use std::sync::Arc;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds for every `_seconds` histogram: from 100 µs (a policy check) to a minute (a
/// held escalation or a long stream's head).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder. Called once, by `serve`, inside its runtime.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    describe();
    // The recorder keeps every histogram sample until an upkeep folds it into the buckets, and
    // `install_recorder` (unlike the exporter's own listener) runs none: without a scrape,
    // memory grew with every request served.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "warden_http_requests_total",
        "Requests on the data-plane port by matched route, method, status and verdict."
    );
    describe_histogram!(
        "warden_http_request_duration_seconds",
        "Time to the response head by matched route and verdict."
    );
    describe_counter!(
        "warden_guardian_triggers_total",
        "Guardian findings by detector and action."
    );
    describe_counter!(
        "warden_llm_tokens_total",
        "Tokens of proxied LLM calls by direction, model and tenant (the first 100 values of each; later ones are `other`)."
    );
    describe_counter!(
        "warden_rate_limit_rejections_total",
        "Requests refused by a rate limit, by surface, limit scope and kind."
    );
    describe_counter!(
        "warden_governance_events_total",
        "Governance events recorded, by type."
    );
    describe_counter!(
        "warden_webhook_deliveries_total",
        "Webhook delivery attempts by outcome (delivered, failed, dead_lettered)."
    );
    describe_gauge!(
        "warden_webhook_pending_deliveries",
        "Webhook deliveries waiting for their next attempt."
    );
    describe_gauge!(
        "warden_webhook_dead_letters",
        "Webhook deliveries in the dead-letter queue."
    );
    describe_gauge!(
        "warden_escalations_open",
        "Decision Desk threads awaiting a human."
    );
    describe_gauge!("warden_ledger_records", "Records in the ledger.");
    describe_gauge!(
        "warden_ledger_checkpoint_age_seconds",
        "Age of the latest signed checkpoint."
    );
    describe_histogram!(
        "warden_ledger_append_duration_seconds",
        "Time from queueing a ledger record to its stage: sequenced (committed) or durable (fsynced)."
    );
    describe_histogram!(
        "warden_ledger_batch_commit_duration_seconds",
        "Time to write and commit one ledger batch."
    );
    describe_histogram!(
        "warden_ledger_fsync_duration_seconds",
        "Time of one fsync of the ledger log."
    );
    describe_counter!(
        "warden_ledger_records_appended_total",
        "Ledger records committed."
    );
    describe_counter!(
        "warden_limits_redis_unavailable_total",
        "Shared-limit operations Redis did not serve (limits.fail_mode applied)."
    );
}

/// What the scrape-time gauges are read from.
pub struct Sources {
    pub handle: PrometheusHandle,
    pub ledger: Arc<warden_ledger::Ledger>,
    pub decisions: Arc<warden_governance::Decisions>,
    pub webhooks: Arc<warden_governance::Webhooks>,
}

impl Sources {
    /// Updates the gauges and renders everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let reader = self.ledger.reader();
        match reader.size() {
            Ok(n) => metrics::gauge!("warden_ledger_records").set(n as f64),
            Err(e) => tracing::warn!(error = %e, "metrics: ledger size unavailable"),
        }
        if let Ok(Some(cp)) = reader.latest_checkpoint() {
            if let Ok(at) = time::OffsetDateTime::parse(
                &cp.timestamp,
                &time::format_description::well_known::Rfc3339,
            ) {
                let age = (time::OffsetDateTime::now_utc() - at).as_seconds_f64();
                metrics::gauge!("warden_ledger_checkpoint_age_seconds").set(age.max(0.0));
            }
        }
        match self.webhooks.queue_depths() {
            Ok(d) => {
                metrics::gauge!("warden_webhook_pending_deliveries").set(d.pending as f64);
                metrics::gauge!("warden_webhook_dead_letters").set(d.dead as f64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: webhook queue unavailable"),
        }
        match self.decisions.open_escalations() {
            Ok(n) => metrics::gauge!("warden_escalations_open").set(n as f64),
            Err(e) => tracing::warn!(error = %e, "metrics: escalations unavailable"),
        }
        metrics::counter!("warden_limits_redis_unavailable_total")
            .absolute(warden_proxy::openai::redis_unavailable_total());
        self.handle.run_upkeep();
        self.handle.render()
    }
}
