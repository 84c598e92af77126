//! The analytics application: web vitals rated and kept as histograms, funnel steps once per
//! session, product events, and the performance dashboard read from them.

use portico_runtime::db::now_ms;
use portico_sketch::{Histogram, bucket_of};

use crate::{
    analytics_store::{self as store, EventRow, MINUTE_MS, VitalBucket},
    app::Monitoring,
    domain::analytics::{self, FUNNEL, Funnel, Rating, Vital},
    error::MonitoringError,
};

/// Most items per batch.
pub const MAX_BATCH: usize = 100;
/// Longest page, device and connection labels kept.
const MAX_LABEL: usize = 256;
/// Longest event name and session id.
const MAX_NAME: usize = 128;
/// Largest event properties object (JSON text).
const MAX_PROPERTIES: usize = 8 * 1024;
/// A dashboard covers at most this long.
const MAX_RANGE_MS: i64 = 93 * 86_400_000;

/// One reported metric.
#[derive(Clone, Debug, Default)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub page: String,
    pub device: String,
    pub connection: String,
    /// 0: now.
    pub occurred_at_ms: i64,
}

/// One product event.
#[derive(Clone, Debug, Default)]
pub struct ProductEvent {
    pub name: String,
    pub session_id: String,
    /// A JSON object, or empty.
    pub properties_json: String,
    /// 0: now.
    pub occurred_at_ms: i64,
}

/// One vital over a dashboard's range.
#[derive(Clone, Debug, PartialEq)]
pub struct VitalSummary {
    pub vital: Vital,
    /// Values reported.
    pub count: u64,
    /// 75th percentile (within the sketch's 1 % relative error); 0 without values.
    pub p75: f64,
    /// Share of values rated good, needs-improvement and poor.
    pub shares: [f64; 3],
}

/// The performance dashboard's vitals and funnel.
#[derive(Clone, Debug, PartialEq)]
pub struct Dashboard {
    pub vitals: Vec<VitalSummary>,
    pub funnel: Funnel,
}

fn label(s: &str) -> String {
    let s = s.trim();
    s[..s.floor_char_boundary(MAX_LABEL)].to_string()
}

/// When something happened: the client's time, but never in the future.
fn when(occurred_at_ms: i64, now: i64) -> i64 {
    if occurred_at_ms > 0 {
        occurred_at_ms.min(now)
    } else {
        now
    }
}

impl Monitoring {
    /// Rates and records a batch of metrics; answers one rating per metric, in order. Every
    /// bad item is named (`metrics[i].name`, `metrics[i].value`) and nothing is recorded.
    pub async fn record_metrics(&self, metrics: Vec<Metric>) -> Result<Vec<Rating>, MonitoringError> {
        if metrics.is_empty() || metrics.len() > MAX_BATCH {
            return Err(MonitoringError::Invalid(vec![(
                "metrics".into(),
                format!("must hold 1 to {MAX_BATCH} metrics"),
            )]));
        }
        let mut bad = Vec::new();
        let mut rated = Vec::with_capacity(metrics.len());
        for (i, m) in metrics.iter().enumerate() {
            let vital = Vital::parse(&m.name);
            if vital.is_none() {
                bad.push((
                    format!("metrics[{i}].name"),
                    "must be one of LCP, INP, CLS, FCP, TTFB".to_string(),
                ));
            }
            if !m.value.is_finite() || m.value < 0.0 {
                bad.push((
                    format!("metrics[{i}].value"),
                    "must be a number of at least 0".to_string(),
                ));
            }
            if let Some(v) = vital {
                rated.push((v, v.rate(m.value)));
            }
        }
        if !bad.is_empty() {
            return Err(MonitoringError::Unprocessable(bad));
        }
        let now = now_ms();
        let mut rows: Vec<VitalBucket> = metrics
            .iter()
            .zip(&rated)
            .map(|(m, (vital, rating))| VitalBucket {
                minute: when(m.occurred_at_ms, now) / MINUTE_MS * MINUTE_MS,
                name: vital.as_str().to_string(),
                page: label(&m.page),
                device: label(&m.device),
                connection: label(&m.connection),
                rating: rating.as_str().to_string(),
                bucket: bucket_of(m.value),
                count: 1,
            })
            .collect();
        // Equal buckets of one batch become one upsert.
        rows.sort();
        rows.dedup_by(|next, kept| {
            let same = next.key() == kept.key();
            if same {
                kept.count += next.count;
            }
            same
        });
        self.db()
            .write(move |conn| Ok::<_, MonitoringError>(store::add_vitals(conn, &rows)?))
            .await?;
        metrics::counter!("portico_monitoring_metrics_total").increment(metrics.len() as u64);
        Ok(rated.into_iter().map(|(_, r)| r).collect())
    }

