//! Logs, traces and trace-context propagation.
//!
//! Logs are JSON lines; every line written while serving a request carries its `request_id`
//! and `trace_id`, taken from a task-local [`RequestContext`] rather than from span fields, so
//! request spans cost no log formatting unless something is logged. Spans are recorded and
//! exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Without a collector no
//! span is built for OpenTelemetry at all: the trace context (the caller's trace id, or a new
//! one, and a fresh span id) lives in the request context, so ids still appear in every log
//! line and still travel to the services in `traceparent`.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::filter_fn,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::config::{CommonConfig, LogFormat};

/// Whether this process records spans through the OpenTelemetry layer (a collector is
/// configured); otherwise trace context is carried by [`RequestContext`] alone.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// What identifies the request being served, for every log line written meanwhile.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The request id (`X-Request-ID`).
    pub request_id: String,
    /// The W3C trace id (32 hex digits).
    pub trace_id: String,
    /// The trace context passed on to the services this request calls.
    pub span_context: SpanContext,
}

impl Default for RequestContext {
    fn default() -> Self {
        RequestContext {
            request_id: String::new(),
            trace_id: String::new(),
            span_context: SpanContext::empty_context(),
        }
    }
}

/// Whether request spans are recorded (a collector is configured). When they are not, spans
/// would have no reader: request handlers skip making them and carry trace context in the
/// [`RequestContext`] alone.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// The context to serve a request under: joins `span` to the caller's trace found in `headers`
/// (W3C `traceparent` / `tracestate`) or starts a new trace.
pub fn request_context<'a>(
    span: &tracing::Span,
    request_id: String,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> RequestContext {
    if RECORDING.load(Ordering::Relaxed) {
        set_parent_from(span, headers);
        let span_context = span.context().span().span_context().clone();
        return RequestContext {
            trace_id: span_context.trace_id().to_string(),
            request_id,
            span_context,
        };
    }
    let parent = extract(headers);
    let ids = RandomIdGenerator::default();
    let (trace_id, flags, state) = if parent.is_valid() {
        (parent.trace_id(), parent.trace_flags(), parent.trace_state().clone())
    } else {
        (ids.new_trace_id(), TraceFlags::default(), TraceState::default())
    };
    let span_context = SpanContext::new(trace_id, ids.new_span_id(), flags, false, state);
    RequestContext {
        trace_id: trace_id.to_string(),
        request_id,
        span_context,
    }
}

/// Like [`request_context`] for a caller whose trace context is not to be trusted (a public
/// client): a new trace with the local sampling decision, so a client cannot force traces to
/// be recorded; its `traceparent`, when valid, is kept as a link of the new span.
pub fn request_context_untrusted<'a>(
    span: &tracing::Span,
    request_id: String,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> RequestContext {
    if RECORDING.load(Ordering::Relaxed) {
        let caller = extract(headers);
        if caller.is_valid() {
            span.add_link(caller);
        }
    }
    request_context(span, request_id, std::iter::empty())
}

/// Names a request span once its route is known (after routing): the name a span was
/// created with cannot be changed through `tracing` once its trace context is in use.
pub fn rename(span: &tracing::Span, name: String) {
    if RECORDING.load(Ordering::Relaxed) {
        span.context().span().update_name(name);
    }
}

tokio::task_local! {
    static REQUEST_CONTEXT: RequestContext;
}

/// Runs `fut` with `ctx` as the current request context.
pub async fn with_request<F: Future>(ctx: RequestContext, fut: F) -> F::Output {
    REQUEST_CONTEXT.scope(ctx, fut).await
}

/// The current request's id, or empty outside a request.
pub fn current_request_id() -> String {
    REQUEST_CONTEXT.try_with(|c| c.request_id.clone()).unwrap_or_default()
}

/// JSON lines with the request context spliced in after the opening brace.
struct ContextJson<F>(F);

