//! Governance events and their webhooks (`events:`), and trace export (`telemetry:`).

use std::path::PathBuf;
use std::time::Duration;

/// Where one webhook signing secret is read from, at start-up. Webhook registrations name a
/// secret by its alias, so the secret itself never travels through the API or the store.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WebhookSecretConfig {
    /// The name registrations use (`hmac_secret_alias`).
    pub alias: String,
    /// An environment variable holding the secret (`whsec_<base64>` or any string of 16+ bytes).
    pub env: Option<String>,
    /// A file holding it (trailing whitespace ignored), e.g. a mounted Kubernetes Secret.
    pub file: Option<PathBuf>,
}

/// Governance events and webhook delivery (`events:` in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct EventsConfig {
    /// Secrets webhook registrations may sign with.
    pub webhook_secrets: Vec<WebhookSecretConfig>,
    /// Webhook targets allowed to be plain `http` or to resolve to loopback, private or
    /// link-local addresses: `host` or `host:port` (`*.internal` matches subdomains). Default none.
    pub allowed_targets: Vec<String>,
    /// How long one delivery attempt may take. Default 10 seconds.
    pub delivery_timeout: Duration,
    /// Attempts before a delivery goes to the dead-letter queue. Default 8.
    pub max_attempts: usize,
    /// The wait after the first failure; it doubles after each (with jitter). Default 5 seconds.
    pub retry_base: Duration,
    /// The longest wait between attempts. Default 1 hour.
    pub retry_max: Duration,
    /// Deliveries in flight to one endpoint at a time. Default 4.
    pub endpoint_concurrency: usize,
    /// How often a `ledger.checkpoint` event is emitted while the ledger grows. Default 1 minute.
    pub checkpoint_interval: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            webhook_secrets: Vec::new(),
            allowed_targets: Vec::new(),
            delivery_timeout: Duration::from_secs(10),
            max_attempts: 8,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            endpoint_concurrency: 4,
            checkpoint_interval: Duration::from_secs(60),
        }
    }
}

/// OpenTelemetry trace export (`telemetry:` in the file). Off unless an endpoint is set.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint base, e.g. `http://otel-collector:4318` (spans go to `/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// How spans are encoded. Default [`OtlpProtocol::Protobuf`].
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of the spans. Default `warden`.
    pub service_name: String,
}

/// The OTLP/HTTP encoding (`telemetry.otlp_protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`, what collectors expect by default.
    #[default]
    Protobuf,
    /// `http/json`.
    Json,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Protobuf,
            service_name: "warden".to_owned(),
        }
    }
}
