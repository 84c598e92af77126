//! `cargo +nightly fuzz run traceparent` (from `gateway/fuzz`): W3C trace-context parsing as
//! the gateway pipeline does it, trusted (a proxy's headers are continued) and untrusted (a
//! public client's are not), and the `traceparent` then sent to the services.
//!
//! The input is split at its first newline: `traceparent` before it, `tracestate` after.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico_runtime::{
    grpc,
    telemetry::{self, RequestContext},
};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fn assert_trace_id(id: &str) {
    assert_eq!(id.len(), 32, "trace id {id:?}");
    assert!(
        id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "trace id {id:?} is not lowercase hex"
    );
    assert_ne!(id, "0".repeat(32), "the all-zero trace id is invalid");
}

/// What the gateway sends on for `ctx`: the `traceparent` of an outgoing gRPC call.
fn sent(ctx: RequestContext) -> Option<String> {
    runtime().block_on(telemetry::with_request(ctx, async {
        let request = grpc::outgoing((), "fuzz");
        request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }))
}

fuzz_target!(|data: &[u8]| {
    let (parent, state) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let parent = String::from_utf8_lossy(parent);
    let state = state.map(String::from_utf8_lossy);
    let mut headers: Vec<(&str, &str)> = vec![("traceparent", &parent)];
    if let Some(state) = &state {
        headers.push(("tracestate", state));
    }
    let span = tracing::Span::none();

    let trusted = telemetry::request_context(&span, "fuzz".into(), headers.iter().copied());
    assert_trace_id(&trusted.trace_id);
    assert_eq!(trusted.trace_id, trusted.span_context.trace_id().to_string());
    assert!(trusted.span_context.is_valid());
    assert_ne!(
        trusted.span_context.span_id().to_string(),
        parent.split('-').nth(2).unwrap_or_default(),
        "the gateway's span gets a fresh id"
    );

    let input_trace = parent.split('-').nth(1).unwrap_or_default();
    let untrusted = telemetry::request_context_untrusted(&span, "fuzz".into(), headers.iter().copied());
    assert_trace_id(&untrusted.trace_id);
    assert_ne!(untrusted.trace_id, input_trace, "a public caller starts a new trace");
    assert_ne!(
        untrusted.trace_id.to_ascii_uppercase(),
        input_trace.to_ascii_uppercase()
    );
    assert!(
        !untrusted.span_context.is_sampled(),
        "a public caller cannot force sampling"
    );
    assert!(
        untrusted.span_context.trace_state().header().is_empty(),
        "a public caller's tracestate is not passed on"
    );

    // What goes downstream parses back to the same trace, so the services join it.
    let trace_id = trusted.trace_id.clone();
    let sampled = trusted.span_context.is_sampled();
    let out = sent(trusted).expect("a traceparent is sent on");
    let fields: Vec<&str> = out.split('-').collect();
    assert_eq!(fields.len(), 4, "{out}");
    assert_eq!((fields[0], fields[1]), ("00", trace_id.as_str()), "{out}");
    let flags = u8::from_str_radix(fields[3], 16).expect("hex trace flags");
    assert_eq!(flags & 1 == 1, sampled, "the sampled flag is kept: {out}");
    let joined = telemetry::request_context(&span, "fuzz".into(), [("traceparent", out.as_str())].into_iter());
    assert_eq!(joined.trace_id, trace_id, "the service joins the trace sent: {out}");
});
