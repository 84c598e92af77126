//! Sequence flows: filed under their source nodes, followed through merge gateways, and turned
//! into a node's `next` or a decision's yes and no branches.

use super::build::{Builder, Named, Role};
use super::document::{Flow, Node};
use super::locate::{flow_locator, locator};
use crate::model::{Branches, StepType};

/// Progress of resolving a merge gateway to the element it leads to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Through<'p> {
    Pending,
    Visiting,
    /// The element reached, `None` when the flows loop through gateways only.
    Done(Option<&'p str>),
}

/// Yes or no side of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Yes,
    No,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Self::Yes => Self::No,
            Self::No => Self::Yes,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
        }
    }
}

impl<'p> Builder<'p> {
    /// Files every flow under its source node.
    pub(super) fn link_flows(&mut self) {
        let process = self.process;
        for (f, flow) in process.flows.iter().enumerate() {
            let at = || flow_locator(flow);
            let source = flow.attrs.source_ref.as_deref().filter(|s| !s.is_empty());
            let target = flow.attrs.target_ref.as_deref().filter(|s| !s.is_empty());
            let (Some(source), Some(target)) = (source, target) else {
                self.problem(at(), "a sequence flow needs a non-empty sourceRef and targetRef");
                continue;
            };
            let Some(&Named::Node(s)) = self.index.get(source) else {
                self.problem(
                    at(),
                    format!("sourceRef \"{source}\" names no flow node of the process"),
                );
                continue;
            };
            if let Some(&Named::Node(t)) = self.index.get(target)
                && let Some(role @ (Role::Trigger | Role::Timeout)) = self.roles.get(t).copied()
            {
                let what = if role == Role::Trigger {
                    "a start event"
                } else {
                    "a boundary event"
                };
                self.problem(
                    at(),
                    format!("targetRef \"{target}\" is {what}, which takes no incoming flow"),
                );
                continue;
            }
            if let Some(list) = self.outgoing.get_mut(s) {
                list.push(f);
            }
        }
    }

    /// The step or trigger a flow leads to, looking through merge gateways; `None` when the flows
    /// loop through gateways only (reported once).
    fn follow(&mut self, target: &'p str) -> Option<&'p str> {
        let mut path = Vec::new();
        let mut current = target;
        let reached = loop {
            let Some(&Named::Node(gateway)) = self.index.get(current) else {
                break Some(current);
            };
            if self.roles.get(gateway) != Some(&Role::Merge) {
                break Some(current);
            }
            match self.through.get(gateway).copied() {
                Some(Through::Done(reached)) => break reached,
                Some(Through::Visiting) => {
                    let at = self.process.nodes.get(gateway).map(locator).unwrap_or_default();
                    self.problem(at, "sequence flows loop through gateways without passing any step");
                    break None;
                }
                _ => {}
            }
            if let Some(slot) = self.through.get_mut(gateway) {
                *slot = Through::Visiting;
            }
            path.push(gateway);
            let next = self
                .outgoing
                .get(gateway)
                .and_then(|flows| flows.first())
                .and_then(|&f| self.process.flows.get(f))
                .and_then(|flow| flow.attrs.target_ref.as_deref());
            match next {
                Some(next) => current = next,
                None => break None,
            }
        };
        for gateway in path {
            if let Some(slot) = self.through.get_mut(gateway) {
                *slot = Through::Done(reached);
            }
        }
        reached
    }

    /// Targets of a node's outgoing flows, as (flow, resolved target).
    pub(super) fn targets(&mut self, node: usize) -> Vec<(&'p Flow, Option<&'p str>)> {
        let process = self.process;
        let flows: Vec<&'p Flow> = self
            .outgoing
            .get(node)
            .map(|list| list.iter().filter_map(|&f| process.flows.get(f)).collect())
            .unwrap_or_default();
        flows
            .into_iter()
            .map(|flow| {
                let target = flow.attrs.target_ref.as_deref().and_then(|t| self.follow(t));
                (flow, target)
            })
            .collect()
    }

    /// `next` of a node that continues at one element at most; `step_type` is `None` for a start
    /// event.
    pub(super) fn single_next(&mut self, i: usize, node: &Node, step_type: Option<StepType>) -> Option<String> {
        let targets = self.targets(i);
        match targets.as_slice() {
            [] => None,
            [(_, target)] => target.map(str::to_owned),
            _ => {
                let what = step_type.map_or_else(|| "a start event".to_owned(), |t| format!("a {t} step"));
                self.problem(
                    locator(node),
                    format!(
                        "{what} has {} outgoing sequence flows but continues at one element; \
                         branch with an exclusive gateway",
                        targets.len()
                    ),
                );
                None
            }
        }
    }

    /// Branches of a decision from its outgoing flows.
    pub(super) fn branches(&mut self, i: usize, node: &Node) -> Branches {
        let at = || locator(node);
        let targets = self.targets(i);
        let mut branches = Branches::default();
        if targets.len() > 2 {
            self.problem(
                at(),
                format!(
                    "a decision has at most two outgoing sequence flows (yes and no), found {}",
                    targets.len()
                ),
            );
            return branches;
        }
        let mut sides = Vec::with_capacity(targets.len());
        for (flow, target) in &targets {
            let side = match self.side(node, flow) {
                Ok(side) => side,
                Err(()) => return branches,
            };
            sides.push((side, *target));
        }
        let assigned: Vec<(Side, Option<&str>)> = match sides.as_slice() {
            [] => Vec::new(),
            [(Some(side), target)] => vec![(*side, *target)],
            [(Some(a), first), (Some(b), second)] if a != b => vec![(*a, *first), (*b, *second)],
            [(Some(a), first), (None, second)] => vec![(*a, *first), (a.other(), *second)],
            [(None, first), (Some(b), second)] => vec![(b.other(), *first), (*b, *second)],
            [(Some(side), _), (Some(_), _)] => {
                self.problem(
                    at(),
                    format!(
                        "both outgoing sequence flows of this decision are \"{}\"",
                        side.as_str()
                    ),
                );
                return branches;
            }
            _ => {
                self.problem(
                    at(),
                    "cannot tell the yes and no outgoing flows of this decision apart: set portico:branch=\"yes\" \
                     or \"no\" on a flow, name the flows yes/no, or make one the gateway's default (no)",
                );
                return branches;
            }
        };
        for (side, target) in assigned {
            let target = target.map(str::to_owned);
            match side {
                Side::Yes => branches.yes = target,
                Side::No => branches.no = target,
            }
        }
        branches
    }

    /// The side a flow of a decision stands for, if labelled.
    fn side(&mut self, node: &Node, flow: &Flow) -> Result<Option<Side>, ()> {
        if let Some(branch) = &flow.attrs.portico_branch {
            return match branch.as_str() {
                "yes" => Ok(Some(Side::Yes)),
                "no" => Ok(Some(Side::No)),
                other => {
                    self.problem(
                        flow_locator(flow),
                        format!("portico:branch must be \"yes\" or \"no\", found \"{other}\""),
                    );
                    Err(())
                }
            };
        }
        if flow.attrs.id.is_some() && flow.attrs.id == node.attrs.default {
            return Ok(Some(Side::No));
        }
        let name = flow
            .attrs
            .name
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Ok(match name.as_str() {
            "yes" | "true" => Some(Side::Yes),
            "no" | "false" => Some(Side::No),
            _ => None,
        })
    }
}
