//! The media service's rules, free of I/O: upload settings per network, upload estimates,
//! object keys, tus offsets, and the validation of client performance events.

use portico_proto::media::v1 as pb;

/// One hour in milliseconds: performance events are aggregated per clock hour.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The clock hour holding `now_ms`, as `[start, end)` in Unix milliseconds: an effect-run
/// allowance's window.
pub fn hour_window(now_ms: i64) -> (i64, i64) {
    let start = now_ms - now_ms.rem_euclid(HOUR_MS);
    (start, start + HOUR_MS)
}
/// Most events one RecordEvents call may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 100;
/// Longest device, os and app version strings.
pub const MAX_LABEL_CHARS: usize = 64;
/// Event types clients report.
pub const EVENT_TYPES: [&str; 3] = ["upload", "screen", "api"];
/// Longest user id accepted: ids become object key segments.
const MAX_USER_ID_CHARS: usize = 128;
/// tus metadata limits: pairs, key length, value length.
pub const MAX_METADATA_PAIRS: usize = 32;
const MAX_METADATA_KEY: usize = 64;
const MAX_METADATA_VALUE: usize = 1024;

/// A client's network type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    Slow2g,
    G2,
    G3,
    G4,
    Wifi,
}

impl Network {
    /// Every network, slowest first.
    pub const ALL: [Network; 5] = [Network::Slow2g, Network::G2, Network::G3, Network::G4, Network::Wifi];

    /// From the wire; `None` for unspecified or unknown values.
    pub fn from_proto(value: i32) -> Option<Network> {
        match pb::Connection::try_from(value).ok()? {
            pb::Connection::Slow2g => Some(Network::Slow2g),
            pb::Connection::Connection2g => Some(Network::G2),
            pb::Connection::Connection3g => Some(Network::G3),
            pb::Connection::Connection4g => Some(Network::G4),
            pb::Connection::Wifi => Some(Network::Wifi),
            pb::Connection::Unspecified => None,
        }
    }

    /// To the wire.
    pub fn to_proto(self) -> pb::Connection {
        match self {
            Network::Slow2g => pb::Connection::Slow2g,
            Network::G2 => pb::Connection::Connection2g,
            Network::G3 => pb::Connection::Connection3g,
            Network::G4 => pb::Connection::Connection4g,
            Network::Wifi => pb::Connection::Wifi,
        }
    }

    /// The public name: `slow-2g`, `2g`, `3g`, `4g` or `wifi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Slow2g => "slow-2g",
            Network::G2 => "2g",
            Network::G3 => "3g",
            Network::G4 => "4g",
            Network::Wifi => "wifi",
        }
    }

    /// Typical *upload* bandwidth (Mbit/s) and round-trip time (ms) of the network type, used
    /// for upload estimates and as the baseline of [`upload_config`] when the client measured
    /// nothing. The figures follow the network profiles browsers and WebPageTest use for these
    /// names (Chrome's effective connection types for the two 2G classes):
    ///
    /// | network | uplink | RTT |
    /// |---|---|---|
    /// | slow-2g | 0.05 Mbit/s | 2000 ms |
    /// | 2g | 0.25 Mbit/s | 800 ms |
    /// | 3g | 0.75 Mbit/s | 300 ms |
    /// | 4g | 9 Mbit/s | 170 ms |
    /// | wifi | 20 Mbit/s | 20 ms |
    pub fn typical(self) -> Link {
        let (uplink_mbps, rtt_ms) = match self {
            Network::Slow2g => (0.05, 2000),
            Network::G2 => (0.25, 800),
            Network::G3 => (0.75, 300),
            Network::G4 => (9.0, 170),
            Network::Wifi => (20.0, 20),
        };
        Link { uplink_mbps, rtt_ms }
    }

    /// The upload settings before any measurement refines them.
    fn baseline(self) -> Baseline {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * 1024;
        let (max_file_bytes, max_dimension, jpeg_quality, chunk_bytes, parallel_chunks, timeout_ms, format, resumable) =
            match self {
                Network::Slow2g => (MIB, 1024, 60, 64 * KIB, 1, 60_000, "webp", true),
                Network::G2 => (2 * MIB, 1280, 65, 128 * KIB, 1, 45_000, "webp", true),
                Network::G3 => (5 * MIB, 2048, 75, 512 * KIB, 2, 30_000, "webp", true),
                Network::G4 => (10 * MIB, 3072, 80, 2 * MIB, 3, 30_000, "webp", true),
                Network::Wifi => (25 * MIB, 4096, 85, 8 * MIB, 4, 30_000, "jpeg", false),
            };
        Baseline {
            max_file_bytes,
            max_dimension,
            jpeg_quality,
            chunk_bytes,
            parallel_chunks,
            timeout_ms,
            preferred_format: format,
            resumable,
        }
    }
}

