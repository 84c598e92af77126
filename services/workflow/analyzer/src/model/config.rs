//! Step config: checks the keys the analyser understands, for JSON input and, through
//! [`config_problems`], for the other formats.

use serde_json::{Map, Value};

use super::duration::duration_is_nonzero;
use super::pointer::{Loc, Problems, ROOT};
use super::{ConditionOp, StepType};

/// JSON shapes a known config key may take.
#[derive(Clone, Copy)]
enum Shape {
    String,
    NonEmptyString,
    Bool,
    Integer,
    Object,
    Array,
}

impl Shape {
    fn matches(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::NonEmptyString => value.as_str().is_some_and(|s| !s.is_empty()),
            Self::Bool => value.is_boolean(),
            // JSON Schema counts 3.0 as an integer, so this does too.
            Self::Integer => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
            Self::Object => value.is_object(),
            Self::Array => value.is_array(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::NonEmptyString => "a non-empty string",
            Self::Bool => "a boolean",
            Self::Integer => "an integer",
            Self::Object => "an object",
            Self::Array => "an array",
        }
    }
}

/// Checks a step config exactly as [`parse`](crate::parse) does, for the other input formats:
/// each problem as (JSON pointer relative to the config object, message).
pub(crate) fn config_problems(step_type: StepType, config: &Map<String, Value>) -> Vec<(String, String)> {
    let mut problems = Problems::default();
    check_config(step_type, config, &ROOT, &mut problems);
    problems.list.into_iter().map(|p| (p.pointer, p.message)).collect()
}

/// Checks only the keys the analyser understands; other keys belong to the platform and pass.
pub(super) fn check_config(step_type: StepType, config: &Map<String, Value>, at: &Loc<'_>, problems: &mut Problems) {
    let mut field = |key: &str, shape: Shape, required: bool| config_field(config, key, shape, required, at, problems);
    match step_type {
        StepType::SendEmail => {
            field("subject", Shape::String, false);
            field("unsubscribeLink", Shape::Bool, false);
        }
        StepType::SendSms => {
            field("text", Shape::String, false);
            field("message", Shape::String, false);
        }
        StepType::Webhook => {
            field("url", Shape::String, false);
            if let Some(Value::Object(retry)) = field("retry", Shape::Object, false) {
                config_field(retry, "maxAttempts", Shape::Integer, false, &at.key("retry"), problems);
            }
        }
        StepType::AddTag | StepType::RemoveTag => {
            field("tag", Shape::String, false);
        }
        StepType::Wait => check_duration(config, "duration", true, at, problems),
        StepType::WaitForEvent => {
            field("event", Shape::NonEmptyString, true);
            check_duration(config, "timeout", false, at, problems);
        }
        StepType::IfElse => {
            if let Some(Value::Array(conditions)) = field("conditions", Shape::Array, true) {
                let list_at = at.key("conditions");
                for (i, condition) in conditions.iter().enumerate() {
                    check_condition(condition, &list_at.index(i), problems);
                }
            }
        }
        StepType::Goto => {
            field("target", Shape::NonEmptyString, true);
        }
        StepType::Goal | StepType::End | StepType::Task | StepType::Split => {}
    }
}

/// The value of `key` when present (null counts as absent) and of the right shape.
fn config_field<'c>(
    config: &'c Map<String, Value>,
    key: &str,
    shape: Shape,
    required: bool,
    at: &Loc<'_>,
    problems: &mut Problems,
) -> Option<&'c Value> {
    match config.get(key).filter(|v| !v.is_null()) {
        None => {
            if required {
                problems.missing(&at.key(key), key);
            }
            None
        }
        Some(value) if shape.matches(value) => Some(value),
        Some(value) => {
            problems.expected(&at.key(key), shape.name(), value);
            None
        }
    }
}

fn check_duration(config: &Map<String, Value>, key: &str, required: bool, at: &Loc<'_>, problems: &mut Problems) {
    if let Some(text) = config_field(config, key, Shape::String, required, at, problems).and_then(Value::as_str)
        && duration_is_nonzero(text).is_none()
    {
        problems.schema(
            &at.key(key),
            format!("\"{text}\" is not an ISO-8601 duration such as P1D or PT2H"),
        );
    }
}

fn check_condition(condition: &Value, at: &Loc<'_>, problems: &mut Problems) {
    let Value::Object(fields) = condition else {
        problems.expected(at, "a condition object", condition);
        return;
    };
    config_field(fields, "field", Shape::NonEmptyString, true, at, problems);
    let op = match config_field(fields, "op", Shape::String, true, at, problems).and_then(Value::as_str) {
        Some(name) => {
            let op = ConditionOp::from_name(name);
            if op.is_none() {
                let known: Vec<&str> = ConditionOp::ALL.iter().map(|o| o.as_str()).collect();
                problems.schema(
                    &at.key("op"),
                    format!(
                        "unknown condition operator \"{name}\" (expected one of {})",
                        known.join(", ")
                    ),
                );
            }
            op
        }
        None => None,
    };
    // `null` is a legitimate value to compare against, so only a missing key is a problem.
    if let Some(op) = op
        && op != ConditionOp::Exists
        && !fields.contains_key("value")
    {
        problems.schema(
            &at.key("value"),
            format!("missing required field \"value\" (needed by \"{op}\")"),
        );
    }
}
