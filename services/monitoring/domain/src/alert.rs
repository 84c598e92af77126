//! Alerts: what a rule watches and when it breaches, the lifecycle
//! `pending → firing → acknowledged → resolved` decided from one observation at a time, the
//! fingerprint that deduplicates an alert per (rule, labels), and the links that act on an alert
//! without signing in. No I/O: the clock and the data come in as arguments.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use sha2::{Digest, Sha256};

use super::analytics::Vital;

/// Longest rule name.
pub const MAX_NAME: usize = 200;
/// Most notification targets per rule.
pub const MAX_TARGETS: usize = 20;
/// Longest window or pending period: a day.
pub const MAX_SECONDS: i64 = 86_400;
/// Longest repeat interval: a week.
pub const MAX_REPEAT_SECONDS: i64 = 7 * 86_400;

/// What a rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "api", schema(as = AlertMetric))]
pub enum Metric {
    /// The gateway's 95th-percentile response time, milliseconds (per route, or all routes).
    ApiP95Ms,
    /// The share of the gateway's responses that are 5xx, in percent.
    ApiErrorRate,
    /// A process's resident memory as a percentage of the memory it may use.
    MemoryPercent,
    /// The share of cache lookups that hit, in percent, per service.
    CacheHitRate,
    /// A web vital's 75th percentile (the rule names the vital).
    VitalP75,
    /// Error events received per project (or in the rule's project) within the window.
    ErrorEvents,
    /// 1 while a service or a dependency fails its health probe, else 0.
    ServiceDown,
}

impl Metric {
    /// Every metric, in the catalogue's order.
    pub const ALL: [Metric; 7] = [
        Metric::ApiP95Ms,
        Metric::ApiErrorRate,
        Metric::MemoryPercent,
        Metric::CacheHitRate,
        Metric::VitalP75,
        Metric::ErrorEvents,
        Metric::ServiceDown,
    ];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ApiP95Ms => "api_p95_ms",
            Metric::ApiErrorRate => "api_error_rate",
            Metric::MemoryPercent => "memory_percent",
            Metric::CacheHitRate => "cache_hit_rate",
            Metric::VitalP75 => "vital_p75",
            Metric::ErrorEvents => "error_events",
            Metric::ServiceDown => "service_down",
        }
    }

    /// Parses the API's name.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// How a value compares with the threshold when it breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "api", schema(as = AlertCondition))]
pub enum Condition {
    /// Breaches above the threshold.
    Gt,
    /// Breaches below the threshold.
    Lt,
}

impl Condition {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Gt => "gt",
            Condition::Lt => "lt",
        }
    }

    /// Parses the API's name.
    pub fn parse(s: &str) -> Option<Condition> {
        [Condition::Gt, Condition::Lt].into_iter().find(|c| c.as_str() == s)
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Condition::Gt => value > threshold,
            Condition::Lt => value < threshold,
        }
    }
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "api", schema(as = AlertSeverity))]
pub enum Severity {
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
}

impl Severity {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses the API's name.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "api", schema(as = AlertStatus))]
pub enum Status {
    /// Breaching, not yet for the rule's `forSeconds`.
    Pending,
    /// Breaching long enough: notified, and notified again every repeat interval.
    Firing,
    /// Someone is on it: no more repeats.
    Acknowledged,
    /// Over (cleared by itself or resolved by hand).
    Resolved,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [Status::Pending, Status::Firing, Status::Acknowledged, Status::Resolved];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Firing => "firing",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    /// Parses the API's name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a notification goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An e-mail address.
    Email(String),
    /// An `https://` URL that receives Alertmanager's webhook payload (version 4).
    Webhook(String),
}

impl Target {
    /// Parses one entry of a rule's `notify`: an e-mail address or a webhook URL. Webhooks must
    /// be `https://` to a public host unless `allow_private` (development and tests), so a rule
    /// cannot point Portico at its own network.
    pub fn parse(s: &str, allow_private: bool) -> Result<Target, String> {
        let s = s.trim();
        if s.len() > 2048 {
            return Err("is longer than 2048 characters".into());
        }
        if let Some(rest) = s
            .strip_prefix("https://")
            .or_else(|| allow_private.then(|| s.strip_prefix("http://")).flatten())
        {
            let host = webhook_host(rest).ok_or("has no host")?;
            if !allow_private && !public_host(host) {
                return Err("must be a public host (not loopback, private, link-local or `localhost`)".into());
            }
            return Ok(Target::Webhook(s.to_string()));
        }
        if s.contains("://") {
            return Err("a webhook must be an https:// URL".into());
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',') =>
            {
                Ok(Target::Email(s.to_string()))
            }
            _ => Err("must be an e-mail address or an https:// webhook URL".into()),
        }
    }

