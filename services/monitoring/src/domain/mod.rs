//! Monitoring's rules, without I/O: reading Sentry envelopes and events, grouping, vitals
//! ratings and the funnel.

pub mod analytics;
pub mod envelope;
pub mod event;
pub mod grouping;
