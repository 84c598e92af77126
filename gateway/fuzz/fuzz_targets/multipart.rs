//! `cargo +nightly fuzz run multipart` (from `gateway/fuzz`): the gateway's reading of the
//! upload form (`POST /mobile/upload-optimized`), on a fixed multipart Content-Type with the
//! input as the body, delivered in a few chunks as a network would.
#![no_main]

use std::{sync::OnceLock, time::Duration};

use actix_web::{
    error::PayloadError,
    http::header::{self, HeaderMap, HeaderValue},
};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portico_gateway::routes::media::read_upload_form;

/// The seeds' boundary.
const CONTENT_TYPE: &str = "multipart/form-data; boundary=portico-fuzz-boundary";

/// The file cap: under libFuzzer's default 4096-byte input limit, so the 413 path is reached.
const LIMIT: usize = 2048;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    // One to four chunks, so part boundaries fall inside and between them; some bodies end
    // in a dropped connection instead of their end.
    let pieces = 1 + data.len() % 4;
    let size = data.len().div_ceil(pieces).max(1);
    let mut chunks: Vec<Result<Bytes, PayloadError>> =
        data.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    if data.len() % 7 == 3 {
        chunks.push(Err(PayloadError::Incomplete(None)));
    }
    let payload = futures_util::stream::iter(chunks);
    let read = runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(10), read_upload_form(&headers, payload, LIMIT)).await
    });
    let Ok(read) = read else {
        panic!("reading the form hung");
    };
    match read {
        Ok(form) => {
            assert!(!form.content.is_empty(), "an empty file is refused");
            assert!(
                form.content.len() <= LIMIT,
                "the cap holds: {} bytes",
                form.content.len()
            );
            assert!(form.content.len() <= data.len());
        }
        Err(e) => {
            let status = e.0.code.http_status();
            assert!(matches!(status, 400 | 413), "{status}: {e}");
        }
    }
});