impl<S, N, F> FormatEvent<S, N> for ContextJson<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let context = REQUEST_CONTEXT.try_with(|c| {
            format!(
                "\"request_id\":{},\"trace_id\":{},",
                json_string(&c.request_id),
                json_string(&c.trace_id)
            )
        });
        match (context, line.strip_prefix('{')) {
            (Ok(fields), Some(rest)) => write!(writer, "{{{fields}{rest}"),
            _ => writer.write_str(&line),
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

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
    // Without a collector no span is kept, so none is sampled unless the caller's trace is;
    // trace ids are still made and propagated for the logs.
    let root_ratio = if config.otlp_endpoint.is_some() {
        config.trace_sample_ratio
    } else {
        0.0
    };
    builder = builder.with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(root_ratio),
    )));
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
    let recording = config.otlp_endpoint.is_some();
    let otel = recording.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
    });
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // The log layer sees events only: span fields are never formatted for it.
    let events_only = filter_fn(|meta| meta.is_event());
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(ContextJson(
                        tracing_subscriber::fmt::format()
                            .json()
                            .flatten_event(true)
                            .with_current_span(false)
                            .with_span_list(false),
                    ))
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                    .with_filter(events_only),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_filter(events_only))
            .try_init(),
    };
    // A second init in one process (tests, the all-in-one stack) keeps the first subscriber,
    // and with it the first one's choice of recording.
    if result.is_ok() {
        RECORDING.store(recording, Ordering::Relaxed);
    }
    Ok(TelemetryGuard { provider })
}

/// The caller's W3C trace context from `headers` (invalid when there is none).
fn extract<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> SpanContext {
    let carrier: HashMap<String, String> = headers
        .filter(|(k, _)| k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    if carrier.is_empty() {
        return SpanContext::empty_context();
    }
    TraceContextPropagator::new()
        .extract(&MapCarrier(&carrier))
        .span()
        .span_context()
        .clone()
}

/// Makes `span` a child of the W3C trace context found in `headers` (if any).
fn set_parent_from<'a>(span: &tracing::Span, headers: impl Iterator<Item = (&'a str, &'a str)>) {
    let parent = extract(headers);
    if parent.is_valid() {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

/// The W3C `traceparent` (and `tracestate`) headers to send downstream: from `span` when
/// spans are recorded, else from the current request context.
pub fn inject(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let context = if RECORDING.load(Ordering::Relaxed) {
        span.context()
    } else {
        match REQUEST_CONTEXT.try_with(|c| c.span_context.clone()) {
            Ok(sc) if sc.is_valid() => opentelemetry::Context::new().with_remote_span_context(sc),
            _ => return Vec::new(),
        }
    };
    let mut out = HeaderVec(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(&context, &mut out);
    out.0
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn log_lines_carry_the_request_context() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(ContextJson(
                tracing_subscriber::fmt::format().json().flatten_event(true),
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_writer(move || sink.clone());
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let ctx = RequestContext {
            request_id: "req-\"1\"".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            ..RequestContext::default()
        };
        with_request(ctx, async { tracing::info!(answer = 42, "inside") }).await;
        tracing::info!("outside");
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["request_id"], "req-\"1\"", "quotes are escaped");
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["answer"], 42);
        assert!(lines[1].get("request_id").is_none());
    }

    #[tokio::test]
    async fn without_a_collector_the_callers_trace_is_continued_and_passed_on() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = tracing::Span::none();
        let ctx = request_context(&span, "r".into(), [("traceparent", parent)].into_iter());
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let sent = with_request(ctx, async { inject(&tracing::Span::none()) }).await;
        let (name, value) = &sent[0];
        assert_eq!(*name, "traceparent");
        assert!(value.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{value}");
        assert!(!value.contains("00f067aa0ba902b7"), "a new span id: {value}");
        assert!(value.ends_with("-01"), "the sampled flag is kept: {value}");

        let untrusted = request_context_untrusted(&span, "r".into(), [("traceparent", parent)].into_iter());
        assert_ne!(
            untrusted.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736",
            "a public caller starts a new trace"
        );
        assert!(!untrusted.span_context.is_sampled(), "and cannot force sampling");

        let fresh = request_context(&span, "r".into(), std::iter::empty());
        assert_eq!(fresh.trace_id.len(), 32);
        assert_ne!(fresh.trace_id, "0".repeat(32));
        let other = request_context(&span, "r".into(), std::iter::empty());
        assert_ne!(fresh.trace_id, other.trace_id);
        assert!(inject(&span).is_empty(), "outside a request nothing is sent");
    }
}
