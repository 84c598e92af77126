//! The runtime every Portico process shares: typed config, telemetry, metrics, the database,
//! the two-layer cache, gRPC plumbing, the error catalogue and graceful shutdown.

pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod jobs;
pub mod jobs_store;
pub mod lease;
pub mod metrics;
pub mod outbox;
pub mod process;
pub mod redis;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use error::{ErrorCode, Problem};
