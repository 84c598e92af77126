//! SARIF 2.1.0 output, so GitHub code scanning and other SARIF viewers show the findings: one
//! run with the rule catalogue as the tool's rules, one result per finding with the element (or
//! step) id as its logical location, and the file with the line where that id is defined as its
//! physical location. A file that could not be analysed is a failed tool execution notification.

use serde_json::{Value, json};

use crate::{Analysis, InputProblem, Severity, rules};

/// SARIF's schema for version 2.1.0.
pub const SCHEMA: &str = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// One analysed file.
pub struct Source<'a> {
    /// The file as the caller named it; becomes the artifact URI.
    pub uri: &'a str,
    /// Its bytes, searched for the line where an id is defined.
    pub text: &'a [u8],
    /// The analysis, or why there is none.
    pub outcome: Result<&'a Analysis, &'a [InputProblem]>,
}

/// A SARIF log of the analyses of `sources`.
pub fn log(sources: &[Source<'_>], version: &str) -> Value {
    let catalogue = rules();
    let rule_meta: Vec<Value> = catalogue
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.title,
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.description},
                "defaultConfiguration": {"level": level(rule.severity)},
                "properties": {"severity": rule.severity.as_str()},
            })
        })
        .collect();
    let mut results = Vec::new();
    let mut notifications = Vec::new();
    for source in sources {
        match source.outcome {
            Ok(analysis) => {
                for finding in &analysis.issues {
                    let mut physical = serde_json::Map::new();
                    physical.insert("artifactLocation".into(), json!({"uri": source.uri}));
                    let mut location = serde_json::Map::new();
                    if let Some(id) = finding.step_id.as_deref() {
                        location.insert("logicalLocations".into(), json!([{"name": id, "kind": "element"}]));
                        if let Some(line) = line_of(source.text, id) {
                            physical.insert("region".into(), json!({"startLine": line}));
                        }
                    }
                    location.insert("physicalLocation".into(), Value::Object(physical));
                    let mut result = serde_json::Map::new();
                    result.insert("ruleId".into(), json!(finding.rule));
                    if let Some(index) = catalogue.iter().position(|r| r.id == finding.rule) {
                        result.insert("ruleIndex".into(), json!(index));
                    }
                    result.insert("level".into(), json!(level(finding.severity)));
                    result.insert(
                        "message".into(),
                        json!({"text": format!("{} Fix: {}", finding.message, finding.suggestion)}),
                    );
                    result.insert("locations".into(), json!([location]));
                    let result = Value::Object(result);
                    results.push(result);
                }
            }
            Err(problems) => {
                for problem in problems {
                    let at = if problem.pointer.is_empty() {
                        "/"
                    } else {
                        problem.pointer.as_str()
                    };
                    notifications.push(json!({
                        "level": "error",
                        "message": {"text": format!("{}: not analysed, at {at}: {}", source.uri, problem.message)},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": source.uri}}}],
                    }));
                }
            }
        }
    }
    let artifacts: Vec<Value> = sources.iter().map(|s| json!({"location": {"uri": s.uri}})).collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "portico-analyze",
                "version": version,
                "informationUri": "https://portico.dev/docs/workflows",
                "rules": rule_meta,
            }},
            "artifacts": artifacts,
            "invocations": [{
                "executionSuccessful": notifications.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

/// SARIF's level for a severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The 1-based line where `id` is defined: an XML attribute `id="…"` (or `'…'`) or a JSON
/// member `"id": "…"`.
fn line_of(text: &[u8], id: &str) -> Option<usize> {
    let patterns = [
        format!("id=\"{id}\""),
        format!("id='{id}'"),
        format!("\"id\": \"{id}\""),
        format!("\"id\":\"{id}\""),
    ];
    let at = patterns.iter().filter_map(|p| find(text, p.as_bytes())).min()?;
    Some(text.get(..at)?.iter().filter(|&&b| b == b'\n').count() + 1)
}

/// Where `needle` first stands on its own: not preceded by a letter, digit, `_` or `:` (so
/// `processid="x"` or `bpmn:id` do not match `id="x"`).
fn find(text: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(offset) = text.get(from..)?.windows(needle.len()).position(|w| w == needle) {
        let at = from + offset;
        let before = at.checked_sub(1).and_then(|i| text.get(i)).copied();
        if before.is_none_or(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::{Limits, analyze, bpmn};

    #[test]
    fn findings_become_results_with_rule_metadata_and_locations() {
        let xml = "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\">\n<process id=\"P\">\n\
                   <startEvent id=\"s\" name=\"s\"/>\n<complexGateway id=\"cx\"/>\n</process></definitions>";
        let analysis = analyze(&bpmn::parse(xml.as_bytes(), Limits::default()).unwrap());
        let problems = crate::parse(b"{", Limits::default()).unwrap_err();
        let log = log(
            &[
                Source {
                    uri: "flows/order.bpmn",
                    text: xml.as_bytes(),
                    outcome: Ok(&analysis),
                },
                Source {
                    uri: "broken.json",
                    text: b"{",
                    outcome: Err(&problems),
                },
            ],
            "1.2.3",
        );
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), crate::rules().len());
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), analysis.issues.len());
        let complex = results
            .iter()
            .find(|r| r["ruleId"] == "bpmnlint/no-complex-gateway")
            .unwrap();
        assert_eq!(complex["level"], "error");
        assert_eq!(
            rules[complex["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "bpmnlint/no-complex-gateway"
        );
        let location = &complex["locations"][0];
        assert_eq!(location["logicalLocations"][0]["name"], "cx");
        assert_eq!(
            location["physicalLocation"]["artifactLocation"]["uri"],
            "flows/order.bpmn"
        );
        assert_eq!(location["physicalLocation"]["region"]["startLine"], 4);
        let invocation = &run["invocations"][0];
        assert_eq!(invocation["executionSuccessful"], false);
        let note = invocation["toolExecutionNotifications"][0]["message"]["text"]
            .as_str()
            .unwrap();
        assert!(note.starts_with("broken.json: not analysed"), "{note}");
    }

    #[test]
    fn ids_are_found_where_they_are_defined() {
        let text = b"<a processid=\"x\"/>\n<b bpmn:id=\"x\"/>\n<task id=\"x\"/>";
        assert_eq!(line_of(text, "x"), Some(3));
        assert_eq!(line_of(b"{\n  \"id\": \"s1\"}", "s1"), Some(2));
        assert_eq!(line_of(b"<a id=\"y\"/>", "x"), None);
    }
}
