//! Logs, traces and trace-context propagation.
//!
//! Logs are JSON lines carrying the fields of the enclosing spans (request id, trace id).
//! Every process runs an OpenTelemetry tracer so trace ids exist and propagate even without a
//! collector; spans are exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::collections::HashMap;

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{CommonConfig, LogFormat};

/// Keeps the tracer alive; flushes spans when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("telemetry shutdown: {e}");
        }
    }
}

/// Installs logging and tracing for the process `service`. Call once, early in `main`.
pub fn init(service: &'static str, config: &CommonConfig) -> Result<TelemetryGuard, String> {
    let mut builder = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service)
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build(),
    );
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_new(&config.log_filter).map_err(|e| format!("PORTICO_LOG: {e}"))?;
    // Request spans are on the hot path: skip the per-span extras nobody reads (code
    // location, thread ids, busy/idle timers) and the thread-local context switch on every
    // enter (propagation reads the span's context explicitly).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    // A second init in one process (tests, the all-in-one stack) keeps the first subscriber.
    let _ = result;
    Ok(TelemetryGuard { provider })
}

/// The trace id of a span, as 32 hex digits (all zeros when tracing is off).
pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

/// Makes `span` a child of the W3C trace context found in `headers` (if any).
pub fn set_parent_from<'a>(span: &tracing::Span, headers: impl Iterator<Item = (&'a str, &'a str)>) {
    let carrier: HashMap<String, String> = headers
        .filter(|(k, _)| k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    if carrier.is_empty() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&MapCarrier(&carrier));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The W3C `traceparent` (and `tracestate`) headers for `span`, to send downstream.
pub fn inject(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let mut out = HeaderVec(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(&span.context(), &mut out);
    out.0
}

/// The current OpenTelemetry context (for libraries that want it directly).
pub fn current_context() -> Context {
    tracing::Span::current().context()
}

struct MapCarrier<'a>(&'a HashMap<String, String>);

impl Extractor for MapCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderVec(Vec<(&'static str, String)>);

impl Injector for HeaderVec {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        if !value.is_empty() {
            self.0.push((key, value));
        }
    }
}
