//! `cargo +nightly fuzz run request_id` (from `gateway/fuzz`): the gateway's check of a
//! client's `X-Request-ID`, which decides whether the id is echoed, logged and sent on.
#![no_main]

use actix_web::http::header::HeaderValue;
use libfuzzer_sys::fuzz_target;
use portico_gateway::middleware::well_formed_request_id;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = std::str::from_utf8(data) else {
        return;
    };
    if !well_formed_request_id(id) {
        return;
    }
    assert!((1..=128).contains(&id.len()), "accepted an id of {} bytes", id.len());
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')),
        "accepted {id:?}"
    );
    // The pipeline echoes a kept id in `X-Request-ID`: it must be a header value as it is.
    let echoed = HeaderValue::from_str(id).expect("a kept id is a header value");
    assert_eq!(echoed.to_str().ok(), Some(id));
});