/// Bandwidth and latency of a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Upload bandwidth, Mbit/s.
    pub uplink_mbps: f64,
    /// Round-trip time, ms.
    pub rtt_ms: u32,
}

struct Baseline {
    max_file_bytes: u64,
    max_dimension: u32,
    jpeg_quality: u32,
    chunk_bytes: u64,
    parallel_chunks: u32,
    timeout_ms: u32,
    preferred_format: &'static str,
    resumable: bool,
}

/// What a client measured about its network (`navigator.connection`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measured {
    /// Downlink estimate, Mbit/s.
    pub downlink_mbps: Option<f64>,
    /// Round-trip estimate, ms.
    pub rtt_ms: Option<u32>,
}

/// Smallest and largest chunk a refined config asks for; chunks are whole multiples of the
/// smallest so they line up with storage pages.
pub const MIN_CHUNK_BYTES: u64 = 64 * 1024;
/// See [`MIN_CHUNK_BYTES`].
pub const MAX_CHUNK_BYTES: u64 = 8 * 1024 * 1024;
/// A chunk should take about this long to send, so a dropped connection loses little work
/// and progress is reported often, while each chunk still amortises its round trip.
const TARGET_CHUNK_SECS: f64 = 2.0;
/// Phones usually send slower than they receive; `downlink` is all browsers report, so the
/// uplink is assumed to be this share of it.
const UPLINK_SHARE: f64 = 0.5;
const MIN_TIMEOUT_MS: f64 = 10_000.0;
const MAX_TIMEOUT_MS: f64 = 120_000.0;

/// Checks what the client measured; problems name the field.
pub fn validate_measured(m: &Measured) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(d) = m.downlink_mbps
        && !(d.is_finite() && d > 0.0 && d <= 10_000.0)
    {
        problems.push((
            "downlinkMbps".to_string(),
            "must be a number greater than 0 and at most 10000".to_string(),
        ));
    }
    if m.rtt_ms.is_some_and(|r| r > 60_000) {
        problems.push(("rttMs".to_string(), "must be at most 60000".to_string()));
    }
    problems
}

/// Upload settings for `network`, capped by the service's byte and chunk caps and refined by
/// what the client measured.
///
/// Without measurements the table in [`Network::baseline`] answers. With them, the link is the
/// measured one (a missing half taken from [`Network::typical`]; the uplink is
/// `downlink × 0.5`), and:
///
/// - `chunkBytes = clamp(uplink bytes/s × 2 s, 64 KiB, 8 MiB)`, rounded down to a multiple of
///   64 KiB: each chunk takes about two seconds to send;
/// - `timeoutMs = clamp(2 × RTT + 3 × (chunkBytes / uplink bytes/s), 10 s, 120 s)`: one
///   request's round trips plus three times the expected transfer time of a chunk.
pub fn upload_config(network: Network, measured: Measured, max_bytes: u64, max_chunk_bytes: u64) -> pb::UploadConfig {
    let base = network.baseline();
    let (chunk_bytes, timeout_ms) = if measured.downlink_mbps.is_none() && measured.rtt_ms.is_none() {
        (base.chunk_bytes, base.timeout_ms)
    } else {
        let typical = network.typical();
        let uplink_mbps = measured
            .downlink_mbps
            .map(|d| d * UPLINK_SHARE)
            .unwrap_or(typical.uplink_mbps);
        let rtt = f64::from(measured.rtt_ms.unwrap_or(typical.rtt_ms));
        let bytes_per_sec = uplink_mbps * 1_000_000.0 / 8.0;
        let ideal = (bytes_per_sec * TARGET_CHUNK_SECS).clamp(MIN_CHUNK_BYTES as f64, MAX_CHUNK_BYTES as f64);
        let chunk = (ideal as u64 / MIN_CHUNK_BYTES).max(1) * MIN_CHUNK_BYTES;
        let transfer_ms = chunk as f64 / bytes_per_sec * 1000.0;
        let timeout = (2.0 * rtt + 3.0 * transfer_ms).clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
        (chunk, timeout as u32)
    };
    let max_file_bytes = base.max_file_bytes.min(max_bytes);
    pb::UploadConfig {
        connection: network.to_proto() as i32,
        max_file_bytes,
        max_dimension: base.max_dimension,
        jpeg_quality: base.jpeg_quality,
        // A recommended chunk is one the service accepts (see `PORTICO_MEDIA_MAX_CHUNK_BYTES`).
        chunk_bytes: chunk_bytes.min(max_file_bytes).min(max_chunk_bytes).max(1),
        parallel_chunks: base.parallel_chunks,
        timeout_ms,
        preferred_format: base.preferred_format.to_string(),
        resumable: base.resumable,
    }
}

