//! AI effects on photos, run at an outside provider: `runninghub` is RunningHub's HTTP API
//! behind a client that repeats only what is safe to repeat. The rules (definitions, params,
//! the run lifecycle, the call policy) are `portico-effects`.

pub mod runninghub;
