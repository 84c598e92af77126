//! An error event as the Sentry SDKs send it (the `event` item of an envelope, or the body
//! of the legacy `store` endpoint), read tolerantly: every field is optional, and the shapes
//! SDKs differ on (a `timestamp` as RFC 3339 or float seconds, `exception` as an object with
//! `values` or a bare list, `tags` as an object or a list of pairs, `message` as a string or
//! an object) are all accepted.

use serde_json::Value;

use super::grouping::{Exception, Frame, Groupable};

/// Severity, Sentry's five levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "api", schema(as = ErrorLevel))]
pub enum Level {
    /// `debug`.
    Debug,
    /// `info` (also `log`).
    Info,
    /// `warning` (also `warn`).
    Warning,
    /// `error`, the default.
    Error,
    /// `fatal` (also `critical`).
    Fatal,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [Level::Debug, Level::Info, Level::Warning, Level::Error, Level::Fatal];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Parses what SDKs send (unknown spellings are `None`).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" | "log" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            "fatal" | "critical" => Some(Level::Fatal),
            _ => None,
        }
    }
}

/// Longest title kept (Sentry cuts at about this).
const MAX_TITLE: usize = 200;

/// What the service keeps of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorEvent {
    /// `event_id` (32 hex characters, lower-cased; made up when missing).
    pub event_id: Option<String>,
    /// `timestamp` in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// `level`.
    pub level: Level,
    /// `platform`.
    pub platform: Option<String>,
    /// `release`.
    pub release: Option<String>,
    /// `environment`.
    pub environment: Option<String>,
    /// `user.id`, else `user.email`, else `user.ip_address`: who was affected.
    pub user: Option<String>,
    /// `tags`, as pairs.
    pub tags: Vec<(String, String)>,
    /// What grouping reads.
    pub groupable: Groupable,
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A timestamp as RFC 3339 text or (float) seconds since the epoch.
pub fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0) as i64),
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.timestamp_millis()),
            // SDKs also send naive UTC (`2026-12-02T01:02:03.456`) and numbers as text.
            Err(_) => chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
                .or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| (s * 1000.0) as i64)
                }),
        },
        _ => None,
    }
}

fn frame(v: &Value) -> Frame {
    Frame {
        module: string(&v["module"]),
        filename: string(&v["filename"]).or_else(|| string(&v["abs_path"])),
        function: string(&v["function"]),
        context_line: v["context_line"].as_str().map(str::to_string),
        in_app: v["in_app"].as_bool(),
        lineno: v["lineno"].as_u64().and_then(|n| u32::try_from(n).ok()),
    }
}

fn exception(v: &Value) -> Exception {
    Exception {
        kind: string(&v["type"]),
        value: string(&v["value"]),
        frames: v["stacktrace"]["frames"]
            .as_array()
            .map(|frames| frames.iter().map(frame).collect())
            .unwrap_or_default(),
    }
}

/// The message: `logentry.message` (the template), else `logentry.formatted`, else
/// `message` (a string, or an object of the same shape as `logentry`).
fn message(event: &Value) -> Option<String> {
    let entry = if event["logentry"].is_object() {
        &event["logentry"]
    } else {
        &event["message"]
    };
    string(&entry["message"])
        .or_else(|| string(&entry["formatted"]))
        .or_else(|| string(&event["message"]))
}