/// Estimated time to upload `bytes` over each network type: one round trip plus the bytes at
/// the typical uplink of [`Network::typical`].
pub fn upload_estimates(bytes: u64) -> Vec<pb::UploadEstimate> {
    Network::ALL
        .into_iter()
        .map(|n| {
            let link = n.typical();
            let transfer_ms = bytes as f64 * 8.0 / (link.uplink_mbps * 1_000_000.0) * 1000.0;
            pb::UploadEstimate {
                connection: n.to_proto() as i32,
                millis: u64::from(link.rtt_ms) + transfer_ms.ceil() as u64,
            }
        })
        .collect()
}

/// `1 − large JPEG bytes / original bytes`: the share of bytes a client saves by fetching the
/// large JPEG instead of the original. Negative when the variant is larger (a small, already
/// well-compressed original re-encoded at quality 80); 0 for an empty original.
pub fn compression_ratio(large_jpeg_bytes: u64, original_bytes: u64) -> f64 {
    if original_bytes == 0 {
        return 0.0;
    }
    1.0 - large_jpeg_bytes as f64 / original_bytes as f64
}

/// Quoted hex SHA-256 of `bytes`: the strong ETag of a variant.
pub fn etag(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("\"{}\"", hex::encode(Sha256::digest(bytes)))
}

/// User ids come from the gateway's authentication and become object key segments, so only
/// plain id characters are accepted.
pub fn valid_user_id(user_id: &str) -> bool {
    !user_id.is_empty()
        && user_id.len() <= MAX_USER_ID_CHARS
        && user_id != "."
        && user_id != ".."
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Media and upload ids are UUIDs; anything else names nothing (and never reaches a query).
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw.trim()).ok().map(|u| u.to_string())
}

/// Where all of a user's media objects live: `media/<user>/` (a user id is one key segment,
/// see [`valid_user_id`], so this never reaches another user's objects).
pub fn user_media_prefix(user_id: &str) -> String {
    format!("media/{user_id}")
}

/// Where a media item's objects live: `media/<user>/<media id>/`.
pub fn media_prefix(user_id: &str, media_id: &str) -> String {
    format!("{}/{media_id}", user_media_prefix(user_id))
}

/// The object key of a media item's original.
pub fn original_key(user_id: &str, media_id: &str, format: &str) -> String {
    format!("{}/original.{format}", media_prefix(user_id, media_id))
}

/// The object key of one variant in one format (`large.jpg`, `thumbnail.webp`).
pub fn variant_key(user_id: &str, media_id: &str, name: &str, extension: &str) -> String {
    format!("{}/{name}.{extension}", media_prefix(user_id, media_id))
}

/// Where an upload's chunks live: `uploads/<upload id>/`.
pub fn upload_prefix(upload_id: &str) -> String {
    format!("uploads/{upload_id}")
}

/// The object key of one appended chunk: its offset zero-padded to 20 digits (so keys sort in
/// offset order), then the attempt's own id. Two concurrent appends at the same offset write
/// different objects, so the loser deleting its chunk can never delete the winner's bytes.
pub fn chunk_key(upload_id: &str, offset: u64, attempt: &str) -> String {
    format!("{}/{offset:020}-{attempt}", upload_prefix(upload_id))
}

/// The media id of an object key under `media/`, if it has one.
pub fn media_id_of_key(key: &str) -> Option<&str> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("media"), Some(_user), Some(id)) => Some(id),
        _ => None,
    }
}

