//! Upload settings per network.

use portico_proto::media::v1 as pb;
use tonic::Code;

use crate::{Service, code, details};

fn req(connection: pb::Connection) -> pb::GetUploadConfigRequest {
    pb::GetUploadConfigRequest {
        connection: connection as i32,
        downlink_mbps: None,
        rtt_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_gets_an_upload_config() {
    let svc = Service::start(portico_testkit::Backend::Sqlite, &[]).await;
    let mut client = svc.client.clone();
    let mut configs = Vec::new();
    for c in [
        pb::Connection::Slow2g,
        pb::Connection::Connection2g,
        pb::Connection::Connection3g,
        pb::Connection::Connection4g,
        pb::Connection::Wifi,
    ] {
        let config = client.get_upload_config(req(c)).await.unwrap().into_inner();
        assert_eq!(config.connection, c as i32);
        configs.push(config);
    }
    let slow = &configs[0];
    assert_eq!(
        (
            slow.max_file_bytes,
            slow.max_dimension,
            slow.jpeg_quality,
            slow.chunk_bytes,
            slow.parallel_chunks,
            slow.timeout_ms,
            slow.preferred_format.as_str(),
            slow.resumable
        ),
        (1024 * 1024, 1024, 60, 64 * 1024, 1, 60_000, "webp", true)
    );
    let wifi = &configs[4];
    assert_eq!(
        (
            wifi.max_file_bytes,
            wifi.max_dimension,
            wifi.jpeg_quality,
            wifi.chunk_bytes,
            wifi.parallel_chunks
        ),
        (25 * 1024 * 1024, 4096, 85, 8 * 1024 * 1024, 4)
    );
    // Faster networks get larger files, dimensions, chunks and quality.
    for w in configs.windows(2) {
        assert!(w[1].max_file_bytes > w[0].max_file_bytes);
        assert!(w[1].max_dimension > w[0].max_dimension);
        assert!(w[1].chunk_bytes > w[0].chunk_bytes);
        assert!(w[1].jpeg_quality > w[0].jpeg_quality);
    }

    // A measured fast link on a "3g" label gets bigger chunks than the 3G default.
    let measured = client
        .get_upload_config(pb::GetUploadConfigRequest {
            connection: pb::Connection::Connection3g as i32,
            downlink_mbps: Some(20.0),
            rtt_ms: Some(40),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(measured.chunk_bytes > configs[2].chunk_bytes);

    let e = client
        .get_upload_config(req(pb::Connection::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(details(&e)["fields"]["connection"].is_string());
    let e = client
        .get_upload_config(pb::GetUploadConfigRequest {
            connection: pb::Connection::Wifi as i32,
            downlink_mbps: Some(-1.0),
            rtt_ms: None,
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), "VALIDATION_ERROR");
    assert!(details(&e)["fields"]["downlinkMbps"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_cap_bounds_every_config() {
    let svc = Service::start(
        portico_testkit::Backend::Sqlite,
        &[("PORTICO_MEDIA_MAX_BYTES", "3000000")],
    )
    .await;
    let wifi = svc
        .client
        .clone()
        .get_upload_config(req(pb::Connection::Wifi))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wifi.max_file_bytes, 3_000_000);
    assert!(wifi.chunk_bytes <= 3_000_000);
}
