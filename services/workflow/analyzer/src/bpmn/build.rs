//! Building: the chosen process's elements and flows become triggers and steps.
//!
//! [`build`] picks the process; the [`Builder`] indexes the ids, then runs the passes in order
//! (roles, flows, gateways, timeouts) before turning each node into a trigger or a step.

use super::document::{Document, Process};
use super::flows::Through;
use super::locate::{located, positional};
use super::reader::is_xml_space;
use super::{BPMN_NAMESPACE, PORTICO_NAMESPACE};
use crate::hash::{IdMap, id_map};
use crate::model::{InputProblem, Limits, ProblemKind, StepType, Workflow};

pub(super) fn build(document: Document, limits: Limits) -> Result<Workflow, Vec<InputProblem>> {
    let schema = |message: String| {
        vec![InputProblem {
            kind: ProblemKind::Schema,
            pointer: String::new(),
            message,
        }]
    };
    if let Some(root) = &document.wrong_root {
        return Err(schema(format!(
            "the root element is <{root}>, expected BPMN <definitions> in namespace {BPMN_NAMESPACE}"
        )));
    }
    let chosen = document
        .processes
        .iter()
        .position(|p| {
            p.attrs
                .is_executable
                .as_deref()
                .is_some_and(|v| matches!(v.trim_matches(is_xml_space), "true" | "1"))
        })
        .unwrap_or(0);
    let Some(process) = document.processes.get(chosen) else {
        return Err(schema(format!("no <process> element in namespace {BPMN_NAMESPACE}")));
    };
    Builder::new(process, &document, limits).run()
}

/// What an id names.
#[derive(Debug, Clone, Copy)]
pub(super) enum Named {
    Node(usize),
    Flow,
}

/// What a flow node turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Trigger,
    Step(StepType),
    /// A gateway with one outgoing flow and no decision: flows into it lead to its successor.
    Merge,
    /// A boundary timer: the timeout of the step it is attached to.
    Timeout,
    /// Not mappable; a problem has been reported.
    Invalid,
}

/// The mapping's working state for one process, filled in pass by pass.
pub(super) struct Builder<'p> {
    pub(super) process: &'p Process,
    limits: Limits,
    pub(super) index: IdMap<'p, Named>,
    pub(super) roles: Vec<Role>,
    /// Outgoing flows (indices) per node.
    pub(super) outgoing: Vec<Vec<usize>>,
    /// Boundary timer node attached to each node, if any.
    pub(super) timeouts: Vec<Option<usize>>,
    pub(super) through: Vec<Through<'p>>,
    /// Name (if any) of each message and signal by id.
    pub(super) messages: IdMap<'p, Option<&'p str>>,
    pub(super) signals: IdMap<'p, Option<&'p str>>,
    problems: Vec<InputProblem>,
}

impl<'p> Builder<'p> {
    fn new(process: &'p Process, document: &'p Document, limits: Limits) -> Self {
        let nodes = process.nodes.len();
        Self {
            process,
            limits,
            index: id_map(nodes + process.flows.len()),
            roles: vec![Role::Invalid; nodes],
            outgoing: vec![Vec::new(); nodes],
            timeouts: vec![None; nodes],
            through: vec![Through::Pending; nodes],
            messages: names(&document.messages),
            signals: names(&document.signals),
            problems: Vec::new(),
        }
    }

    pub(super) fn problem(&mut self, pointer: String, message: impl Into<String>) {
        self.problems.push(InputProblem {
            kind: ProblemKind::Schema,
            pointer,
            message: message.into(),
        });
    }

    fn run(mut self) -> Result<Workflow, Vec<InputProblem>> {
        self.index_ids();
        self.classify();
        self.link_flows();
        self.classify_gateways();
        let steps = self.roles.iter().filter(|r| matches!(r, Role::Step(_))).count();
        if steps > self.limits.max_steps {
            self.problems.push(InputProblem {
                kind: ProblemKind::TooLarge,
                pointer: "/process".to_owned(),
                message: format!("{steps} steps is over the limit of {}", self.limits.max_steps),
            });
            return Err(self.problems);
        }
        self.attach_timeouts();
        let mut workflow = Workflow {
            name: self.process.attrs.name.clone(),
            description: self.process.documentation.clone(),
            triggers: Vec::new(),
            steps: Vec::with_capacity(steps),
        };
        for (i, node) in self.process.nodes.iter().enumerate() {
            match self.roles.get(i).copied() {
                Some(Role::Trigger) => {
                    if let Some(trigger) = self.trigger(i, node) {
                        workflow.triggers.push(trigger);
                    }
                }
                Some(Role::Step(step_type)) => {
                    if let Some(step) = self.step(i, node, step_type) {
                        workflow.steps.push(step);
                    }
                }
                _ => {}
            }
        }
        if self.problems.is_empty() {
            Ok(workflow)
        } else {
            Err(self.problems)
        }
    }

    /// Requires an id on every flow node and unique ids across nodes and flows.
    fn index_ids(&mut self) {
        let process = self.process;
        let nodes = process.nodes.iter().enumerate().map(|(i, node)| {
            let unknown = node.unknown_element.as_deref().map(|name| ("element", name));
            (
                node.order,
                &node.attrs,
                unknown,
                Named::Node(i),
                node.element,
                node.position,
            )
        });
        let flows = process.flows.iter().map(|flow| {
            (
                flow.order,
                &flow.attrs,
                None,
                Named::Flow,
                "sequenceFlow",
                flow.position,
            )
        });
        let mut children: Vec<_> = nodes.chain(flows).collect();
        children.sort_unstable_by_key(|child| child.0);
        let mut first_use: IdMap<'p, (&'static str, usize)> = id_map(children.len());
        for (_, attrs, unknown_element, named, element, position) in children {
            let unknown_attribute = attrs.unknown_portico.as_deref().map(|name| ("attribute", name));
            for (what, name) in [unknown_attribute, unknown_element].into_iter().flatten() {
                self.problem(
                    located(element, attrs.id.as_deref(), position),
                    format!(
                        "unknown Portico {what} \"{name}\" (Portico reads the attributes type and branch \
                         and the element config, in namespace {PORTICO_NAMESPACE})"
                    ),
                );
            }
            let id = attrs.id.as_deref().filter(|id| !id.is_empty());
            let Some(id) = id else {
                if matches!(named, Named::Node(_)) {
                    self.problem(
                        positional(element, position),
                        format!("missing required attribute \"id\" on <{element}>"),
                    );
                }
                continue;
            };
            if let Some(&(first_element, first_position)) = first_use.get(id) {
                self.problem(
                    positional(element, position),
                    format!(
                        "duplicate id \"{id}\" (first used at {})",
                        positional(first_element, first_position)
                    ),
                );
                continue;
            }
            first_use.insert(id, (element, position));
            self.index.insert(id, named);
        }
    }
}

/// Index of `(id, name)` pairs; the first of equal ids wins and an empty name counts as none.
fn names(list: &[(String, Option<String>)]) -> IdMap<'_, Option<&str>> {
    let mut map = id_map(list.len());
    for (id, name) in list {
        map.entry(id.as_str())
            .or_insert_with(|| name.as_deref().filter(|name| !name.is_empty()));
    }
    map
}