    /// As given.
    pub fn as_str(&self) -> &str {
        match self {
            Target::Email(s) | Target::Webhook(s) => s,
        }
    }
}

/// The host of a URL without its scheme (`host[:port]/path…`, `[v6]:port`).
fn webhook_host(rest: &str) -> Option<&str> {
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Whether `host` (a name or an address literal) may receive webhooks: not `localhost` and,
/// for a literal, a public address. Names are checked again when they resolve.
pub fn public_host(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") || lower.ends_with(".internal") {
        return false;
    }
    match lower.parse::<IpAddr>() {
        Ok(ip) => public_ip(ip),
        Err(_) => true,
    }
}

/// Whether an address is on the public internet (what a webhook may be delivered to).
pub fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// A rule as an admin writes it (every field as the API names it).
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub name: String,
    pub metric: String,
    pub vital: String,
    pub project_id: i64,
    pub route: String,
    pub condition: String,
    pub threshold: f64,
    pub window_seconds: i64,
    pub for_seconds: i64,
    pub severity: String,
    pub repeat_interval_seconds: i64,
    pub notify: Vec<String>,
    pub enabled: bool,
}

/// A valid rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    /// The vital of a `vital_p75` rule.
    pub vital: Option<Vital>,
    /// The project of an `error_events` rule (`None`: each project on its own).
    pub project_id: Option<i64>,
    /// The route template an API rule watches (`None`: all routes together).
    pub route: Option<String>,
    pub condition: Condition,
    pub threshold: f64,
    pub window_seconds: i64,
    pub for_seconds: i64,
    pub severity: Severity,
    /// 0: notify once.
    pub repeat_interval_seconds: i64,
    pub notify: Vec<Target>,
    pub enabled: bool,
}

impl Rule {
    /// Checks a draft, naming every bad field.
    pub fn validate(d: Draft, allow_private: bool) -> Result<Rule, Vec<(String, String)>> {
        let mut bad: Vec<(String, String)> = Vec::new();
        let mut field = |name: &str, why: &str| bad.push((name.to_string(), why.to_string()));
        let name = d.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            field("name", "must be 1 to 200 characters");
        }
        let metric = Metric::parse(&d.metric);
        if metric.is_none() {
            field(
                "metric",
                "must be api_p95_ms, api_error_rate, memory_percent, cache_hit_rate, vital_p75, error_events or service_down",
            );
        }
        let vital = match (metric, d.vital.as_str()) {
            (Some(Metric::VitalP75), "") => {
                field("vital", "is required for vital_p75: LCP, INP, CLS, FCP or TTFB");
                None
            }
            (Some(Metric::VitalP75), v) => {
                let vital = Vital::parse(v);
                if vital.is_none() {
                    field("vital", "must be LCP, INP, CLS, FCP or TTFB");
                }
                vital
            }
            (_, "") => None,
            _ => {
                field("vital", "applies to vital_p75 only");
                None
            }
        };
        let project_id = match (metric, d.project_id) {
            (_, 0) => None,
            (Some(Metric::ErrorEvents), id) if id > 0 => Some(id),
            (Some(Metric::ErrorEvents), _) => {
                field("projectId", "must be a project id");
                None
            }
            _ => {
                field("projectId", "applies to error_events only");
                None
            }
        };
        let route = match (metric, d.route.trim()) {
            (_, "") => None,
            (Some(Metric::ApiP95Ms | Metric::ApiErrorRate), r) if r.starts_with('/') && r.len() <= 256 => {
                Some(r.to_string())
            }
            (Some(Metric::ApiP95Ms | Metric::ApiErrorRate), _) => {
                field(
                    "route",
                    "must be a route template starting with `/`, at most 256 characters",
                );
                None
            }
            _ => {
                field("route", "applies to api_p95_ms and api_error_rate only");
                None
            }
        };
        let condition = Condition::parse(&d.condition);
        if condition.is_none() {
            field("condition", "must be gt or lt");
        }
        if !d.threshold.is_finite() {
            field("threshold", "must be a finite number");
        }
        if !(60..=MAX_SECONDS).contains(&d.window_seconds) {
            field("windowSeconds", "must be 60 to 86400");
        }
        if !(0..=MAX_SECONDS).contains(&d.for_seconds) {
            field("forSeconds", "must be 0 to 86400");
        }
        let severity = Severity::parse(&d.severity);
        if severity.is_none() {
            field("severity", "must be warning or critical");
        }
        if !(d.repeat_interval_seconds == 0 || (60..=MAX_REPEAT_SECONDS).contains(&d.repeat_interval_seconds)) {
            field("repeatIntervalSeconds", "must be 0 (never) or 60 to 604800");
        }
        if d.notify.len() > MAX_TARGETS {
            field("notify", "at most 20 targets");
        }
        let mut notify = Vec::new();
        for (i, t) in d.notify.iter().enumerate() {
            match Target::parse(t, allow_private) {
                Ok(t) if !notify.contains(&t) => notify.push(t),
                Ok(_) => {}
                Err(why) => field(&format!("notify[{i}]"), &why),
            }
        }
        match (metric, condition, severity) {
            (Some(metric), Some(condition), Some(severity)) if bad.is_empty() => Ok(Rule {
                name,
                metric,
                vital,
                project_id,
                route,
                condition,
                threshold: d.threshold,
                window_seconds: d.window_seconds,
                for_seconds: d.for_seconds,
                severity,
                repeat_interval_seconds: d.repeat_interval_seconds,
                notify,
                enabled: d.enabled,
            }),
            _ => Err(bad),
        }
    }

    /// The labels every alert of this rule carries (a series adds its own).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("alertname".to_string(), self.name.clone()),
            ("severity".to_string(), self.severity.as_str().to_string()),
            ("metric".to_string(), self.metric.as_str().to_string()),
        ]);
        if let Some(v) = self.vital {
            labels.insert("vital".into(), v.as_str().into());
        }
        if let Some(r) = &self.route {
            labels.insert("route".into(), r.clone());
        }
        if let Some(p) = self.project_id {
            labels.insert("project".into(), p.to_string());
        }
        labels
    }

    /// A one-line summary of what breaches (`api_p95_ms > 3000 for 60s`).
    pub fn describe(&self) -> String {
        let what = match (self.vital, &self.route) {
            (Some(v), _) => format!("{} p75", v.as_str()),
            (_, Some(r)) => format!("{} on {r}", self.metric.as_str()),
            _ => self.metric.as_str().to_string(),
        };
        let op = match self.condition {
            Condition::Gt => ">",
            Condition::Lt => "<",
        };
        format!(
            "{what} {op} {} over {}s for {}s",
            self.threshold, self.window_seconds, self.for_seconds
        )
    }
}

