//! The rule catalogue and the plumbing rules share. Each rule is a plain function over the
//! prebuilt [`Graph`], so adding one never adds a traversal.

mod broken_reference;
mod compliance;
pub(crate) mod contradiction;
mod duplicate_action;
mod empty_workflow;
mod loops;
mod missing_branch;
mod no_trigger;
mod reachability;
mod wait_timeout;
mod webhook;

use crate::graph::Graph;
use crate::model::{Step, StepType, Workflow};
use crate::{Finding, RuleInfo};

/// What every rule implements: read the context, push findings.
pub(crate) type Check = fn(&Context<'_>, &mut Report<'_>);

pub(crate) static CATALOGUE: &[RuleInfo] = &[
    no_trigger::RULE,
    empty_workflow::RULE,
    broken_reference::RULE,
    loops::INFINITE_LOOP,
    loops::LOOP_WITHOUT_WAIT,
    reachability::UNREACHABLE_STEP,
    reachability::GOAL_UNREACHABLE,
    missing_branch::RULE,
    wait_timeout::RULE,
    webhook::NO_RETRY,
    webhook::INSECURE_URL,
    compliance::EMAIL_NO_UNSUBSCRIBE,
    compliance::SMS_NO_OPT_OUT,
    duplicate_action::RULE,
    contradiction::RULE,
];

/// The rules of the source document (bpmnlint's, `unjudged-element`) are listed in the
/// catalogue, but their findings come with the parsed document, so their check does nothing.
pub(crate) fn from_source(_: &Context<'_>, _: &mut Report<'_>) {}

/// Every rule: the workflow rules, then the source document's.
pub(crate) fn all() -> &'static [RuleInfo] {
    static ALL: std::sync::LazyLock<Vec<RuleInfo>> = std::sync::LazyLock::new(|| {
        let mut all = CATALOGUE.to_vec();
        all.extend(crate::bpmn::lint::LINTS.iter().map(|lint| lint.rule));
        all.push(crate::bpmn::UNJUDGED);
        all
    });
    &ALL
}

/// Everything a rule may look at.
pub(crate) struct Context<'a> {
    pub(crate) workflow: &'a Workflow,
    pub(crate) graph: &'a Graph<'a>,
}

impl<'a> Context<'a> {
    /// Steps of one type with their indices, in input order.
    pub(crate) fn steps_of(&self, step_type: StepType) -> impl Iterator<Item = (usize, &'a Step)> + use<'a> {
        let steps = &self.workflow.steps;
        self.graph
            .of_type(step_type)
            .iter()
            .filter_map(move |&i| steps.get(i).map(|step| (i, step)))
    }

    /// Up to five quoted step ids, for messages about groups of steps that may be huge.
    pub(crate) fn quoted_ids(&self, indices: &[usize]) -> String {
        const SHOWN: usize = 5;
        let mut out: Vec<String> = indices
            .iter()
            .take(SHOWN)
            .filter_map(|&i| self.workflow.steps.get(i))
            .map(|step| format!("\"{}\"", step.id))
            .collect();
        if indices.len() > SHOWN {
            out.push(format!("and {} more", indices.len() - SHOWN));
        }
        out.join(", ")
    }
}

/// Collects findings with their sort position.
pub(crate) struct Report<'a> {
    steps: &'a [Step],
    /// (0 for workflow-level findings, else step index + 1; the finding)
    items: Vec<(usize, Finding)>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(steps: &'a [Step]) -> Self {
        Self {
            steps,
            items: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, rule: &RuleInfo, step: Option<usize>, message: String, suggestion: &str) {
        let step_id = step.and_then(|i| self.steps.get(i)).map(|s| s.id.clone());
        let position = step.map_or(0, |i| i + 1);
        let finding = Finding {
            rule: rule.id,
            severity: rule.severity,
            title: rule.title,
            message,
            step_id,
            suggestion: suggestion.to_owned(),
        };
        self.items.push((position, finding));
    }

    /// Adds a finding the source document came with, at the position of the step it names.
    pub(crate) fn push_found(&mut self, position: usize, finding: Finding) {
        self.items.push((position, finding));
    }

    /// Most severe first, then step order; the sort is stable so ties keep catalogue order.
    pub(crate) fn into_sorted(mut self) -> Vec<Finding> {
        self.items
            .sort_by_key(|(position, finding)| (finding.severity, *position));
        self.items.into_iter().map(|(_, finding)| finding).collect()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{Value, json};

    use super::{Context, Report};
    use crate::graph::Graph;
    use crate::{Finding, Limits, RuleInfo};

    /// Runs one rule on a document that must parse.
    pub(crate) fn run(rule: &RuleInfo, doc: &Value) -> Vec<Finding> {
        let workflow = match crate::parse(doc.to_string().as_bytes(), Limits::default()) {
            Ok(workflow) => workflow,
            Err(problems) => panic!("test document does not parse: {problems:?}"),
        };
        let graph = Graph::build(&workflow);
        let mut report = Report::new(&workflow.steps);
        (rule.check)(
            &Context {
                workflow: &workflow,
                graph: &graph,
            },
            &mut report,
        );
        let findings = report.into_sorted();
        assert!(
            findings
                .iter()
                .all(|f| f.rule == rule.id && f.severity == rule.severity)
        );
        findings
    }

    /// A document whose single trigger enters at step `s1`.
    pub(crate) fn entered(steps: Value) -> Value {
        json!({"name": "test", "triggers": [{"id": "t1", "type": "manual", "next": "s1"}], "steps": steps})
    }

    /// Step ids of the findings, `""` for workflow-level ones.
    pub(crate) fn step_ids(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.step_id.as_deref().unwrap_or("")).collect()
    }
}
