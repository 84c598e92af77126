//! gRPC plumbing shared by the gateway (client side) and every service (server side).
//!
//! - Services accept calls only with the internal token the gateway sends.
//! - Each call carries `x-request-id` and W3C `traceparent` in metadata, so one request is one
//!   trace and one id across every hop.
//! - Every service serves `grpc.health.v1`, reflection and the Ops introspection service.

use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use portico_proto::ops::v1::{
    self as ops,
    ops_server::{Ops, OpsServer},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Response, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    service::{Interceptor, Routes},
    transport::{Channel, Endpoint, Server},
};
use tracing::Instrument;

use crate::{
    cache::CacheRegistry,
    error::{ErrorCode, Problem},
    telemetry,
};

/// Metadata key of the internal token.
pub const INTERNAL_TOKEN_METADATA: &str = "x-portico-internal-token";
const HTTP2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
const HTTP2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Deadline of one dependency probe in an Ops info call.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Metadata key of the request id.
pub const REQUEST_ID_METADATA: &str = "x-request-id";

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Server-side interceptor: refuses calls without the internal token.
#[derive(Clone)]
pub struct RequireInternalToken {
    token: Arc<str>,
}

impl RequireInternalToken {
    /// Accepts calls presenting `token`.
    pub fn new(token: &str) -> Self {
        RequireInternalToken {
            token: Arc::from(token),
        }
    }
}

impl Interceptor for RequireInternalToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request.metadata().get(INTERNAL_TOKEN_METADATA).map(|v| v.as_bytes());
        match presented {
            Some(p) if constant_time_eq(p, self.token.as_bytes()) => Ok(request),
            _ => Err(Status::unauthenticated("missing or wrong internal token")),
        }
    }
}

/// Client-side interceptor: presents the internal token on every call.
#[derive(Clone)]
pub struct PresentInternalToken {
    token: AsciiMetadataValue,
}

impl PresentInternalToken {
    /// Presents `token`; fails if it is not valid metadata (non-ASCII).
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token
            .parse()
            .map_err(|_| "PORTICO_INTERNAL_TOKEN must be ASCII".to_string())?;
        Ok(PresentInternalToken { token })
    }
}

impl Interceptor for PresentInternalToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(INTERNAL_TOKEN_METADATA, self.token.clone());
        Ok(request)
    }
}

/// A lazily connected channel to a service at `url` (`http://host:port`).
pub fn channel(url: &str, timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        // Large windows: h2 sizes its budget of buffered small DATA frames from the connection
        // window, and the 64 KiB default is spent by a few hundred concurrent small replies,
        // which ends the connection with ENHANCE_YOUR_CALM under load.
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW);
    Ok(endpoint.connect_lazy())
}

/// Wraps a message for an outgoing call: request id and trace context of the current span.
pub fn outgoing<T>(message: T, request_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    let md = request.metadata_mut();
    if let Ok(v) = request_id.parse() {
        md.insert(REQUEST_ID_METADATA, v);
    }
    for (key, value) in telemetry::inject(&tracing::Span::current()) {
        if let Ok(v) = value.parse() {
            md.insert(key, v);
        }
    }
    request
}

fn metadata_str<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

/// Runs one RPC inside a span joined to the caller's trace, records its latency and outcome,
/// and turns a [`Problem`] into a status carrying the catalogue code.
pub async fn handle<Req, Resp, F, Fut>(
    service: &'static str,
    method: &'static str,
    request: Request<Req>,
    f: F,
) -> Result<Response<Resp>, Status>
where
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Problem>>,
{
    let started = Instant::now();
    let md = request.metadata();
    let request_id = metadata_str(md, REQUEST_ID_METADATA).unwrap_or("").to_string();
    let span = if telemetry::recording() {
        tracing::info_span!(
            "grpc.server",
            otel.name = %format!("{service}/{method}"),
            rpc.service = service,
            rpc.method = method,
            request_id = %request_id,
        )
    } else {
        tracing::Span::none()
    };
    let carrier = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| metadata_str(md, k).map(|v| (k, v)));
    let context = telemetry::request_context(&span, request_id, carrier);
    let message = request.into_inner();
    let served = async move {
        // The RPC's own future (caches, database) is large; boxed, it is not copied each time
        // tonic and this wrapper move theirs (measured in BENCHMARKS.md).
        let result = Box::pin(f(message)).await;
        let code = match &result {
            Ok(_) => "OK",
            Err(p) => p.code.as_str(),
        };
        metrics::histogram!("portico_grpc_server_duration_seconds", "service" => service, "method" => method, "code" => code)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(resp) => Ok(Response::new(resp)),
            Err(problem) => {
                if problem.code.http_status() >= 500 {
                    tracing::error!(code, message = %problem.message, "rpc failed");
                } else {
                    tracing::debug!(code, message = %problem.message, "rpc refused");
                }
                Err(problem.into_status())
            }
        }
    };
    telemetry::with_request(context, served.instrument(span)).await
}

