//! What is wrong with an input document: the problem report handed back by both parsers.

use serde::Serialize;

/// Class of an input problem, so an HTTP caller can answer 400, 413 or 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemKind {
    /// The bytes are not JSON at all (for [`bpmn::parse`](crate::bpmn::parse): not well-formed XML).
    Syntax,
    /// The JSON (or BPMN) does not have the shape of a workflow.
    Schema,
    /// The workflow is over a [`Limits`](crate::Limits) bound.
    TooLarge,
}

/// One thing wrong with the input, located by an RFC 6901 JSON pointer (for BPMN input, an
/// XPath-like locator: see [`bpmn`](crate::bpmn)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message} (at \"{pointer}\")")]
pub struct InputProblem {
    /// Class of the problem.
    pub kind: ProblemKind,
    /// JSON pointer to the offending value, `""` for the whole document. For
    /// [`bpmn::parse`](crate::bpmn::parse), an XPath-like location such as
    /// `/process/sendTask[@id='s1']` instead.
    pub pointer: String,
    /// Human-readable explanation.
    pub message: String,
}
