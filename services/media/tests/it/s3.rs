//! The same service with its objects in an S3 bucket, over the S3 HTTP API. The test starts
//! the S3 server named by `PORTICO_TEST_S3_SERVER` (CI installs moto's `moto_server`) on a free
//! port; without it the test says so and does nothing.

use std::{
    io::{Read, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use portico_proto::media::v1 as pb;
use portico_testkit::Backend;

use crate::{Service, images};

struct S3Server(Child);

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One unsigned request (the test server accepts them); the status line's code.
fn http(port: u16, method: &str, path: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_and_uploads_live_in_an_s3_bucket() {
    let Ok(server) = std::env::var("PORTICO_TEST_S3_SERVER") else {
        eprintln!("media_and_uploads_live_in_an_s3_bucket: PORTICO_TEST_S3_SERVER is not set; nothing run");
        return;
    };
    let port = portico_testkit::free_port();
    let _server = S3Server(
        Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{server}: {e}")),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "{server} never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http(port, "PUT", "/portico-media-test"), 200, "bucket created");

    let endpoint = format!("http://127.0.0.1:{port}");
    let svc = Service::start(
        Backend::Sqlite,
        &[
            ("PORTICO_S3_BUCKET", "portico-media-test"),
            ("PORTICO_S3_ENDPOINT", endpoint.as_str()),
            ("PORTICO_S3_ALLOW_HTTP", "true"),
            ("PORTICO_S3_REGION", "us-east-1"),
            ("PORTICO_S3_ACCESS_KEY_ID", "portico"),
            ("PORTICO_S3_SECRET_ACCESS_KEY", "portico-secret"),
        ],
    )
    .await;
    let mut client = svc.client.clone();
    let media = client
        .upload(pb::UploadRequest {
            user_id: "s3-user".into(),
            content: images::jpeg(800, 600).into(),
            filename: "photo.jpg".into(),
            connection: pb::Connection::Wifi as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(media.variants.len(), 8);
    let variant = client
        .get_variant(pb::GetVariantRequest {
            user_id: "s3-user".into(),
            id: media.id.clone(),
            variant: "small".into(),
            format: "webp".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(images::size_of(&variant.content), (320, 240));
    assert!(svc.files().is_empty(), "nothing on local disk: {:?}", svc.files());
    // The objects are in the bucket: the original plus eight variants.
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("portico-media-test")
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("portico")
        .with_secret_access_key("portico-secret")
        .build()
        .unwrap();
    let prefix = object_store::path::Path::from(format!("media/s3-user/{}", media.id));
    let count = |bucket: &object_store::aws::AmazonS3, prefix: &object_store::path::Path| {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let listing = bucket.list(Some(prefix));
        async move { listing.try_collect::<Vec<_>>().await.unwrap().len() }
    };
    assert_eq!(count(&bucket, &prefix).await, 9);

    // A resumable upload in two chunks, stored as chunk objects, finished into media.
    let file = images::jpeg(640, 480);
    let state = client
        .create_upload(pb::CreateUploadRequest {
            user_id: "s3-user".into(),
            length: file.len() as u64,
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let half = file.len() / 2;
    for (offset, chunk) in [(0, &file[..half]), (half, &file[half..])] {
        let r = client
            .append_upload(pb::AppendUploadRequest {
                user_id: "s3-user".into(),
                id: state.id.clone(),
                offset: offset as u64,
                content: chunk.to_vec().into(),
                sha256: Default::default(),
            })
            .await
            .unwrap()
            .into_inner();
        if offset == half {
            assert_eq!(r.media.unwrap().original.unwrap().width, 640);
        }
    }

    client
        .delete_media(pb::DeleteMediaRequest {
            user_id: "s3-user".into(),
            id: media.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        count(&bucket, &prefix).await,
        0,
        "deleting the media removed its objects"
    );
    let report = svc.app.cleanup(portico_runtime::db::now_ms()).await.unwrap();
    eprintln!("cleanup over S3: {report:?}");
}
