//! AI effects on photos, without I/O: what an effect is (`definition`: the provider's app, the
//! node that takes the photo, typed parameters mapped onto node fields, and their checks),
//! what a run sends (`params`: a caller's parameters checked and turned into node values),
//! how a run lives (`run`: its statuses, which failed provider calls may be repeated,
//! backoff with full jitter, status-cache lifetimes, polling intervals), and when a provider
//! is left alone (`breaker`: a circuit breaker over its calls).
//!
//! The media service runs effects; with the `api` feature the definition's parameter types
//! and the run status carry OpenAPI schemas, so the gateway checks and documents the shapes
//! the service reads.

pub mod breaker;
pub mod definition;
pub mod params;
pub mod run;
