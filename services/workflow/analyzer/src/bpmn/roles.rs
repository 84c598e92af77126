//! What each flow node becomes: a trigger, a step of some type, a merge that vanishes, or the
//! timeout of the step a boundary timer is attached to.
//!
//! Portico's extensions decide where present (`portico:type`, `portico:config`); without them a
//! node keeps the meaning BPMN gives it, and an activity whose effect BPMN does not say is a
//! `task`.

use super::PORTICO_NAMESPACE;
use super::build::{Builder, Role};
use super::document::{DefinitionKind, Kind, Node, TaskKind};
use super::locate::locator;
use crate::model::StepType;

impl<'p> Builder<'p> {
    /// Decides the role of every node but gateways and boundary events.
    pub(super) fn classify(&mut self) {
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            let role = match node.kind {
                Kind::Gateway(_) | Kind::Boundary => continue,
                Kind::Start if self.starts_a_run(node) => Role::Trigger,
                Kind::SubProcess(_) if node.is_event_sub_process() => Role::None,
                _ => self.step_type(node).map_or(Role::None, Role::Step),
            };
            if let Some(slot) = self.roles.get_mut(i) {
                *slot = role;
            }
        }
    }

    /// A start event at process level or in an event sub-process starts a run; one inside an
    /// embedded sub-process is where the sub-process begins.
    fn starts_a_run(&self, node: &Node) -> bool {
        node.parent
            .and_then(|p| self.process.nodes.get(p))
            .is_none_or(Node::is_event_sub_process)
    }

    /// The step type of a node, reporting a problem when Portico's extensions say something
    /// that cannot be.
    fn step_type(&mut self, node: &Node) -> Option<StepType> {
        if let Some(name) = &node.attrs.portico_type {
            let step_type = StepType::from_name(name);
            if step_type.is_none() {
                self.problem(
                    locator(node),
                    format!(
                        "unknown portico:type \"{name}\" (expected one of {})",
                        step_type_names()
                    ),
                );
            }
            return step_type;
        }
        let implied = match node.kind {
            Kind::End => StepType::End,
            Kind::Task(TaskKind::Receive) => StepType::WaitForEvent,
            Kind::Catch => match node.definitions.as_slice() {
                [definition] => match definition.kind {
                    DefinitionKind::Timer => StepType::Wait,
                    DefinitionKind::Message | DefinitionKind::Signal | DefinitionKind::Conditional => {
                        StepType::WaitForEvent
                    }
                    _ => StepType::Task,
                },
                _ => StepType::Task,
            },
            kind if node.config_count > 0 => match kind.implied_step() {
                Some(step_type) => step_type,
                None => {
                    self.problem(
                        locator(node),
                        format!(
                            "<{}> has a portico:config but no portico:type, so the analyser cannot tell \
                             what it does: set portico:type to one of {} (namespace {PORTICO_NAMESPACE})",
                            node.element,
                            step_type_names()
                        ),
                    );
                    return None;
                }
            },
            _ => StepType::Task,
        };
        Some(implied)
    }

    /// A gateway is an if_else decision when Portico's extensions make it one; otherwise a merge
    /// with one outgoing flow at most, and a split with more.
    pub(super) fn classify_gateways(&mut self) {
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            if !node.kind.is_gateway() {
                continue;
            }
            let outgoing = self.outgoing.get(i).map_or(0, Vec::len);
            let role = match node.attrs.portico_type.as_deref() {
                Some("if_else") => Role::Step(StepType::IfElse),
                Some(other) => {
                    self.problem(
                        locator(node),
                        format!("a gateway is an if_else decision or a merge; portico:type \"{other}\" does not fit"),
                    );
                    Role::None
                }
                None if node.config_count > 0 => Role::Step(StepType::IfElse),
                None if outgoing >= 2 => Role::Step(StepType::Split),
                None => Role::Merge,
            };
            if let Some(slot) = self.roles.get_mut(i) {
                *slot = role;
            }
        }
    }

    /// A boundary timer with a duration on a wait_for_event step is that step's timeout; any
    /// other boundary event is a step the activity may continue at while it runs.
    pub(super) fn attach_boundaries(&mut self) {
        let process = self.process;
        for (b, node) in process.nodes.iter().enumerate() {
            if node.kind != Kind::Boundary {
                continue;
            }
            let host = node.attrs.attached_to_ref.as_deref().and_then(|id| self.node_of(id));
            let timer = match node.definitions.as_slice() {
                [definition] if definition.kind == DefinitionKind::Timer => definition.duration.is_some(),
                _ => false,
            };
            let role = match host {
                Some(h)
                    if timer
                        && self.roles.get(h) == Some(&Role::Step(StepType::WaitForEvent))
                        && self.timeouts.get(h) == Some(&None) =>
                {
                    if let Some(slot) = self.timeouts.get_mut(h) {
                        *slot = Some(b);
                    }
                    Role::Timeout
                }
                _ => {
                    if let (Some(h), Some(id)) = (host, node.attrs.id.as_deref())
                        && let Some(extra) = self.extra.get_mut(h)
                    {
                        extra.push(id);
                    } else if host.is_none() {
                        self.note(
                            node.attrs.id.as_deref(),
                            "this boundary event is attached (attachedToRef) to no activity of the process, \
                             so nothing leads to it",
                        );
                    }
                    Role::Step(self.step_type(node).unwrap_or(StepType::Task))
                }
            };
            if node.has_definition(DefinitionKind::Compensate) {
                self.link_compensation(b, node);
            }
            if let Some(slot) = self.roles.get_mut(b) {
                *slot = role;
            }
        }
    }

    /// A compensation boundary event leads to the handlers it is associated with.
    fn link_compensation(&mut self, b: usize, node: &'p Node) {
        let Some(id) = node.attrs.id.as_deref() else {
            return;
        };
        let handlers = self.associated.get(id).cloned().unwrap_or_default();
        if let Some(extra) = self.extra.get_mut(b) {
            extra.extend(handlers);
        }
    }
}

pub(super) fn step_type_names() -> String {
    StepType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}
