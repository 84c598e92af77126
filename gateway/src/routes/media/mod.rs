//! `/v1/mobile/*` and `/v1/media/*`, answered by the media service: upload settings per
//! network (here), multipart uploads (`upload`), stored images and their variants
//! (`variants`), tus resumable uploads (`tus`) and client performance (`analytics`).

mod analytics;
mod tus;
mod upload;
mod variants;

use actix_web::web;
use portico_proto::media::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use analytics::{ClientEvents, PerformanceQuery, PerformanceReport, analytics, performance};
pub use tus::{
    TusAppended, TusChunk, TusCreated, TusCreation, TusDiscovery, TusOffset, TusRequest, TusTerminated, Upload,
    parse_checksum, parse_metadata, tus_create, tus_delete, tus_head, tus_options, tus_patch, tus_status,
};
pub use upload::{UploadForm, UploadFormDoc, read_upload_form, upload_optimized};
pub use variants::{ImageBytes, Media, VariantQuery, delete, get, variant};

use super::Rid;
use crate::{AppState, contract::Reply, envelope::ApiError};

/// A network a client is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Connection {
    /// Slow 2G.
    #[serde(rename = "slow-2g")]
    Slow2g,
    /// 2G.
    #[serde(rename = "2g")]
    Connection2g,
    /// 3G.
    #[serde(rename = "3g")]
    Connection3g,
    /// 4G.
    #[serde(rename = "4g")]
    Connection4g,
    /// Wi-Fi.
    #[serde(rename = "wifi")]
    Wifi,
}

/// The connection names of the public API, in order.
const CONNECTIONS: [(&str, pb::Connection, Connection); 5] = [
    ("slow-2g", pb::Connection::Slow2g, Connection::Slow2g),
    ("2g", pb::Connection::Connection2g, Connection::Connection2g),
    ("3g", pb::Connection::Connection3g, Connection::Connection3g),
    ("4g", pb::Connection::Connection4g, Connection::Connection4g),
    ("wifi", pb::Connection::Wifi, Connection::Wifi),
];

const CONNECTION_HINT: &str = "must be one of slow-2g, 2g, 3g, 4g, wifi";

impl Connection {
    /// To the wire value.
    pub fn to_proto(self) -> pb::Connection {
        CONNECTIONS
            .iter()
            .find(|(_, _, c)| *c == self)
            .map_or(pb::Connection::Unspecified, |(_, p, _)| *p)
    }
}

/// A connection name as clients write it (a form part: case and space do not matter).
fn parse_connection(name: &str) -> Option<pb::Connection> {
    let name = name.trim().to_ascii_lowercase();
    CONNECTIONS.iter().find(|(n, _, _)| *n == name).map(|(_, c, _)| *c)
}

/// The public name of a wire connection value.
fn connection_name(value: i32) -> &'static str {
    CONNECTIONS
        .iter()
        .find(|(_, c, _)| *c as i32 == value)
        .map(|(n, _, _)| *n)
        .unwrap_or("unknown")
}

/// `?connection=&downlinkMbps=&rttMs=`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UploadConfigQuery {
    /// The client's network.
    connection: Connection,
    /// Measured downlink, megabits per second (refines the settings).
    #[schema(exclusive_minimum = 0, maximum = 10_000)]
    downlink_mbps: Option<f64>,
    /// Measured round-trip time, milliseconds.
    #[schema(maximum = 60_000)]
    rtt_ms: Option<u32>,
}

/// Upload settings for a network.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadConfig {
    /// The network.
    connection: &'static str,
    /// Largest file to send.
    max_file_bytes: u64,
    /// Longest side to resize to before sending.
    max_dimension: u32,
    /// JPEG quality to encode with.
    jpeg_quality: u32,
    /// Resumable-upload chunk size.
    chunk_bytes: u64,
    /// Chunks to send side by side.
    parallel_chunks: u32,
    /// Per-request timeout.
    timeout_ms: u32,
    /// `webp` or `jpeg`.
    preferred_format: String,
    /// Whether to use resumable uploads.
    resumable: bool,
}

/// GET /mobile/upload-config
pub async fn upload_config(
    state: web::Data<AppState>,
    rid: Rid,
    query: crate::contract::ValidQuery<UploadConfigQuery>,
) -> Result<Reply<UploadConfig>, ApiError> {
    let q = query.0;
    let c = state
        .media()?
        .get_upload_config(outgoing(
            pb::GetUploadConfigRequest {
                connection: q.connection.to_proto() as i32,
                downlink_mbps: q.downlink_mbps,
                rtt_ms: q.rtt_ms,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(UploadConfig {
        connection: connection_name(c.connection),
        max_file_bytes: c.max_file_bytes,
        max_dimension: c.max_dimension,
        jpeg_quality: c.jpeg_quality,
        chunk_bytes: c.chunk_bytes,
        parallel_chunks: c.parallel_chunks,
        timeout_ms: c.timeout_ms,
        preferred_format: c.preferred_format,
        resumable: c.resumable,
    }))
}
