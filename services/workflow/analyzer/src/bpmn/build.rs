//! Building: every process's elements and flows become triggers and steps of one workflow.
//!
//! [`build`] runs one [`Builder`] per process; the builder indexes the ids, then runs the passes
//! in order (flows, roles, gateways, boundary events) before turning each node into a trigger or
//! a step. What a modeler's diagram leaves out (a task's effect, a timer Portico cannot read) is a
//! [`Note`], reported as an `unjudged-element` finding, never a refusal; what Portico's own
//! extensions get wrong is an input problem.

use std::collections::HashMap;

use super::document::{DefinitionKind, Document, Global, Kind, Process};
use super::flows::Through;
use super::locate::{located, positional};
use super::reader::is_xml_space;
use super::{BPMN_NAMESPACE, PORTICO_NAMESPACE};
use crate::hash::{IdMap, id_map};
use crate::model::{InputProblem, Limits, ProblemKind, StepType, Workflow};

/// Something the mapping could not judge, about an element (by id) or the document.
#[derive(Debug, Clone)]
pub(super) struct Note {
    pub(super) element: Option<String>,
    pub(super) message: String,
}

pub(super) fn build(document: &Document, limits: Limits) -> Result<(Workflow, Vec<Note>), Vec<InputProblem>> {
    if let Some(root) = &document.wrong_root {
        return Err(vec![InputProblem {
            kind: ProblemKind::Schema,
            pointer: String::new(),
            message: format!("the root element is <{root}>, expected BPMN <definitions> in namespace {BPMN_NAMESPACE}"),
        }]);
    }
    let named = document
        .processes
        .iter()
        .find(|p| {
            p.attrs
                .is_executable
                .as_deref()
                .is_some_and(|v| matches!(v.trim_matches(is_xml_space), "true" | "1"))
        })
        .or_else(|| document.processes.first());
    let mut workflow = Workflow {
        name: named.and_then(|p| p.attrs.name.clone()),
        description: named.and_then(|p| p.documentation.clone()),
        ..Workflow::default()
    };
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let globals = document.globals_by_id();
    for process in &document.processes {
        let mut builder = Builder::new(process, &globals);
        builder.run(&mut workflow);
        problems.append(&mut builder.problems);
        notes.append(&mut builder.notes);
    }
    if workflow.steps.len() > limits.max_steps {
        return Err(vec![InputProblem {
            kind: ProblemKind::TooLarge,
            pointer: "/process".to_owned(),
            message: format!(
                "{} steps is over the limit of {}",
                workflow.steps.len(),
                limits.max_steps
            ),
        }]);
    }
    if problems.is_empty() {
        Ok((workflow, notes))
    } else {
        Err(problems)
    }
}

/// The targets of the associations that start at each id.
fn associations(process: &Process) -> HashMap<&str, Vec<&str>> {
    let mut map: HashMap<&str, Vec<&str>> = HashMap::new();
    for association in &process.associations {
        if let (Some(source), Some(target)) = (association.source.as_deref(), association.target.as_deref()) {
            map.entry(source).or_default().push(target);
        }
    }
    map
}

/// Link catch events by scope and link name.
fn link_catches(process: &Process) -> HashMap<(Option<usize>, &str), &str> {
    let mut map = HashMap::new();
    for node in process.nodes.iter().filter(|n| n.kind == Kind::Catch) {
        let name = node
            .definitions
            .iter()
            .find(|d| d.kind == DefinitionKind::Link)
            .and_then(|d| d.name.as_deref());
        if let (Some(name), Some(id)) = (name, node.attrs.id.as_deref()) {
            map.entry((node.parent, name)).or_insert(id);
        }
    }
    map
}

/// The nodes directly inside each node (empty but for sub-processes).
fn children(process: &Process) -> Vec<Vec<usize>> {
    let mut inside = vec![Vec::new(); process.nodes.len()];
    for (i, node) in process.nodes.iter().enumerate() {
        if let Some(list) = node.parent.and_then(|p| inside.get_mut(p)) {
            list.push(i);
        }
    }
    inside
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
    /// A boundary timer: the timeout of the wait_for_event step it is attached to.
    Timeout,
    /// No trigger or step: an event sub-process (its start events are triggers), or a node a
    /// problem has been reported for.
    None,
}

/// The mapping's working state for one process, filled in pass by pass.
pub(super) struct Builder<'p> {
    pub(super) process: &'p Process,
    /// The document's messages, signals, errors and escalations.
    pub(super) globals: &'p HashMap<(DefinitionKind, &'p str), &'p Global>,
    pub(super) index: IdMap<'p, Named>,
    pub(super) roles: Vec<Role>,
    /// Outgoing flows (indices) per node, by `sourceRef`.
    pub(super) outgoing: Vec<Vec<usize>>,
    /// Followed flows (indices) into each node, by `targetRef`.
    pub(super) incoming: Vec<Vec<usize>>,
    /// Boundary timer node giving each node its timeout, if any.
    pub(super) timeouts: Vec<Option<usize>>,
    /// The nodes directly inside each sub-process node.
    pub(super) inside: Vec<Vec<usize>>,
    /// The targets of the associations that start at each id.
    pub(super) associated: HashMap<&'p str, Vec<&'p str>>,
    /// Link catch events by scope and link name (the first wins).
    pub(super) link_catches: HashMap<(Option<usize>, &'p str), &'p str>,
    /// Per event-based gateway: the first timer catch event (with a duration) it leads to.
    pub(super) raced_timers: Vec<Option<usize>>,
    /// Further successors per node besides its flows: boundary events, compensation handlers.
    pub(super) extra: Vec<Vec<&'p str>>,
    pub(super) through: Vec<Through<'p>>,
    pub(super) problems: Vec<InputProblem>,
    pub(super) notes: Vec<Note>,
}

impl<'p> Builder<'p> {
    fn new(process: &'p Process, globals: &'p HashMap<(DefinitionKind, &'p str), &'p Global>) -> Self {
        let nodes = process.nodes.len();
        Self {
            process,
            globals,
            link_catches: link_catches(process),
            associated: associations(process),
            raced_timers: vec![None; nodes],
            index: id_map(nodes + process.flows.len()),
            roles: vec![Role::None; nodes],
            outgoing: vec![Vec::new(); nodes],
            incoming: vec![Vec::new(); nodes],
            timeouts: vec![None; nodes],
            extra: vec![Vec::new(); nodes],
            inside: children(process),
            through: vec![Through::Pending; nodes],
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(super) fn problem(&mut self, pointer: String, message: impl Into<String>) {
        self.problems.push(InputProblem {
            kind: ProblemKind::Schema,
            pointer,
            message: message.into(),
        });
    }

    pub(super) fn note(&mut self, element: Option<&str>, message: impl Into<String>) {
        self.notes.push(Note {
            element: element.map(str::to_owned),
            message: message.into(),
        });
    }

    fn run(&mut self, workflow: &mut Workflow) {
        self.index_ids();
        self.link_flows();
        self.find_raced_timers();
        self.classify();
        self.classify_gateways();
        self.attach_boundaries();
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            match self.roles.get(i).copied() {
                Some(Role::Trigger) => {
                    let (trigger, split) = self.trigger(i, node);
                    workflow.triggers.extend(trigger);
                    workflow.steps.extend(split);
                }
                Some(Role::Step(step_type)) => workflow.steps.extend(self.step(i, node, step_type)),
                _ => {}
            }
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

    /// The node an id names in this process.
    pub(super) fn node_of(&self, id: &str) -> Option<usize> {
        match self.index.get(id) {
            Some(&Named::Node(i)) => Some(i),
            _ => None,
        }
    }
}
