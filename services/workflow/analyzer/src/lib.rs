//! Static analysis, a "debugger", for Portico marketing-automation workflows.
//!
//! [`parse`] validates a JSON workflow document and reports every input problem with a JSON
//! pointer; [`bpmn::parse`] reads a BPMN 2.0 XML process into the same [`Workflow`] model (see
//! [`bpmn`] for the mapping), reporting problems with XPath-like locations. [`analyze`] runs the
//! rule catalogue ([`rules`]) over a parsed workflow, whichever format it came from, and returns
//! findings, a 0–100 health score and a grade. Pure logic: no I/O, no global state.
//!
//! ```
//! use portico_workflow_analyzer::{Grade, Limits, analyze, parse};
//!
//! let json = br#"{"triggers": [{"id": "t1", "type": "form_submitted", "next": "s1"}],
//!                 "steps": [{"id": "s1", "type": "add_tag", "config": {"tag": "new"}}]}"#;
//! let workflow = parse(json, Limits::default()).expect("a valid workflow");
//! let analysis = analyze(&workflow);
//! assert_eq!((analysis.health_score, analysis.grade), (100, Grade::Excellent));
//! ```

#![warn(missing_docs)]

pub mod bpmn;
mod graph;
mod hash;
mod model;
mod rules;
pub mod sarif;
mod score;

use std::fmt;

use serde::Serialize;

pub use model::{Branches, ConditionOp, InputProblem, Limits, ProblemKind, Step, StepType, Trigger, Workflow, parse};

/// JSON Schema (draft 2020-12) of the input format accepted by [`parse`].
pub const SCHEMA: &str = include_str!("../schema/workflow.schema.json");

/// How much a finding matters; variants are ordered from most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The workflow is broken or harms contacts; fix before publishing.
    Critical,
    /// Likely wrong, or a compliance or security risk.
    High,
    /// Worth fixing; contacts may get stuck or calls may be lost.
    Medium,
    /// Cosmetic or probably accidental.
    Low,
    /// For information; costs no points.
    Info,
}

impl Severity {
    /// Points one finding of this severity subtracts from the health score.
    pub const fn weight(self) -> u32 {
        score::weight(self)
    }

    /// Lowercase name, as serialised.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Band of the health score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Grade {
    /// Score 90 or more.
    Excellent,
    /// Score 75 to 89.
    Good,
    /// Score 50 to 74.
    Fair,
    /// Score 25 to 49.
    #[serde(rename = "High Risk")]
    HighRisk,
    /// Score below 25.
    Critical,
}

impl Grade {
    /// The grade a health score falls in.
    pub const fn from_score(score: u8) -> Self {
        score::grade(score)
    }

    /// Display name, as serialised.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Excellent => "Excellent",
            Self::Good => "Good",
            Self::Fair => "Fair",
            Self::HighRisk => "High Risk",
            Self::Critical => "Critical",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One issue found in a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Id of the rule that fired, e.g. `infinite-loop`.
    pub rule: &'static str,
    /// Severity of that rule.
    pub severity: Severity,
    /// Short title of that rule.
    pub title: &'static str,
    /// What exactly is wrong, naming the steps involved.
    pub message: String,
    /// Step the finding is about; `None` for workflow-level and trigger findings.
    pub step_id: Option<String>,
    /// How to fix it.
    pub suggestion: String,
}

/// Size and shape figures of the analysed workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Number of steps.
    pub steps: usize,
    /// Number of triggers.
    pub triggers: usize,
    /// Number of if_else (decision) steps.
    pub branches: usize,
    /// Longest path from a trigger in steps, each loop counted once with all its steps.
    pub max_depth: usize,
}

/// Result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// 100 minus the summed severity weights of the findings, floored at 0.
    pub health_score: u8,
    /// Band of `health_score`.
    pub grade: Grade,
    /// Findings, most severe first, then in step order (workflow-level findings first).
    pub issues: Vec<Finding>,
    /// Size and shape figures.
    pub stats: Stats,
}

/// One entry of the rule catalogue.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleInfo {
    /// Stable rule id, e.g. `broken-reference`.
    pub id: &'static str,
    /// Severity of every finding of this rule.
    pub severity: Severity,
    /// Short title.
    pub title: &'static str,
    /// What the rule checks and why it matters.
    pub description: &'static str,
    #[serde(skip)]
    pub(crate) check: rules::Check,
}

impl fmt::Debug for RuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleInfo")
            .field("id", &self.id)
            .field("severity", &self.severity)
            .field("title", &self.title)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The rule catalogue: the workflow rules in the order they run, then the rules of the BPMN
/// source (bpmnlint's, as `bpmnlint/<name>`, and `unjudged-element`).
pub fn rules() -> &'static [RuleInfo] {
    rules::all()
}