/// The upload id of an object key under `uploads/`, if it has one.
pub fn upload_id_of_key(key: &str) -> Option<&str> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next()) {
        (Some("uploads"), Some(id)) => Some(id),
        _ => None,
    }
}

/// Checks tus `Upload-Metadata` pairs; problems name the field.
pub fn validate_metadata(metadata: &std::collections::HashMap<String, String>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if metadata.len() > MAX_METADATA_PAIRS {
        problems.push((
            "metadata".to_string(),
            format!("must hold at most {MAX_METADATA_PAIRS} pairs"),
        ));
    }
    let mut keys: Vec<&String> = metadata.keys().collect();
    keys.sort();
    for key in keys {
        if key.is_empty() || key.len() > MAX_METADATA_KEY {
            problems.push((
                "metadata".to_string(),
                format!("keys must be 1 to {MAX_METADATA_KEY} bytes"),
            ));
        } else if metadata.get(key).is_some_and(|v| v.len() > MAX_METADATA_VALUE) {
            problems.push((
                format!("metadata.{key}"),
                format!("must be at most {MAX_METADATA_VALUE} bytes"),
            ));
        }
    }
    problems
}

/// One client event, checked and reduced to what the performance report aggregates.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `upload`, `screen` or `api`.
    pub event_type: &'static str,
    /// Milliseconds, finite, `0 ≤ d < 1 day`.
    pub duration_ms: f64,
    /// `slow-2g` … `wifi`, or `unknown`.
    pub connection: &'static str,
    /// Device model as reported, or `unknown`.
    pub device: String,
    /// Whether the operation succeeded.
    pub success: bool,
    /// Start of the clock hour it happened in, Unix ms.
    pub hour: i64,
}

/// Label of events whose connection or device the client did not report.
pub const UNKNOWN: &str = "unknown";

