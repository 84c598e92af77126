//! A real OTLP/gRPC trace receiver standing in for Jaeger: it keeps every span it is sent.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};

/// A received span with the `service.name` of the process that sent it.
#[derive(Clone, Debug)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }
    pub fn parent_span_id(&self) -> String {
        hex::encode(&self.span.parent_span_id)
    }
}

/// Called with each span as it arrives.
pub type Sink = Arc<dyn Fn(&Received) + Send + Sync>;

/// The receiver's spans so far (clones share them).
#[derive(Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    sink: Option<Sink>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                got.extend(ss.spans.into_iter().map(|span| Received {
                    service: service.clone(),
                    span,
                }));
            }
        }
        if let Some(sink) = &self.sink {
            got.iter().for_each(|r| sink(r));
        }
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves OTLP/gRPC on `addr` (port 0 for any) until the process ends: where it listens.
    pub async fn start(addr: SocketAddr) -> std::io::Result<(Receiver, SocketAddr)> {
        Self::start_with(addr, None).await
    }

    /// Like [`Receiver::start`], also handing each span to `sink` as it arrives.
    pub async fn start_with(addr: SocketAddr, sink: Option<Sink>) -> std::io::Result<(Receiver, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let receiver = Receiver {
            spans: Arc::default(),
            sink,
        };
        let server = receiver.clone();
        let incoming = futures_stream(listener);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(server))
                .serve_with_incoming(incoming)
                .await
        });
        Ok((receiver, local))
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn futures_stream(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures_util::stream::unfold(listener, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) })
}
