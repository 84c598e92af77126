//! `/metrics` for processes that have no HTTP server of their own (the services), on
//! `PORTICO_METRICS_ADDR`. The gateway serves `/metrics` itself.

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, web};
use tokio_util::sync::CancellationToken;

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(portico_runtime::metrics::render())
}

/// Serves `/metrics` on `addr` until `stop`.
pub fn spawn(addr: SocketAddr, stop: CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let server = HttpServer::new(|| App::new().route("/metrics", web::get().to(metrics)))
        .workers(1)
        .disable_signals()
        .bind(addr)?
        .run();
    let handle = server.handle();
    tracing::info!(%addr, "metrics listening");
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => handle.stop(true).await,
            result = server => if let Err(e) = result { tracing::warn!(error = %e, "metrics server stopped") },
        }
    }))
}