/// Runs every rule over a workflow; linear in the size of the workflow.
pub fn analyze(workflow: &Workflow) -> Analysis {
    let graph = graph::Graph::build(workflow);
    let context = rules::Context {
        workflow,
        graph: &graph,
    };
    let mut report = rules::Report::new(&workflow.steps);
    for rule in rules::CATALOGUE {
        (rule.check)(&context, &mut report);
    }
    for finding in &workflow.findings {
        let position = finding
            .step_id
            .as_deref()
            .and_then(|id| graph.index.get(id))
            .map_or(0, |&i| i + 1);
        report.push_found(position, finding.clone());
    }
    let issues = report.into_sorted();
    let health_score = score::health_score(&issues);
    Analysis {
        health_score,
        grade: Grade::from_score(health_score),
        issues,
        stats: Stats {
            steps: workflow.steps.len(),
            triggers: workflow.triggers.len(),
            branches: graph.of_type(StepType::IfElse).len(),
            max_depth: graph.max_depth,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::collections::HashSet;

    use serde_json::{Value, json};

    use super::*;

    fn example() -> Workflow {
        crate::model::reference_example()
    }

    #[test]
    fn reference_example_is_clean() {
        let analysis = analyze(&example());
        assert_eq!(analysis.issues, vec![]);
        assert_eq!((analysis.health_score, analysis.grade), (100, Grade::Excellent));
        assert_eq!(
            analysis.stats,
            Stats {
                steps: 5,
                triggers: 1,
                branches: 1,
                max_depth: 5
            }
        );
    }

    #[test]
    fn findings_are_sorted_by_severity_then_step_order() {
        let doc = json!({"steps": [
            {"id": "a", "type": "send_sms", "config": {"text": "hi"}, "next": "ghost"},
            {"id": "b", "type": "wait_for_event", "config": {"event": "open"}},
            {"id": "c", "type": "send_email"}
        ]});
        let wf = parse(doc.to_string().as_bytes(), Limits::default()).unwrap();
        let analysis = analyze(&wf);
        let order: Vec<(&str, Option<&str>)> = analysis.issues.iter().map(|f| (f.rule, f.step_id.as_deref())).collect();
        assert_eq!(
            order,
            vec![
                ("no-trigger", None),
                ("broken-reference", Some("a")),
                ("sms-no-opt-out", Some("a")),
                ("email-no-unsubscribe", Some("c")),
                ("wait-without-timeout", Some("b")),
            ]
        );
        assert_eq!(analysis.health_score, 100 - 25 - 25 - 10 - 10 - 5);
        assert_eq!(analysis.grade, Grade::HighRisk);
    }

    #[test]
    fn catalogue_ids_are_unique_and_documented() {
        let ids: HashSet<&str> = rules().iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), rules().len());
        assert_eq!(rules().len(), 15 + 23 + 1);
        assert_eq!(rules().iter().filter(|r| r.id.starts_with("bpmnlint/")).count(), 23);
        for rule in rules() {
            assert!(!rule.title.is_empty() && !rule.description.is_empty(), "{rule:?}");
        }
    }

    #[test]
    fn serialises_with_camel_case_and_display_names() {
        let doc = json!({"triggers": [{"id": "t", "type": "manual", "next": "a"}],
            "steps": [{"id": "a", "type": "goto", "config": {"target": "a"}}]});
        let wf = parse(doc.to_string().as_bytes(), Limits::default()).unwrap();
        let value = serde_json::to_value(analyze(&wf)).unwrap();
        assert_eq!(value["healthScore"], 75);
        assert_eq!(value["grade"], "Good");
        assert_eq!(value["stats"]["maxDepth"], 1);
        assert_eq!(value["issues"][0]["severity"], "critical");
        assert_eq!(value["issues"][0]["stepId"], "a");
        assert_eq!(serde_json::to_value(Grade::HighRisk).unwrap(), "High Risk");
        assert_eq!(Grade::HighRisk.to_string(), "High Risk");
        let rule = serde_json::to_value(rules()[0]).unwrap();
        assert_eq!(
            rule.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["description", "id", "severity", "title"]
        );
        let problem = parse(b"[", Limits::default()).unwrap_err();
        assert_eq!(serde_json::to_value(&problem[0]).unwrap()["kind"], "syntax");
    }

    #[test]
    fn splits_and_paths_are_followed_like_next() {
        let doc = json!({"triggers": [{"id": "t", "type": "manual", "next": "fork"}],
        "steps": [
            {"id": "fork", "type": "split", "paths": ["a", "b"]},
            {"id": "a", "type": "task", "next": "fork"},
            {"id": "b", "type": "end"},
            {"id": "lost", "type": "task", "paths": ["ghost"]}
        ]});
        let wf = parse(doc.to_string().as_bytes(), Limits::default()).unwrap();
        let analysis = analyze(&wf);
        let order: Vec<(&str, Option<&str>)> = analysis.issues.iter().map(|f| (f.rule, f.step_id.as_deref())).collect();
        assert_eq!(
            order,
            vec![
                ("broken-reference", Some("lost")),
                ("loop-without-wait", Some("fork")),
                ("unreachable-step", Some("lost")),
            ]
        );
        // paths make no sense where the type routes on its own, and must be step ids.
        let bad = json!({"steps": [
            {"id": "e", "type": "end", "paths": ["x"]},
            {"id": "s", "type": "split", "paths": [1]}
        ]});
        let problems = parse(bad.to_string().as_bytes(), Limits::default()).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/steps/0/paths", "/steps/1/paths/0"]);
        let serialised = serde_json::to_value(&wf).unwrap();
        assert_eq!(serialised["steps"][0]["paths"], json!(["a", "b"]));
        assert!(serialised["steps"][1].get("paths").is_none());
    }

    #[test]
    fn workflow_round_trips_through_its_serialisation() {
        let wf = example();
        let bytes = serde_json::to_vec(&wf).unwrap();
        assert_eq!(parse(&bytes, Limits::default()).unwrap(), wf);
    }

    #[test]
    fn schema_matches_the_parser() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        let step_types: Vec<String> = StepType::ALL.iter().map(|t| t.as_str().to_owned()).collect();
        assert_eq!(
            names(&schema["$defs"]["step"]["properties"]["type"]["enum"]),
            step_types
        );
        let ops: Vec<String> = ConditionOp::ALL.iter().map(|o| o.as_str().to_owned()).collect();
        assert_eq!(names(&schema["$defs"]["condition"]["properties"]["op"]["enum"]), ops);
        assert_eq!(schema["properties"]["steps"]["maxItems"], Limits::DEFAULT_MAX_STEPS);
    }
}
