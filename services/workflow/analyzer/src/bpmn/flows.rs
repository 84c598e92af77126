//! Sequence flows: filed under their source nodes, followed through merge gateways, and turned
//! into a node's `next` or a decision's yes and no branches.

use super::build::{Builder, Role};
use super::document::{Flow, Kind, Node};
use super::locate::{flow_locator, locator};
use crate::model::Branches;

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
    /// Files every flow under its source node; a flow that cannot be followed is noted and left
    /// out.
    pub(super) fn link_flows(&mut self) {
        let process = self.process;
        for (f, flow) in process.flows.iter().enumerate() {
            let id = flow.attrs.id.as_deref();
            let source = flow.attrs.source_ref.as_deref().filter(|s| !s.is_empty());
            let target = flow.attrs.target_ref.as_deref().filter(|s| !s.is_empty());
            let (Some(source), Some(target)) = (source, target) else {
                self.note(id, "a sequence flow without a sourceRef or a targetRef leads nowhere");
                continue;
            };
            let Some(s) = self.node_of(source) else {
                self.note(id, format!("sourceRef \"{source}\" names no flow node of the process"));
                continue;
            };
            if let Some(t) = self.node_of(target)
                && let Some(node) = process.nodes.get(t)
                && matches!(node.kind, Kind::Start | Kind::Boundary)
            {
                self.note(
                    id,
                    format!(
                        "targetRef \"{target}\" is a <{}>, which takes no incoming flow",
                        node.element
                    ),
                );
                continue;
            }
            if let Some(list) = self.outgoing.get_mut(s) {
                list.push(f);
            }
            if let Some(t) = self.node_of(target)
                && let Some(list) = self.incoming.get_mut(t)
            {
                list.push(f);
            }
        }
    }

    /// The step or trigger a flow leads to, looking through merge gateways; `None` when the flows
    /// loop through gateways only (noted once) or a merge leads nowhere.
    pub(super) fn follow(&mut self, target: &'p str) -> Option<&'p str> {
        let mut path = Vec::new();
        let mut current = target;
        let reached = loop {
            let Some(gateway) = self.node_of(current) else {
                break Some(current);
            };
            if self.roles.get(gateway) != Some(&Role::Merge) {
                break Some(current);
            }
            match self.through.get(gateway).copied() {
                Some(Through::Done(reached)) => break reached,
                Some(Through::Visiting) => {
                    let id = self.process.nodes.get(gateway).and_then(|n| n.attrs.id.as_deref());
                    self.note(
                        id,
                        "sequence flows loop through gateways without passing any activity or event",
                    );
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

    /// The elements a node continues at through its flows, without repeats.
    pub(super) fn successors(&mut self, node: usize) -> Vec<&'p str> {
        let mut out: Vec<&'p str> = Vec::new();
        for (_, target) in self.targets(node) {
            if let Some(target) = target
                && !out.contains(&target)
            {
                out.push(target);
            }
        }
        out
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
