//! Load-test baseline: a bare actix-web handler answering what `GET /v1/beta/user-access`
//! answers, with no auth, limits, hop or cache. `bench/load.sh` runs it alone and behind nginx.

use actix_web::{App, HttpResponse, HttpServer, web};

const BODY: &str = r#"{"success":true,"data":{"accessLevel":"NONE","features":{"advanced_filters":false,"api_access":false,"batch_processing":false,"debug_overlay":false,"early_effects":false,"hd_export":false},"joinedAt":null},"meta":{"timestamp":"2026-11-22T00:00:00.000Z","requestId":"00000000-0000-0000-0000-000000000000"}}"#;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".to_string());
    let workers = std::env::args().nth(2).and_then(|w| w.parse().ok()).unwrap_or(1);
    HttpServer::new(|| {
        App::new().route(
            "/v1/beta/user-access",
            web::get().to(|| async { HttpResponse::Ok().content_type("application/json").body(BODY) }),
        )
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
