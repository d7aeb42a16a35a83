//! OpenTelemetry spans of a governed call, named and attributed per the GenAI semantic
//! conventions (`chat gpt-4o`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`...), and the
//! W3C trace context: taken from the agent's request, handed on to the provider.
//!
//! The spans use the target [`crate::OTEL_TARGET`], which only the trace exporter listens to:
//! with tracing off they are disabled where they are created.

use axum::http::HeaderMap;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::inspect::Route;
use crate::OTEL_TARGET;

/// The GenAI operation of a route.
fn operation(route: Route) -> &'static str {
    match route {
        Route::Chat | Route::Responses => "chat",
        Route::Completions => "text_completion",
        Route::Embeddings => "embeddings",
    }
}

/// The span of one proxied call, a child of the agent's trace when it sent `traceparent`.
pub(crate) fn call_span(route: Route, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: OTEL_TARGET,
        "gen_ai",
        otel.name = operation(route),
        otel.kind = "server",
        otel.status_code = Empty,
        gen_ai.operation.name = operation(route),
        gen_ai.provider.name = "openai",
        gen_ai.request.model = Empty,
        gen_ai.request.max_tokens = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        http.response.status_code = Empty,
        warden.decision_id = Empty,
        warden.agent = Empty,
        warden.verdict = Empty,
        warden.upstream = Empty,
    );
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(headers))
        });
        let _ = span.set_parent(parent);
    }
    span
}

/// Names the call's span once its model is known: `chat gpt-4o`.
pub(crate) fn name_call(span: &tracing::Span, route: Route, model: &str) {
    if span.is_disabled() {
        return;
    }
    // The span has started (its parent was set), so it is renamed through OpenTelemetry.
    use opentelemetry::trace::TraceContextExt;
    span.context()
        .span()
        .update_name(format!("{} {model}", operation(route)));
    span.record("gen_ai.request.model", model);
}

/// A step of the call (`guardians`, `policy`, `ledger.append`), a child of the current span.
pub(crate) fn step(name: &'static str) -> tracing::Span {
    tracing::info_span!(target: OTEL_TARGET, "step", otel.name = name, warden.outcome = Empty)
}

/// The provider call's span; `address` is the upstream's host.
pub(crate) fn upstream_span(upstream: &str, address: &str) -> tracing::Span {
    tracing::info_span!(
        target: OTEL_TARGET,
        "upstream",
        otel.name = "upstream",
        otel.kind = "client",
        server.address = address,
        warden.upstream = upstream,
        http.response.status_code = Empty,
    )
}

/// The trace context to send upstream: the current span's when tracing is on, else none
/// (the agent's own `traceparent` is then passed through as it came).
pub(crate) fn outgoing_context() -> Option<HeaderMap> {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let mut headers = HeaderMap::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(&mut headers))
    });
    headers.contains_key("traceparent").then_some(headers)
}