/// The defaults an installation starts with (seeded once; admins edit or delete them):
/// API p95 over 3 s (warning) and 5 s (critical), error rate over 5 %, memory over 80 %, cache
/// hit rate under 60 %, any service down. `notify` comes from configuration.
pub fn default_rules(notify: &[Target]) -> Vec<Rule> {
    let rule = |name: &str, metric, condition, threshold, for_seconds, severity| Rule {
        name: name.to_string(),
        metric,
        vital: None,
        project_id: None,
        route: None,
        condition,
        threshold,
        window_seconds: 300,
        for_seconds,
        severity,
        repeat_interval_seconds: 3_600,
        notify: notify.to_vec(),
        enabled: true,
    };
    vec![
        rule(
            "API p95 above 3 s",
            Metric::ApiP95Ms,
            Condition::Gt,
            3_000.0,
            60,
            Severity::Warning,
        ),
        rule(
            "API p95 above 5 s",
            Metric::ApiP95Ms,
            Condition::Gt,
            5_000.0,
            60,
            Severity::Critical,
        ),
        rule(
            "API error rate above 5 %",
            Metric::ApiErrorRate,
            Condition::Gt,
            5.0,
            60,
            Severity::Critical,
        ),
        rule(
            "Memory above 80 %",
            Metric::MemoryPercent,
            Condition::Gt,
            80.0,
            120,
            Severity::Warning,
        ),
        rule(
            "Cache hit rate below 60 %",
            Metric::CacheHitRate,
            Condition::Lt,
            60.0,
            300,
            Severity::Warning,
        ),
        rule(
            "Service down",
            Metric::ServiceDown,
            Condition::Gt,
            0.0,
            30,
            Severity::Critical,
        ),
    ]
}

