//! The rules about names: labels on what a reader must tell apart, the global elements events
//! refer to, and link events matched by name.

use std::collections::{HashMap, HashSet};

use super::{Diagram, Lint, Out, rule};
use crate::bpmn::document::{DefinitionKind, GatewayKind, Kind, TaskKind, trimmed};

pub(crate) const LABEL_REQUIRED: Lint = Lint {
    rule: rule(
        "bpmnlint/label-required",
        true,
        "Element without a label",
        "Events, activities, forking gateways, conditional flows, participants and lanes need a name to be read.",
    ),
    check: label_required,
    suggestion: "Name the element.",
};

fn label_required(diagram: &Diagram<'_>, out: &mut Out) {
    const MISSING: &str = "Element is missing label/name";
    for node in &diagram.nodes {
        let needs = match node.node.kind {
            Kind::Gateway(GatewayKind::Parallel | GatewayKind::EventBased) | Kind::SubProcess(_) => false,
            Kind::Gateway(_) => node.outgoing.len() > 1,
            _ => true,
        };
        if needs && trimmed(node.node.attrs.name.as_deref()).is_empty() {
            out.report(node.id(), MISSING);
        }
    }
    for flow in diagram.flows() {
        if flow.condition.is_some() && trimmed(flow.attrs.name.as_deref()).is_empty() {
            out.report(flow.attrs.id.as_deref(), MISSING);
        }
    }
    for participant in &diagram.document.participants {
        if trimmed(participant.name.as_deref()).is_empty() {
            out.report(participant.id.as_deref(), MISSING);
        }
    }
    for process in &diagram.document.processes {
        for (id, name) in &process.lanes {
            if trimmed(name.as_deref()).is_empty() {
                out.report(id.as_deref(), MISSING);
            }
        }
    }
}

pub(crate) const GLOBAL: Lint = Lint {
    rule: rule(
        "bpmnlint/global",
        false,
        "Unnamed, unused or ambiguous global element",
        "Messages, signals, errors and escalations are shared by name: each needs a name of its own and a use.",
    ),
    check: global,
    suggestion: "Name the element uniquely among its kind, and reference it from an event, task or message flow \
                 (or remove it).",
};

fn global(diagram: &Diagram<'_>, out: &mut Out) {
    let document = diagram.document;
    // (kind, id) of every reference bpmnlint counts.
    let mut used: HashSet<(DefinitionKind, &str)> = HashSet::new();
    for node in &diagram.nodes {
        let n = node.node;
        if n.kind.is_event() {
            used.extend(
                n.definitions
                    .iter()
                    .filter_map(|d| d.reference.as_deref().map(|r| (d.kind, r))),
            );
        }
        if matches!(n.kind, Kind::Task(TaskKind::Send | TaskKind::Receive))
            && let Some(message) = n.attrs.message_ref.as_deref()
        {
            used.insert((DefinitionKind::Message, message));
        }
    }
    used.extend(
        document
            .message_flows
            .iter()
            .filter_map(|f| f.message_ref.as_deref().map(|m| (DefinitionKind::Message, m))),
    );
    for global in &document.globals {
        if global
            .name
            .as_deref()
            .is_some_and(|name| trimmed(Some(name)).is_empty())
        {
            out.report(Some(&global.id), "Element is missing name");
        }
        if !used.contains(&(global.kind, global.id.as_str())) {
            out.report(Some(&global.id), "Element is unused");
        }
        let same = document
            .globals
            .iter()
            .filter(|other| other.kind == global.kind && other.name == global.name)
            .count();
        if same != 1 {
            out.report(Some(&global.id), "Element name is not unique");
        }
    }
}

pub(crate) const LINK_EVENT: Lint = Lint {
    rule: rule(
        "bpmnlint/link-event",
        true,
        "Unmatched link event",
        "A link throw event continues at the one link catch event of the same name in its scope; names must be set \
         and match.",
    ),
    check: link_event,
    suggestion: "Name the link and give each name one catch event (and at least one throw event) in the same scope.",
};

fn link_event(diagram: &Diagram<'_>, out: &mut Out) {
    for scope in &diagram.scopes {
        // (link name as bpmnlint groups it, event) in document order.
        let mut links: Vec<(&str, &super::NodeRef<'_>)> = Vec::new();
        for child in diagram.children(scope) {
            let Some(link) = child.node.definitions.iter().find(|d| d.kind == DefinitionKind::Link) else {
                continue;
            };
            if !child.node.kind.is_event() {
                continue;
            }
            let name = link.name.as_deref().filter(|n| !n.is_empty());
            if name.is_none() {
                out.report(child.id(), "Link event is missing link name");
            }
            links.push((name.unwrap_or("_"), child));
        }
        // Grouped by name, the groups in order of first appearance.
        let mut groups: HashMap<&str, Vec<&super::NodeRef<'_>>> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        for (name, event) in &links {
            let group = groups.entry(name).or_default();
            if group.is_empty() {
                names.push(name);
            }
            group.push(event);
        }
        for name in names {
            let Some(events) = groups.get(name) else {
                continue;
            };
            if let [event] = events.as_slice() {
                let missing = if event.node.kind.is_catch() { "throw" } else { "catch" };
                out.report(
                    event.id(),
                    format!("Link {missing} event with link name <{name}> missing in scope"),
                );
                continue;
            }
            let catches: Vec<_> = events.iter().filter(|e| e.node.kind.is_catch()).collect();
            if catches.len() > 1 {
                for event in catches {
                    out.report(
                        event.id(),
                        format!("Duplicate link catch event with link name <{name}> in scope"),
                    );
                }
            } else if catches.is_empty() {
                for event in events {
                    out.report(
                        event.id(),
                        format!("Link catch event with link name <{name}> missing in scope"),
                    );
                }
            }
        }
    }
}
