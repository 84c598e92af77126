//! The rules about gateways: discouraged kinds, event-based gateways, and gateways that fork and
//! join at once or do neither.

use super::{Diagram, Lint, Out, rule};
use crate::bpmn::document::{GatewayKind, Kind};

pub(crate) const EVENT_BASED_GATEWAY: Lint = Lint {
    rule: rule(
        "bpmnlint/event-based-gateway",
        true,
        "Malformed event-based gateway",
        "An event-based gateway waits for the first of several events: it needs at least two outgoing flows, none \
         of them conditional.",
    ),
    check: event_based_gateway,
    suggestion: "Lead at least two unconditional flows from the gateway to the events it waits for.",
};

fn event_based_gateway(diagram: &Diagram<'_>, out: &mut Out) {
    for node in &diagram.nodes {
        if node.node.kind != Kind::Gateway(GatewayKind::EventBased) {
            continue;
        }
        if node.outgoing.len() < 2 {
            out.report(
                node.id(),
                "An <Event-based Gateway> must have at least 2 outgoing <Sequence Flows>",
            );
        }
        for flow in node.outgoing.iter().filter(|f| f.condition.is_some()) {
            out.report(
                flow.attrs.id.as_deref(),
                "A <Sequence Flow> outgoing from an <Event-based Gateway> must not be conditional",
            );
        }
    }
}

pub(crate) const NO_COMPLEX_GATEWAY: Lint = Lint {
    rule: rule(
        "bpmnlint/no-complex-gateway",
        true,
        "Complex gateway",
        "Complex gateways are hard to read and barely supported by engines.",
    ),
    check: no_complex_gateway,
    suggestion: "Model the behaviour with exclusive, inclusive or parallel gateways.",
};

fn no_complex_gateway(diagram: &Diagram<'_>, out: &mut Out) {
    discouraged(diagram, out, GatewayKind::Complex, "complexGateway");
}

pub(crate) const NO_INCLUSIVE_GATEWAY: Lint = Lint {
    rule: rule(
        "bpmnlint/no-inclusive-gateway",
        false,
        "Inclusive gateway",
        "Inclusive gateways are hard to read: which paths a join waits for depends on the whole process.",
    ),
    check: no_inclusive_gateway,
    suggestion: "Model the behaviour with exclusive and parallel gateways.",
};

fn no_inclusive_gateway(diagram: &Diagram<'_>, out: &mut Out) {
    discouraged(diagram, out, GatewayKind::Inclusive, "inclusiveGateway");
}

fn discouraged(diagram: &Diagram<'_>, out: &mut Out, kind: GatewayKind, element: &str) {
    let mut name = element.to_owned();
    if let Some(first) = name.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    for node in diagram.nodes.iter().filter(|n| n.node.kind == Kind::Gateway(kind)) {
        out.report(node.id(), format!("Element type <bpmn:{name}> is discouraged"));
    }
}

pub(crate) const NO_GATEWAY_JOIN_FORK: Lint = Lint {
    rule: rule(
        "bpmnlint/no-gateway-join-fork",
        true,
        "Gateway joins and forks",
        "A gateway that both joins and forks hides two decisions in one shape.",
    ),
    check: no_gateway_join_fork,
    suggestion: "Use one gateway to join and another to fork.",
};

fn no_gateway_join_fork(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| n.node.kind.is_gateway()) {
        if node.incoming.len() > 1 && node.outgoing.len() > 1 {
            out.report(node.id(), "Gateway forks and joins");
        }
    }
}

pub(crate) const SUPERFLUOUS_GATEWAY: Lint = Lint {
    rule: rule(
        "bpmnlint/superfluous-gateway",
        false,
        "Superfluous gateway",
        "A gateway with one incoming and one outgoing flow neither joins nor forks.",
    ),
    check: superfluous_gateway,
    suggestion: "Remove the gateway and connect its source to its target.",
};

fn superfluous_gateway(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| n.node.kind.is_gateway()) {
        if node.incoming.len() == 1 && node.outgoing.len() == 1 {
            out.report(node.id(), "Gateway is superfluous. It only has one source and target.");
        }
    }
}
