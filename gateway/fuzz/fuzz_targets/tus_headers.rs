//! `cargo +nightly fuzz run tus_headers` (from `gateway/fuzz`): the tus header parsers,
//! `Upload-Metadata` (creation) and `Upload-Checksum` (append), on the same input.
#![no_main]

use base64::{Engine, engine::general_purpose::STANDARD};
use libfuzzer_sys::fuzz_target;
use portico_gateway::{
    envelope::ApiError,
    routes::media::{parse_checksum, parse_metadata},
};
use portico_runtime::ErrorCode;

/// A refusal is a 400 that names the header.
fn assert_refusal(e: &ApiError, header: &str) {
    assert_eq!(e.0.code, ErrorCode::ValidationError, "{e}");
    let fields = e.0.details.as_ref().and_then(|d| d.get("fields"));
    assert!(
        fields.and_then(|f| f.get(header)).is_some(),
        "{header} is named: {fields:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match parse_metadata(raw) {
        Ok(metadata) => {
            assert!(metadata.len() <= raw.split(',').count());
            for key in metadata.keys() {
                assert!((1..=64).contains(&key.len()), "key {key:?}");
                assert!(key.bytes().all(|b| b.is_ascii_graphic()), "key {key:?}");
                assert!(!key.contains(','), "key {key:?}");
            }
            // What was read is what a client would have sent for it.
            let again = metadata
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k} {}", STANDARD.encode(v))
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            assert_eq!(parse_metadata(&again).ok().as_ref(), Some(&metadata), "{again:?}");
        }
        Err(e) => assert_refusal(&e, "Upload-Metadata"),
    }
    match parse_checksum(raw) {
        Ok(digest) => {
            assert_eq!(digest.len(), 32);
            let again = format!("sha256 {}", STANDARD.encode(&digest));
            assert_eq!(parse_checksum(&again).ok(), Some(digest));
        }
        Err(e) => assert_refusal(&e, "Upload-Checksum"),
    }
});
