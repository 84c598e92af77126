//! The monitoring service's errors, converted once into the public catalogue.

use portico_runtime::{ErrorCode, Problem, db::DbError};

/// Everything a monitoring operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    /// Bad input, per field.
    #[error("invalid input")]
    Invalid(Vec<(String, String)>),
    /// Well-formed but not acceptable, per field (a metric that names no vital).
    #[error("unprocessable")]
    Unprocessable(Vec<(String, String)>),
    /// The Sentry key is missing, wrong, or for no such project.
    #[error("bad sentry key")]
    BadKey,
    /// The body is not an envelope (or, for `store`, not an event).
    #[error("not an envelope: {0}")]
    Envelope(String),
    /// No such thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Not in a state that allows this (acknowledging a resolved alert).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A link token that is forged, for another alert or action, or expired.
    #[error("bad link: {0}")]
    Link(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for MonitoringError {
    fn from(e: diesel::result::Error) -> Self {
        MonitoringError::Db(DbError::Query(e))
    }
}

impl From<MonitoringError> for Problem {
    fn from(e: MonitoringError) -> Problem {
        match e {
            MonitoringError::Invalid(fields) => Problem::validation(fields),
            MonitoringError::Unprocessable(fields) => {
                let named: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                Problem::new(
                    ErrorCode::MetricInvalid,
                    "a metric names no web vital or has a negative value; `details.fields` names each",
                )
                .with_details(serde_json::json!({ "fields": named }))
            }
            MonitoringError::BadKey => Problem::new(
                ErrorCode::SentryKeyInvalid,
                "send the project's public key (the DSN's user) as `sentry_key` in X-Sentry-Auth or the query",
            ),
            MonitoringError::Envelope(why) => Problem::new(ErrorCode::EnvelopeInvalid, why),
            MonitoringError::NotFound(what) => Problem::new(ErrorCode::NotFound, format!("{what} not found")),
            MonitoringError::Conflict(why) => Problem::new(ErrorCode::Conflict, why),
            MonitoringError::Link(why) => Problem::new(ErrorCode::LinkInvalid, why),
            MonitoringError::Db(e) => e.into(),
        }
    }
}
