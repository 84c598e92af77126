//! bpmnlint's semantic rules, with the same meaning, over the document as read: each rule of
//! bpmnlint 11.13.0 is a rule here with the id `bpmnlint/<its name>`, so results compare one to
//! one. Severities follow bpmnlint's `recommended` configuration: `error` is high, `warn` low.
//!
//! A flow node's incoming and outgoing flows are the sequence flows whose `targetRef` or
//! `sourceRef` names it. bpmnlint reads the `<incoming>` / `<outgoing>` children a modeler writes
//! beside them instead; modelers keep the two consistent, and where a hand-written document
//! leaves the children out, the flows are what an engine follows. A gateway's or activity's
//! `default` is the flow it names.

mod flows;
mod gateways;
mod names;
mod scopes;

use super::document::{Document, Flow, Kind, Node, Process, SubProcessKind};
use crate::hash::{IdMap, id_map};
use crate::{Finding, RuleInfo, Severity};

/// One bpmnlint rule: its catalogue entry and its check.
pub(crate) struct Lint {
    pub(crate) rule: RuleInfo,
    check: fn(&Diagram<'_>, &mut Out),
    /// How to fix what it reports.
    suggestion: &'static str,
}

/// The rules, in bpmnlint's alphabetical order.
pub(crate) static LINTS: &[Lint] = &[
    scopes::AD_HOC_SUB_PROCESS,
    flows::CONDITIONAL_FLOWS,
    scopes::END_EVENT_REQUIRED,
    gateways::EVENT_BASED_GATEWAY,
    scopes::EVENT_SUB_PROCESS_TYPED_START_EVENT,
    flows::FAKE_JOIN,
    names::GLOBAL,
    names::LABEL_REQUIRED,
    names::LINK_EVENT,
    gateways::NO_COMPLEX_GATEWAY,
    flows::NO_DISCONNECTED,
    flows::NO_DUPLICATE_SEQUENCE_FLOWS,
    gateways::NO_GATEWAY_JOIN_FORK,
    flows::NO_IMPLICIT_END,
    flows::NO_IMPLICIT_SPLIT,
    flows::NO_IMPLICIT_START,
    gateways::NO_INCLUSIVE_GATEWAY,
    scopes::SINGLE_BLANK_START_EVENT,
    scopes::SINGLE_EVENT_DEFINITION,
    scopes::START_EVENT_REQUIRED,
    scopes::SUB_PROCESS_BLANK_START_EVENT,
    gateways::SUPERFLUOUS_GATEWAY,
    scopes::SUPERFLUOUS_TERMINATION,
];

/// Builds a rule's catalogue entry from bpmnlint's name and its `recommended` level.
const fn rule(id: &'static str, error: bool, title: &'static str, description: &'static str) -> RuleInfo {
    RuleInfo {
        id,
        severity: if error { Severity::High } else { Severity::Low },
        title,
        description,
        check: crate::rules::from_source,
    }
}

/// Runs every rule over the document.
pub(crate) fn lint(document: &Document) -> Vec<Finding> {
    let diagram = Diagram::new(document);
    let mut findings = Vec::new();
    for lint in LINTS {
        let mut out = Out::default();
        (lint.check)(&diagram, &mut out);
        findings.extend(out.reports.into_iter().map(|(id, message)| Finding {
            rule: lint.rule.id,
            severity: lint.rule.severity,
            title: lint.rule.title,
            message,
            step_id: Some(id.to_owned()),
            suggestion: lint.suggestion.to_owned(),
        }));
    }
    findings
}

/// What one rule reports: (element id, message).
#[derive(Default)]
pub(crate) struct Out {
    reports: Vec<(String, String)>,
}

impl Out {
    /// Reports an element by id; an element without an id cannot be named and is not reported.
    pub(crate) fn report(&mut self, id: Option<&str>, message: impl Into<String>) {
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            self.reports.push((id.to_owned(), message.into()));
        }
    }
}

/// A flow node of some process, with what the rules derive from it.
pub(crate) struct NodeRef<'d> {
    pub(crate) process: &'d Process,
    pub(crate) node: &'d Node,
    /// The sequence flows into and out of it, in document order.
    pub(crate) incoming: Vec<&'d Flow>,
    pub(crate) outgoing: Vec<&'d Flow>,
    /// The scope (index of [`Diagram::scopes`]) a sub-process opens.
    pub(crate) scope: Option<usize>,
    /// Whether an association at process level starts at it.
    pub(crate) associated: bool,
}

impl<'d> NodeRef<'d> {
    pub(crate) fn id(&self) -> Option<&'d str> {
        self.node.attrs.id.as_deref()
    }

    /// The sub-process the node sits in.
    pub(crate) fn parent(&self) -> Option<&'d Node> {
        self.node.parent.and_then(|p| self.process.nodes.get(p))
    }

    pub(crate) fn in_ad_hoc(&self) -> bool {
        self.parent()
            .is_some_and(|p| p.kind == Kind::SubProcess(SubProcessKind::AdHoc))
    }

    /// Whether the flow is the node's `default` one.
    pub(crate) fn is_default(&self, flow: &Flow) -> bool {
        self.node.attrs.default.is_some() && self.node.attrs.default == flow.attrs.id
    }

    /// Whether the node's `default` names a sequence flow of the document.
    pub(crate) fn has_default(&self, diagram: &Diagram<'_>) -> bool {
        self.node
            .attrs
            .default
            .as_deref()
            .is_some_and(|id| matches!(diagram.ids.get(id), Some(Named::Flow)))
    }
}