/// The identity of an alert: its rule and labels (two evaluations of the same breach are one
/// alert). 32 hex characters.
pub fn fingerprint(rule_id: &str, labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    for (k, v) in labels {
        h.update([0xff]);
        h.update(k.as_bytes());
        h.update([0xfe]);
        h.update(v.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// An open alert as the lifecycle needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    pub status: Status,
    /// When the breach began.
    pub pending_since: i64,
    /// When the last notification went (firing or repeat).
    pub last_notified_at: Option<i64>,
}

/// What one observation does to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing changes.
    Stay,
    /// A new breach, not yet long enough: a pending alert.
    Pend,
    /// Breaching for `forSeconds`: fires (a new alert when there was none) and notifies.
    Fire,
    /// Still firing, unacknowledged, a repeat interval after the last notice: notifies again.
    Repeat,
    /// Cleared after firing: resolves and notifies.
    Resolve,
    /// Cleared while pending: the alert is dropped unannounced.
    Forget,
}

/// The lifecycle: what `breaching` (the rule's condition now) does to the alert `open` (the
/// one open alert of this fingerprint, if any) at `now`, milliseconds.
pub fn step(open: Option<Open>, breaching: bool, for_ms: i64, repeat_ms: i64, now: i64) -> Step {
    match (open, breaching) {
        (None, false) => Step::Stay,
        (None, true) if for_ms <= 0 => Step::Fire,
        (None, true) => Step::Pend,
        (Some(a), true) => match a.status {
            Status::Pending if now - a.pending_since >= for_ms => Step::Fire,
            Status::Firing if repeat_ms > 0 && a.last_notified_at.is_some_and(|t| now - t >= repeat_ms) => Step::Repeat,
            _ => Step::Stay,
        },
        (Some(a), false) => match a.status {
            Status::Pending => Step::Forget,
            Status::Firing | Status::Acknowledged => Step::Resolve,
            Status::Resolved => Step::Stay,
        },
    }
}

/// What a signed link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Resolve,
}

impl Action {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }

    /// Parses the path segment.
    pub fn parse(s: &str) -> Option<Action> {
        [Action::Acknowledge, Action::Resolve]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Why a link token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token this service signed for this alert and action.
    #[error("the link is not valid for this alert and action")]
    Invalid,
    /// Signed, but past its expiry.
    #[error("the link has expired")]
    Expired,
}

/// Signs and checks single-purpose, expiring link tokens: `{expiry seconds}.{hex HMAC-SHA256
/// over alert id, action and expiry}`. A token for acknowledging cannot resolve, and one for
/// an alert acts on no other.
pub struct Links {
    key: aws_lc_rs::hmac::Key,
}

