//! The workflow service's errors, converted once into the public catalogue.

use portico_runtime::{ErrorCode, Problem, db::DbError};
use portico_workflow_analyzer::{InputProblem, Limits, ProblemKind};
use serde_json::json;

/// Everything a workflow operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// Bad request fields, per field.
    #[error("invalid input")]
    Invalid(Vec<(String, String)>),
    /// The workflow document is unusable; every problem located by JSON pointer.
    #[error("invalid workflow document")]
    Document {
        problems: Vec<InputProblem>,
        /// The document was XML (BPMN), not JSON.
        xml: bool,
    },
    /// The document is over one of the analyser's [`Limits`]: the step cap, or a cap the BPMN
    /// reader enforces while reading (elements, attributes, namespace declarations, depth).
    #[error("workflow document over a size limit")]
    TooLarge {
        limits: Limits,
        problems: Vec<InputProblem>,
    },
    /// The caller's hourly quota is spent.
    #[error("analysis quota spent")]
    Quota {
        limit: u32,
        retry_after_secs: u64,
        resets_at_ms: i64,
        /// For free callers: Pro's hourly quota, for the upgrade prompt.
        pro_limit: Option<u32>,
    },
    /// No such analysis for this caller.
    #[error("analysis not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A worker task failed.
    #[error("analysis task failed: {0}")]
    Task(String),
}

impl WorkflowError {
    /// One invalid field.
    pub fn field(name: &str, message: &str) -> Self {
        WorkflowError::Invalid(vec![(name.to_string(), message.to_string())])
    }

    /// Sorts parser problems into their HTTP class: any limit is 413, any syntax problem makes
    /// the body unreadable (400), the rest are shape problems (422).
    pub fn from_problems(problems: Vec<InputProblem>, limits: Limits, xml: bool) -> Self {
        if problems.iter().any(|p| p.kind == ProblemKind::TooLarge) {
            WorkflowError::TooLarge { limits, problems }
        } else {
            WorkflowError::Document { problems, xml }
        }
    }
}

impl From<diesel::result::Error> for WorkflowError {
    fn from(e: diesel::result::Error) -> Self {
        WorkflowError::Db(DbError::Query(e))
    }
}

fn problems_json(problems: &[InputProblem]) -> serde_json::Value {
    let list: Vec<_> = problems
        .iter()
        .map(|p| json!({ "pointer": p.pointer, "message": p.message }))
        .collect();
    let fields: serde_json::Map<String, serde_json::Value> = problems
        .iter()
        .map(|p| {
            let at = if p.pointer.is_empty() {
                "/".to_string()
            } else {
                p.pointer.clone()
            };
            (at, json!(p.message))
        })
        .collect();
    json!({ "problems": list, "fields": fields })
}

impl From<WorkflowError> for Problem {
    fn from(e: WorkflowError) -> Problem {
        match e {
            WorkflowError::Invalid(fields) => Problem::validation(fields),
            WorkflowError::Document { problems, xml } => {
                let syntax = problems.iter().any(|p| p.kind == ProblemKind::Syntax);
                let (code, message) = if syntax {
                    let code = if xml {
                        ErrorCode::InvalidXml
                    } else {
                        ErrorCode::InvalidJson
                    };
                    (code, "the workflow document is not well-formed")
                } else {
                    (
                        ErrorCode::InvalidWorkflow,
                        "the workflow document is not a valid workflow",
                    )
                };
                let summary = problems.first().map(|p| format!(": {p}")).unwrap_or_default();
                let more = match problems.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                Problem::new(code, format!("{message}{summary}{more}")).with_details(problems_json(&problems))
            }
            WorkflowError::TooLarge { limits, problems } => {
                let mut details = problems_json(&problems);
                details["maxSteps"] = json!(limits.max_steps);
                details["limits"] = json!(limits);
                // The step cap is reported at the step list; the XML reader's caps at the
                // document, with the limit, its cap and the position in the message.
                let message = match problems.iter().find(|p| p.kind == ProblemKind::TooLarge) {
                    Some(p) if p.pointer.is_empty() => format!("the workflow document is too large: {}", p.message),
                    _ => format!("the workflow has more than {} steps", limits.max_steps),
                };
                Problem::new(ErrorCode::PayloadTooLarge, message).with_details(details)
            }
            WorkflowError::Quota {
                limit,
                retry_after_secs,
                resets_at_ms,
                pro_limit,
            } => {
                let mut details = json!({
                    "limit": limit,
                    "windowSeconds": 3600,
                    "retryAfterSeconds": retry_after_secs,
                    "resetsAtMs": resets_at_ms,
                });
                if let Some(pro) = pro_limit {
                    details["upgrade"] = json!({
                        "plan": "pro",
                        "analysesPerHour": pro,
                        "message": format!(
                            "The free plan allows {limit} analyses per hour. Upgrade to Pro for {pro} per hour."
                        ),
                        "url": "/v1/billing/plans",
                    });
                }
                Problem::new(
                    ErrorCode::QuotaExceeded,
                    format!("the plan's quota of {limit} analyses per hour is spent"),
                )
                .with_details(details)
            }
            WorkflowError::NotFound => Problem::new(ErrorCode::NotFound, "analysis not found"),
            WorkflowError::Db(e) => e.into(),
            WorkflowError::Task(e) => Problem::internal(e),
        }
    }
}
