//! An effect's definition as an admin writes it: the provider's app, the node that takes the
//! photo, and typed parameters each mapped onto one node field; and the checks that keep a
//! definition usable (every problem named by its JSON path).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest effect name.
pub const MAX_NAME: usize = 100;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 2_000;
/// Most parameters per effect.
pub const MAX_PARAMETERS: usize = 20;
/// Most choices of a `choice` parameter.
pub const MAX_CHOICES: usize = 50;
/// Longest choice.
pub const MAX_CHOICE: usize = 200;
/// Largest `maxLength` of a `string` parameter (and its default when none is given).
pub const MAX_STRING: u32 = 4_000;
/// Longest provider app id (RunningHub's are 64-bit integers written out).
const MAX_APP_ID: usize = 20;
/// Longest node id.
const MAX_NODE_ID: usize = 32;
/// Longest node field name, parameter name and region.
const MAX_IDENT: usize = 64;

/// One field of one node of the provider's workflow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeField {
    /// The node's id in the provider's workflow (`12`).
    #[cfg_attr(feature = "api", schema(min_length = 1, max_length = 32, example = "12"))]
    pub node_id: String,
    /// The node's input field (`image`, `value`, `text`).
    #[cfg_attr(feature = "api", schema(min_length = 1, max_length = 64, example = "image"))]
    pub field_name: String,
}

/// What a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A number within `min` and `max`.
    Number,
    /// A whole number within `min` and `max`.
    Integer,
    /// Text of at most `maxLength` characters.
    String,
    /// `true` or `false`.
    Boolean,
    /// One of `choices`.
    Choice,
}

impl ParamType {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Integer => "integer",
            ParamType::String => "string",
            ParamType::Boolean => "boolean",
            ParamType::Choice => "choice",
        }
    }
}

/// A parameter a caller may set on a run, and the node field it fills.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "api", schema(as = EffectParameter, example = json!(
    {"name": "strength", "type": "number", "min": 0, "max": 1, "default": 0.6, "nodeId": "30", "fieldName": "value"})))]
pub struct Parameter {
    /// Its name in a run's `params` (letters, digits, `_`; starting with a letter).
    #[cfg_attr(feature = "api", schema(min_length = 1, max_length = 64, example = "strength"))]
    pub name: String,
    /// What it takes.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// `number` and `integer`: the least value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// `number` and `integer`: the greatest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `string`: the most characters (default and at most 4,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "api", schema(minimum = 1, maximum = 4000))]
    pub max_length: Option<u32>,
    /// `choice`: the values it may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "api", schema(max_items = 50))]
    pub choices: Option<Vec<String>>,
    /// The value a run gets when it does not set this parameter; without one the parameter
    /// is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The node the value goes to.
    #[cfg_attr(feature = "api", schema(min_length = 1, max_length = 32, example = "30"))]
    pub node_id: String,
    /// The node's field the value goes to.
    #[cfg_attr(feature = "api", schema(min_length = 1, max_length = 64, example = "value"))]
    pub field_name: String,
}

impl Parameter {
    /// The node field it fills.
    pub fn node(&self) -> NodeField {
        NodeField {
            node_id: self.node_id.clone(),
            field_name: self.field_name.clone(),
        }
    }

    /// The most characters a `string` value may have.
    pub fn max_length(&self) -> usize {
        self.max_length.unwrap_or(MAX_STRING).min(MAX_STRING) as usize
    }
}

/// What makes an effect, apart from who may see it (the caller checks the level).
#[derive(Clone, Debug, PartialEq)]
pub struct Definition<'a> {
    /// Shown to users.
    pub name: &'a str,
    /// Shown to users.
    pub description: &'a str,
    /// The provider's app (RunningHub's `webappId`).
    pub webapp_id: &'a str,
    /// Where the photo goes.
    pub image_node: &'a NodeField,
    /// What a run may set.
    pub parameters: &'a [Parameter],
    /// The region whose app configuration it belongs to (none: every region).
    pub region: Option<&'a str>,
}

