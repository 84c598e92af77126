//! The analyser against random and huge workflows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod bpmn;
mod bpmnlint;
mod properties;
mod scale;