/// Checks a batch of events: every bad field is named (`events[3].durationMs`) and nothing is
/// accepted when any is bad. `os`, `appVersion` and `bytes` are checked but not aggregated.
pub fn validate_events(events: &[pb::ClientEvent], now_ms: i64) -> Result<Vec<Event>, Vec<(String, String)>> {
    let mut problems = Vec::new();
    if events.is_empty() {
        problems.push(("events".to_string(), "must hold at least one event".to_string()));
    }
    if events.len() > MAX_EVENTS_PER_BATCH {
        problems.push((
            "events".to_string(),
            format!("must hold at most {MAX_EVENTS_PER_BATCH} events"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let field = |name: &str| format!("events[{i}].{name}");
        let event_type = EVENT_TYPES.into_iter().find(|t| *t == e.r#type.trim());
        if event_type.is_none() {
            problems.push((field("type"), "must be upload, screen or api".to_string()));
        }
        if !(e.duration_ms.is_finite() && e.duration_ms >= 0.0 && e.duration_ms < DAY_MS as f64) {
            problems.push((
                field("durationMs"),
                "must be a number of milliseconds from 0 to under one day".to_string(),
            ));
        }
        let connection = match pb::Connection::try_from(e.connection) {
            Ok(pb::Connection::Unspecified) => Some(UNKNOWN),
            Ok(_) => Network::from_proto(e.connection).map(Network::as_str),
            Err(_) => None,
        };
        if connection.is_none() {
            problems.push((field("connection"), "must be slow-2g, 2g, 3g, 4g or wifi".to_string()));
        }
        for (name, value) in [("device", &e.device), ("os", &e.os), ("appVersion", &e.app_version)] {
            if value.chars().count() > MAX_LABEL_CHARS {
                problems.push((field(name), format!("must be at most {MAX_LABEL_CHARS} characters")));
            }
        }
        if e.occurred_at_ms < 0 || e.occurred_at_ms > now_ms + DAY_MS {
            problems.push((
                field("occurredAt"),
                "must be a Unix time in milliseconds, not more than a day ahead".to_string(),
            ));
        }
        if let (Some(event_type), Some(connection)) = (event_type, connection) {
            let at = if e.occurred_at_ms == 0 {
                now_ms
            } else {
                e.occurred_at_ms
            };
            let device = e.device.trim();
            out.push(Event {
                event_type,
                duration_ms: e.duration_ms,
                connection,
                device: if device.is_empty() {
                    UNKNOWN.to_string()
                } else {
                    device.to_string()
                },
                success: e.success,
                hour: hour_of(at),
            });
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Start of the clock hour holding `at_ms`.
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The hours a performance query reads: `[from, to)` widened to whole hours (events are kept
/// per hour). `to = 0` means now; `from = 0` means seven days before `to`.
pub fn report_range(from_ms: i64, to_ms: i64, now_ms: i64) -> Result<(i64, i64), Vec<(String, String)>> {
    let to = if to_ms == 0 { now_ms } else { to_ms };
    let from = if from_ms == 0 { to - 7 * DAY_MS } else { from_ms };
    let mut problems = Vec::new();
    if from_ms < 0 {
        problems.push(("from".to_string(), "must be a Unix time in milliseconds".to_string()));
    }
    if to_ms < 0 {
        problems.push(("to".to_string(), "must be a Unix time in milliseconds".to_string()));
    }
    if problems.is_empty() && from >= to {
        problems.push(("from".to_string(), "must be before to".to_string()));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // The hour holding `to` counts when `to` falls inside it.
    let end = hour_of(to) + if to % HOUR_MS == 0 { 0 } else { HOUR_MS };
    Ok((hour_of(from), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_has_a_sane_config_within_the_byte_cap() {
        let cap = 25 * 1024 * 1024;
        let mut last_max = 0;
        for n in Network::ALL {
            let c = upload_config(n, Measured::default(), cap, MAX_CHUNK_BYTES);
            assert!(c.max_file_bytes > last_max, "{n:?} allows more than slower networks");
            last_max = c.max_file_bytes;
            assert!(c.max_file_bytes <= cap);
            assert!(c.chunk_bytes >= MIN_CHUNK_BYTES && c.chunk_bytes <= MAX_CHUNK_BYTES);
            assert!((1..=100).contains(&c.jpeg_quality));
            assert!(c.parallel_chunks >= 1);
        }
        let small = upload_config(Network::Wifi, Measured::default(), 1024 * 1024, MAX_CHUNK_BYTES);
        assert_eq!(small.max_file_bytes, 1024 * 1024);
        assert!(small.chunk_bytes <= small.max_file_bytes);
        let capped = upload_config(Network::Wifi, Measured::default(), cap, 100_000);
        assert_eq!(capped.chunk_bytes, 100_000, "never above the chunk cap");
    }

    #[test]
    fn measurements_size_chunks_to_about_two_seconds() {
        // 8 Mbit/s down → 4 Mbit/s up = 500 kB/s → 1 MB per 2 s → 960 KiB (15 × 64 KiB).
        let c = upload_config(
            Network::G3,
            Measured {
                downlink_mbps: Some(8.0),
                rtt_ms: Some(100),
            },
            u64::MAX,
            MAX_CHUNK_BYTES,
        );
        assert_eq!(c.chunk_bytes, 15 * 64 * 1024);
        // 200 ms of round trips + 3 × 1.966 s is under the 10 s floor.
        assert_eq!(c.timeout_ms, 10_000);
        // 1 Mbit/s down → 62.5 kB/s up: one 64 KiB chunk takes 1.05 s; 2 × 4 s RTT + 3 × 1.05 s.
        let far = upload_config(
            Network::G3,
            Measured {
                downlink_mbps: Some(1.0),
                rtt_ms: Some(4000),
            },
            u64::MAX,
            MAX_CHUNK_BYTES,
        );
        assert_eq!(far.chunk_bytes, MIN_CHUNK_BYTES);
        assert_eq!(far.timeout_ms, 11_145);
        // A crawling link gets the smallest chunk and a long timeout.
        let slow = upload_config(
            Network::G2,
            Measured {
                downlink_mbps: Some(0.02),
                rtt_ms: Some(1500),
            },
            u64::MAX,
            MAX_CHUNK_BYTES,
        );
        assert_eq!(slow.chunk_bytes, MIN_CHUNK_BYTES);
        assert_eq!(slow.timeout_ms, 120_000);
        // Only an RTT: the typical 3G uplink is kept.
        let rtt_only = upload_config(
            Network::G3,
            Measured {
                downlink_mbps: None,
                rtt_ms: Some(300),
            },
            u64::MAX,
            MAX_CHUNK_BYTES,
        );
        assert_eq!(rtt_only.chunk_bytes, 2 * 64 * 1024);
    }

    #[test]
    fn measurements_out_of_range_are_named() {
        let bad = validate_measured(&Measured {
            downlink_mbps: Some(f64::NAN),
            rtt_ms: Some(70_000),
        });
        let names: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["downlinkMbps", "rttMs"]);
    }

    #[test]
    fn estimates_grow_as_networks_slow() {
        let e = upload_estimates(200_000);
        assert_eq!(e.len(), 5);
        // wifi: 20 ms + 200 kB at 20 Mbit/s = 80 ms.
        assert_eq!(e.last().map(|x| x.millis), Some(100));
        // slow-2g: 2 s + 32 s.
        assert_eq!(e.first().map(|x| x.millis), Some(34_000));
        assert!(e.windows(2).all(|w| w[0].millis > w[1].millis));
    }

    #[test]
    fn compression_ratio_can_be_negative() {
        assert!((compression_ratio(250, 1000) - 0.75).abs() < 1e-12);
        assert!(compression_ratio(1500, 1000) < 0.0);
        assert_eq!(compression_ratio(10, 0), 0.0);
    }

    #[test]
    fn user_ids_are_plain_key_segments() {
        assert!(valid_user_id("0190c5b0-7a1e-7cc0-b3a4-1f2e3d4c5b6a"));
        assert!(valid_user_id("user_1"));
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(!valid_user_id(bad), "{bad}");
        }
    }

    #[test]
    fn keys_sort_by_offset_and_parse_back() {
        let a = chunk_key("u1", 9, "x");
        let b = chunk_key("u1", 10, "a");
        assert!(a < b);
        assert_eq!(upload_id_of_key(&a), Some("u1"));
        let k = variant_key("alice", "m1", "large", "jpg");
        assert_eq!(k, "media/alice/m1/large.jpg");
        assert_eq!(media_id_of_key(&k), Some("m1"));
        assert_eq!(media_id_of_key("media/alice"), None);
        assert_eq!(upload_id_of_key("media/a/b"), None);
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(parse_id("0190c5b0-7a1e-7cc0-b3a4-1f2e3d4c5b6a").is_some());
        assert!(parse_id("../../etc/passwd").is_none());
        assert!(parse_id("").is_none());
    }

    fn event(t: &str, d: f64) -> pb::ClientEvent {
        pb::ClientEvent {
            r#type: t.to_string(),
            duration_ms: d,
            connection: pb::Connection::Connection4g as i32,
            device: "Pixel 8".to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_events_are_named_and_nothing_is_accepted() {
        let now = 10 * DAY_MS;
        let mut events = vec![event("upload", 10.0), event("click", 1.0), event("api", -1.0)];
        events.push(pb::ClientEvent {
            connection: 42,
            os: "x".repeat(65),
            ..event("screen", f64::INFINITY)
        });
        let problems = validate_events(&events, now).err().unwrap_or_default();
        let names: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "events[1].type",
                "events[2].durationMs",
                "events[3].durationMs",
                "events[3].connection",
                "events[3].os"
            ]
        );
        assert!(validate_events(&[], now).is_err());
        assert!(validate_events(&vec![event("api", 1.0); 101], now).is_err());
        assert!(validate_events(&[event("api", DAY_MS as f64)], now).is_err());
    }

    #[test]
    fn good_events_are_reduced_to_their_hour() {
        let now = 10 * DAY_MS + 123;
        let mut e = event("api", 0.0);
        e.connection = 0;
        e.device = "  ".to_string();
        let ok = validate_events(&[e, event("upload", 5.5)], now).unwrap_or_default();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].connection, UNKNOWN);
        assert_eq!(ok[0].device, UNKNOWN);
        assert_eq!(ok[0].hour, 10 * DAY_MS);
        assert_eq!(ok[1].connection, "4g");
    }

    #[test]
    fn report_ranges_cover_whole_hours() {
        let now = 100 * HOUR_MS + 5;
        assert_eq!(report_range(0, 0, now), Ok((now - 5 - 7 * DAY_MS, 101 * HOUR_MS)));
        assert_eq!(
            report_range(3 * HOUR_MS + 1, 5 * HOUR_MS, now),
            Ok((3 * HOUR_MS, 5 * HOUR_MS))
        );
        assert!(report_range(5, 5, now).is_err());
        assert!(report_range(-1, 5, now).is_err());
    }
}