    /// Records a funnel step of a session: true the first time the session reached it.
    pub async fn record_step(
        &self,
        session_id: &str,
        step: &str,
        user_id: Option<String>,
        occurred_at_ms: i64,
    ) -> Result<bool, MonitoringError> {
        let mut bad = Vec::new();
        let session = session_id.trim().to_string();
        if session.is_empty() || session.len() > MAX_NAME {
            bad.push(("sessionId".to_string(), format!("must be 1 to {MAX_NAME} characters")));
        }
        if analytics::funnel_step(step).is_none() {
            bad.push(("step".to_string(), format!("must be one of {}", FUNNEL.join(", "))));
        }
        if !bad.is_empty() {
            return Err(MonitoringError::Invalid(bad));
        }
        let step = step.to_string();
        let at = when(occurred_at_ms, now_ms());
        self.db()
            .write(move |conn| {
                Ok::<_, MonitoringError>(store::record_step(conn, &session, &step, user_id.as_deref(), at)?)
            })
            .await
    }

    /// Keeps a batch of product events; every bad item is named and nothing is kept.
    pub async fn record_events(
        &self,
        events: Vec<ProductEvent>,
        user_id: Option<String>,
    ) -> Result<usize, MonitoringError> {
        if events.is_empty() || events.len() > MAX_BATCH {
            return Err(MonitoringError::Invalid(vec![(
                "events".into(),
                format!("must hold 1 to {MAX_BATCH} events"),
            )]));
        }
        let now = now_ms();
        let mut bad = Vec::new();
        let mut rows = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            let name = e.name.trim().to_string();
            if name.is_empty() || name.len() > MAX_NAME {
                bad.push((
                    format!("events[{i}].name"),
                    format!("must be 1 to {MAX_NAME} characters"),
                ));
            }
            if e.session_id.len() > MAX_NAME {
                bad.push((
                    format!("events[{i}].sessionId"),
                    format!("must be at most {MAX_NAME} characters"),
                ));
            }
            let properties = if e.properties_json.is_empty() {
                "{}".to_string()
            } else {
                e.properties_json
            };
            let is_object = serde_json::from_str::<serde_json::Value>(&properties).is_ok_and(|v| v.is_object());
            if !is_object || properties.len() > MAX_PROPERTIES {
                bad.push((
                    format!("events[{i}].properties"),
                    format!("must be a JSON object of at most {MAX_PROPERTIES} bytes"),
                ));
            }
            rows.push(EventRow {
                id: uuid::Uuid::now_v7().to_string(),
                name,
                session_id: (!e.session_id.is_empty()).then_some(e.session_id),
                user_id: user_id.clone(),
                properties,
                occurred_at: when(e.occurred_at_ms, now),
                received_at: now,
            });
        }
        if !bad.is_empty() {
            return Err(MonitoringError::Invalid(bad));
        }
        self.db()
            .write(move |conn| Ok::<_, MonitoringError>(store::add_events(conn, &rows)?))
            .await
    }

    /// The vitals and the funnel over `[from, to)` (milliseconds).
    pub async fn dashboard(&self, from: i64, to: i64) -> Result<Dashboard, MonitoringError> {
        if from >= to || to - from > MAX_RANGE_MS {
            return Err(MonitoringError::Invalid(vec![(
                "from".into(),
                "must be before `to`, at most 93 days earlier".into(),
            )]));
        }
        let (buckets, steps) = self
            .db()
            .run(move |conn| {
                Ok::<_, MonitoringError>((
                    store::vital_histograms(conn, from / MINUTE_MS * MINUTE_MS, to)?,
                    store::step_counts(conn, from, to)?,
                ))
            })
            .await?;
        let vitals = Vital::ALL
            .into_iter()
            .map(|vital| {
                let mine: Vec<_> = buckets.iter().filter(|(n, ..)| n == vital.as_str()).collect();
                let histogram = Histogram::new(mine.iter().map(|(_, _, b, c)| (*b, *c as u64)).collect());
                let total = histogram.count();
                let mut shares = [0.0; 3];
                for (slot, rating) in shares.iter_mut().zip(Rating::ALL) {
                    let n: i64 = mine
                        .iter()
                        .filter(|(_, r, ..)| r == rating.as_str())
                        .map(|(.., c)| c)
                        .sum();
                    *slot = if total == 0 { 0.0 } else { n as f64 / total as f64 };
                }
                VitalSummary {
                    vital,
                    count: total,
                    p75: if total == 0 { 0.0 } else { histogram.quantile(0.75) },
                    shares,
                }
            })
            .collect();
        let mut counts = [0_u64; 9];
        for (step, n) in steps {
            if let Some(i) = analytics::funnel_step(&step) {
                counts[i] = n.max(0) as u64;
            }
        }
        Ok(Dashboard {
            vitals,
            funnel: analytics::funnel(&counts),
        })
    }
}
