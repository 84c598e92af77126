//! Sentry's envelope format, as the official SDKs send it to `/api/{project}/envelope/`:
//! a JSON header line, then items, each a JSON header line and a payload — of exactly
//! `length` bytes when the header says so, else up to the next newline.
//!
//! ```text
//! {"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://key@host/sentry/42"}
//! {"type":"event","length":41}
//! {"message":"hello world","level":"error"}
//! {"type":"session"}
//! {"started":"2026-12-02T00:00:00Z","status":"ok"}
//! ```

use serde_json::Value;

/// A parsed envelope: its header and its items (payloads borrowed from the body).
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The first line.
    pub header: Value,
    /// Every item, in order.
    pub items: Vec<Item<'a>>,
}

/// One item.
#[derive(Debug)]
pub struct Item<'a> {
    /// `type` (`event`, `transaction`, `session`, `attachment`, …).
    pub kind: String,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Why an envelope cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The header line is not a JSON object.
    #[error("the envelope header (line 1) is not a JSON object")]
    Header,
    /// An item header is not a JSON object with a `type`.
    #[error("item {0}: its header is not a JSON object with a `type`")]
    ItemHeader(usize),
    /// A `length` runs past the end of the body.
    #[error("item {0}: `length` runs past the end of the envelope")]
    Length(usize),
}

/// Splits off the line starting at `at` (without its `\n`) and where the next one starts.
fn line(body: &[u8], at: usize) -> (&[u8], usize) {
    let rest = &body[at..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (&rest[..end], at + end + 1),
        None => (rest, body.len()),
    }
}

/// Reads an envelope.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (first, mut at) = line(body, 0);
    let header: Value = serde_json::from_slice(first).map_err(|_| EnvelopeError::Header)?;
    if !header.is_object() {
        return Err(EnvelopeError::Header);
    }
    let mut items = Vec::new();
    while at < body.len() {
        let (item_header, next) = line(body, at);
        at = next;
        if item_header.iter().all(u8::is_ascii_whitespace) {
            continue; // a trailing newline, or blank lines between items
        }
        let index = items.len() + 1;
        let item_header: Value = serde_json::from_slice(item_header).map_err(|_| EnvelopeError::ItemHeader(index))?;
        let Some(kind) = item_header["type"].as_str() else {
            return Err(EnvelopeError::ItemHeader(index));
        };
        let payload = match item_header["length"].as_u64() {
            Some(length) => {
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|l| at.checked_add(l))
                    .filter(|&end| end <= body.len())
                    .ok_or(EnvelopeError::Length(index))?;
                let payload = &body[at..end];
                // The newline after a sized payload is optional.
                at = if body.get(end) == Some(&b'\n') { end + 1 } else { end };
                payload
            }
            None => {
                let (payload, next) = line(body, at);
                at = next;
                payload
            }
        };
        items.push(Item {
            kind: kind.to_string(),
            payload,
        });
    }
    Ok(Envelope { header, items })
}

impl<'a> Envelope<'a> {
    /// The error events it carries (`event` items); everything else (transactions, sessions,
    /// client reports, attachments …) is not an error and is skipped.
    pub fn events(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.items.iter().filter(|i| i.kind == "event").map(|i| i.payload)
    }

    /// The public key in the header's `dsn` (`https://<key>@host/…`), if any.
    pub fn dsn_key(&self) -> Option<&str> {
        dsn_key(self.header["dsn"].as_str()?)
    }
}

/// The public key of a DSN: its user part.
pub fn dsn_key(dsn: &str) -> Option<&str> {
    let rest = dsn.split_once("://")?.1;
    let (user, _) = rest.split_once('@')?;
    let key = user.split(':').next()?;
    (!key.is_empty()).then_some(key)
}

/// The `sentry_key` of an `X-Sentry-Auth` header (`Sentry sentry_key=…, sentry_version=7, …`)
/// or of a query string (`sentry_key=…&sentry_version=7`).
pub fn sentry_key(auth: &str) -> Option<&str> {
    let auth = auth.trim();
    let auth = auth.strip_prefix("Sentry ").unwrap_or(auth);
    auth.split([',', '&'])
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == "sentry_key")
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length() -> Result<(), EnvelopeError> {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"https://abc123@h/sentry/4\"}\n\
{\"type\":\"attachment\",\"length\":11}\nline1\nline2\n\
{\"type\":\"event\",\"length\":16}\n{\"message\":\"hi\"}\n\
{\"type\":\"session\"}\n{\"status\":\"ok\"}\n\
{\"type\":\"event\"}\n{\"message\":\"second\"}";
        let envelope = parse(body)?;
        let kinds: Vec<&str> = envelope.items.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["attachment", "event", "session", "event"]);
        assert_eq!(envelope.items[0].payload, b"line1\nline2");
        let events: Vec<&[u8]> = envelope.events().collect();
        assert_eq!(events, [&b"{\"message\":\"hi\"}"[..], &b"{\"message\":\"second\"}"[..]]);
        assert_eq!(envelope.dsn_key(), Some("abc123"));
        Ok(())
    }

    #[test]
    fn a_sized_payload_needs_no_newline_and_may_hold_newlines() -> Result<(), EnvelopeError> {
        let body = b"{}\n{\"type\":\"event\",\"length\":4}\n{\n}\n{\"type\":\"event\",\"length\":2}\n{}";
        let envelope = parse(body)?;
        let events: Vec<&[u8]> = envelope.events().collect();
        assert_eq!(events, [&b"{\n}\n"[..], &b"{}"[..]]);
        Ok(())
    }

    #[test]
    fn broken_envelopes_say_where() {
        assert_eq!(parse(b"not json\n").err(), Some(EnvelopeError::Header));
        assert_eq!(parse(b"[1]\n").err(), Some(EnvelopeError::Header));
        assert_eq!(
            parse(b"{}\n{\"length\":2}\n{}").err(),
            Some(EnvelopeError::ItemHeader(1))
        );
        assert_eq!(
            parse(b"{}\n{\"type\":\"event\",\"length\":99}\n{}").err(),
            Some(EnvelopeError::Length(1))
        );
        assert!(parse(b"{}").is_ok_and(|e| e.items.is_empty()));
    }

    #[test]
    fn keys_from_the_auth_header_the_query_and_the_dsn() {
        assert_eq!(
            sentry_key("Sentry sentry_key=0123abcd, sentry_version=7, sentry_client=sentry.python/2.0"),
            Some("0123abcd")
        );
        assert_eq!(
            sentry_key("sentry_version=7&sentry_key=k9&sentry_client=js"),
            Some("k9")
        );
        assert_eq!(sentry_key("sentry_version=7"), None);
        assert_eq!(dsn_key("https://pub:secret@example.com/sentry/3"), Some("pub"));
        assert_eq!(dsn_key("https://example.com/sentry/3"), None);
    }
}
