//! Input model: the workflow document, and the single validating pass that turns JSON into it.

mod config;
mod duration;
mod json;
mod limits;
mod pointer;
mod problem;
mod workflow;

pub(crate) use config::config_problems;
pub use json::parse;
#[cfg(test)]
pub(crate) use json::reference_example;
pub use limits::Limits;
pub use problem::{InputProblem, ProblemKind};
pub use workflow::{Branches, ConditionOp, Step, StepType, Trigger, Workflow};