/// A process or a sub-process: what holds flow elements.
pub(crate) struct Scope<'d> {
    pub(crate) process: &'d Process,
    /// The sub-process node, `None` for the process itself.
    pub(crate) node: Option<&'d Node>,
    /// The flow nodes directly inside, as indices of [`Diagram::nodes`].
    children: Vec<usize>,
}

impl<'d> Scope<'d> {
    pub(crate) fn id(&self) -> Option<&'d str> {
        match self.node {
            Some(node) => node.attrs.id.as_deref(),
            None => self.process.attrs.id.as_deref(),
        }
    }

    pub(crate) fn is_sub_process(&self) -> bool {
        self.node.is_some()
    }

    pub(crate) fn is_ad_hoc(&self) -> bool {
        self.node
            .is_some_and(|n| n.kind == Kind::SubProcess(SubProcessKind::AdHoc))
    }

    pub(crate) fn is_event_sub_process(&self) -> bool {
        self.node.is_some_and(Node::is_event_sub_process)
    }

    /// Process-level scopes say "Process", sub-processes "Sub process", as bpmnlint's messages do.
    pub(crate) fn what(&self) -> &'static str {
        if self.is_sub_process() {
            "Sub process"
        } else {
            "Process"
        }
    }
}

/// What an id names in the document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Named {
    Node,
    Flow,
    Other,
}

/// The document with the indexes the rules share, built once.
pub(crate) struct Diagram<'d> {
    pub(crate) document: &'d Document,
    pub(crate) ids: IdMap<'d, Named>,
    /// Every flow node of every process, in document order per process.
    pub(crate) nodes: Vec<NodeRef<'d>>,
    /// Every process and sub-process.
    pub(crate) scopes: Vec<Scope<'d>>,
    /// Every sequence flow, in document order, sorted once.
    flows: Vec<&'d Flow>,
}

impl<'d> Diagram<'d> {
    fn new(document: &'d Document) -> Self {
        let mut ids: IdMap<'d, Named> = id_map(64);
        let mut node_index: IdMap<'d, usize> = id_map(64);
        let mut count = 0;
        for process in &document.processes {
            for node in &process.nodes {
                if let Some(id) = node.attrs.id.as_deref() {
                    ids.entry(id).or_insert(Named::Node);
                    node_index.entry(id).or_insert(count);
                }
                count += 1;
            }
            for flow in &process.flows {
                if let Some(id) = flow.attrs.id.as_deref() {
                    ids.entry(id).or_insert(Named::Flow);
                }
            }
            if let Some(id) = process.attrs.id.as_deref() {
                ids.entry(id).or_insert(Named::Other);
            }
        }
        for participant in &document.participants {
            if let Some(id) = participant.id.as_deref() {
                ids.entry(id).or_insert(Named::Other);
            }
        }
        let mut nodes = Vec::new();
        let mut scopes = Vec::new();
        for process in &document.processes {
            let top = scopes.len();
            scopes.push(Scope {
                process,
                node: None,
                children: Vec::new(),
            });
            let sources: std::collections::HashSet<&str> = process
                .associations
                .iter()
                .filter(|a| a.parent.is_none())
                .filter_map(|a| a.source.as_deref())
                .collect();
            // The scope of each sub-process node; a sub-process precedes its contents.
            let mut scope_of: Vec<Option<usize>> = Vec::with_capacity(process.nodes.len());
            for node in &process.nodes {
                let own = matches!(node.kind, Kind::SubProcess(_)).then(|| {
                    scopes.push(Scope {
                        process,
                        node: Some(node),
                        children: Vec::new(),
                    });
                    scopes.len() - 1
                });
                scope_of.push(own);
                let parent = node
                    .parent
                    .and_then(|p| scope_of.get(p).copied().flatten())
                    .unwrap_or(top);
                if let Some(scope) = scopes.get_mut(parent) {
                    scope.children.push(nodes.len());
                }
                nodes.push(NodeRef {
                    process,
                    node,
                    incoming: Vec::new(),
                    outgoing: Vec::new(),
                    scope: own,
                    associated: node.attrs.id.as_deref().is_some_and(|id| sources.contains(id)),
                });
            }
        }
        let mut flows: Vec<(usize, usize, &'d Flow)> = Vec::new();
        for (p, process) in document.processes.iter().enumerate() {
            flows.extend(process.flows.iter().map(|f| (p, f.order, f)));
        }
        flows.sort_by_key(|(p, order, _)| (*p, *order));
        let flows: Vec<&'d Flow> = flows.into_iter().map(|(_, _, f)| f).collect();
        for &flow in &flows {
            let ends = [(&flow.attrs.source_ref, true), (&flow.attrs.target_ref, false)];
            for (end, outgoing) in ends {
                let Some(&n) = end.as_deref().and_then(|id| node_index.get(id)) else {
                    continue;
                };
                if let Some(node) = nodes.get_mut(n) {
                    if outgoing {
                        node.outgoing.push(flow);
                    } else {
                        node.incoming.push(flow);
                    }
                }
            }
        }
        Self {
            document,
            ids,
            nodes,
            scopes,
            flows,
        }
    }

    /// The flow nodes directly inside a scope.
    pub(crate) fn children<'s>(&'s self, scope: &'s Scope<'d>) -> impl Iterator<Item = &'s NodeRef<'d>> + 's {
        scope.children.iter().filter_map(|&i| self.nodes.get(i))
    }

    /// Every sequence flow, in document order.
    pub(crate) fn flows(&self) -> &[&'d Flow] {
        &self.flows
    }
}
