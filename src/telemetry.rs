//! Logs and traces: the `tracing` subscriber every crate logs to, in text or JSON, and, when
//! `telemetry.otlp_endpoint` is set, an OpenTelemetry layer exporting spans over OTLP/HTTP.
//!
//! Spans meant for OpenTelemetry use the target [`warden_proxy::OTEL_TARGET`]. The log output
//! filters that target out and the OpenTelemetry layer takes only it, so with tracing off those
//! spans are disabled at their call sites and cost nothing on the hot path.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use warden_config::{Config, LogFormat, OtlpProtocol};

/// Flushes the spans still buffered when dropped (at exit).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("warden: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the subscriber. A trace exporter that cannot be built is reported and left out:
/// losing traces must not stop the sidecar.
pub fn init(config: &Config) -> Telemetry {
    let otel_off = format!("{}=off", warden_proxy::OTEL_TARGET);
    // The configuration validated the directive; fall back to `info` rather than go silent.
    let filter = EnvFilter::try_new(format!("{},{otel_off}", config.log.level))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{otel_off}")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt = match config.log.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    }
    .with_filter(filter);
    let (otel, provider, problem) = match &config.telemetry.otlp_endpoint {
        None => (None, None, None),
        Some(endpoint) => match provider(config, endpoint) {
            Ok(provider) => {
                let tracer = provider.tracer("warden");
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(
                        Targets::new().with_target(warden_proxy::OTEL_TARGET, tracing::Level::INFO),
                    );
                (Some(layer), Some(provider), None)
            }
            Err(e) => (None, None, Some(e)),
        },
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    if let Some(e) = problem {
        tracing::error!(error = %e, "traces are off: the OTLP exporter could not be built");
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing::info!(endpoint = ?config.telemetry.otlp_endpoint, "exporting traces over OTLP/HTTP");
    }
    Telemetry { provider }
}

fn provider(config: &Config, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let protocol = match config.telemetry.otlp_protocol {
        OtlpProtocol::Protobuf => opentelemetry_otlp::Protocol::HttpBinary,
        OtlpProtocol::Json => opentelemetry_otlp::Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_headers(Default::default())
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.telemetry.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
