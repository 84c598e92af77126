//! What each flow node becomes: a trigger, a step of some type, a merge that vanishes, or the
//! timeout of the step a boundary timer is attached to.

use super::PORTICO_NAMESPACE;
use super::build::{Builder, Named, Role};
use super::document::{DefinitionKind, Kind, Node};
use super::locate::locator;
use crate::model::StepType;

impl<'p> Builder<'p> {
    /// Decides the role of every node but gateways.
    pub(super) fn classify(&mut self) {
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            let role = match node.kind {
                Kind::Start => Role::Trigger,
                Kind::Boundary => self.boundary_role(node),
                // Decided once the outgoing flows are known.
                Kind::Gateway => Role::Merge,
                Kind::Unsupported => {
                    self.problem(
                        locator(node),
                        format!(
                            "BPMN <{}> is not supported: a Portico workflow runs one path per contact, \
                             with exclusive or inclusive gateways for decisions",
                            node.element
                        ),
                    );
                    Role::Invalid
                }
                _ => self.step_type(node).map_or(Role::Invalid, Role::Step),
            };
            if let Some(slot) = self.roles.get_mut(i) {
                *slot = role;
            }
        }
    }

    fn boundary_role(&mut self, node: &Node) -> Role {
        match node.definitions.as_slice() {
            [definition] if definition.kind == DefinitionKind::Timer => Role::Timeout,
            _ => {
                self.problem(
                    locator(node),
                    "only a timer boundary event is supported, as the timeout of a wait_for_event step",
                );
                Role::Invalid
            }
        }
    }

    /// The step type of a task or event node, reporting why when there is none.
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
        match node.kind {
            Kind::Task(Some(step_type)) => return Some(step_type),
            Kind::End => return Some(StepType::End),
            Kind::Catch => match node.definitions.as_slice() {
                [definition] => match definition.kind {
                    DefinitionKind::Timer => return Some(StepType::Wait),
                    DefinitionKind::Message | DefinitionKind::Signal => return Some(StepType::WaitForEvent),
                    _ => {}
                },
                [] => {}
                _ => {
                    self.problem(
                        locator(node),
                        "an intermediate catch event with several event definitions is not supported",
                    );
                    return None;
                }
            },
            _ => {}
        }
        let why = match node.kind {
            Kind::Catch => "catches no timer, message or signal and has no portico:type",
            _ => "has no portico:type",
        };
        self.problem(
            locator(node),
            format!(
                "<{}> {why}, so the analyser cannot tell what it does: set portico:type to one of {} \
                 (namespace {PORTICO_NAMESPACE})",
                node.element,
                step_type_names()
            ),
        );
        None
    }

    /// A gateway is a decision (if_else) when it has two or more outgoing flows or says so;
    /// with one outgoing flow it is a merge.
    pub(super) fn classify_gateways(&mut self) {
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            if node.kind != Kind::Gateway {
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
                    Role::Invalid
                }
                None if outgoing >= 2 || node.config_count > 0 => Role::Step(StepType::IfElse),
                None if outgoing == 1 => Role::Merge,
                None => {
                    self.problem(locator(node), "a gateway needs an outgoing sequence flow");
                    Role::Invalid
                }
            };
            if let Some(slot) = self.roles.get_mut(i) {
                *slot = role;
            }
        }
    }

    /// Attaches boundary timers to their wait_for_event steps.
    pub(super) fn attach_timeouts(&mut self) {
        let process = self.process;
        for (b, node) in process.nodes.iter().enumerate() {
            if self.roles.get(b) != Some(&Role::Timeout) {
                continue;
            }
            let host = node
                .attrs
                .attached_to_ref
                .as_deref()
                .and_then(|id| self.index.get(id))
                .copied();
            let host = match host {
                Some(Named::Node(h)) if self.roles.get(h) == Some(&Role::Step(StepType::WaitForEvent)) => h,
                _ => {
                    self.problem(
                        locator(node),
                        "a timer boundary event must be attached (attachedToRef) to a wait_for_event step",
                    );
                    continue;
                }
            };
            match self.timeouts.get_mut(host) {
                Some(slot @ None) => *slot = Some(b),
                _ => self.problem(locator(node), "a step can have only one timer boundary event"),
            }
        }
    }
}

fn step_type_names() -> String {
    StepType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}
