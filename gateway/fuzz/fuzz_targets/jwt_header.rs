//! `cargo +nightly fuzz run jwt_header` (from `gateway/fuzz`): access-token verification,
//! `KeyRing::verify`, on a ring with a freshly generated key.
//!
//! Each input is tried twice: as the whole token, and base64url-encoded as the header segment
//! of a token whose payload and signature are the ring's own, so header parsing (`alg`, `kid`,
//! then the JWT library's full header) is reached with a key the ring knows. Nothing may panic,
//! and nothing but the exact token the ring signed may be accepted.
#![no_main]

use std::sync::OnceLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use portico_gateway::auth::crypto::{KeyRing, SigningKey};

/// The ring's key id. Fixed (the key itself is new on every run) so seeds and mutations can
/// name the ring's key and get past the key lookup to the signature check.
const KID: &str = "f022c0ffee5eed00";

/// The verifier's clock: the signed token is fresh at this instant.
const NOW: i64 = 1_767_225_600;

struct Fixture {
    ring: KeyRing,
    signed: String,
    /// `.payload.signature` of `signed`.
    rest: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let generated = SigningKey::generate().expect("an Ed25519 key");
        let key = SigningKey::from_pkcs8(KID, generated.pkcs8_der(), 0).expect("the key under a fixed kid");
        let ring = KeyRing::new(key, vec![], "portico", "portico-api").expect("a key ring");
        let claims = ring.new_claims("user-1", "session-1", "user", "free", NOW - 60, 900);
        let signed = ring.sign(&claims).expect("a signed token");
        assert_eq!(
            ring.verify(&signed, NOW).ok(),
            Some(claims),
            "the ring accepts its own token"
        );
        let rest = signed[signed.find('.').expect("a compact JWS")..].to_string();
        Fixture { ring, signed, rest }
    })
}

fn check(f: &Fixture, token: &str) {
    if let Ok(claims) = f.ring.verify(token, NOW) {
        assert_eq!(token, f.signed, "accepted a token the ring did not sign: {claims:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(token) = std::str::from_utf8(data) {
        check(f, token);
    }
    let token = format!("{}{}", URL_SAFE_NO_PAD.encode(data), f.rest);
    check(f, &token);
});