/// A health probe a service reports in its Ops info (its database, its cache...).
pub type Probe = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Erases one user's data from a service (account deletion): called with the user id, answers
/// how many rows and objects went. Must be idempotent: the gateway retries until it succeeds.
pub type Eraser = Arc<dyn Fn(String) -> futures_util::future::BoxFuture<'static, Result<u64, Problem>> + Send + Sync>;

/// What a service reports about itself over the Ops service.
#[derive(Clone)]
pub struct OpsInfo {
    /// Service name.
    pub service: &'static str,
    /// Its caches.
    pub caches: CacheRegistry,
    /// Named dependency probes.
    pub probes: Vec<(&'static str, Probe)>,
    /// Erases a deleted account's data.
    pub eraser: Option<Eraser>,
    /// Its scheduled jobs.
    pub jobs: Option<crate::jobs::Jobs>,
    started_at_ms: i64,
}

impl OpsInfo {
    /// Info for `service`, started now.
    pub fn new(service: &'static str, caches: CacheRegistry) -> Self {
        OpsInfo {
            service,
            caches,
            probes: Vec::new(),
            eraser: None,
            jobs: None,
            started_at_ms: crate::db::now_ms(),
        }
    }

    /// Adds a dependency probe.
    pub fn probe(mut self, name: &'static str, probe: Probe) -> Self {
        self.probes.push((name, probe));
        self
    }
}

#[tonic::async_trait]
impl Ops for OpsInfo {
    async fn erase_user(
        &self,
        request: Request<ops::EraseUserRequest>,
    ) -> Result<Response<ops::EraseUserResponse>, Status> {
        let eraser = self.eraser.clone();
        handle(self.service, "EraseUser", request, |req| async move {
            let Some(eraser) = eraser else {
                return Err(Problem::internal("this service has no eraser"));
            };
            if req.user_id.is_empty() || req.user_id.len() > 64 {
                return Err(Problem::validation([("userId", "must be 1 to 64 characters")]));
            }
            let removed = eraser(req.user_id).await?;
            Ok(ops::EraseUserResponse { removed })
        })
        .await
    }

    async fn list_jobs(
        &self,
        request: Request<ops::ListJobsRequest>,
    ) -> Result<Response<ops::ListJobsResponse>, Status> {
        let jobs = self.jobs.clone();
        handle(self.service, "ListJobs", request, |_| async move {
            let Some(jobs) = jobs else {
                return Ok(ops::ListJobsResponse::default());
            };
            let listed = jobs.list().await.map_err(|e| Problem::internal(e.to_string()))?;
            Ok(ops::ListJobsResponse {
                jobs: listed.into_iter().map(ops::Job::from).collect(),
            })
        })
        .await
    }

    async fn run_job(&self, request: Request<ops::RunJobRequest>) -> Result<Response<ops::RunJobResponse>, Status> {
        let jobs = self.jobs.clone();
        handle(self.service, "RunJob", request, |req| async move {
            use crate::jobs::RunNowError;
            let Some(jobs) = jobs else {
                return Err(Problem::new(ErrorCode::NotFound, "this service has no jobs"));
            };
            match jobs.run_now(&req.name).await {
                Ok(run_id) => Ok(ops::RunJobResponse { run_id }),
                Err(e @ RunNowError::Unknown(_)) => Err(Problem::new(ErrorCode::NotFound, e.to_string())),
                Err(e @ RunNowError::Busy(_)) => Err(Problem::new(ErrorCode::Conflict, e.to_string())),
                Err(RunNowError::Db(e)) => Err(Problem::internal(e.to_string())),
            }
        })
        .await
    }

