//! The real gateway in front of the real services, driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod alerts;
mod auth;
mod authz;
mod beta;
mod billing;
mod edge;
mod input;
mod media;
mod monitoring;
mod ops;
mod ratelimit;
mod support;
mod telemetry;
mod tls;
mod tokens;
mod workflow;

pub use portico_testkit::each_backend;
