//! Monitoring's rules, without I/O: reading Sentry envelopes and events, grouping, vitals
//! ratings and the funnel, the alert lifecycle.

pub mod alert;
pub mod analytics;
pub mod envelope;
pub mod event;
pub mod grouping;
