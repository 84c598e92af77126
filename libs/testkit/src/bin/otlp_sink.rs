//! `otlp_sink ADDR FILE`: an OTLP/gRPC trace receiver standing in for Jaeger in
//! `deploy/smoke.sh`. Appends one JSON line per span to FILE (`service`, `name`, `traceId`,
//! `spanId`, `parentSpanId`) and prints the address it listens on.

use std::io::Write;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(file)) = (args.next(), args.next()) else {
        return Err("usage: otlp_sink ADDR FILE".into());
    };
    let out = std::sync::Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(&file)?);
    let sink = std::sync::Arc::new(move |r: &portico_testkit::otlp::Received| {
        let line = serde_json::json!({
            "service": r.service,
            "name": r.span.name,
            "traceId": r.trace_id(),
            "spanId": r.span_id(),
            "parentSpanId": r.parent_span_id(),
        });
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = writeln!(out, "{line}") {
            eprintln!("otlp_sink: {e}");
        }
    });
    let (_receiver, local) = portico_testkit::otlp::Receiver::start_with(addr.parse()?, Some(sink)).await?;
    println!("{local}");
    std::future::pending::<()>().await;
    Ok(())
}