/// A problem with one field: its JSON path and what is wrong.
pub type FieldError = (String, String);

fn is_ident(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_node_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NODE_ID
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_IDENT && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn node_problems(path: &str, node_id: &str, field_name: &str, bad: &mut Vec<FieldError>) {
    if !is_node_id(node_id) {
        bad.push((
            format!("{path}nodeId"),
            "must be 1 to 32 letters, digits, '_', '-' or ':'".into(),
        ));
    }
    if !is_field_name(field_name) {
        bad.push((
            format!("{path}fieldName"),
            "must be 1 to 64 letters, digits or '_'".into(),
        ));
    }
}

impl Definition<'_> {
    /// Every problem, each named by its JSON path (`parameters[1].max`); empty when usable.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut bad = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            bad.push(("name".into(), format!("must be 1 to {MAX_NAME} characters")));
        }
        if self.description.chars().count() > MAX_DESCRIPTION {
            bad.push((
                "description".into(),
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        if self.webapp_id.is_empty()
            || self.webapp_id.len() > MAX_APP_ID
            || !self.webapp_id.bytes().all(|b| b.is_ascii_digit())
        {
            bad.push((
                "webappId".into(),
                "must be the provider's app id: 1 to 20 digits".into(),
            ));
        }
        node_problems(
            "imageNode.",
            &self.image_node.node_id,
            &self.image_node.field_name,
            &mut bad,
        );
        if let Some(region) = self.region
            && (region.is_empty()
                || region.len() > MAX_IDENT
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            bad.push((
                "region".into(),
                "must be 1 to 64 lower-case letters, digits or '-'".into(),
            ));
        }
        if self.parameters.len() > MAX_PARAMETERS {
            bad.push(("parameters".into(), format!("at most {MAX_PARAMETERS} parameters")));
        }
        let mut names = HashSet::new();
        let mut fields = HashSet::from([(self.image_node.node_id.as_str(), self.image_node.field_name.as_str())]);
        for (i, p) in self.parameters.iter().enumerate() {
            let at = format!("parameters[{i}].");
            if !is_ident(&p.name) || p.name.len() > MAX_IDENT {
                bad.push((
                    format!("{at}name"),
                    "must be 1 to 64 letters, digits or '_', starting with a letter".into(),
                ));
            } else if !names.insert(p.name.as_str()) {
                bad.push((format!("{at}name"), format!("'{}' is already a parameter", p.name)));
            }
            node_problems(&at, &p.node_id, &p.field_name, &mut bad);
            if !fields.insert((p.node_id.as_str(), p.field_name.as_str())) {
                bad.push((
                    format!("{at}fieldName"),
                    format!(
                        "node {} field {} is already filled by the photo or another parameter",
                        p.node_id, p.field_name
                    ),
                ));
            }
            parameter_problems(&at, p, &mut bad);
        }
        bad
    }
}

/// The checks of one parameter's own fields.
fn parameter_problems(at: &str, p: &Parameter, bad: &mut Vec<FieldError>) {
    let numeric = matches!(p.kind, ParamType::Number | ParamType::Integer);
    let kind = p.kind.as_str();
    for (field, set) in [("min", p.min.is_some()), ("max", p.max.is_some())] {
        if set && !numeric {
            bad.push((
                format!("{at}{field}"),
                format!("only for number and integer parameters, not {kind}"),
            ));
        }
    }
    if p.max_length.is_some() && p.kind != ParamType::String {
        bad.push((
            format!("{at}maxLength"),
            format!("only for string parameters, not {kind}"),
        ));
    }
    if p.choices.is_some() && p.kind != ParamType::Choice {
        bad.push((
            format!("{at}choices"),
            format!("only for choice parameters, not {kind}"),
        ));
    }
    if numeric {
        for (field, v) in [("min", p.min), ("max", p.max)] {
            if let Some(v) = v {
                if !v.is_finite() {
                    bad.push((format!("{at}{field}"), "must be a finite number".into()));
                } else if p.kind == ParamType::Integer && v.fract() != 0.0 {
                    bad.push((
                        format!("{at}{field}"),
                        "must be a whole number for an integer parameter".into(),
                    ));
                }
            }
        }
        if let (Some(min), Some(max)) = (p.min, p.max)
            && min > max
        {
            bad.push((format!("{at}max"), format!("must be at least min ({min})")));
        }
    }
    if let Some(n) = p.max_length
        && !(1..=MAX_STRING).contains(&n)
    {
        bad.push((format!("{at}maxLength"), format!("must be 1 to {MAX_STRING}")));
    }
    if p.kind == ParamType::Choice {
        match &p.choices {
            None => bad.push((format!("{at}choices"), "a choice parameter needs its choices".into())),
            Some(c) if c.is_empty() || c.len() > MAX_CHOICES => {
                bad.push((format!("{at}choices"), format!("must be 1 to {MAX_CHOICES} values")));
            }
            Some(c) => {
                let mut seen = HashSet::new();
                for (j, choice) in c.iter().enumerate() {
                    if choice.is_empty() || choice.chars().count() > MAX_CHOICE {
                        bad.push((
                            format!("{at}choices[{j}]"),
                            format!("must be 1 to {MAX_CHOICE} characters"),
                        ));
                    } else if !seen.insert(choice.as_str()) {
                        bad.push((format!("{at}choices[{j}]"), format!("'{choice}' is listed twice")));
                    }
                }
            }
        }
    }
    if let Some(default) = &p.default
        && let Err(why) = crate::params::conform(p, default)
    {
        bad.push((format!("{at}default"), why));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parameters(v: Value) -> Vec<Parameter> {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn problems(webapp_id: &str, params: &[Parameter]) -> Vec<String> {
        let image = NodeField {
            node_id: "12".into(),
            field_name: "image".into(),
        };
        Definition {
            name: "Oil painting",
            description: "",
            webapp_id,
            image_node: &image,
            parameters: params,
            region: None,
        }
        .problems()
        .into_iter()
        .map(|(field, _)| field)
        .collect()
    }

    #[test]
    fn the_issue_example_is_usable() {
        let p = parameters(json!([
            {"name": "strength", "type": "number", "min": 0, "max": 1, "default": 0.6, "nodeId": "30", "fieldName": "value"},
            {"name": "style", "type": "choice", "choices": ["warm", "cool"], "nodeId": "31", "fieldName": "text"}]));
        assert_eq!(p.len(), 2);
        assert!(problems("1877265245566922753", &p).is_empty());
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let p = parameters(json!([
            {"name": "strength", "type": "number", "min": 2, "max": 1, "default": 3, "nodeId": "30", "fieldName": "value"},
            {"name": "strength", "type": "boolean", "choices": ["a"], "nodeId": "12", "fieldName": "image"},
            {"name": "style", "type": "choice", "choices": ["warm", "warm"], "default": "hot", "nodeId": "31", "fieldName": "text"},
            {"name": "steps", "type": "integer", "min": 1.5, "nodeId": "32", "fieldName": "steps"},
            {"name": "1x", "type": "string", "maxLength": 0, "nodeId": "bad id", "fieldName": "text"}]));
        assert_eq!(p.len(), 5);
        assert_eq!(
            problems("app-1", &p),
            [
                "webappId",
                "parameters[0].max",
                "parameters[0].default",
                "parameters[1].name",
                "parameters[1].fieldName",
                "parameters[1].choices",
                "parameters[2].choices[1]",
                "parameters[2].default",
                "parameters[3].min",
                "parameters[4].name",
                "parameters[4].nodeId",
                "parameters[4].maxLength",
            ]
        );
    }

    #[test]
    fn unknown_fields_in_a_parameter_are_refused() {
        let r: Result<Vec<Parameter>, _> = serde_json::from_value(json!([
            {"name": "a", "type": "boolean", "nodeId": "1", "fieldName": "f", "step": 1}]));
        assert!(r.is_err());
    }
}
