//! The rules about how sequence flows connect flow nodes: conditions on splits, implicit starts,
//! ends, splits and joins, disconnected elements and duplicate flows.

use std::collections::HashSet;

use super::{Diagram, Lint, NodeRef, Out, rule};
use crate::bpmn::document::{DefinitionKind, Kind};

pub(crate) const CONDITIONAL_FLOWS: Lint = Lint {
    rule: rule(
        "bpmnlint/conditional-flows",
        true,
        "Sequence flow without a condition on a conditional split",
        "Where an element splits on conditions (a default flow, or a condition on some outgoing flow), every other \
         outgoing flow needs a condition too, or it is taken unconditionally.",
    ),
    check: conditional_flows,
    suggestion: "Give the flow a condition, or make it the element's default flow.",
};

fn conditional_flows(diagram: &Diagram<'_>, out: &mut Out) {
    for node in &diagram.nodes {
        let has_default = node.node.kind.takes_default() && node.has_default(diagram);
        let conditional = node.outgoing.iter().any(|f| f.condition.is_some());
        if !has_default && !conditional {
            continue;
        }
        for flow in node.outgoing.iter() {
            if flow.condition.is_none() && !(node.node.kind.takes_default() && node.is_default(flow)) {
                out.report(flow.attrs.id.as_deref(), "Sequence flow is missing condition");
            }
        }
    }
}

pub(crate) const FAKE_JOIN: Lint = Lint {
    rule: rule(
        "bpmnlint/fake-join",
        false,
        "Implicit join",
        "Several flows into an activity or event do not join: each one starts the element again. Join with a gateway.",
    ),
    check: fake_join,
    suggestion: "Lead the flows into a gateway that joins them, and from it into the element.",
};

fn fake_join(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| activity_or_event(n)) {
        if node.incoming.len() > 1 {
            out.report(node.id(), "Incoming flows do not join");
        }
    }
}

pub(crate) const NO_IMPLICIT_SPLIT: Lint = Lint {
    rule: rule(
        "bpmnlint/no-implicit-split",
        true,
        "Implicit split",
        "Several unconditional flows out of an activity or event split the path in parallel without saying so.",
    ),
    check: no_implicit_split,
    suggestion: "Split with a parallel gateway, or give the flows conditions.",
};

fn no_implicit_split(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| activity_or_event(n)) {
        let plain = node
            .outgoing
            .iter()
            .filter(|flow| flow.condition.is_none() && !(node.node.kind.takes_default() && node.is_default(flow)))
            .count();
        if plain > 1 {
            out.report(node.id(), "Flow splits implicitly");
        }
    }
}

pub(crate) const NO_DISCONNECTED: Lint = Lint {
    rule: rule(
        "bpmnlint/no-disconnected",
        true,
        "Disconnected element",
        "A task, gateway, sub-process or event without incoming or outgoing flows takes no part in the process.",
    ),
    check: no_disconnected,
    suggestion: "Connect the element with sequence flows, or remove it.",
};

fn no_disconnected(diagram: &Diagram<'_>, out: &mut Out) {
    for node in &diagram.nodes {
        let n = node.node;
        let checked =
            n.kind.is_task() || n.kind.is_gateway() || matches!(n.kind, Kind::SubProcess(_)) || n.kind.is_event();
        if !checked || n.is_event_sub_process() {
            continue;
        }
        let compensation_boundary =
            n.kind == Kind::Boundary && matches!(n.definitions.as_slice(), [d] if d.kind == DefinitionKind::Compensate);
        if compensation_boundary || n.is_for_compensation() || node.in_ad_hoc() {
            continue;
        }
        if node.incoming.is_empty() && node.outgoing.is_empty() {
            out.report(node.id(), "Element is not connected");
        }
    }
}