    async fn info(&self, _: Request<ops::InfoRequest>) -> Result<Response<ops::InfoResponse>, Status> {
        // Probes run side by side, each under its own deadline, so one slow dependency costs
        // the caller one timeout, not the sum of them.
        let dependencies = futures_util::future::join_all(self.probes.iter().map(|(name, probe)| async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe()).await;
            let (healthy, detail) = match outcome {
                Ok(Ok(())) => (true, String::new()),
                Ok(Err(e)) => (false, e),
                Err(_) => (false, "timed out".to_string()),
            };
            ops::Dependency {
                name: (*name).to_string(),
                healthy,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                detail,
            }
        }))
        .await;
        let caches = self.caches.stats().into_iter().map(ops::CacheStats::from).collect();
        Ok(Response::new(ops::InfoResponse {
            service: self.service.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: self.started_at_ms,
            dependencies,
            caches,
            process: crate::process::stats().map(ops::ProcessStats::from),
        }))
    }
}

/// Serves a service's routes plus health, reflection and Ops on `listener` until `shutdown`,
/// then drains in-flight calls. `name` is the fully qualified gRPC service name for health.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_name: &'static str,
    ops: OpsInfo,
    token: &str,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(service_name, tonic_health::ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(portico_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    let routes = routes
        .add_service(health_service)
        .add_service(reflection)
        .add_service(OpsServer::with_interceptor(ops, RequireInternalToken::new(token)));
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(service = service_name, addr = ?local, "grpc server listening");
    let incoming = tokio_stream_listener(listener);
    let drain = shutdown.clone();
    Server::builder()
        .tcp_nodelay(true)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            drain.cancelled().await;
            health_reporter
                .set_service_status(service_name, tonic_health::ServingStatus::NotServing)
                .await;
        })
        .await
        .map_err(|e| e.to_string())
}

fn tokio_stream_listener(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((next, listener))
    })
}

/// What [`launch`] needs to run one service.
pub(crate) struct Launch {
    /// Bound listener.
    pub(crate) listener: TcpListener,
    /// The service's own routes (already wrapped in [`RequireInternalToken`]).
    pub(crate) routes: Routes,
    /// Fully qualified gRPC name, for health.
    pub(crate) service_name: &'static str,
    /// Short name, for metrics and Ops (`beta`, `workflow`...).
    pub(crate) short_name: &'static str,
    /// The service's caches.
    pub(crate) caches: CacheRegistry,
    /// Its database; probed by Ops, gauged in metrics, closed after the drain.
    pub(crate) db: crate::db::Db,
    /// Shared Redis, probed by Ops when configured.
    pub(crate) redis: Option<crate::redis::SharedRedis>,
    /// The internal token Ops calls must present.
    pub(crate) token: String,
    /// Erases a deleted account's data (served as `Ops/EraseUser`).
    pub(crate) eraser: Eraser,
    /// Its scheduled jobs (served as `Ops/ListJobs` and `Ops/RunJob`).
    pub(crate) jobs: crate::jobs::Jobs,
    /// Cancelled to stop accepting and drain.
    pub(crate) shutdown: CancellationToken,
}

/// Runs a service the way every Portico service runs: Ops probes for its database and Redis,
/// pool gauges every 5 s, [`serve`] until shutdown, then the pool closed.
pub(crate) fn launch(l: Launch) -> tokio::task::JoinHandle<Result<(), String>> {
    let probe_db = l.db.clone();
    let mut ops = OpsInfo::new(l.short_name, l.caches);
    ops.eraser = Some(l.eraser);
    ops.jobs = Some(l.jobs);
    ops = ops.probe(
        "database",
        Arc::new(move || {
            let db = probe_db.clone();
            Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
        }),
    );
    if let Some(redis) = l.redis {
        ops = ops.probe(
            "redis",
            Arc::new(move || {
                let redis = redis.clone();
                Box::pin(async move { redis.ping().await })
            }),
        );
    }
    let gauges = l.db.clone();
    let gauges_stop = l.shutdown.clone();
    let short_name = l.short_name;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        while tokio::select! { _ = gauges_stop.cancelled() => false, _ = tick.tick() => true } {
            crate::metrics::record_pool(short_name, gauges.status());
        }
    });
    let pool = l.db;
    tokio::spawn(async move {
        let served = serve(l.listener, l.routes, l.service_name, ops, &l.token, l.shutdown).await;
        pool.close();
        served
    })
}

/// A started service.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Resolves when the server has drained after shutdown.
    pub task: tokio::task::JoinHandle<Result<(), String>>,
    /// Its database pool.
    pub db: crate::db::Db,
}

/// Binds a service's gRPC listener; errors name the setting `var`.
pub async fn bind(var: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("{var} {addr}: {e}"))
}