fn tags(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Object(map) => map.iter().filter_map(|(k, v)| Some((k.clone(), string(v)?))).collect(),
        Value::Array(pairs) => pairs
            .iter()
            .filter_map(|p| Some((string(&p[0])?, string(&p[1])?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// An event id: 32 hex characters (a UUID with or without hyphens), lower-cased.
pub fn event_id(v: &Value) -> Option<String> {
    let id: String = v
        .as_str()?
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

impl ErrorEvent {
    /// Reads an event object. Only a body that is not a JSON object is refused.
    pub fn from_json(event: &Value) -> Result<ErrorEvent, &'static str> {
        if !event.is_object() {
            return Err("an event is a JSON object");
        }
        let exceptions = match &event["exception"] {
            Value::Object(e) => e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().map(exception).collect()),
            Value::Array(values) => Some(values.iter().map(exception).collect()),
            _ => None,
        }
        .unwrap_or_default();
        let fingerprint = event["fingerprint"]
            .as_array()
            .map(|f| f.iter().filter_map(string).collect());
        let user = &event["user"];
        Ok(ErrorEvent {
            event_id: event_id(&event["event_id"]),
            timestamp_ms: timestamp_ms(&event["timestamp"]),
            level: event["level"].as_str().and_then(Level::parse).unwrap_or(Level::Error),
            platform: string(&event["platform"]),
            release: string(&event["release"]),
            environment: string(&event["environment"]),
            user: string(&user["id"])
                .or_else(|| string(&user["email"]))
                .or_else(|| string(&user["ip_address"])),
            tags: tags(&event["tags"]),
            groupable: Groupable {
                fingerprint,
                exceptions,
                message: message(event),
                transaction: string(&event["transaction"]),
            },
        })
    }

    /// The group's title: `Type: value` of the last exception (the one raised), else the
    /// message; cut to a readable length.
    pub fn title(&self) -> String {
        let g = &self.groupable;
        let title = match g.exceptions.last() {
            Some(e) => match (e.kind.as_deref(), e.value.as_deref()) {
                (Some(k), Some(v)) => format!("{k}: {v}"),
                (Some(k), None) => k.to_string(),
                (None, Some(v)) => v.to_string(),
                (None, None) => g.message.clone().unwrap_or_else(|| "<unlabeled event>".into()),
            },
            None => g.message.clone().unwrap_or_else(|| "<unlabeled event>".into()),
        };
        let title = title.lines().next().unwrap_or("").to_string();
        if title.len() > MAX_TITLE {
            format!("{}…", &title[..title.floor_char_boundary(MAX_TITLE)])
        } else {
            title
        }
    }

    /// Where it happened: the innermost in-app frame (else the innermost frame) as
    /// `module in function`, else the transaction.
    pub fn culprit(&self) -> Option<String> {
        let frames = self
            .groupable
            .exceptions
            .last()
            .map(|e| e.frames.as_slice())
            .unwrap_or(&[]);
        let frame = frames
            .iter()
            .rev()
            .find(|f| super::grouping::in_app(f))
            .or_else(|| frames.last());
        match frame {
            Some(f) => {
                let place = f.module.clone().or_else(|| f.filename.clone()).unwrap_or_default();
                match &f.function {
                    Some(func) if !place.is_empty() => Some(format!("{place} in {func}")),
                    Some(func) => Some(func.clone()),
                    None if !place.is_empty() => Some(place),
                    None => self.groupable.transaction.clone(),
                }
            }
            None => self.groupable.transaction.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_python_sdk_event() -> Result<(), &'static str> {
        let e = ErrorEvent::from_json(&json!({
            "event_id": "9EC79C33-EC99-42AB-8353-589FCB2E04DC",
            "timestamp": 1764637323.5,
            "level": "error",
            "platform": "python",
            "release": "shop@1.4.0",
            "environment": "production",
            "user": {"email": "ana@example.com"},
            "tags": {"region": "eu", "attempt": 3},
            "exception": {"values": [{
                "type": "ZeroDivisionError", "value": "division by zero",
                "stacktrace": {"frames": [
                    {"module": "app.pay", "function": "charge", "context_line": "  rate = a / b", "in_app": true, "lineno": 12}
                ]}
            }]}
        }))?;
        assert_eq!(e.event_id.as_deref(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
        assert_eq!(e.timestamp_ms, Some(1_764_637_323_500));
        assert_eq!(e.user.as_deref(), Some("ana@example.com"));
        assert_eq!(
            e.tags,
            vec![("attempt".into(), "3".into()), ("region".into(), "eu".into())]
        );
        assert_eq!(e.title(), "ZeroDivisionError: division by zero");
        assert_eq!(e.culprit().as_deref(), Some("app.pay in charge"));
        assert_eq!(e.groupable.exceptions[0].frames[0].lineno, Some(12));
        Ok(())
    }

    #[test]
    fn the_shapes_sdks_differ_on() -> Result<(), &'static str> {
        let e = ErrorEvent::from_json(&json!({
            "timestamp": "2026-12-02T01:02:03.250Z",
            "level": "warn",
            "logentry": {"message": "user %s not found", "formatted": "user 41 not found"},
            "tags": [["a", "1"], ["b", "2"]],
            "exception": [{"type": "NotFound"}]
        }))?;
        assert_eq!(e.timestamp_ms, Some(1_796_173_323_250));
        assert_eq!(e.level, Level::Warning);
        assert_eq!(e.groupable.message.as_deref(), Some("user %s not found"));
        assert_eq!(e.tags.len(), 2);
        assert_eq!(e.event_id, None);
        let plain = ErrorEvent::from_json(&json!({"message": "disk full", "timestamp": "2026-12-02T01:02:03"}))?;
        assert_eq!(plain.groupable.message.as_deref(), Some("disk full"));
        assert_eq!(plain.title(), "disk full");
        assert_eq!(plain.level, Level::Error);
        assert_eq!(plain.timestamp_ms, Some(1_796_173_323_000));
        let formatted = ErrorEvent::from_json(&json!({"message": {"formatted": "boom 3"}}))?;
        assert_eq!(formatted.groupable.message.as_deref(), Some("boom 3"));
        assert!(ErrorEvent::from_json(&json!([1])).is_err());
        Ok(())
    }
}