pub(crate) const NO_IMPLICIT_START: Lint = Lint {
    rule: rule(
        "bpmnlint/no-implicit-start",
        true,
        "Implicit start",
        "An element without incoming flows (other than start and boundary events, link catches and compensation \
         handlers) starts a path no start event announces.",
    ),
    check: no_implicit_start,
    suggestion: "Lead a sequence flow into the element, or begin the path with a start event.",
};

fn no_implicit_start(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| flow_object(n)) {
        let n = node.node;
        let exempt = n.is_for_compensation()
            || node.in_ad_hoc()
            || n.is_event_sub_process()
            || (n.kind == Kind::Catch && n.only_definitions(DefinitionKind::Link))
            || matches!(n.kind, Kind::Start | Kind::Boundary);
        if !exempt && node.incoming.is_empty() {
            out.report(node.id(), "Element is an implicit start");
        }
    }
}

pub(crate) const NO_IMPLICIT_END: Lint = Lint {
    rule: rule(
        "bpmnlint/no-implicit-end",
        true,
        "Implicit end",
        "An element without outgoing flows (other than end events, link throws and compensation) ends a path no end \
         event announces.",
    ),
    check: no_implicit_end,
    suggestion: "Lead a sequence flow out of the element, or end the path with an end event.",
};

fn no_implicit_end(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| flow_object(n)) {
        let n = node.node;
        let compensation_boundary =
            n.kind == Kind::Boundary && n.only_definitions(DefinitionKind::Compensate) && node.associated;
        let exempt = n.is_event_sub_process()
            || (n.kind == Kind::Throw && n.only_definitions(DefinitionKind::Link))
            || node.in_ad_hoc()
            || n.kind == Kind::End
            || compensation_boundary
            || n.is_for_compensation();
        if !exempt && node.outgoing.is_empty() {
            out.report(node.id(), "Element is an implicit end");
        }
    }
}

pub(crate) const NO_DUPLICATE_SEQUENCE_FLOWS: Lint = Lint {
    rule: rule(
        "bpmnlint/no-duplicate-sequence-flows",
        true,
        "Duplicate sequence flow",
        "Two sequence flows with the same source, target and condition double every token that takes them.",
    ),
    check: no_duplicate_sequence_flows,
    suggestion: "Remove the duplicate sequence flow.",
};

fn no_duplicate_sequence_flows<'d>(diagram: &Diagram<'d>, out: &mut Out) {
    let mut keyed: HashSet<(&'d str, &'d str, &'d str)> = HashSet::new();
    let (mut sources, mut targets): (HashSet<&'d str>, HashSet<&'d str>) = (HashSet::new(), HashSet::new());
    for flow in diagram.flows() {
        let own = flow.attrs.id.as_deref().unwrap_or_default();
        let resolved = |id: Option<&'d str>| id.filter(|id| diagram.ids.contains_key(id));
        let (source, target) = (
            resolved(flow.attrs.source_ref.as_deref()),
            resolved(flow.attrs.target_ref.as_deref()),
        );
        // bpmn-moddle reads an empty condition's body as undefined, which the key spells out.
        let condition = match flow.condition.as_deref() {
            None => "",
            Some(text) if text.trim().is_empty() => "undefined",
            Some(text) => text,
        };
        if keyed.insert((source.unwrap_or(own), target.unwrap_or(own), condition)) {
            continue;
        }
        out.report(flow.attrs.id.as_deref(), "SequenceFlow is a duplicate");
        if let Some(source) = source
            && sources.insert(source)
        {
            out.report(Some(source), "Duplicate outgoing sequence flows");
        }
        if let Some(target) = target
            && targets.insert(target)
        {
            out.report(Some(target), "Duplicate incoming sequence flows");
        }
    }
}

fn activity_or_event(node: &NodeRef<'_>) -> bool {
    node.node.kind.is_activity() || node.node.kind.is_event()
}

/// Events, activities and gateways.
fn flow_object(node: &NodeRef<'_>) -> bool {
    activity_or_event(node) || node.node.kind.is_gateway()
}
