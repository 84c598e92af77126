//! A run's `params` checked against its effect's parameters and turned into the values of
//! the provider's node fields (RunningHub's `nodeInfoList`): every unknown, missing or bad
//! parameter named at once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::definition::{FieldError, NodeField, ParamType, Parameter};

/// A value for one node field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeValue {
    /// The node.
    pub node_id: String,
    /// Its field.
    pub field_name: String,
    /// What goes in (a JSON number for numbers, a boolean for booleans, else a string).
    pub field_value: Value,
}

impl NodeValue {
    /// The photo, as the provider named it when it was uploaded.
    pub fn image(node: &NodeField, file_name: &str) -> Self {
        NodeValue {
            node_id: node.node_id.clone(),
            field_name: node.field_name.clone(),
            field_value: Value::String(file_name.to_string()),
        }
    }
}

/// `value` as parameter `p` takes it, or why it does not fit.
pub fn conform(p: &Parameter, value: &Value) -> Result<Value, String> {
    match p.kind {
        ParamType::Number | ParamType::Integer => {
            let Some(n) = value.as_f64().filter(|n| n.is_finite()) else {
                return Err(format!(
                    "must be a {}",
                    if p.kind == ParamType::Integer {
                        "whole number"
                    } else {
                        "number"
                    }
                ));
            };
            if p.kind == ParamType::Integer && n.fract() != 0.0 {
                return Err("must be a whole number".into());
            }
            if let Some(min) = p.min
                && n < min
            {
                return Err(format!("must be at least {min}"));
            }
            if let Some(max) = p.max
                && n > max
            {
                return Err(format!("must be at most {max}"));
            }
            Ok(value.clone())
        }
        ParamType::String => match value.as_str() {
            None => Err("must be a string".into()),
            Some(s) if s.chars().count() > p.max_length() => {
                Err(format!("must be at most {} characters", p.max_length()))
            }
            Some(_) => Ok(value.clone()),
        },
        ParamType::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err("must be true or false".into()),
        },
        ParamType::Choice => {
            let choices = p.choices.as_deref().unwrap_or_default();
            match value.as_str() {
                Some(s) if choices.iter().any(|c| c == s) => Ok(value.clone()),
                _ => Err(format!("must be one of {}", choices.join(", "))),
            }
        }
    }
}

/// The node values of a run of an effect with `parameters`, from the caller's `params`
/// (defaults fill what it leaves out), in the parameters' order; or every problem, each as
/// `params.<name>`.
pub fn node_values(parameters: &[Parameter], params: &Map<String, Value>) -> Result<Vec<NodeValue>, Vec<FieldError>> {
    let mut bad: Vec<FieldError> = params
        .keys()
        .filter(|k| !parameters.iter().any(|p| &p.name == *k))
        .map(|k| {
            let known: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            (
                format!("params.{k}"),
                format!("no such parameter (this effect takes: {known})"),
            )
        })
        .collect();
    let mut values = Vec::with_capacity(parameters.len());
    for p in parameters {
        let Some(value) = params.get(&p.name).or(p.default.as_ref()) else {
            bad.push((
                format!("params.{}", p.name),
                "required: this parameter has no default".into(),
            ));
            continue;
        };
        match conform(p, value) {
            Ok(field_value) => values.push(NodeValue {
                node_id: p.node_id.clone(),
                field_name: p.field_name.clone(),
                field_value,
            }),
            Err(why) => bad.push((format!("params.{}", p.name), why)),
        }
    }
    if bad.is_empty() { Ok(values) } else { Err(bad) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parameters() -> Vec<Parameter> {
        serde_json::from_value(json!([
            {"name": "strength", "type": "number", "min": 0, "max": 1, "default": 0.6, "nodeId": "30", "fieldName": "value"},
            {"name": "style", "type": "choice", "choices": ["warm", "cool"], "nodeId": "31", "fieldName": "text"},
            {"name": "steps", "type": "integer", "min": 1, "max": 50, "default": 20, "nodeId": "32", "fieldName": "steps"},
            {"name": "caption", "type": "string", "maxLength": 5, "default": "", "nodeId": "33", "fieldName": "text"},
            {"name": "upscale", "type": "boolean", "default": false, "nodeId": "34", "fieldName": "enabled"}]))
        .unwrap_or_default()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_fill_what_the_caller_leaves_out() {
        let values = node_values(&parameters(), &map(json!({"style": "cool"}))).unwrap_or_default();
        let got: Vec<(&str, &Value)> = values.iter().map(|v| (v.node_id.as_str(), &v.field_value)).collect();
        assert_eq!(
            got,
            [
                ("30", &json!(0.6)),
                ("31", &json!("cool")),
                ("32", &json!(20)),
                ("33", &json!("")),
                ("34", &json!(false))
            ]
        );
        let image = NodeValue::image(
            &NodeField {
                node_id: "12".into(),
                field_name: "image".into(),
            },
            "abc.png",
        );
        assert_eq!(
            serde_json::to_value(image).ok(),
            Some(json!({"nodeId": "12", "fieldName": "image", "fieldValue": "abc.png"}))
        );
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let bad = node_values(
            &parameters(),
            &map(json!({"strength": 1.5, "steps": 2.5, "caption": "too long", "upscale": "yes", "colour": "red"})),
        )
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = bad.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "params.colour",
                "params.strength",
                "params.style",
                "params.steps",
                "params.caption",
                "params.upscale"
            ]
        );
        assert!(bad[0].1.contains("strength, style, steps, caption, upscale"), "{bad:?}");
        assert_eq!(bad[1].1, "must be at most 1");
        assert!(bad[2].1.starts_with("required"), "{bad:?}");
    }

    #[test]
    fn boundaries_are_inside() {
        let p = parameters();
        assert!(conform(&p[0], &json!(0)).is_ok());
        assert!(conform(&p[0], &json!(1)).is_ok());
        assert!(conform(&p[0], &json!(-0.01)).is_err());
        assert!(conform(&p[2], &json!(50.0)).is_ok());
        assert!(conform(&p[3], &json!("ünïcø")).is_ok(), "characters, not bytes");
        assert!(conform(&p[1], &json!("WARM")).is_err());
    }
}
