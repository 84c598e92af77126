//! Monitoring's rules, without I/O: reading Sentry envelopes and events, and grouping.

pub mod envelope;
pub mod event;
pub mod grouping;
