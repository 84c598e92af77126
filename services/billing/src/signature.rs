//! `Stripe-Signature` as Stripe defines it: `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]`,
//! the HMAC taken over `"{t}.{raw body}"` keyed with the whole `whsec_…` secret. Any `v1` may
//! match (Stripe sends several while a secret is being rolled); `v0` is ignored; a timestamp
//! older than the tolerance is refused, one in the future is not (as Stripe's libraries do).

use aws_lc_rs::hmac;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No header, or no `t=` or no `v1=` in it.
    Missing,
    /// No `v1` matches.
    Invalid,
    /// Signed longer ago than the tolerance.
    Expired,
}

/// Checks `header` over `payload` with `secret` at `now_s`.
pub fn verify(payload: &[u8], header: &str, secret: &str, now_s: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => candidates.push(sig),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return Err(SignatureError::Missing);
    };
    if candidates.is_empty() {
        return Err(SignatureError::Missing);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signed = signed_payload(t, payload);
    // Every candidate is checked with the constant-time comparison of `hmac::verify`.
    let matches = candidates
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .any(|sig| hmac::verify(&key, &signed, &sig).is_ok());
    if !matches {
        return Err(SignatureError::Invalid);
    }
    if now_s.saturating_sub(t) > TOLERANCE_SECS {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// The header Stripe would send for `payload` signed at `t` (the local provider signs its
/// events with it; tests sign theirs).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signed_payload(t, payload));
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

fn signed_payload(t: i64, payload: &[u8]) -> Vec<u8> {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    signed
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(verify(BODY, &header, SECRET, 1_000), Ok(()));
        assert_eq!(verify(BODY, &header, SECRET, 1_300), Ok(()), "within the tolerance");
        assert_eq!(verify(BODY, &header, SECRET, 900), Ok(()), "future timestamps pass");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(secret, b"1000." + body, sha256).
        let expected = "64206c8436cf85399a02f9ba9d39f77c23213ac6c8fd76c5179e8e92c36c8b58";
        assert_eq!(sign(BODY, SECRET, 1_000), format!("t=1000,v1={expected}"));
    }

    #[test]
    fn any_v1_may_match_and_v0_is_ignored() {
        let good = sign(BODY, SECRET, 1_000);
        let good_sig = good.split("v1=").nth(1).unwrap_or_default();
        let header = format!("t=1000,v1={},v0={good_sig},v1={good_sig}", "ab".repeat(32));
        assert_eq!(verify(BODY, &header, SECRET, 1_000), Ok(()));
        let only_v0 = format!("t=1000,v0={good_sig}");
        assert_eq!(verify(BODY, &only_v0, SECRET, 1_000), Err(SignatureError::Missing));
    }

    #[test]
    fn tampering_a_wrong_secret_and_staleness_are_refused() {
        let header = sign(BODY, SECRET, 1_000);
        assert_eq!(
            verify(b"{\"id\":\"evt_2\"}", &header, SECRET, 1_000),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(BODY, &header, "whsec_other", 1_000),
            Err(SignatureError::Invalid)
        );
        assert_eq!(verify(BODY, &header, SECRET, 1_301), Err(SignatureError::Expired));
        assert_eq!(verify(BODY, "", SECRET, 1_000), Err(SignatureError::Missing));
        assert_eq!(verify(BODY, "v1=abc", SECRET, 1_000), Err(SignatureError::Missing));
        assert_eq!(
            verify(BODY, "t=1000,v1=zz", SECRET, 1_000),
            Err(SignatureError::Invalid)
        );
        // A stale timestamp with a forged signature is "invalid", never "expired": the
        // answer does not tell a forger which part was wrong first.
        assert_eq!(verify(BODY, "t=1,v1=00", SECRET, 1_000), Err(SignatureError::Invalid));
    }
}