impl Links {
    /// Links signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Links {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        }
    }

    fn message(alert_id: &str, action: Action, expires: i64) -> String {
        format!("portico-alert-link\n{alert_id}\n{}\n{expires}", action.as_str())
    }

    /// A token for `action` on `alert_id`, valid until `expires` (seconds since the epoch).
    pub fn sign(&self, alert_id: &str, action: Action, expires: i64) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, Self::message(alert_id, action, expires).as_bytes());
        format!("{expires}.{}", hex::encode(tag.as_ref()))
    }

    /// Checks a token for `action` on `alert_id` at `now` (seconds).
    pub fn verify(&self, token: &str, alert_id: &str, action: Action, now: i64) -> Result<(), LinkError> {
        let (expires, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        let tag = hex::decode(tag).map_err(|_| LinkError::Invalid)?;
        aws_lc_rs::hmac::verify(&self.key, Self::message(alert_id, action, expires).as_bytes(), &tag)
            .map_err(|_| LinkError::Invalid)?;
        if now > expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            name: "slow".into(),
            metric: "api_p95_ms".into(),
            condition: "gt".into(),
            threshold: 3000.0,
            window_seconds: 300,
            for_seconds: 60,
            severity: "warning".into(),
            repeat_interval_seconds: 3600,
            notify: vec!["ops@example.com".into(), "https://hooks.example.com/alerts".into()],
            enabled: true,
            ..Draft::default()
        }
    }

    #[test]
    fn a_good_draft_validates() {
        let rule = Rule::validate(draft(), false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(rule.metric, Metric::ApiP95Ms);
        assert_eq!(
            rule.notify,
            vec![
                Target::Email("ops@example.com".into()),
                Target::Webhook("https://hooks.example.com/alerts".into())
            ]
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let d = Draft {
            name: String::new(),
            metric: "api_p95_ms".into(),
            vital: "LCP".into(),
            project_id: 3,
            route: "nope".into(),
            condition: "ge".into(),
            threshold: f64::NAN,
            window_seconds: 10,
            for_seconds: -1,
            severity: "page".into(),
            repeat_interval_seconds: 5,
            notify: vec![
                "http://hooks.example.com".into(),
                "https://127.0.0.1/x".into(),
                "https://169.254.169.254/latest".into(),
                "https://[::1]:8080/".into(),
                "https://localhost/x".into(),
                "not an address".into(),
            ],
            enabled: true,
        };
        let bad = Rule::validate(d, false).err().unwrap_or_default();
        let names: Vec<&str> = bad.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "vital",
                "projectId",
                "route",
                "condition",
                "threshold",
                "windowSeconds",
                "forSeconds",
                "severity",
                "repeatIntervalSeconds",
                "notify[0]",
                "notify[1]",
                "notify[2]",
                "notify[3]",
                "notify[4]",
                "notify[5]"
            ]
        );
    }

    #[test]
    fn vital_rules_name_their_vital_and_private_webhooks_need_leave() {
        let d = Draft {
            metric: "vital_p75".into(),
            ..draft()
        };
        let bad = Rule::validate(d.clone(), false).err().unwrap_or_default();
        assert_eq!(bad.first().map(|(f, _)| f.as_str()), Some("vital"));
        let ok = Rule::validate(
            Draft {
                vital: "LCP".into(),
                notify: vec!["http://127.0.0.1:9/hook".into()],
                ..d
            },
            true,
        );
        assert_eq!(ok.map(|r| r.vital), Ok(Some(Vital::Lcp)));
    }

    #[test]
    fn public_addresses_only() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                !public_ip(ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
                "{ip}"
            );
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(public_ip(ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))), "{ip}");
        }
        assert!(!public_host("metadata.google.internal"));
        assert!(public_host("hooks.slack.com"));
    }

    #[test]
    fn the_lifecycle() {
        let (for_ms, repeat_ms) = (60_000, 300_000);
        let pending = Open {
            status: Status::Pending,
            pending_since: 0,
            last_notified_at: None,
        };
        let firing = Open {
            status: Status::Firing,
            pending_since: 0,
            last_notified_at: Some(60_000),
        };
        let acked = Open {
            status: Status::Acknowledged,
            ..firing
        };
        assert_eq!(step(None, false, for_ms, repeat_ms, 0), Step::Stay);
        assert_eq!(step(None, true, for_ms, repeat_ms, 0), Step::Pend);
        assert_eq!(
            step(None, true, 0, repeat_ms, 0),
            Step::Fire,
            "no pending period: fires at once"
        );
        assert_eq!(step(Some(pending), true, for_ms, repeat_ms, 59_999), Step::Stay);
        assert_eq!(step(Some(pending), true, for_ms, repeat_ms, 60_000), Step::Fire);
        assert_eq!(step(Some(pending), false, for_ms, repeat_ms, 30_000), Step::Forget);
        assert_eq!(step(Some(firing), true, for_ms, repeat_ms, 359_999), Step::Stay);
        assert_eq!(step(Some(firing), true, for_ms, repeat_ms, 360_000), Step::Repeat);
        assert_eq!(
            step(Some(firing), true, for_ms, 0, 10_000_000),
            Step::Stay,
            "0: never repeats"
        );
        assert_eq!(
            step(Some(acked), true, for_ms, repeat_ms, 10_000_000),
            Step::Stay,
            "acknowledged: no repeats"
        );
        assert_eq!(step(Some(firing), false, for_ms, repeat_ms, 400_000), Step::Resolve);
        assert_eq!(step(Some(acked), false, for_ms, repeat_ms, 400_000), Step::Resolve);
    }

    #[test]
    fn fingerprints_follow_rule_and_labels() {
        let a = BTreeMap::from([("service".to_string(), "beta".to_string())]);
        let b = BTreeMap::from([("service".to_string(), "media".to_string())]);
        assert_eq!(fingerprint("r1", &a), fingerprint("r1", &a));
        assert_ne!(fingerprint("r1", &a), fingerprint("r1", &b));
        assert_ne!(fingerprint("r1", &a), fingerprint("r2", &a));
        assert_eq!(fingerprint("r1", &a).len(), 32);
    }

    #[test]
    fn links_are_single_purpose_and_expire() {
        let links = Links::new(b"0123456789abcdef0123456789abcdef");
        let token = links.sign("alert-1", Action::Acknowledge, 1_000);
        assert_eq!(links.verify(&token, "alert-1", Action::Acknowledge, 999), Ok(()));
        assert_eq!(
            links.verify(&token, "alert-1", Action::Resolve, 999),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            links.verify(&token, "alert-2", Action::Acknowledge, 999),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            links.verify(&token, "alert-1", Action::Acknowledge, 1_001),
            Err(LinkError::Expired)
        );
        let forged = token.replacen("1000.", "9999.", 1);
        assert_eq!(
            links.verify(&forged, "alert-1", Action::Acknowledge, 999),
            Err(LinkError::Invalid)
        );
        let other = Links::new(b"another key of thirty-two bytes!");
        assert_eq!(
            other.verify(&token, "alert-1", Action::Acknowledge, 999),
            Err(LinkError::Invalid)
        );
    }
}
