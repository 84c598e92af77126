//! Compiles every contract under proto/ with protox (pure Rust), so no system protoc is needed.

use std::{env, fs, io, path::PathBuf};

use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "portico/ops/v1/ops.proto",
        "portico/beta/v1/beta.proto",
        "portico/workflow/v1/workflow.proto",
        "portico/media/v1/media.proto",
        "portico/media/v1/effects.proto",
        "portico/billing/v1/billing.proto",
        "portico/monitoring/v1/monitoring.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let fds = protox::compile(files, [&root]).map_err(|e| io::Error::other(e.to_string()))?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("portico_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Documents pass through the gateway without a copy.
        .bytes(".portico.workflow.v1.AnalyzeRequest.document")
        .bytes(".portico.media.v1")
        // Webhook payloads are verified over their exact bytes.
        .bytes(".portico.billing.v1.ReceiveWebhookRequest.payload")
        .bytes(".portico.monitoring.v1.IngestSentryRequest.body")
        .compile_fds(fds)?;
    Ok(())
}
